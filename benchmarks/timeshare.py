"""Time runs that are to be compared in turns, so that a machine's drift slows them alike.

On a shared 2-core VM the same training run took 3.0 minutes and, a quarter of an hour later, 4.9
(2026-12-03): timed one after the other, a 21-minute replay and the 2-minute runs compared with it
meet different machines. Here every run is a child process, and the runs take turns on the whole
machine: one is continued (SIGCONT) for a slice of seconds while the others are stopped (SIGSTOP).
A run's time is the wall time of its slices between the ``start`` and ``end`` lines it prints, so a
slow minute of the machine falls on whichever runs are sharing it then.

A child prints one JSON line ``{"event": "start"}`` when its timed work begins (after imports and
data loading) and one ``{"event": "end", "result": {...}}`` when it ends. POSIX only (Linux, macOS).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time
from collections import deque
from collections.abc import Sequence


class Child:
    """One run in its own process, continued and stopped by ``take_turns``; ``seconds``: its timed running time."""

    def __init__(self, name: str, argv: Sequence[str]) -> None:
        self.name, self.argv = name, list(argv)
        self.process: subprocess.Popen | None = None
        self.seconds = 0.0
        self.result: dict | None = None
        self._timing_since: float | None = None  # while its timed work runs: when the current count began
        self._pending = b""

    @property
    def done(self) -> bool:
        return self.process is not None and self.process.returncode is not None

    def run_for(self, seconds: float) -> None:
        """Run alone for ``seconds`` (or until it exits), then stop; started on its first turn."""
        if self.process is None:
            self.process = subprocess.Popen(self.argv, stdout=subprocess.PIPE)
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
            elif message["event"] == "end":
                self.seconds += now - self._timing_since
                self._timing_since, self.result = None, message["result"]
        return True

    def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()  # SIGKILL ends a stopped process too
            self.process.wait()


def take_turns(long_run: Child, short_runs: Sequence[Child], slice_seconds: float) -> float:
    """Run ``long_run`` in turns with each of ``short_runs`` in order (one at a time), in slices; run all to the end.

    Returns the seconds during which one side ran with the other finished: the part of the
    timing that no turn-taking evened out.
    """
    if not hasattr(signal, "SIGSTOP"):
        raise RuntimeError("timing in turns stops and continues processes (SIGSTOP, SIGCONT): run it on Linux or macOS")
    queue, alone = deque(short_runs), 0.0
    on_terminate = signal.signal(signal.SIGTERM, _exit)  # so that a terminated benchmark kills its stopped runs too
    try:
        while True:
            if queue and queue[0].done:
                queue.popleft()
            turns = [child for child in (long_run, queue[0] if queue else None) if child is not None and not child.done]
            if not turns:
                break
            for child in turns:
                began = time.perf_counter()
                child.run_for(slice_seconds)
                if len(turns) == 1:
                    alone += time.perf_counter() - began
    finally:
        for child in (long_run, *short_runs):
            child.kill()
        signal.signal(signal.SIGTERM, on_terminate)
    return alone


def _exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)
