"""Training and evaluation: ``train_step()``, ``train_epoch()``, ``evaluate()`` and ``fit()``.

Read top to bottom like PyTorch's MNIST example, whose log lines we keep
(``Train Epoch: 1 [3200/55000 (6%)]  Loss: ...``), with a validation split for model
selection and the test set kept for the final number. Notebook 03 writes the same loop
out by hand before it uses these functions.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from . import distributed
from .config import TrainConfig
from .data import Batches, FashionMNIST, normalize, pixel_stats, train_val_split
from .errors import ConfigError, TrainingDiverged


@dataclass
class History:
    """One entry per completed epoch."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.train_loss)

    def append(self, train_loss: float, val_loss: float, val_accuracy: float, lr: float, seconds: float) -> None:
        for name, value in zip(asdict(self), (train_loss, val_loss, val_accuracy, lr, seconds)):
            getattr(self, name).append(value)

    def records(self) -> list[dict[str, float]]:
        """Per-epoch dictionaries, as written to metrics.json."""
        return [dict(zip(asdict(self), values)) for values in zip(*asdict(self).values())]

    @property
    def best_epoch(self) -> int:
        """1-based epoch with the best validation accuracy (earliest on ties)."""
        return max(range(len(self)), key=lambda i: (self.val_accuracy[i], -i)) + 1


@dataclass
class EvalResult:
    loss: float
    accuracy: float
    correct: int
    total: int
    predictions: Tensor  # predicted class per image
    targets: Tensor
    probabilities: Tensor  # (N, 10)


