"""Time runs that are to be compared in turns, so that a machine's drift slows them alike.

On a shared 2-core VM the same training run took 3.0 minutes and, a quarter of an hour later, 4.9
(2026-12-03): timed one after the other, a 21-minute replay and the 2-minute runs compared with it
meet different machines. Here every run is a child process, all of them alive at once, and they
take turns on the whole machine: one is continued (SIGCONT) for a slice of seconds while the others
are stopped (SIGSTOP), and each turn goes to the run furthest behind, by the share of its work it
reports done. So every run advances at the same pace through the whole benchmark, and a slow stretch
of the machine falls on every run alike, whatever its length. A run's time is the wall time of its
slices between the ``start`` and ``end`` lines it prints.

A child prints JSON lines: ``{"event": "start"}`` when its timed work begins (after imports and data
loading), ``{"event": "progress", "done": 0.37}`` as it goes (the share of its work done), and
``{"event": "end", "result": {...}}`` when it ends. POSIX only (Linux, macOS).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

NEW_GROUP = {"process_group": 0} if sys.version_info >= (3, 11) else {"preexec_fn": os.setpgrp}


class Child:
    """One run in its own process, continued and stopped by ``take_turns``; ``seconds``: its timed running time."""

    def __init__(self, name: str, argv: Sequence[str]) -> None:
        self.name, self.argv = name, list(argv)
        self.process: subprocess.Popen | None = None
        self.seconds = 0.0
        self.progress = 0.0  # the share of its work done, as it last reported
        self.result: dict | None = None
        self._timing_since: float | None = None  # while its timed work runs: when the current count began
        self._pending = b""

    @property
    def done(self) -> bool:
        return self.process is not None and self.process.returncode is not None

    def run_for(self, seconds: float) -> None:
        """Run alone for ``seconds`` (or until it exits), then stop; started on its first turn."""
        if self.process is None:
            # a process group of its own: where the benchmark's group is orphaned (started with nohup ... & from a shell
            # that exits), the kernel continues every stopped process of it (SIGCONT) at some exits in the group, and
            # the stopped runs ran outside their turns (the first fused-kernel speedrun, whose runs start ninja)
            self.process = subprocess.Popen(self.argv, stdout=subprocess.PIPE, **NEW_GROUP)
        else:
            self.process.send_signal(signal.SIGCONT)
        began = time.perf_counter()
        if self._timing_since is not None:
            self._timing_since = began
        deadline = began + seconds
        while (now := time.perf_counter()) < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], deadline - now)
            if ready and not self._read():
                return  # it exited within its turn
        self.process.send_signal(signal.SIGSTOP)
        stopped = time.perf_counter()
        if self._timing_since is not None:
            self.seconds += stopped - self._timing_since

    def _read(self) -> bool:
        """Handle what the child printed; False once it has exited."""
        chunk = os.read(self.process.stdout.fileno(), 65536)
        now = time.perf_counter()
        if not chunk:
            self.process.wait()
            if self.process.returncode != 0 or self.result is None:
                raise RuntimeError(
                    f"run {self.name!r} exited with code {self.process.returncode} before its end line "
                    f"(its error is above): {' '.join(self.argv)}"
                )
            return False
        *lines, self._pending = (self._pending + chunk).split(b"\n")
        for line in lines:
            message = json.loads(line)
            if message["event"] == "start":
                self._timing_since = now
            elif message["event"] == "progress":
                self.progress = float(message["done"])
            elif message["event"] == "end":
                self.seconds += now - self._timing_since
                self._timing_since, self.result, self.progress = None, message["result"], 1.0
        return True

    def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()  # SIGKILL ends a stopped process too
            self.process.wait()


def take_turns(runs: Sequence[Child], slice_seconds: float) -> float:
    """Run all ``runs`` to the end in turns of ``slice_seconds``, each turn to the run with the least progress.

    Ties go to the run that waited longest. Returns the seconds during which one run was left alone:
    the part of the timing that no turn-taking evened out.
    """
    if not hasattr(signal, "SIGSTOP"):
        raise RuntimeError("timing in turns stops and continues processes (SIGSTOP, SIGCONT): run it on Linux or macOS")
    last_turn = [float("-inf")] * len(runs)  # when each run's last turn began
    alone = 0.0
    on_terminate = signal.signal(signal.SIGTERM, _exit)  # so that a terminated benchmark kills its stopped runs too
    try:
        while waiting := [i for i, run in enumerate(runs) if not run.done]:
            behind = min(waiting, key=lambda i: (runs[i].progress, last_turn[i]))
            began = time.perf_counter()
            runs[behind].run_for(slice_seconds)
            last_turn[behind] = began
            if len(waiting) == 1:
                alone += time.perf_counter() - began
    finally:
        for run in runs:
            run.kill()
        signal.signal(signal.SIGTERM, on_terminate)
    return alone


def _exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)
