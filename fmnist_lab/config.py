"""Every training setting in one dataclass, and the recipes as values of it.

Each field carries its help text (``metadata``) and its type hint, and ``fmnist-lab train``'s
flags are generated from this one description of the settings: every setting has a flag.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .dataset import FILES
from .devices import pick_device
from .errors import ConfigError

SCHEDULES = ("onecycle", "step", "exponential", "constant")
OPTIMIZERS = ("sgd", "adamw")
LR_RULES = ("finder", "report")
TRAIN_SIZE = FILES["train-labels-idx1-ubyte"][1]
TEST_SIZE = FILES["t10k-labels-idx1-ubyte"][1]
# what each type hint of TrainConfig accepts, and the rule a wrong value is told
TYPE_RULES = {
    "int": (lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool), "must be a whole number"),
    "float": (lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool), "must be a number"),
    "str": (lambda v: isinstance(v, str), "must be a string"),
    "bool": (lambda v: isinstance(v, bool), "must be True or False"),
}


def setting(default: Any, help: str) -> Any:
    """A field that is also a ``fmnist-lab train`` flag (``--name-with-dashes``)."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run. The defaults are the lab's recipe."""

    epochs: int = setting(30, "number of epochs")
    batch_size: int = setting(256, "images per mini-batch")
    lr: float | None = setting(
        None, "peak learning rate (default: the recipe's, or where it has none, picked by its lr_rule before training)"
    )
    lr_rule: str = setting(
        "finder",
        "how the LR is picked when none is given: finder (the lab's LR finder, its "
        "one-cycle peak) or report (the report's sweep and its rule as we read it, lowest logged loss / 4)",
    )
    # The report's find_lr(model, train_loader, 1e-4, 1, 100, 30), in our reading: 30 mini-batches per LR, mean logged
    report_sweep_batches: int = setting(30, "report LR rule: mini-batches trained at each LR of its sweep")
    schedule: str = setting("onecycle", "onecycle, step (StepLR), exponential (ExponentialLR) or constant")
    step_size: int = setting(1, "step schedule: epochs between LR cuts")
    gamma: float = setting(0.7, "step and exponential schedules: the LR's factor at each cut")
    optimizer: str = setting("sgd", "sgd (momentum, Nesterov, L2 weight decay) or adamw (decoupled weight decay)")
    momentum: float = setting(
        0.9, "SGD momentum (0 for plain SGD); the onecycle schedule replaces any other value by its 0.95-0.85 cycle"
    )
    nesterov: bool = setting(True, "Nesterov momentum")
    weight_decay: float = setting(5e-4, "weight decay (SGD: L2 penalty; AdamW: decoupled, scaled by the LR)")
    label_smoothing: float = setting(0.0, "label smoothing of the cross-entropy loss")
    max_shift: int = setting(0, "augmentation: random shifts of up to this many pixels")
    flip: bool = setting(False, "augmentation: random horizontal flips")
    patience: int | None = setting(None, "early stopping after this many epochs without a better validation accuracy")
    dropout_epochs: int | None = setting(
        None,
        "early dropout: the network's dropout layers drop only in the first this many epochs, "
        "then pass everything on (default: in every epoch; 0: in none)",
    )
    val_size: int = setting(5000, "validation images carved from the 60,000 training images")
    limit_train: int | None = setting(None, "use only this many training images (quick runs)")
    limit_test: int | None = setting(None, "score only the first this many test images (quick runs)")
    seed: int = setting(0, "random seed (initialisation, shuffling, validation split)")
    device: str = setting(
        "auto",
        "auto (CUDA, then MPS, then CPU), cpu, cuda or mps; the config holds the device "
        "it resolves to (cuda: each process's own GPU)",
    )
    bf16: bool = setting(True, "bfloat16 autocast where the hardware runs it natively (--no-bf16: float32)")
    channels_last: bool = setting(True, "channels-last memory layout of images and weights (faster convolutions)")
    fused: bool = setting(
        True,
        "training on the CPU: each block's BatchNorm, LeakyReLU and max-pool in one compiled kernel, the same "
        "function in fewer passes over memory (--no-fused: PyTorch's layers)",
    )
    sync_bn: bool = setting(
        False,
        "several processes on GPUs: BatchNorm statistics over the global batch "
        "(SyncBatchNorm) instead of each process's own",
    )
    log_interval: int = setting(50, "batches between 'Train Epoch' log lines")

    def __post_init__(self) -> None:
        problems = self._check_types()
        if problems:  # the value checks below compare numbers: a string would end in a TypeError
            raise ConfigError(problems)

        def check(ok: bool, name: str, rule: str) -> None:
            if not ok:
                problems.append((name, getattr(self, name), rule))

        check(self.epochs >= 1, "epochs", "must be at least 1")
        check(self.batch_size >= 1, "batch_size", "must be at least 1")
        check(self.lr is None or (self.lr > 0 and math.isfinite(self.lr)), "lr", "must be a positive number")
        check(self.lr_rule in LR_RULES, "lr_rule", f"must be one of {', '.join(LR_RULES)}")
        check(self.report_sweep_batches >= 1, "report_sweep_batches", "must be at least 1")
        check(self.optimizer in OPTIMIZERS, "optimizer", f"must be one of {', '.join(OPTIMIZERS)}")
        check(self.schedule in SCHEDULES, "schedule", f"must be one of {', '.join(SCHEDULES)}")
        check(self.step_size >= 1, "step_size", "must be at least 1")
        check(0 < self.gamma <= 1, "gamma", "must be in (0, 1]")
        check(0 <= self.momentum < 1, "momentum", "must be in [0, 1)")
        check(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        check(0 <= self.label_smoothing < 1, "label_smoothing", "must be in [0, 1)")
        check(self.max_shift >= 0, "max_shift", "must be >= 0")
        check(self.patience is None or self.patience >= 1, "patience", "must be at least 1")
        check(self.dropout_epochs is None or self.dropout_epochs >= 0, "dropout_epochs", "must be >= 0")
        check(0 < self.val_size < TRAIN_SIZE, "val_size", f"must be between 1 and {TRAIN_SIZE - 1}")
        left = TRAIN_SIZE - self.val_size
        check(
            self.limit_train is None or 1 <= self.limit_train <= left,
            "limit_train",
            f"must be between 1 and {left} (the training images left after the {self.val_size}-image validation split)",
        )
        check(
            self.limit_test is None or 1 <= self.limit_test <= TEST_SIZE,
            "limit_test",
            f"must be between 1 and {TEST_SIZE} (the test images)",
        )
        check(self.log_interval >= 1, "log_interval", "must be at least 1")
        try:  # resolved once, here: "auto" becomes the device this machine trains on
            object.__setattr__(self, "device", str(pick_device(self.device)))
        except ConfigError as err:
            problems.extend(err.problems)
        if problems:
            raise ConfigError(problems)

    def _check_types(self) -> list[tuple[str, Any, str]]:
        """Settings whose value does not fit the field's type hint ("int", "float | None", ...).

        A number that fits becomes Python's own int or float (a numpy one would not go into run.json, and a
        checkpoint holding one would not load).
        """
        problems = []
        for f in dataclasses.fields(self):
            hint, value = str(f.type), getattr(self, f.name)
            optional, kind = hint.endswith(" | None"), hint.removesuffix(" | None")
            fits, rule = TYPE_RULES[kind]
            if optional and value is None:
                continue
            if not fits(value):
                problems.append((f.name, value, rule + (" or None" if optional else "")))
            elif kind in ("int", "float"):
                object.__setattr__(self, f.name, int(value) if kind == "int" else float(value))
        return problems

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """A config from ``dataclasses.asdict`` output (as stored in run.json and checkpoints); unknown keys refused."""
        _refuse_unknown(
            values, lambda key: "not a setting of TrainConfig (written by another version of the lab?); remove it"
        )
        return cls(**values)


def _refuse_unknown(values: dict[str, Any], fix: Callable[[str], str]) -> None:
    """A ConfigError naming each key of ``values`` that is not a setting of TrainConfig, with ``fix(key)``."""
    unknown = [(key, values[key], fix(key)) for key in values if key not in TrainConfig.__dataclass_fields__]
    if unknown:
        raise ConfigError(unknown)


def _spelled_like(key: str) -> str:
    """What to say of an argument of make_config that is not a setting: the settings it is closest to."""
    settings = TrainConfig.__dataclass_fields__
    close = difflib.get_close_matches(key, settings, n=3)
    if close:
        return f"not a setting of TrainConfig; did you mean {' or '.join(close)}?"
    return f"not a setting of TrainConfig; the settings: {', '.join(settings)}"


# The recipes, as data. Each is a complete TrainConfig; make_config() applies your changes.
RECIPES: dict[str, TrainConfig] = {
    # The lab's recipe: Nesterov SGD, one-cycle to the LR finder's peak, weight decay, batch 256, bf16.
    "default": TrainConfig(),
    # The same recipe cut to 10 epochs: a few minutes on a laptop CPU.
    "fast": TrainConfig(epochs=10),
    # The fast recipe cut to 7 epochs, the network's dropout on in the first epoch only (early dropout: at this budget
    # the network is under-fitted; 1 of 1-3 dropping epochs picked on validation, benchmarks/early_dropout_probe.py),
    # peak LR 0.1 given instead of a finder's pick: the report's accuracy in an eighth of its time with bfloat16 and a
    # fifth in float32, over the 3 seeds of each of two benchmark runs (README, "Time to accuracy"; speedrun.py:
    # fast-early-7-1).
    "speedrun": TrainConfig(epochs=7, dropout_epochs=1, lr=0.1),
    # The report, replayed: its LR sweep and rule, plain SGD, 23 epochs, PyTorch's layers; batch 64, float32 and the
    # ÷4 rule are our reading of its log. It says "A learning rate scheduler is used" but names no scheduler class or
    # settings; a constant LR fits its 23 logged test accuracies best (benchmarks/report_replay.py).
    "report": TrainConfig(
        epochs=23,
        batch_size=64,
        lr_rule="report",
        schedule="constant",
        momentum=0.0,
        nesterov=False,
        weight_decay=0.0,
        bf16=False,
        channels_last=False,
        fused=False,
    ),
}


def make_config(recipe: str = "default", **changes: Any) -> TrainConfig:
    """The recipe's ``TrainConfig`` with your changes (``None`` values are ignored)."""
    if recipe not in RECIPES:
        raise ConfigError([("recipe", recipe, f"unknown; choose one of {', '.join(RECIPES)}")])
    _refuse_unknown(changes, _spelled_like)  # a typo (epoch=3) got dataclasses' bare TypeError
    return dataclasses.replace(RECIPES[recipe], **{k: v for k, v in changes.items() if v is not None})