def pick_device(name: str = "auto") -> torch.device:
    """CUDA, then Apple's MPS, then the CPU; or the device you name."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ConfigError([("device", name, "not a device name; use auto, cpu, cuda or mps")]) from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError([("device", name, "PyTorch sees no CUDA GPU here; use device='cpu' or 'auto'")])
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError([("device", name, "Apple's MPS is not available here; use device='cpu' or 'auto'")])
    return device


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """bfloat16 autocast where the hardware runs bf16 natively, else nothing (float32)."""
    if bf16 and bf16_is_native(device):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def bf16_is_native(device: torch.device) -> bool:
    """GPUs from Ampere on (compute capability 8.0), CPUs with AVX512-BF16 or AMX.

    Not ``torch.cuda.is_bf16_supported()``: it also says yes where bf16 is only emulated
    (Colab's T4, capability 7.5), which is slower than float32. ``FMNIST_LAB_BF16=0`` answers
    no everywhere, so a machine with native bf16 can time what most laptops run (float32).
    """
    if not bf16_allowed():
        return False
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device) >= (8, 0)
    if device.type == "cpu":
        return torch.backends.mkldnn.is_available() and _cpu_has_native_bf16()
    return False


def bf16_allowed() -> bool:
    """False when the environment variable ``FMNIST_LAB_BF16`` is 0; unset or 1, the hardware decides.

    Read at each call, not at import, so a notebook or test can set it after importing the lab.
    """
    setting = os.environ.get("FMNIST_LAB_BF16", "1").strip()
    if setting not in ("0", "1", ""):
        raise ConfigError([("FMNIST_LAB_BF16", setting, "must be 0 (float32 everywhere) or 1 (bfloat16 where native)")])
    return setting != "0"


def _cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def to_device(x: Tensor, y: Tensor, device: torch.device, channels_last: bool) -> tuple[Tensor, Tensor]:
    """Move a batch to ``device``; images optionally in channels-last layout (faster convolutions)."""
    x = x.to(device, non_blocking=True)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y.to(device, non_blocking=True)


def train_step(model: nn.Module, x: Tensor, y: Tensor, optimizer: torch.optim.Optimizer, config: TrainConfig) -> float:
    """One SGD step: zero the gradients, forward, loss, backward, step. Returns the loss.

    The same step serves training, the LR finder and the throughput benchmark.
    """
    device = next(model.parameters()).device
    x, y = to_device(x, y, device, config.channels_last)
    optimizer.zero_grad(set_to_none=True)
    with autocast(device, config.bf16):
        output = model(x)  # log-probabilities: cross_entropy's log_softmax leaves them unchanged
    loss = F.cross_entropy(output.float(), y, label_smoothing=config.label_smoothing)
    if not torch.isfinite(loss):  # stop before a NaN reaches the weights
        raise TrainingDiverged(loss.item(), optimizer.param_groups[0]["lr"])
    loss.backward()
    optimizer.step()
    return loss.item()


def train_epoch(model: nn.Module, batches: Batches, optimizer: torch.optim.Optimizer, epoch: int, config: TrainConfig,
                scheduler: Any = None, progress: bool = True, log: Callable[[str], None] = print) -> float:
    """One pass over the training batches; returns the mean training loss.

    ``scheduler``, if given, is stepped after every batch (one-cycle).
    """
    model.train()
    total_loss, seen = 0.0, 0
    bar = tqdm(batches, desc=f"Epoch {epoch}", leave=False, disable=not progress, unit="batch")
    for batch_idx, (x, y) in enumerate(bar):
        try:
            loss = train_step(model, x, y, optimizer, config)
        except TrainingDiverged as err:
            raise TrainingDiverged(err.loss, err.lr, f" in epoch {epoch}, batch {batch_idx}") from None
        if scheduler is not None:
            scheduler.step()
        total_loss += loss * len(y)
        seen += len(y)
        if batch_idx % config.log_interval == 0:
            log(f"Train Epoch: {epoch} [{batch_idx * batches.batch_size}/{batches.dataset_size} "
                f"({100.0 * batch_idx / len(batches):.0f}%)]\tLoss: {loss:.6f}")
            bar.set_postfix(loss=f"{loss:.4f}")
    return total_loss / seen


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], device: torch.device,
             bf16: bool = True) -> EvalResult:
    """Average loss, accuracy and per-image predictions (for a confusion matrix)."""
    model.eval()
    total_loss, log_probs, targets = 0.0, [], []
    for x, y in batches:
        x, y = to_device(x, y, device, channels_last=False)
        with autocast(device, bf16):
            output = model(x).float()
        total_loss += F.nll_loss(output, y, reduction="sum").item()
        log_probs.append(output.cpu())
        targets.append(y.cpu())
    probabilities = torch.cat(log_probs).exp()
    target = torch.cat(targets)
    predictions = probabilities.argmax(1)
    correct = int((predictions == target).sum())
    return EvalResult(loss=total_loss / len(target), accuracy=correct / len(target), correct=correct,
                      total=len(target), predictions=predictions, targets=target, probabilities=probabilities)


def format_eval(name: str, result: EvalResult) -> str:
    """The MNIST example's summary line, e.g. ``Test set: Average loss: 0.3445, Accuracy: 8736/10000 (87%)``."""
    return (f"{name} set: Average loss: {result.loss:.4f}, "
            f"Accuracy: {result.correct}/{result.total} ({100.0 * result.accuracy:.0f}%)")


@dataclass
class Splits:
    """Normalised train/validation/test tensors and the statistics used to normalise them."""

    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor
    test_x: Tensor
    test_y: Tensor
    mean: float
    std: float


def make_splits(data: FashionMNIST, config: TrainConfig) -> Splits:
    """Carve the validation split, compute the statistics from the training images, normalise.

    The whole (float32) dataset goes to ``config.device`` once, so batches never cross the bus.
    """
    train_idx, val_idx = train_val_split(len(data.train_labels), config.val_size, config.seed)
    if config.limit_train is not None:
        train_idx = train_idx[: config.limit_train]
    mean, std = pixel_stats(data.train_images[train_idx])
    device = pick_device(config.device)

    def prepare(images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        return normalize(images, mean, std).to(device), labels.to(device)

    return Splits(*prepare(data.train_images[train_idx], data.train_labels[train_idx]),
                  *prepare(data.train_images[val_idx], data.train_labels[val_idx]),
                  *prepare(data.test_images, data.test_labels), mean=mean, std=std)


def training_batches(splits: Splits, config: TrainConfig) -> Batches:
    """The shuffled (and optionally augmented) training batches of a run; in a process group, this rank's share."""
    return Batches(splits.train_x, splits.train_y, config.batch_size, shuffle=True, seed=config.seed,
                   max_shift=config.max_shift, flip=config.flip, background=-splits.mean / splits.std,
                   rank=distributed.rank(), world_size=distributed.world_size())


def make_optimizer(model: nn.Module, config: TrainConfig, lr: float) -> torch.optim.SGD:
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=config.momentum,
                           nesterov=config.nesterov and config.momentum > 0, weight_decay=config.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, lr: float, steps_per_epoch: int):
    """The LR schedule and whether it steps per batch (True) or per epoch (False)."""
    if config.schedule == "onecycle":
        # OneCycleLR also cycles the momentum, 0.95 -> 0.85 -> 0.95, against the LR: the configured
        # momentum is replaced while it runs (notebook 05 plots both)
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=lr, epochs=config.epochs, steps_per_epoch=steps_per_epoch), True
    if config.schedule == "step":  # step_size 1, gamma 0.7: PyTorch's MNIST example
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.step_size, gamma=config.gamma), False
    if config.schedule == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.gamma), False
    return None, False


