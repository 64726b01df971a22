"""One training run from start to finish: LR -> fit -> test -> files in the run folder.

The command line, the notebooks and the benchmarks all train through ``run``, so the
recipes behave the same everywhere. This module alone decides what a run folder holds:

- ``run.json``: the run's id, config and LR (written first; what ``resume`` reads);
- ``last.pt``: the last completed epoch with the whole training state, to resume exactly;
- ``best.pt``: the epoch with the best validation accuracy so far;
- ``metrics.json``: the history and the test result, written at the end;
- ``.lock``: present while a run writes into the folder.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from . import distributed
from .checkpoint import CheckpointError, atomic_write_text, read_checkpoint, save_checkpoint
from .config import TrainConfig
from .data import Batches, FashionMNIST
from .errors import ConfigError, LabError
from .lr_finder import find_lr, report_sweep
from .model import Net
from .train import History, Splits, TrainingState, evaluate, fit, format_eval, make_splits

RUN_FILES = ("run.json", "last.pt", "best.pt", "metrics.json")


class RunFolderError(LabError):
    """The output folder cannot take this run (it holds another, or another run is writing to it)."""


class DegenerateRunWarning(UserWarning):
    """Settings that run, but cannot train a useful model."""


def degenerate_settings(config: TrainConfig, train_size: int) -> list[str]:
    """What is wrong with settings that run but make little sense (an empty list when nothing is)."""
    problems = []
    if train_size < 1000:
        problems.append(f"only {train_size} training images: the model will learn little, and the LR finder's "
                        f"pick is a guess (use limit_train=None, or at least a few thousand)")
    if config.batch_size >= train_size:
        problems.append(f"batch_size={config.batch_size} is not smaller than the {train_size} training images: "
                        f"one step per epoch")
    warmup_epochs = 0.3 * config.epochs  # OneCycleLR's default pct_start
    if config.schedule == "onecycle" and config.patience is not None and config.patience < warmup_epochs:
        problems.append(f"patience={config.patience} is shorter than the one-cycle warm-up ({warmup_epochs:g} of "
                        f"{config.epochs} epochs): early stopping can fire while the LR is still rising")
    return problems


def pick_lr(model: Net, splits: Splits, config: TrainConfig, log: Callable[[str], None] = print) -> float:
    """The learning rate that ``config.lr_rule`` picks (the model is left ready to train)."""
    if config.lr_rule == "report":
        result = report_sweep(model, splits, config)
        log(f"Report's LR sweep ({len(result.lrs)} LRs, {config.report_sweep_batches} mini-batches each): lowest "
            f"logged loss {min(result.losses):.4f} at LR {result.lowest_raw_loss_lr:.6f}; "
            f"divided by 4: LR {result.report_lr:.6g}")
        return result.report_lr
    batches = Batches(splits.train_x, splits.train_y, config.batch_size, shuffle=True, seed=config.seed)
    result = find_lr(model, batches, config=config)
    if result.one_cycle_lr is None:
        raise ConfigError([("lr", None, "the LR finder could not suggest one (" + " ".join(result.warnings)
                            + "); give it yourself")])
    log(f"LR finder: {result.stop_reason}; picked LR {result.one_cycle_lr:.4g}")
    return result.one_cycle_lr


@dataclass
class RunResult:
    model: Net  # holding the weights of the epoch chosen on the validation split
    history: History
    lr: float
    test_loss: float
    test_accuracy: float
    minutes: float
    metrics: dict[str, Any]


def run(config: TrainConfig, data: FashionMNIST, out_dir: str | os.PathLike | None = None, resume: bool = False,
        overwrite: bool = False, progress: bool = True, on_epoch_end: Callable[[TrainingState], None] | None = None,
        log: Callable[[str], None] = print) -> RunResult:
    """Train the report's network with ``config``; report the test set once, at the end.

    With ``out_dir`` the run writes the files listed in this module's docstring. A folder
    that already holds a run is refused unless you ``resume`` it (with its own config) or
    ``overwrite`` it. Minutes count everything: LR finding, training, test. In a process group
    (``distributed.process_group``) every rank calls ``run``; rank 0 alone logs and writes the folder.
    """
    start = time.perf_counter()
    if resume and out_dir is None:
        raise ConfigError([("out_dir", None, "resume=True needs the folder of the run to continue")])
    if not distributed.is_main():
        out_dir, progress, log = None, False, _quiet
    folder = RunFolder(Path(out_dir)) if out_dir is not None else None
    if folder is not None:
        folder.claim(resume, overwrite)
    try:
        torch.manual_seed(config.seed)
        splits = make_splits(data, config)
        for problem in degenerate_settings(config, len(splits.train_y)) if distributed.is_main() else ():
            warnings.warn(problem, DegenerateRunWarning, stacklevel=2)
        model = Net().to(splits.train_x.device)

        def settings() -> tuple[str, float, dict[str, Any] | None]:
            """Run id, LR and the state to resume: decided once (on rank 0 in a process group)."""
            if resume:
                run_id, lr, state = folder.read_resume_state(config)
                log(f"Resuming {folder.path} after epoch {len(state['history']['train_loss'])}")
                return run_id, lr, state
            run_id = uuid.uuid4().hex
            lr = config.lr if config.lr is not None else pick_lr(model, splits, config, log)
            if folder is not None:
                folder.write_settings(run_id, config, lr)
            return run_id, lr, None

        run_id, lr, resume_from = distributed.from_rank_zero(settings)
        processes = distributed.world_size()
        log(f"Training on {splits.train_x.device}{f' x {processes} processes' if processes > 1 else ''} with "
            f"{len(splits.train_y)} images, {len(splits.val_y)} for validation; LR {lr:.4g}")

        def after_epoch(state: TrainingState) -> None:
            if folder is not None:
                folder.save_epoch(state, splits, config, run_id)
            if on_epoch_end is not None:
                on_epoch_end(state)

        history = fit(model, splits, config, lr, resume_from, after_epoch, progress, log)
        test = distributed.from_rank_zero(  # every rank holds the same model: one evaluation is enough
            lambda: evaluate(model, Batches(splits.test_x, splits.test_y, 1000), splits.test_x.device, config.bf16))
        log(format_eval("Test", test))
        metrics = {"run_id": run_id, "lr": lr, "best_epoch": history.best_epoch, "epochs_run": len(history),
                   "test_accuracy": test.accuracy, "test_loss": test.loss,
                   "minutes": (time.perf_counter() - start) / 60, "device": str(splits.train_x.device),
                   "processes": processes,
                   "config": asdict(config), "history": history.records()}
        if folder is not None:
            atomic_write_text(folder.path / "metrics.json", json.dumps(metrics, indent=2, allow_nan=False))
    except KeyboardInterrupt:
        if folder is not None and (folder.path / "last.pt").is_file():
            log(f"\nInterrupted. The last completed epoch is saved in {folder.path / 'last.pt'} and the best so far "
                f"in {folder.path / 'best.pt'}; continue with `fmnist-lab train --resume {folder.path}`.")
        raise
    finally:
        if folder is not None:
            folder.release()
    return RunResult(model, history, lr, test.loss, test.accuracy, metrics["minutes"], metrics)


def _quiet(line: str) -> None:
    """The log of ranks other than 0: their lines would repeat rank 0's."""


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
    Path(parent).mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(10_000):
        path = Path(parent) / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise RunFolderError(f"{parent} already holds 10,000 run folders named {stamp}-*; choose another parent folder")


