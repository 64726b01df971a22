"""Checkpoints: weights together with what is needed to use them, written atomically.

A checkpoint holds the model weights, the normalisation statistics, the class names,
the training configuration and final metrics. ``last.pt`` additionally holds the
optimizer, schedule and random-number states so an interrupted run can resume exactly.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

import torch
from torch import nn

from .data import CLASS_NAMES
from .model import Net

if TYPE_CHECKING:
    from .train import History, TrainConfig

FORMAT = "fmnist-lab checkpoint"
VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, broken, or from another architecture."""


@dataclass
class Checkpoint:
    model: Net
    mean: float
    std: float
    classes: tuple[str, ...]
    config: dict[str, Any]
    metrics: dict[str, Any]


@dataclass
class TrainingState:
    """What ``fit`` needs to continue: the History so far and the best weights so far."""

    history: History
    best_model: dict[str, torch.Tensor] | None = None


def _atomic_write(path: str | Path, mode: str, write: Callable[[IO], None]) -> None:
    """Write to a temporary file in the same folder, then rename it into place.

    A crash mid-write leaves the old file untouched, never a half-written one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` that never leaves a broken file under ``path``."""
    _atomic_write(path, "wb", lambda f: torch.save(obj, f))


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a text file (metrics, settings) atomically."""
    _atomic_write(path, "w", lambda f: f.write(text))


def _payload(model: nn.Module, mean: float, std: float, config: TrainConfig, metrics: dict) -> dict:
    return {
        "format": FORMAT, "version": VERSION,
        "model_state": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        "mean": mean, "std": std, "classes": list(CLASS_NAMES),
        "config": dataclasses.asdict(config), "metrics": metrics,
    }


def save_checkpoint(path: str | Path, model: nn.Module, mean: float, std: float, config: TrainConfig, metrics: dict) -> None:
    atomic_save(_payload(model, mean, std, config, metrics), path)


def _read(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file. Train one with `fmnist-lab train --out DIR` "
                              f"and pass DIR/best.pt.")
    with open(path, "rb") as f:
        head = f.read(4)
    if head != b"PK\x03\x04":  # torch.save writes a zip archive
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (it does not start like a file written "
                              f"by torch.save). Pass the best.pt or last.pt that training wrote.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path}: the checkpoint is truncated or corrupt ({err}). It cannot be "
                              f"repaired: use another copy, or train again.") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: a PyTorch file, but not an fmnist-lab checkpoint (it has no "
                              f"'format': {FORMAT!r} entry). Pass the best.pt or last.pt that training wrote.")
    return payload


def _load_weights(model: nn.Module, state: dict, path: str | Path) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: the checkpoint was saved from a different architecture than the "
                              f"lab's Net, so its weights do not fit:\n{err}") from err


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint into a fresh ``Net`` in eval mode, with clear errors for bad files."""
    payload = _read(path)
    model = Net()
    _load_weights(model, payload["model_state"], path)
    return Checkpoint(model=model.to(device).eval(), mean=payload["mean"], std=payload["std"],
                      classes=tuple(payload["classes"]), config=payload["config"], metrics=payload["metrics"])


def save_training_state(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    generator: torch.Generator,
    state: TrainingState,
    config: TrainConfig,
    mean: float,
    std: float,
    ema: nn.Module | None = None,
) -> None:
    """Write ``last.pt``: a checkpoint plus everything needed to resume training."""
    payload = _payload(model, mean, std, config, {"epoch": len(state.history)})
    payload["resume"] = {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "batch_generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "history": dataclasses.asdict(state.history),
        "best_model": state.best_model,
        "ema": ema.state_dict() if ema is not None else None,
    }
    atomic_save(payload, path)


def load_training_state(
    path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, generator: torch.Generator,
    ema: nn.Module | None = None,
) -> TrainingState:
    """Restore model, optimizer, schedule and random states from ``last.pt``."""
    from .train import History

    payload = _read(path)
    if "resume" not in payload:
        raise CheckpointError(f"{path}: a checkpoint without training state; resume from the run's last.pt.")
    resume = payload["resume"]
    _load_weights(model, payload["model_state"], path)
    optimizer.load_state_dict(resume["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(resume["scheduler"])
    if ema is not None:
        ema.load_state_dict(resume["ema"])
    generator.set_state(resume["batch_generator"])
    torch.set_rng_state(resume["torch_rng"])
    if resume["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(resume["cuda_rng"])
    return TrainingState(History(**resume["history"]), resume["best_model"])
