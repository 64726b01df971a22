"""The folder of one run: what it holds, who writes it, and reading it back.

- ``run.json``: the run's id and its config, LR and device resolved (written before the first checkpoint; what a
  resume reads);
- ``last.pt``: the last completed epoch with the whole training state, to resume exactly;
- ``best.pt``: the epoch with the best validation accuracy so far;
- ``metrics.json``: the history and the test result, written at the end (by ``experiment.run``);
- ``.lock``: present while a run writes into the folder;
- ``.replaced/``: the files of the run that ``overwrite`` replaces, kept until the new run has saved its first
  epoch, and put back if it stops before that (if it was killed, when the folder is next used).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, NamedTuple

from .checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from .config import TrainConfig
from .data import Splits
from .errors import ConfigError, LabError
from .files import atomic_write_text, nearest_existing, remove_partial_files
from .train import TrainingState, training_state_problem

RUN_FILES = ("run.json", "last.pt", "best.pt", "metrics.json")
REPLACED = ".replaced"  # an overwritten run's files, until the run that replaces it has saved an epoch


class RunFolderError(LabError):
    """The output folder cannot take this run (it holds another, or another run is writing to it)."""


class RunSettings(NamedTuple):
    """What ``run.json`` holds."""

    run_id: str
    config: TrainConfig


class ResumePoint(NamedTuple):
    """Where an interrupted run stopped: its settings and the training state of its last completed epoch."""

    run_id: str
    config: TrainConfig
    training_state: dict[str, Any]


def latest_run(parent: str | os.PathLike) -> Path | None:
    """The newest finished run directly in ``parent``, or None.

    Finished: its folder holds metrics.json (written last) and no .lock (no run is writing there now, such
    as an --overwrite rerun). Only ``parent``'s own subfolders count, so a notebook that reads
    ``runs/notebook05`` never gets a run that another notebook wrote into its own folder.
    """
    finished = [p.parent for p in Path(parent).glob("*/metrics.json") if not (p.parent / ".lock").exists()]
    return max(finished, key=lambda p: (p / "metrics.json").stat().st_mtime, default=None)


def new_run_folder(parent: str | os.PathLike) -> Path:
    """A new, empty folder in ``parent`` for a new run (created here), so that a rerun never replaces an old one.

    The name is the time, with -1, -2, ... on a clash. Each name is claimed by an exclusive mkdir, which
    fails if the folder exists, so two runs started at once (two notebooks, two threads) never share one.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    try:
        Path(parent).mkdir(parents=True, exist_ok=True)
        for n in range(10_000):
            path = Path(parent) / (stamp if n == 0 else f"{stamp}-{n}")
            try:
                path.mkdir()
            except FileExistsError:
                continue
            return path
    except OSError as err:  # a parent that is a file, or not writable
        raise RunFolderError(
            f"cannot create a run folder in {parent}: {err.strerror or err}; choose another parent folder"
        ) from err
    raise RunFolderError(f"{parent} already holds 10,000 run folders named {stamp}-*; choose another parent folder")


