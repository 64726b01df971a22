"""One training run from start to finish: LR picked -> fit -> test -> files in the run folder.

The command line, the notebooks and the benchmarks all train through ``pick_lr`` and ``run`` (and
``resume``), so the recipes behave the same everywhere. The config is resolved once, before training:
it holds its device from the start (``TrainConfig`` resolves "auto"), and where the recipe leaves the
LR open, ``pick_lr`` picks it by ``config.lr_rule`` and writes it into the config. The resolved config
is what ``run`` trains with and what the run folder (``run_folder.py``) stores.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from . import distributed
from .config import TrainConfig
from .data import EVAL_BATCH_SIZE, Batches, Splits, make_splits
from .dataset import FashionMNIST
from .errors import DegenerateRunWarning, warn
from .files import atomic_write_text
from .fused import new_net
from .lr_finder import with_picked_lr
from .model import Net
from .run_folder import ResumePoint, RunFolder, RunSettings
from .train import History, TrainingState, elapsed_seconds, evaluate, fit, format_eval, required_lr

LARGE_SHIFT = 8  # pixels: from here a random shift can move much of a 28×28 garment out of its image


def degenerate_settings(config: TrainConfig, train_size: int) -> list[DegenerateRunWarning]:
    """What is wrong with settings that run but make little sense (an empty list when nothing is)."""
    problems = []
    if train_size < 1000:
        finder = ", and the LR finder's pick is a guess" if config.lr is None else ""
        cause = "limit_train" if config.limit_train is not None else "val_size"
        problems.append(
            DegenerateRunWarning(
                cause,
                getattr(config, cause),
                f"only {train_size} training images: the model will learn little{finder}; train on a few thousand "
                f"or more",
            )
        )
    if config.batch_size >= train_size:
        problems.append(
            DegenerateRunWarning(
                "batch_size",
                config.batch_size,
                f"not smaller than the {train_size} training images: one step per epoch",
            )
        )
    if config.max_shift >= LARGE_SHIFT:
        problems.append(
            DegenerateRunWarning(
                "max_shift",
                config.max_shift,
                "shifts that large can push much of a garment out of its 28×28 image; 2 to 4 pixels is usual",
            )
        )
    warmup_epochs = 0.3 * config.epochs  # OneCycleLR's default pct_start
    if config.schedule == "onecycle" and config.patience is not None and config.patience < warmup_epochs:
        problems.append(
            DegenerateRunWarning(
                "patience",
                config.patience,
                f"shorter than the one-cycle warm-up ({warmup_epochs:g} of {config.epochs} epochs): early stopping "
                f"can fire while the LR is still rising",
            )
        )
    return problems


@dataclass
class RunResult:
    """A finished run: the chosen epoch's model, its history and settings, its test score; ``metrics``: metrics.json."""

    model: Net  # holding the weights of the epoch chosen on the validation split
    history: History
    config: TrainConfig  # resolved: the LR and the device it trained with
    test_loss: float
    test_accuracy: float
    minutes: float
    metrics: dict[str, Any]


def pick_lr(config: TrainConfig, data: FashionMNIST, log: Callable[[str], None] = print) -> tuple[TrainConfig, Net]:
    """``config`` with the LR that ``config.lr_rule`` picks (as it is where it gives one), and the network to train.

    The network is a new ``Net`` from ``config.seed`` (``FusedNet`` where ``config.fused``); the report's rule
    hands on the one its sweep trained, conv and linear layers reset (``lr_finder.replay_report_lr_choice``).
    Give both to ``run``. In a process group every rank sweeps the same data from the same seed and keeps rank 0's pick.
    """
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    model = new_net(config)
    if config.lr is not None:
        return config, model
    if not distributed.is_main():
        log = _quiet
    splits = make_splits(data, config)
    picked = with_picked_lr(config, model.to(splits.train_x.device), splits, log)
    log(f"LR picked in {time.perf_counter() - start:.1f} s")
    return distributed.from_rank_zero(lambda: picked), model


def run(
    config: TrainConfig,
    data: FashionMNIST,
    out_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = True,
    on_epoch_end: Callable[[TrainingState], None] | None = None,
    log: Callable[[str], None] = print,
    model: Net | None = None,
) -> RunResult:
    """Train the report's network with ``config`` (its LR given, or picked by ``pick_lr``); test once, at the end.

    ``model``: the network ``pick_lr`` handed on, with PyTorch's random numbers as it left them; by
    default a new ``Net`` from ``config.seed`` (``FusedNet`` where ``config.fused``). With ``out_dir`` the run
    writes the files that ``run_folder.py`` lists. A folder that already holds a run is refused unless you ``overwrite``
    it (or continue it with ``resume``). Minutes count training, validation and the test, not the
    LR choice before. In a process group (``distributed.process_group``) every rank calls ``run``;
    rank 0 alone logs and writes the folder.
    """
    required_lr(config)  # a config without its LR is refused before any folder is claimed or data prepared
    with _claimed(out_dir, overwrite=overwrite, log=log) as folder:
        return _train(config, None, data, folder, model, progress, on_epoch_end, log)


