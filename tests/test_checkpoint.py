"""load_checkpoint checks everything it reads: a damaged or edited file is a CheckpointError naming the problem."""

import math

import pytest
import torch

from fmnist_lab.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from fmnist_lab.cli import main
from fmnist_lab.config import TrainConfig
from fmnist_lab.errors import ConfigError
from fmnist_lab.model import Net


def edited(payload: dict, key: str, value) -> dict:
    return {**payload, key: value}


def without(payload: dict, key: str) -> dict:
    return {k: v for k, v in payload.items() if k != key}


def with_weight(payload: dict, name: str, fill: float) -> dict:
    state = dict(payload["model_state"])
    state[name] = torch.full_like(state[name], fill)
    return {**payload, "model_state": state}


CASES = {
    "std-zero": (lambda p: edited(p, "std", 0.0), "normalisation std is 0.0, not a finite positive number"),
    "std-negative": (lambda p: edited(p, "std", -0.35), "normalisation std is -0.35"),
    "mean-nan": (lambda p: edited(p, "mean", math.nan), "normalisation mean is nan, not a finite number"),
    "mean-missing": (lambda p: without(p, "mean"), "it has no 'mean' entry"),
    "weights-missing": (lambda p: without(p, "model_state"), "it has no 'model_state' entry"),
    "weights-nan": (lambda p: with_weight(p, "fc_1.weight", math.nan), "'fc_1.weight' hold NaN or infinite values"),
    "variance-negative": (
        lambda p: with_weight(p, "b2.running_var", -1.0),
        "BatchNorm variances 'b2.running_var' hold negative",
    ),
    "classes-short": (lambda p: edited(p, "classes", ["a", "b"]), "not a list of 10 names"),
    "classes-numbers": (lambda p: edited(p, "classes", list(range(10))), "not a list of 10 names"),
    "config-text": (lambda p: edited(p, "config", "epochs=30"), "its 'config' entry is a str, not a dict"),
    "metrics-list": (lambda p: edited(p, "metrics", [0.9]), "its 'metrics' entry is a list, not a dict"),
    "old-version": (
        lambda p: edited(p, "version", 1),
        "another version of the lab (checkpoint version 1, this lab reads version 2)",
    ),
}


@pytest.fixture
def good_payload(tmp_path) -> dict:
    save_checkpoint(tmp_path / "good.pt", Net(), 0.286, 0.353, TrainConfig(), {"epoch": 1})
    return torch.load(tmp_path / "good.pt", weights_only=True)


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_a_damaged_checkpoint_is_refused_naming_the_problem(tmp_path, good_payload, case, capsys):
    damage, message = CASES[case]
    torch.save(damage(good_payload), tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_checkpoint(tmp_path / "bad.pt")
    # the command line gives the same message in one line, exit code 1, no traceback
    assert main(["predict", str(tmp_path / "bad.pt"), str(tmp_path / "any.png")]) == 1
    assert message.split("(")[0] in capsys.readouterr().err


def test_the_good_payload_loads(tmp_path, good_payload):
    torch.save(good_payload, tmp_path / "copy.pt")
    assert load_checkpoint(tmp_path / "copy.pt").metrics == {"epoch": 1}


def test_a_folder_is_named_as_a_folder(tmp_path):
    with pytest.raises(CheckpointError, match="is a folder; pass the checkpoint file in it"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize(
    "device, rule",
    [("gpu", "not a device name; use auto, cpu, cuda or mps"), ("meta", "not a device the lab trains on")],
)
def test_a_device_that_cannot_load_a_checkpoint_is_named(tmp_path, device, rule):
    path = tmp_path / "model.pt"
    save_checkpoint(path, Net(), 0.286, 0.353, TrainConfig(device="cpu"), {})
    with pytest.raises(ConfigError, match=f"device='{device}': {rule}"):
        load_checkpoint(path, device)
    assert next(load_checkpoint(path, "auto").model.parameters()).device.type in ("cpu", "cuda", "mps")