@dataclass
class TrainingState:
    """Everything ``fit`` changes as it goes: enough to save and to resume exactly."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    generator: torch.Generator  # the shuffling (and augmentation) of the training batches
    history: History = field(default_factory=History)
    best_weights: dict[str, Tensor] | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "batch_generator": self.generator.get_state(), "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "history": asdict(self.history), "best_weights": self.best_weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["batch_generator"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.history = History(**state["history"])
        self.best_weights = state["best_weights"]


def fit(model: nn.Module, splits: Splits, config: TrainConfig, lr: float, resume_from: dict[str, Any] | None = None,
        on_epoch_end: Callable[[TrainingState], None] | None = None, progress: bool = True,
        log: Callable[[str], None] = print) -> History:
    """Train for ``config.epochs`` epochs, validating after each; ``model`` ends with the best epoch's weights.

    Stops early after ``config.patience`` epochs without improvement. ``on_epoch_end`` gets the
    TrainingState after each epoch; ``resume_from`` (a ``state_dict()`` of one) continues a run exactly.
    In a process group (``distributed.process_group``) every rank calls ``fit``: each trains
    the DistributedDataParallel replica on its shard, and all end with the same history and weights.
    """
    device = splits.train_x.device
    model.to(device).to(memory_format=torch.channels_last if config.channels_last else torch.contiguous_format)
    replica = distributed.wrap(model, config.sync_bn)  # the model itself outside a process group
    batches = training_batches(splits, config)
    val_batches = Batches(splits.val_x, splits.val_y, 1000)
    optimizer = make_optimizer(model, config, lr)
    scheduler, per_batch = make_scheduler(optimizer, config, lr, len(batches))
    state = TrainingState(model, optimizer, scheduler, batches.generator)
    if resume_from is not None:
        state.load_state_dict(resume_from)
    history = state.history
    with tqdm(total=config.epochs, initial=len(history), desc="Training", unit="epoch", disable=not progress) as bar:
        for epoch in range(len(history) + 1, config.epochs + 1):
            if config.patience is not None and history and len(history) - history.best_epoch >= config.patience:
                log(f"Early stopping: no better validation accuracy for {config.patience} epochs "
                    f"(best {100 * max(history.val_accuracy):.2f}% at epoch {history.best_epoch})")
                break
            lr_now, start = optimizer.param_groups[0]["lr"], time.perf_counter()
            distributed.seed_epoch(config.seed, epoch)
            train_loss = train_epoch(replica, batches, optimizer, epoch, config, scheduler if per_batch else None,
                                     progress, log)
            train_loss = distributed.mean_over_ranks(train_loss)  # equal shards: the mean of means is the mean
            if scheduler is not None and not per_batch:
                scheduler.step()
            seconds = time.perf_counter() - start
            distributed.sync_buffers(model)  # every rank now holds the model that rank 0 validates and saves
            val = distributed.from_rank_zero(lambda: evaluate(model, val_batches, device, config.bf16))
            log(format_eval("Validation", val) + f"  [{seconds:.1f} s]")
            history.append(train_loss, val.loss, val.accuracy, lr_now, seconds)
            if history.best_epoch == epoch:
                state.best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
            bar.set_postfix(val_accuracy=f"{100 * val.accuracy:.2f}%")
            bar.update()
            if on_epoch_end is not None:
                on_epoch_end(state)
        bar.total = len(history)  # an early stop ends the bar full: nothing is left to do
    if state.best_weights is not None:
        model.load_state_dict(state.best_weights)
    return history
