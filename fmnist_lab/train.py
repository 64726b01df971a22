"""Training and evaluation: plain ``train_epoch()`` / ``evaluate()`` functions and ``fit()``.

Read top to bottom like PyTorch's MNIST example: the log lines are the same
(``Train Epoch: 1 [3200/60000 (5%)]  Loss: ...``), with a validation split for model
selection and the test set kept for the final number.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from .checkpoint import TrainingState, load_training_state, save_checkpoint, save_training_state
from .data import Batches, FashionMNIST, normalize, pixel_stats, train_val_split

SCHEDULES = ("onecycle", "step", "constant")
TRAIN_SIZE = 60_000


@dataclass
class TrainConfig:
    """Everything that defines a training run. The defaults are the lab's recipe."""

    epochs: int = 30
    batch_size: int = 256
    lr: float | None = None  # peak LR; None asks the LR finder
    schedule: str = "onecycle"  # "onecycle", "step" (StepLR, gamma 0.7 per epoch) or "constant"
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    max_shift: int = 0  # augmentation: random shifts of up to this many pixels
    flip: bool = False  # augmentation: random horizontal flips
    patience: int | None = None  # early stopping: epochs without a better val accuracy
    ema_decay: float | None = None  # evaluate an exponential moving average of the weights
    flip_tta: bool = False  # test-time augmentation: average the predictions for the image and its mirror
    val_size: int = 5000
    limit_train: int | None = None  # use only this many training images (quick runs)
    seed: int = 0
    device: str = "auto"
    bf16: bool = True  # bfloat16 autocast where the hardware runs it fast
    channels_last: bool = True
    log_interval: int = 50  # batches between "Train Epoch" lines

    def __post_init__(self) -> None:
        problems = []
        if self.epochs < 1:
            problems.append(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            problems.append(f"batch_size must be at least 1, got {self.batch_size}")
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            problems.append(f"lr must be a positive number, got {self.lr}")
        if self.weight_decay < 0:
            problems.append(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.schedule not in SCHEDULES:
            problems.append(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if not 0 <= self.label_smoothing < 1:
            problems.append(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0 < self.val_size < TRAIN_SIZE:
            problems.append(f"val_size must be between 1 and {TRAIN_SIZE - 1}, got {self.val_size}")
        elif self.limit_train is not None and not 1 <= self.limit_train <= TRAIN_SIZE - self.val_size:
            problems.append(f"limit_train must be between 1 and {TRAIN_SIZE - self.val_size} (the training images "
                            f"left after the {self.val_size}-image validation split), got {self.limit_train}")
        if self.patience is not None and self.patience < 1:
            problems.append(f"patience must be at least 1, got {self.patience}")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            problems.append(f"ema_decay must be between 0 and 1, got {self.ema_decay}")
        if self.log_interval < 1:
            problems.append(f"log_interval must be at least 1, got {self.log_interval}")
        if problems:
            raise ValueError("; ".join(problems))

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def report_config(**overrides) -> TrainConfig:
    """The report's recipe: plain SGD, batch 64, StepLR, 23 epochs, no weight decay."""
    values = dict(epochs=23, batch_size=64, schedule="step", momentum=0.0, nesterov=False,
                  weight_decay=0.0, bf16=False, channels_last=False)
    return TrainConfig(**{**values, **overrides})


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


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
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but PyTorch sees no CUDA GPU; use --device cpu or auto")
    return device


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on CUDA and on CPUs with native bf16 (AVX512-BF16/AMX), else nothing."""
    if bf16 and bf16_is_fast(device):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def bf16_is_fast(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return torch.backends.mkldnn.is_available() and _cpu_has_native_bf16()
    return False


def _cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def train_epoch(
    model: nn.Module,
    batches: Batches,
    optimizer: torch.optim.Optimizer,
    epoch: int,
    device: torch.device,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    config: TrainConfig | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    ema: AveragedModel | None = None,
) -> float:
    """One pass over the training batches; returns the mean training loss.

    ``scheduler`` is stepped per batch (one-cycle); a per-epoch scheduler is stepped by
    the caller. ``ema``, if given, is updated after every step.
    """
    config = config or TrainConfig()
    model.train()
    total_loss, seen = 0.0, 0
    bar = tqdm(batches, desc=f"Epoch {epoch}", leave=False, disable=not progress, unit="batch")
    for batch_idx, (x, y) in enumerate(bar):
        x, y = to_device(x, y, device, config.channels_last)
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, config.bf16):
            output = model(x)
        loss = F.cross_entropy(output.float(), y, label_smoothing=config.label_smoothing)
        if not torch.isfinite(loss):
            lr = optimizer.param_groups[0]["lr"]
            raise TrainingDiverged(
                f"Training diverged: the loss became {loss.item()} in epoch {epoch}, batch {batch_idx}, "
                f"at learning rate {lr:.4g}. The LR is too high for this run: lower it (try the LR "
                f"finder's suggestion, `fmnist-lab lr-find`) and train again."
            )
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        if ema is not None:
            ema.update_parameters(model)
        total_loss += loss.item() * len(y)
        seen += len(y)
        if batch_idx % config.log_interval == 0:
            done = batch_idx * batches.batch_size
            log(f"Train Epoch: {epoch} [{done}/{batches.dataset_size} "
                f"({100.0 * batch_idx / len(batches):.0f}%)]\tLoss: {loss.item():.6f}")
            bar.set_postfix(loss=f"{loss.item():.4f}")
    return total_loss / seen


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], device: torch.device, bf16: bool = True,
             flip_tta: bool = False) -> EvalResult:
    """Average loss, accuracy and per-image predictions (for a confusion matrix).

    With ``flip_tta`` the probabilities are averaged over each image and its mirror image.
    """
    model.eval()
    total_loss, log_probs, targets = 0.0, [], []
    for x, y in batches:
        x, y = to_device(x, y, device, channels_last=False)
        with autocast(device, bf16):
            output = model(x).float()
            if flip_tta:  # mean of the two probabilities, computed in log space
                output = torch.logaddexp(output, model(x.flip(3)).float()) - math.log(2)
        total_loss += F.nll_loss(output, y, reduction="sum").item()
        log_probs.append(output.cpu())
        targets.append(y.cpu())
    probabilities = torch.cat(log_probs).exp()
    target = torch.cat(targets)
    predictions = probabilities.argmax(1)
    correct = int((predictions == target).sum())
    return EvalResult(
        loss=total_loss / len(target), accuracy=correct / len(target), correct=correct, total=len(target),
        predictions=predictions, targets=target, probabilities=probabilities,
    )


def format_eval(name: str, result: EvalResult) -> str:
    """The MNIST example's summary line, e.g. ``Test set: Average loss: 0.3445, Accuracy: 8736/10000 (87%)``."""
    return (f"{name} set: Average loss: {result.loss:.4f}, "
            f"Accuracy: {result.correct}/{result.total} ({100.0 * result.accuracy:.0f}%)")


def to_device(x: Tensor, y: Tensor, device: torch.device, channels_last: bool) -> tuple[Tensor, Tensor]:
    """Move a batch to ``device``; images optionally in channels-last layout (faster convolutions)."""
    x = x.to(device, non_blocking=True)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y.to(device, non_blocking=True)


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


def make_splits(data: FashionMNIST, config: TrainConfig, device: torch.device | None = None) -> Splits:
    """Carve the validation split, compute the statistics from the training images, normalise.

    The whole (float32) dataset goes to ``device`` once, so batches never cross the bus.
    """
    train_idx, val_idx = train_val_split(len(data.train_labels), config.val_size, config.seed)
    if config.limit_train is not None:
        train_idx = train_idx[: config.limit_train]
    mean, std = pixel_stats(data.train_images[train_idx])
    device = device or torch.device("cpu")

    def prepare(images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        return normalize(images, mean, std).to(device), labels.to(device)

    return Splits(*prepare(data.train_images[train_idx], data.train_labels[train_idx]),
                  *prepare(data.train_images[val_idx], data.train_labels[val_idx]),
                  *prepare(data.test_images, data.test_labels), mean=mean, std=std)


def make_optimizer(model: nn.Module, config: TrainConfig, lr: float) -> torch.optim.SGD:
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=config.momentum,
                           nesterov=config.nesterov and config.momentum > 0, weight_decay=config.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, lr: float, steps_per_epoch: int):
    """The LR schedule and whether it steps per batch (True) or per epoch (False)."""
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=lr, epochs=config.epochs, steps_per_epoch=steps_per_epoch), True
    if config.schedule == "step":  # as in PyTorch's MNIST example
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7), False
    return None, False


def fit(
    model: nn.Module,
    splits: Splits,
    config: TrainConfig,
    lr: float,
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    on_epoch_end: Callable[[History], None] | None = None,
    log: Callable[[str], None] = print,
) -> History:
    """Train ``model`` for ``config.epochs`` epochs with validation after each.

    With ``out_dir``, after every epoch ``last.pt`` (everything needed to resume) and,
    when validation accuracy improved, ``best.pt`` are written atomically. ``resume=True``
    continues from ``out_dir/last.pt`` exactly where the run stopped. At the end the
    model holds the best epoch's weights.
    """
    device = splits.train_x.device
    model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    batches = Batches(splits.train_x, splits.train_y, config.batch_size, shuffle=True, seed=config.seed,
                      max_shift=config.max_shift, flip=config.flip, background=-splits.mean / splits.std)
    val_batches = Batches(splits.val_x, splits.val_y, 1000)
    optimizer = make_optimizer(model, config, lr)
    scheduler, per_batch = make_scheduler(optimizer, config, lr, len(batches))
    ema = None
    if config.ema_decay is not None:
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay), use_buffers=True)
    scored = ema.module if ema is not None else model  # what validation scores and checkpoints hold
    out = Path(out_dir) if out_dir is not None else None
    state = TrainingState(history=History())
    if resume:
        if out is None:
            raise ValueError("resume=True needs the out_dir of the interrupted run")
        state = load_training_state(out / "last.pt", model, optimizer, scheduler, batches.generator, ema)
        log(f"Resuming from {out / 'last.pt'} after epoch {len(state.history)}")
    history = state.history
    best_state = state.best_model
    # one bar over the epochs that stays; train_epoch adds a bar over each epoch's batches
    epochs_bar = tqdm(total=config.epochs, initial=len(history), desc="Training", unit="epoch", disable=not progress)
    try:
        for epoch in range(len(history) + 1, config.epochs + 1):
            if config.patience is not None and history and len(history) - history.best_epoch >= config.patience:
                log(f"Early stopping: no better validation accuracy for {config.patience} epochs "
                    f"(best {100 * max(history.val_accuracy):.2f}% at epoch {history.best_epoch})")
                epochs_bar.total = len(history)  # the bar ends full: nothing is left to do
                break
            lr_now = optimizer.param_groups[0]["lr"]
            start = time.perf_counter()
            train_loss = train_epoch(model, batches, optimizer, epoch, device, scheduler if per_batch else None,
                                     config, progress, log, ema)
            if scheduler is not None and not per_batch:
                scheduler.step()
            seconds = time.perf_counter() - start
            val = evaluate(scored, val_batches, device, config.bf16, config.flip_tta)
            log(format_eval("Validation", val) + f"  [{seconds:.1f} s]")
            history.train_loss.append(train_loss)
            history.val_loss.append(val.loss)
            history.val_accuracy.append(val.accuracy)
            history.lr.append(lr_now)
            history.seconds.append(seconds)
            if history.best_epoch == epoch:
                best_state = {k: v.detach().clone() for k, v in scored.state_dict().items()}
                if out is not None:
                    save_checkpoint(out / "best.pt", scored, splits.mean, splits.std, config,
                                    {"epoch": epoch, "val_accuracy": val.accuracy, "val_loss": val.loss})
            if out is not None:
                save_training_state(out / "last.pt", model, optimizer, scheduler, batches.generator,
                                    TrainingState(history, best_state), config, splits.mean, splits.std, ema)
            epochs_bar.set_postfix(val_accuracy=f"{100 * val.accuracy:.2f}%")
            epochs_bar.update()
            if on_epoch_end is not None:
                on_epoch_end(history)
    finally:
        epochs_bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    return history