class RunFolder:
    """The files of one run in one folder (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = path / ".lock"
        self.locked = False
        self.settings: RunSettings | None = None  # the run's, once read or written: what each checkpoint records
        self.set_aside = False  # this run moved an old run into .replaced/ and has saved no epoch yet

    def check(self, resume: bool = False, overwrite: bool = False) -> None:
        """Refuse, before any work, a folder this run cannot use; create it if needed."""
        if resume and overwrite:
            raise RunFolderError(
                "resume and overwrite exclude each other: resume continues the run in "
                f"{self.path}, overwrite replaces it"
            )
        if resume and not self.path.is_dir():  # refused before the mkdir below could create it
            self.require_resumable()
        existing = nearest_existing(self.path)  # the folder, or where it will be created
        if not existing.is_dir():
            raise RunFolderError(f"{existing} is a file, not a folder; choose another output folder")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RunFolderError(
                f"cannot create the output folder {self.path}: {err.strerror or err}; choose another output folder"
            ) from err
        if not os.access(self.path, os.W_OK):
            raise RunFolderError(f"{self.path} is not writable; choose an output folder you can write to")
        holder = self._lock_holder()
        if holder is not None:
            raise self._busy(holder)
        self._settle_replaced()  # no run writes here now: an overwrite that was killed is settled first
        remove_partial_files(self.path)  # what a killed run was writing
        if resume:
            self.require_resumable()
        elif self.holds_a_run() and not overwrite:
            files = ", ".join(self.existing_files())
            if (self.path / "metrics.json").is_file():
                what, fix = "a finished run", ""
            elif not (self.path / "last.pt").is_file():
                what, fix = "a run that stopped before it saved its first epoch", ""
            else:
                what, fix = "an interrupted run", "resume it (resume=True, --resume), "
            raise RunFolderError(
                f"{self.path} already holds {what} ({files}); {fix}replace it (overwrite=True, --overwrite), "
                f"or choose another output folder"
            )

    def claim(self, resume: bool = False, overwrite: bool = False) -> None:
        """Check the folder, take its lock, and set aside an old run that ``overwrite`` replaces."""
        self.check(resume, overwrite)
        try:
            fd = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:  # taken between check() and now
            raise self._busy(self._lock_holder() or "one that took the folder a moment ago") from None
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.ctime()}))
        self.locked = True
        if overwrite:
            try:
                self._set_aside()
            except OSError:
                self.release()
                raise

    def _set_aside(self) -> None:
        """Move the old run's files into ``.replaced/``: nothing of it is lost before the new run has an epoch."""
        names = self.existing_files()
        if names:
            (self.path / REPLACED).mkdir()  # _settle_replaced left none
            for name in names:
                os.replace(self.path / name, self.path / REPLACED / name)
            self.set_aside = True

    def put_back_replaced(self) -> bool:
        """The run this run set aside, back in place (this run's files removed), if it has saved no epoch yet."""
        if not self.set_aside:
            return False
        self._put_back()
        self.set_aside = False
        return True

    def _put_back(self) -> None:
        for name in self.existing_files():
            (self.path / name).unlink()
        for file in (self.path / REPLACED).iterdir():
            os.replace(file, self.path / file.name)
        (self.path / REPLACED).rmdir()

    def _settle_replaced(self) -> None:
        """A ``.replaced/`` that a killed run left: its old run put back if the new one saved no epoch, else gone."""
        if not (self.path / REPLACED).is_dir():
            return
        if (self.path / "last.pt").is_file():  # the new run had saved an epoch: it had replaced the old one
            shutil.rmtree(self.path / REPLACED)
        else:
            self._put_back()

    def release(self) -> None:
        """Give the lock back, if this folder object holds it."""
        if self.locked:
            self.lock.unlink(missing_ok=True)
            self.locked = False

    def _busy(self, holder: str) -> RunFolderError:
        return RunFolderError(
            f"another run ({holder}) is writing to {self.path}; wait for it to finish, or choose another output folder"
        )

    def _lock_holder(self) -> str | None:
        """Who holds the lock ("process 123 on host, started …"), or None; a dead holder's lock is removed."""
        try:
            holder = json.loads(self.lock.read_text())
            pid, host = int(holder["pid"]), str(holder["host"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            return f"unreadable lock file {self.lock}; delete it if no run is writing there"
        if host == socket.gethostname() and not _process_alive(pid):
            self.lock.unlink(missing_ok=True)  # left by a run that was killed
            return None
        return f"process {pid} on {host}, started {holder.get('started', '?')}"

    def existing_files(self) -> list[str]:
        """The files of a run that the folder holds already."""
        return [name for name in RUN_FILES if (self.path / name).exists()]

    def holds_a_run(self) -> bool:
        """True if any file of a run is there."""
        return bool(self.existing_files())

    def require_resumable(self) -> None:
        """Refuse a folder that holds no interrupted run (run.json and last.pt are both needed, metrics.json not)."""
        self._require_run_files()
        if (self.path / "metrics.json").is_file():
            raise RunFolderError(
                f"{self.path} holds a finished run (its metrics.json is written), so there is nothing to resume: "
                f"score it with `fmnist-lab evaluate {self.path / 'best.pt'}`, or train again into a new folder"
            )

    def _require_run_files(self) -> None:
        if (self.path / "run.json").is_file() and not (self.path / "last.pt").is_file():
            raise RunFolderError(
                f"{self.path} holds a run that stopped before it saved its first epoch (run.json, no last.pt): "
                f"there is nothing to resume; train again into it with overwrite=True (--overwrite), or into "
                f"another folder"
            )
        if not (self.path / "run.json").is_file() or not (self.path / "last.pt").is_file():
            raise RunFolderError(
                f"{self.path} is not the output folder of an interrupted fmnist-lab run (it needs "
                f"run.json and last.pt, which `fmnist-lab train --out {self.path}` writes)"
            )

    def read_settings(self) -> RunSettings:
        """The run id and config in ``run.json``, each checked (a finished run's too)."""
        self._require_run_files()
        path = self.path / "run.json"
        try:
            settings = json.loads(path.read_text())
            if "lr" in settings:  # before version 0.2 the picked LR stood beside a config whose lr was None
                raise RunFolderError(
                    f"{path} was written by an earlier version of the lab, which kept the LR apart "
                    f"from the config; this version cannot resume it. Its best.pt still loads "
                    f"(`fmnist-lab evaluate`, `fmnist-lab predict`); to train on, start a new run"
                )
            run_id, config = settings["run_id"], settings["config"]
            if not isinstance(run_id, str) or not isinstance(config, dict):
                raise TypeError("run_id must be a string and config a dict")
            try:
                config = TrainConfig.from_dict(config)
            except ConfigError as err:
                device = next(((value, rule) for name, value, rule in err.problems if name == "device"), None)
                if device is None:
                    raise
                raise RunFolderError(
                    f"{self.path} is a run on device {device[0]!r}, and {device[1].split(';')[0]}: a resumed run keeps "
                    f"its own settings, so resume it on a machine with that device, or train again into a new folder"
                ) from err
            if config.lr is None:
                raise ValueError("its config has no LR")
            return RunSettings(run_id, config)
        except (ValueError, KeyError, TypeError) as err:  # ConfigError is a ValueError
            raise RunFolderError(
                f"{path} is damaged ({err!r}); it cannot be resumed: train again into a new folder"
            ) from err

    def read_resume_point(self, settings: RunSettings | None = None) -> ResumePoint:
        """The settings (``settings`` if already read) and the last epoch's state, checked to belong to one run."""
        run_id, config = settings or self.read_settings()
        payload = read_checkpoint(self.path / "last.pt")
        if "training_state" not in payload:
            raise CheckpointError(
                f"{self.path / 'last.pt'} holds no training state (a best.pt copied over it?), so the run cannot "
                f"go on from it; train again into a new folder"
            )
        problem = training_state_problem(payload["training_state"])
        if problem is not None:
            raise CheckpointError(
                f"{self.path / 'last.pt'} holds a damaged training state ({problem}), so the run cannot go on from "
                f"it; train again into a new folder"
            )
        if payload["metrics"].get("run_id") != run_id:
            raise CheckpointError(
                f"{self.path / 'last.pt'} does not belong to the run in run.json (run ids "
                f"{payload['metrics'].get('run_id')!r} and {run_id!r}): the folder mixes two runs; "
                f"train again into a new folder"
            )
        if TrainConfig.from_dict(payload["config"]) != config:
            raise CheckpointError(
                f"{self.path / 'last.pt'} was trained with other settings than run.json says: the "
                f"folder mixes two runs; train again into a new folder"
            )
        self.settings = RunSettings(run_id, config)
        return ResumePoint(run_id, config, payload["training_state"])

    def save_epoch(self, state: TrainingState, splits: Splits, run_id: str) -> None:
        """After each epoch: ``best.pt`` when validation improved, ``last.pt`` always (last, so it is never ahead).

        A new run's ``run.json`` (its id and ``state.config``) is written before its first checkpoint.
        """
        if self.settings is None:
            self.settings = RunSettings(run_id, state.config)
            payload = {"run_id": run_id, "config": asdict(state.config)}
            atomic_write_text(self.path / "run.json", json.dumps(payload, indent=2, allow_nan=False))
        run_id, config = self.settings
        history = state.history
        epoch = len(history)
        if history.best_epoch == epoch:
            metrics = {
                "run_id": run_id,
                "epoch": epoch,
                "val_accuracy": history.val_accuracy[-1],
                "val_loss": history.val_loss[-1],
            }
            save_checkpoint(self.path / "best.pt", state.model, splits.mean, splits.std, config, metrics)
        save_checkpoint(
            self.path / "last.pt",
            state.model,
            splits.mean,
            splits.std,
            config,
            {"run_id": run_id, "epoch": epoch},
            state.state_dict(),
        )
        if self.set_aside:  # this run has an epoch: the old one goes (what a failed removal leaves is settled later)
            shutil.rmtree(self.path / REPLACED, ignore_errors=True)
            self.set_aside = False


def _process_alive(pid: int) -> bool:
    if os.name == "nt":  # there os.kill(pid, 0) sends Ctrl+C instead of checking
        return _windows_process_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    return True


def _windows_process_alive(pid: int) -> bool:
    import ctypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.OpenProcess.restype = ctypes.c_void_p  # a handle is pointer-sized, not ctypes' default int
    kernel32.GetExitCodeProcess.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_ulong)]
    kernel32.CloseHandle.argtypes = [ctypes.c_void_p]
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return ctypes.get_last_error() == 5  # ERROR_ACCESS_DENIED: alive, but another user's
    try:
        exit_code = ctypes.c_ulong()
        kernel32.GetExitCodeProcess(handle, ctypes.byref(exit_code))
        return exit_code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)