def resume(
    out_dir: str | os.PathLike,
    data: FashionMNIST,
    progress: bool = True,
    on_epoch_end: Callable[[TrainingState], None] | None = None,
    log: Callable[[str], None] = print,
    settings: RunSettings | None = None,
) -> RunResult:
    """Continue the interrupted run in ``out_dir`` with its own config (read by rank 0 in a process group).

    ``settings``: its run.json, where the caller has read it already (the command line does, for the device).
    """
    with _claimed(out_dir, resume=True, log=log) as folder:
        point = distributed.from_rank_zero(lambda: folder.read_resume_point(settings))
        return _train(point.config, point, data, folder, None, progress, on_epoch_end, log)


@contextlib.contextmanager
def _claimed(
    out_dir: str | os.PathLike | None, resume: bool = False, overwrite: bool = False, log: Callable[[str], None] = print
) -> Iterator[RunFolder | None]:
    """The run folder, locked while the run writes to it (None without ``out_dir``, and on ranks other than 0)."""
    folder = RunFolder(Path(out_dir)) if out_dir is not None and distributed.is_main() else None
    if folder is not None:
        folder.claim(resume, overwrite)
    try:
        yield folder
    except BaseException as stopped:  # an error, a divergence, Ctrl+C
        if folder is not None and folder.put_back_replaced():
            log(f"\n{folder.path} holds the run you meant to replace again: the new one stopped before an epoch.")
        elif isinstance(stopped, KeyboardInterrupt) and folder is not None and (folder.path / "last.pt").is_file():
            log(
                f"\nInterrupted. The last completed epoch is saved in {folder.path / 'last.pt'} and the best so far "
                f"in {folder.path / 'best.pt'}; continue with `fmnist-lab train --resume {folder.path}`."
            )
        raise
    finally:
        if folder is not None:
            folder.release()


def _train(
    config: TrainConfig,
    point: ResumePoint | None,
    data: FashionMNIST,
    folder: RunFolder | None,
    model: Net | None,
    progress: bool,
    on_epoch_end: Callable[[TrainingState], None] | None,
    log: Callable[[str], None],
) -> RunResult:
    """A new run with ``config``, or the interrupted run at ``point``, continued."""
    start = time.perf_counter()
    if not distributed.is_main():
        progress, log = False, _quiet
    if model is None:  # a config that came with its LR, or a resumed run (its checkpoint then holds the weights)
        torch.manual_seed(config.seed)
        model = new_net(config)
    splits = make_splits(data, config)
    for problem in degenerate_settings(config, len(splits.train_y)) if distributed.is_main() else ():
        warn(problem)
    if point is None:
        run_id = distributed.from_rank_zero(lambda: uuid.uuid4().hex)
    else:
        run_id = point.run_id
        start -= elapsed_seconds(point.training_state)  # the minutes count the earlier sessions too
        if folder is not None:
            log(f"Resuming {folder.path} after epoch {len(point.training_state['history']['train_loss'])}")
    processes = distributed.world_size()
    log(
        f"Training on {config.device}{f' x {processes} processes' if processes > 1 else ''} with "
        f"{len(splits.train_y)} images, {len(splits.val_y)} for validation; LR {config.lr:.4g}"
    )

    def after_epoch(state: TrainingState) -> None:
        state.elapsed_seconds = time.perf_counter() - start  # what last.pt records, for a resume to go on from
        if folder is not None:
            folder.save_epoch(state, splits, run_id)
        if on_epoch_end is not None:
            on_epoch_end(state)

    resume_from = point.training_state if point is not None else None
    history = fit(model, splits, config, resume_from, after_epoch, progress, log)
    return _test(model, splits, config, history, run_id, folder, start, log)


def _test(
    model: Net,
    splits: Splits,
    config: TrainConfig,
    history: History,
    run_id: str,
    folder: RunFolder | None,
    start: float,
    log: Callable[[str], None],
) -> RunResult:
    """The test set, scored once with the chosen epoch's weights; metrics.json written last."""
    test = distributed.from_rank_zero(  # every rank holds the same model: one evaluation is enough
        lambda: evaluate(
            model,
            Batches(splits.test_x, splits.test_y, EVAL_BATCH_SIZE),
            splits.test_x.device,
            config.bf16,
            config.channels_last,
        )
    )
    log(format_eval("Test", test))
    metrics = {
        "run_id": run_id,
        "best_epoch": history.best_epoch,
        "epochs_run": len(history),
        "test_accuracy": test.accuracy,
        "test_loss": test.loss,
        "minutes": (time.perf_counter() - start) / 60,
        "device": config.device,
        "processes": distributed.world_size(),
        "config": asdict(config),
        "history": history.records(),
    }
    if folder is not None:
        atomic_write_text(folder.path / "metrics.json", json.dumps(metrics, indent=2, allow_nan=False))
    return RunResult(model, history, config, test.loss, test.accuracy, metrics["minutes"], metrics)


def _quiet(line: str) -> None:
    """The log of ranks other than 0: their lines would repeat rank 0's."""
