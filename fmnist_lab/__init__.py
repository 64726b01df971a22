"""fmnist-lab: a Fashion-MNIST teaching lab around one small CNN.

Everything a notebook needs is importable from here: ``from fmnist_lab import ...``.
"""

from .checkpoint import CheckpointError, load_checkpoint
from .config import RECIPES, TrainConfig, make_config
from .data import EVAL_BATCH_SIZE, Batches, Splits, make_splits, normalize, pixel_stats, train_val_split
from .dataset import CLASS_NAMES, DataError, FashionMNIST, load_fashion_mnist
from .devices import keep_freed_memory, pick_device
from .errors import ConfigError, LabError, TrainingDiverged
from .experiment import pick_lr, resume, run
from .fused import FusedNet
from .lr_finder import find_lr, sweep_lrs
from .model import Net, count_parameters, layer_shapes
from .quick import QUICK
from .run_folder import RunFolderError, latest_run, new_run_folder
from .train import (
    EvalResult,
    History,
    evaluate,
    fit,
    format_eval,
    make_optimizer,
    make_scheduler,
    train_epoch,
    train_step,
)

keep_freed_memory()  # before anything trains: devices.py says why

__version__ = "0.4.0"
__all__ = [
    "CLASS_NAMES",
    "EVAL_BATCH_SIZE",
    "QUICK",
    "RECIPES",
    "Batches",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "EvalResult",
    "FashionMNIST",
    "FusedNet",
    "History",
    "LabError",
    "Net",
    "RunFolderError",
    "Splits",
    "TrainConfig",
    "TrainingDiverged",
    "count_parameters",
    "evaluate",
    "find_lr",
    "fit",
    "format_eval",
    "latest_run",
    "layer_shapes",
    "load_checkpoint",
    "load_fashion_mnist",
    "make_config",
    "make_optimizer",
    "make_scheduler",
    "make_splits",
    "normalize",
    "pick_lr",
    "pick_device",
    "new_run_folder",
    "pixel_stats",
    "resume",
    "run",
    "sweep_lrs",
    "train_epoch",
    "train_step",
    "train_val_split",
]