def resume(out_dir: str | os.PathLike, data: FashionMNIST, **kwargs: Any) -> RunResult:
    """Continue the interrupted run in ``out_dir`` with its own config and LR (read by rank 0 in a process group)."""
    config = distributed.from_rank_zero(lambda: RunFolder(Path(out_dir)).read_settings()[1])
    return run(config, data, out_dir, resume=True, **kwargs)


class RunFolder:
    """The files of one run in one folder (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = path / ".lock"
        self.locked = False

    def check(self, resume: bool = False, overwrite: bool = False) -> None:
        """Refuse, before any work, a folder this run cannot use; create it if needed."""
        if resume and overwrite:
            raise RunFolderError("resume and overwrite exclude each other: resume continues the run in "
                                 f"{self.path}, overwrite replaces it")
        if self.path.exists() and not self.path.is_dir():
            raise RunFolderError(f"{self.path} is a file, not a folder; choose another output folder")
        self.path.mkdir(parents=True, exist_ok=True)  # OSError (e.g. permission denied) names the path
        if not os.access(self.path, os.W_OK):
            raise RunFolderError(f"{self.path} is not writable; choose an output folder you can write to")
        holder = self._lock_holder()
        if holder is not None:
            raise RunFolderError(f"another run ({holder}) is writing to {self.path}; wait for it to finish, "
                                 f"or choose another output folder")
        if resume:
            self.read_settings()
        elif self.holds_a_run() and not overwrite:
            raise RunFolderError(f"{self.path} already holds a run ({', '.join(self.existing_files())}); "
                                 f"resume it (resume=True, --resume), replace it (overwrite=True, --overwrite), "
                                 f"or choose another output folder")

    def claim(self, resume: bool = False, overwrite: bool = False) -> None:
        """Check the folder, take its lock, and clear an old run that ``overwrite`` replaces."""
        self.check(resume, overwrite)
        try:
            fd = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:  # taken between check() and now
            raise RunFolderError(f"another run ({self._lock_holder()}) is writing to {self.path}") from None
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.ctime()}))
        self.locked = True
        if overwrite:
            for name in self.existing_files():
                (self.path / name).unlink()

    def release(self) -> None:
        if self.locked:
            self.lock.unlink(missing_ok=True)
            self.locked = False

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
        return [name for name in RUN_FILES if (self.path / name).exists()]

    def holds_a_run(self) -> bool:
        return bool(self.existing_files())

    def write_settings(self, run_id: str, config: TrainConfig, lr: float) -> None:
        settings = {"run_id": run_id, "lr": lr, "config": asdict(config)}
        atomic_write_text(self.path / "run.json", json.dumps(settings, indent=2, allow_nan=False))

    def read_settings(self) -> tuple[str, TrainConfig, float]:
        """The run id, config and LR in ``run.json``, each checked."""
        path = self.path / "run.json"
        if not path.is_file() or not (self.path / "last.pt").is_file():
            raise RunFolderError(f"{self.path} is not the output folder of an interrupted fmnist-lab run (it needs "
                                 f"run.json and last.pt, which `fmnist-lab train --out {self.path}` writes)")
        try:
            settings = json.loads(path.read_text())
            run_id, lr, config = settings["run_id"], settings["lr"], settings["config"]
            if not isinstance(run_id, str) or not isinstance(config, dict):
                raise TypeError("run_id must be a string and config a dict")
            if not isinstance(lr, (int, float)) or not (math.isfinite(lr) and lr > 0):
                raise ValueError(f"lr is {lr!r}, not a positive number")
            return run_id, TrainConfig.from_dict(config), float(lr)
        except (ValueError, KeyError, TypeError) as err:  # ConfigError is a ValueError
            raise RunFolderError(f"{path} is damaged ({err!r}); it cannot be resumed: train again into a new "
                                 f"folder") from err

    def read_resume_state(self, config: TrainConfig) -> tuple[str, float, dict[str, Any]]:
        """Run id, LR and training state to resume, after checking they belong to one run and to ``config``."""
        run_id, saved_config, lr = self.read_settings()
        if config != saved_config:
            changed = [k for k, v in asdict(config).items() if asdict(saved_config)[k] != v]
            raise RunFolderError(f"a resumed run keeps its own settings, but these differ from {self.path / 'run.json'}: "
                                 f"{', '.join(changed)}. Resume without changing them, or start a new run")
        payload = read_checkpoint(self.path / "last.pt")
        if payload["metrics"].get("run_id") != run_id or "training_state" not in payload:
            raise CheckpointError(f"{self.path / 'last.pt'} does not belong to the run in run.json (run ids "
                                  f"{payload['metrics'].get('run_id')!r} and {run_id!r}): the folder mixes two runs; "
                                  f"train again into a new folder")
        if TrainConfig.from_dict(payload["config"]) != saved_config:
            raise CheckpointError(f"{self.path / 'last.pt'} was trained with other settings than run.json says: the "
                                  f"folder mixes two runs; train again into a new folder")
        return run_id, lr, payload["training_state"]

    def save_epoch(self, state: TrainingState, splits: Splits, config: TrainConfig, run_id: str) -> None:
        """After each epoch: ``best.pt`` when validation improved, ``last.pt`` always (last, so it is never ahead)."""
        history = state.history
        epoch = len(history)
        if history.best_epoch == epoch:
            metrics = {"run_id": run_id, "epoch": epoch, "val_accuracy": history.val_accuracy[-1],
                       "val_loss": history.val_loss[-1]}
            save_checkpoint(self.path / "best.pt", state.model, splits.mean, splits.std, config, metrics)
        save_checkpoint(self.path / "last.pt", state.model, splits.mean, splits.std, config,
                        {"run_id": run_id, "epoch": epoch}, state.state_dict())


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    return True
