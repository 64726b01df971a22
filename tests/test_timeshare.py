"""benchmarks/timeshare.py: runs that take turns count only their own turns."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
from timeshare import NEW_GROUP, Child, take_turns  # noqa: E402

# a child that burns CPU_SECONDS of its own CPU time between its start and end lines, reporting its progress as it goes,
# and reports its own wall span
BURN = """
import json, sys, time
cpu_seconds = float(sys.argv[1])
print(json.dumps({"event": "start"}), flush=True)
began, cpu, reported = time.perf_counter(), time.process_time(), 0.0
while (used := time.process_time() - cpu) < cpu_seconds:
    if used - reported > 0.02:
        print(json.dumps({"event": "progress", "done": used / cpu_seconds}), flush=True)
        reported = used
print(json.dumps({"event": "end", "result": {"span": time.perf_counter() - began}}), flush=True)
"""


def burner(name: str, cpu_seconds: float) -> Child:
    return Child(name, [sys.executable, "-c", BURN, str(cpu_seconds)])


def test_runs_take_turns_count_only_their_own_and_advance_together():
    cpu_seconds = {"long": 0.8, "a": 0.4, "b": 0.4}
    runs = [burner(name, seconds) for name, seconds in cpu_seconds.items()]
    alone = take_turns(runs, slice_seconds=0.05)
    longest_span = max(run.result["span"] for run in runs)
    for run in runs:
        # stopped between its turns, it burned all its CPU time in them, and a single thread's wall time >= its CPU time
        assert run.seconds >= 0.98 * cpu_seconds[run.name], run.name
        # its own clock ran on while it was stopped: the others ran in between
        assert run.seconds < 0.75 * run.result["span"], run.name
        # each turn went to the run furthest behind: the short runs lived through the long one's time, not half of it
        assert run.result["span"] > 0.75 * longest_span, run.name
    assert alone < 0.25 * runs[0].seconds  # the runs ended close together


def test_a_run_that_fails_is_named():
    failing = Child("broken", [sys.executable, "-c", "import sys; sys.exit(3)"])
    with pytest.raises(RuntimeError, match="run 'broken' exited with code 3 before its end line"):
        take_turns([burner("long", 0.2), failing], slice_seconds=0.05)


def test_a_terminated_benchmark_leaves_no_stopped_run_behind(tmp_path):
    # each child writes its process id, then burns CPU for a minute in its turns
    child = f"import os, time; open(os.path.join({str(tmp_path)!r}, str(os.getpid())), 'w').close()\nwhile True: pass"
    benchmark = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parents[1] / 'benchmarks')!r})\n"
        "from timeshare import Child, take_turns\n"
        f"argv = [sys.executable, '-c', {child!r}]\n"
        "take_turns([Child('long', argv), Child('short', argv)], 0.1)"
    )
    parent = subprocess.Popen([sys.executable, "-c", benchmark])
    deadline = time.monotonic() + 30
    while len(list(tmp_path.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    children = [int(path.name) for path in tmp_path.iterdir()]
    assert len(children) == 2, "the two runs did not start"
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=30) == 128 + signal.SIGTERM
    for pid in children:  # killed and reaped by the benchmark before it exited
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_continue_sent_to_the_benchmarks_process_group_does_not_wake_the_stopped_runs():
    """Started with ``nohup ... &`` from a shell that then exited, the first fused-kernel speedrun's process group was
    orphaned, and as the runs loaded the kernel (PyTorch's extension builder starts ninja and the compiler) the kernel
    continued every stopped process of that group (SIGCONT, seen in /proc: all runs from T to R in one turn). They ran
    outside their turns: bfloat16 runs of 47 s were timed at 12-16 s. Each run now has a process group of its own, so
    a SIGCONT to the benchmark's group, sent here by one run as the kernel sent it then, wakes none of the others."""
    wakes_the_group = "import os, signal; os.killpg(os.getpgid(os.getppid()), signal.SIGCONT)\n"
    benchmark = (
        f"import json, sys; sys.path.insert(0, {str(Path(__file__).parents[1] / 'benchmarks')!r})\n"
        "from timeshare import Child, take_turns\n"
        f"runs = [Child(name, [sys.executable, '-c', {BURN!r}, '0.6']) for name in ('a', 'b')]\n"
        f"runs.append(Child('wakes', [sys.executable, '-c', {wakes_the_group!r} + {BURN!r}, '0.6']))\n"
        "take_turns(runs, 0.05)\n"
        "print(json.dumps({run.name: run.seconds for run in runs}))"
    )
    # a process group of its own for the benchmark, which the SIGCONT goes to, not pytest's
    finished = subprocess.run(
        [sys.executable, "-c", benchmark], capture_output=True, text=True, timeout=120, **NEW_GROUP
    )
    assert finished.returncode == 0, finished.stderr
    for name, seconds in json.loads(finished.stdout).items():
        assert seconds >= 0.98 * 0.6, f"run {name} was timed at {seconds:.2f} s for 0.6 s of its own CPU time"
