"""Model files: weights together with what is needed to use them, written atomically, read with checks.

A checkpoint holds the model weights, the normalisation statistics, the class names, the
training configuration and metrics. A run's ``last.pt`` also holds the training state
(optimizer, schedule, random states, history) under ``"training_state"``, to resume.
Which files a run writes, and when, is ``experiment.py``'s business.
"""

from __future__ import annotations

import dataclasses
import math
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import TrainConfig
from .dataset import CLASS_NAMES
from .devices import pick_device
from .errors import LabError
from .files import atomic_save
from .model import Net

FORMAT = "fmnist-lab checkpoint"
VERSION = 2  # 2: training state under "training_state", as TrainingState.state_dict() gives it


class CheckpointError(LabError, RuntimeError):
    """A checkpoint file is missing, broken, or from another architecture."""


@dataclass
class Checkpoint:
    """A trained network with what it needs to predict: its inputs' normalisation, the class names, its run's record."""

    model: Net
    mean: float
    std: float
    classes: tuple[str, ...]
    config: dict[str, Any]
    metrics: dict[str, Any]


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    mean: float,
    std: float,
    config: TrainConfig,
    metrics: dict[str, Any],
    training_state: dict[str, Any] | None = None,
) -> None:
    """Write a checkpoint (with ``training_state``, one a run can resume from)."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model_state": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        "mean": mean,
        "std": std,
        "classes": list(CLASS_NAMES),
        "config": dataclasses.asdict(config),
        "metrics": metrics,
    }
    if training_state is not None:
        payload["training_state"] = training_state
    atomic_save(payload, path)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's contents, every entry checked; a CheckpointError names what is wrong."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; pass the checkpoint file in it (best.pt or last.pt).")
    if not path.is_file():
        raise CheckpointError(
            f"{path}: no such checkpoint file. Train one with `fmnist-lab train --out DIR` and pass DIR/best.pt."
        )
    if path.stat().st_size == 0:
        raise CheckpointError(
            f"{path}: the file is empty (0 bytes): cut short while it was written or copied. Pass the best.pt or "
            f"last.pt of a run that saved an epoch."
        )
    with open(path, "rb") as f:
        head = f.read(4)
    if head != b"PK\x03\x04":  # torch.save writes a zip archive
        raise CheckpointError(
            f"{path}: not a PyTorch checkpoint in the zip format that torch.save writes (as every checkpoint "
            f"of the lab is). Pass the best.pt or last.pt that training wrote."
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:  # a whole file that holds more than tensors and plain data
        raise CheckpointError(
            f"{path}: a PyTorch file, but not an fmnist-lab checkpoint: it holds pickled Python objects (a "
            f"model saved whole with torch.save(model)?), which the lab does not load, since unpickling can run "
            f"any code. Pass the best.pt or last.pt that training wrote."
        ) from err
    except Exception as err:
        raise CheckpointError(
            f"{path}: the checkpoint is truncated or corrupt ({err}). It cannot be "
            f"repaired: use another copy, or train again."
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: a PyTorch file, but not an fmnist-lab checkpoint (it has no "
            f"'format': {FORMAT!r} entry). Pass the best.pt or last.pt that training wrote."
        )
    problem = _problem(payload)
    if problem:
        raise CheckpointError(f"{path}: {problem}. The file was damaged or edited; use another copy, or train again.")
    return payload


def _problem(payload: dict[str, Any]) -> str | None:
    """What is wrong with a checkpoint's contents, or None."""
    if payload.get("version") != VERSION:
        return (
            f"written by another version of the lab (checkpoint version {payload.get('version')!r}, "
            f"this lab reads version {VERSION})"
        )
    for key in ("model_state", "mean", "std", "classes", "config", "metrics"):
        if key not in payload:
            return f"it has no {key!r} entry"
    mean, std, classes = payload["mean"], payload["std"], payload["classes"]
    if not isinstance(mean, (int, float)) or not math.isfinite(mean):
        return f"its normalisation mean is {mean!r}, not a finite number"
    if not isinstance(std, (int, float)) or not (math.isfinite(std) and std > 0):
        return f"its normalisation std is {std!r}, not a finite positive number"
    if not (
        isinstance(classes, (list, tuple))
        and len(classes) == len(CLASS_NAMES)
        and all(isinstance(c, str) for c in classes)
    ):
        return f"its class names are {classes!r}, not a list of {len(CLASS_NAMES)} names"
    for key in ("config", "metrics"):
        if not isinstance(payload[key], dict):
            return f"its {key!r} entry is a {type(payload[key]).__name__}, not a dict"
    state = payload["model_state"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        return "its 'model_state' is not a dict of tensors"
    for name, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            return f"the weights {name!r} hold NaN or infinite values"
        if name.endswith("running_var") and (tensor < 0).any():
            return f"the BatchNorm variances {name!r} hold negative values"
    return None


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint into a fresh ``Net`` in eval mode, with clear errors for bad files and devices."""
    device = pick_device(str(device))  # "auto" too; a GPU this machine lacks is refused in a sentence
    payload = read_checkpoint(path)
    model = Net()
    try:
        model.load_state_dict(payload["model_state"])
    except RuntimeError as err:
        raise CheckpointError(
            f"{path}: the checkpoint was saved from a different architecture than the "
            f"lab's Net, so its weights do not fit; pass a best.pt or last.pt that `fmnist-lab train` wrote:\n{err}"
        ) from err
    return Checkpoint(
        model=model.to(device).eval(),
        mean=float(payload["mean"]),
        std=float(payload["std"]),
        classes=tuple(payload["classes"]),
        config=payload["config"],
        metrics=payload["metrics"],
    )
