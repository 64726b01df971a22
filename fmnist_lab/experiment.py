"""One training run from start to finish: recipe -> LR -> fit -> test -> files.

The command line, notebook 03 and the benchmarks all run training through ``run``, so
the recipes behave the same everywhere.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from .checkpoint import atomic_write_text
from .data import Batches, FashionMNIST
from .lr_finder import LRFinderResult, find_lr
from .model import Net
from .train import History, Splits, TrainConfig, evaluate, fit, format_eval, make_splits, pick_device, report_config

RECIPES: dict[str, Callable[..., TrainConfig]] = {
    # The lab's recipe: Nesterov SGD, one-cycle from the LR finder, weight decay.
    "default": lambda **kw: TrainConfig(**{"epochs": 30, "batch_size": 256, **kw}),
    # The same recipe, cut to 10 epochs: a few minutes on a laptop CPU.
    "fast": lambda **kw: TrainConfig(**{"epochs": 10, "batch_size": 256, **kw}),
    # The report's own recipe, for comparison.
    "report": report_config,
}


def make_config(recipe: str = "default", **overrides: Any) -> TrainConfig:
    """The recipe's ``TrainConfig`` with your overrides (None values are ignored)."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    return RECIPES[recipe](**{k: v for k, v in overrides.items() if v is not None})


def pick_lr(model: Net, splits: Splits, config: TrainConfig, recipe: str) -> tuple[float, LRFinderResult]:
    """The LR finder's choice: the report's lowest raw loss of a linear sweep, or our valley."""
    batches = Batches(splits.train_x, splits.train_y, config.batch_size, shuffle=True, seed=config.seed)
    if recipe == "report":
        result = find_lr(model, batches, 1e-4, 1.0, 100, mode="linear", config=config)
        return result.report_lr, result
    result = find_lr(model, batches, config=config)
    if result.one_cycle_lr is None:
        raise RuntimeError("The LR finder could not suggest an LR (" + " ".join(result.warnings) + "); pass --lr.")
    return result.one_cycle_lr, result


@dataclass
class RunResult:
    model: Net  # holding the weights of the epoch chosen on the validation split
    history: History
    lr: float
    test_loss: float
    test_accuracy: float
    minutes: float
    metrics: dict[str, Any]


def run(
    config: TrainConfig,
    data: FashionMNIST,
    recipe: str = "default",
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    on_epoch_end: Callable[[History], None] | None = None,
    log: Callable[[str], None] = print,
) -> RunResult:
    """Train the report's network with ``config`` and report the test set once, at the end.

    With ``out_dir``: ``best.pt`` (the epoch chosen on the validation split), ``last.pt``
    (to resume) and ``metrics.json``. Minutes count everything: LR finder, training, test.
    """
    start = time.perf_counter()
    device = pick_device(config.device)
    torch.manual_seed(config.seed)
    splits = make_splits(data, config, device)
    model = Net().to(device)
    out = Path(out_dir) if out_dir is not None else None
    if resume:
        if out is None:
            raise ValueError("resume needs the output folder of the interrupted run")
        lr = read_run_settings(out)[1]
    elif config.lr is not None:
        lr = config.lr
    else:
        lr, finder = pick_lr(model, splits, config, recipe)
        log(f"LR finder: {finder.stop_reason}; picked LR {lr:.4g}")
    log(f"Training on {device} with {len(splits.train_y)} images, {len(splits.val_y)} for validation; LR {lr:.4g}")
    if out is not None:
        atomic_write_text(out / "run.json", json.dumps({"recipe": recipe, "lr": lr, "config": dataclasses.asdict(config)}, indent=2))
    try:
        history = fit(model, splits, config, lr, out, resume, progress, on_epoch_end, log)
    except KeyboardInterrupt:
        if out is not None and (out / "last.pt").is_file():
            log(f"\nInterrupted. The last completed epoch is saved in {out / 'last.pt'} and the best so far in "
                f"{out / 'best.pt'}; continue with `fmnist-lab train --resume {out}`.")
        raise
    test = evaluate(model, Batches(splits.test_x, splits.test_y, 1000), device, config.bf16, config.flip_tta)
    log(format_eval("Test", test))
    minutes = (time.perf_counter() - start) / 60
    metrics = {
        "recipe": recipe, "lr": lr, "best_epoch": history.best_epoch, "epochs_run": len(history),
        "test_accuracy": test.accuracy, "test_loss": test.loss, "minutes": minutes, "device": str(device),
        "config": dataclasses.asdict(config), "history": history.records(),
    }
    if out is not None:
        atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2))
    return RunResult(model, history, lr, test.loss, test.accuracy, minutes, metrics)


def read_run_settings(out_dir: str | os.PathLike) -> tuple[str, float, TrainConfig]:
    """Recipe, LR and config of the run in ``out_dir`` (its ``run.json``), to resume it."""
    path = Path(out_dir) / "run.json"
    if not path.is_file() or not (Path(out_dir) / "last.pt").is_file():
        raise FileNotFoundError(f"{out_dir} is not the output folder of an interrupted fmnist-lab run (it needs "
                                f"run.json and last.pt, which `fmnist-lab train --out {out_dir}` writes)")
    settings = json.loads(path.read_text())
    return settings["recipe"], settings["lr"], TrainConfig.from_dict(settings["config"])


def resume(out_dir: str | os.PathLike, data: FashionMNIST, **kwargs: Any) -> RunResult:
    """Continue the interrupted run in ``out_dir`` with its own recipe, LR and config."""
    recipe, _, config = read_run_settings(out_dir)
    return run(config, data, recipe, out_dir, resume=True, **kwargs)
