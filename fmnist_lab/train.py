"""Training and evaluation: ``train_step()``, ``train_epoch()``, ``evaluate()`` and ``fit()``.

Read top to bottom like PyTorch's MNIST example, whose log lines we keep
(``Train Epoch: 1 [3200/55000 (6%)]  Loss: ...``), with a validation split for model
selection and the test set kept for the final number. Notebook 03 writes the same loop
out by hand before it uses these functions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from . import distributed
from .config import TrainConfig
from .data import EVAL_BATCH_SIZE, Batches, Splits, training_batches
from .devices import autocast, pick_device, to_device
from .errors import ConfigError, TrainingDiverged
from .model import model_device


def train_step(model: nn.Module, x: Tensor, y: Tensor, optimizer: torch.optim.Optimizer, config: TrainConfig) -> float:
    """One SGD step: zero the gradients, forward, loss, backward, step. Returns the loss.

    The same step serves training, the LR finder and the throughput benchmark.
    """
    device = model_device(model)
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


DROPOUT_LAYERS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)


def train_mode(model: nn.Module, config: TrainConfig, epoch: int) -> None:
    """Training mode for ``epoch`` (from 1): past ``config.dropout_epochs`` the dropout layers stay in eval mode,
    passing everything on, as at test time."""
    model.train()
    if config.dropout_epochs is not None and epoch > config.dropout_epochs:
        for module in model.modules():
            if isinstance(module, DROPOUT_LAYERS):
                module.eval()


def train_epoch(
    model: nn.Module,
    batches: Batches,
    optimizer: torch.optim.Optimizer,
    epoch: int,
    config: TrainConfig,
    scheduler: Any = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> float:
    """One pass over the training batches; returns the mean training loss.

    ``scheduler``, if given, is stepped after every batch (one-cycle).
    """
    train_mode(model, config, epoch)
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
            log(
                f"Train Epoch: {epoch} [{batch_idx * batches.batch_size}/{batches.dataset_size} "
                f"({100.0 * batch_idx / len(batches):.0f}%)]\tLoss: {loss:.6f}"
            )
            bar.set_postfix(loss=f"{loss:.4f}")
    return total_loss / seen


@dataclass
class EvalResult:
    """What ``evaluate`` measured on a set of images."""

    loss: float
    accuracy: float
    correct: int
    total: int
    predictions: Tensor  # predicted class per image
    targets: Tensor
    probabilities: Tensor  # (N, 10)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    device: torch.device | str,
    bf16: bool = True,
    channels_last: bool = False,
) -> EvalResult:
    """Average loss, accuracy and per-image predictions (for a confusion matrix).

    ``bf16`` and ``channels_last`` as in training (``config.bf16``, ``config.channels_last``).
    """
    device = pick_device(str(device))  # a name, as load_checkpoint takes: "auto", "cpu", "cuda"
    model.eval()
    total_loss, log_probs, targets = 0.0, [], []
    for x, y in batches:
        x, y = to_device(x, y, device, channels_last)
        with autocast(device, bf16):
            output = model(x).float()
        total_loss += F.nll_loss(output, y, reduction="sum").item()
        log_probs.append(output.cpu())
        targets.append(y.cpu())
    probabilities = torch.cat(log_probs).exp()
    target = torch.cat(targets)
    predictions = probabilities.argmax(1)
    correct = int((predictions == target).sum())
    return EvalResult(
        loss=total_loss / len(target),
        accuracy=correct / len(target),
        correct=correct,
        total=len(target),
        predictions=predictions,
        targets=target,
        probabilities=probabilities,
    )


def format_eval(name: str, result: EvalResult) -> str:
    """The MNIST example's summary line, e.g. ``Test set: Average loss: 0.3445, Accuracy: 8736/10000 (87%)``."""
    return (
        f"{name} set: Average loss: {result.loss:.4f}, "
        f"Accuracy: {result.correct}/{result.total} ({100.0 * result.accuracy:.0f}%)"
    )


def required_lr(config: TrainConfig) -> float:
    """``config.lr``, which training needs: ``experiment.pick_lr`` picks it when a recipe leaves it open."""
    if config.lr is None:
        why = (
            "training needs a learning rate: give one (lr=0.05), or let the recipe's lr_rule pick it first: "
            "config, model = experiment.pick_lr(config, data)"
        )
        raise ConfigError([("lr", None, why)])
    return config.lr


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """``config.optimizer`` at ``config.lr``: SGD with the config's momentum, Nesterov and weight decay, or AdamW."""
    if config.optimizer == "adamw":  # PyTorch's betas; one-cycle cycles beta1 as it cycles SGD's momentum
        return torch.optim.AdamW(model.parameters(), lr=required_lr(config), weight_decay=config.weight_decay)
    return torch.optim.SGD(
        model.parameters(),
        lr=required_lr(config),
        momentum=config.momentum,
        nesterov=config.nesterov and config.momentum > 0,
        weight_decay=config.weight_decay,
    )


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int) -> tuple[Any, bool]:
    """``config.schedule`` peaking at ``config.lr``, and whether it steps per batch (True) or per epoch (False)."""
    if config.schedule == "onecycle":
        # OneCycleLR also cycles the momentum (SGD's, or AdamW's beta1), 0.95 -> 0.85 -> 0.95, against the LR:
        # a configured momentum is replaced while it runs (notebook 05 plots both); momentum 0 stays plain SGD
        cycle_momentum = config.optimizer == "adamw" or config.momentum > 0
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=required_lr(config),
            epochs=config.epochs,
            steps_per_epoch=steps_per_epoch,
            cycle_momentum=cycle_momentum,
        ), True
    if config.schedule == "step":  # step_size 1, gamma 0.7: PyTorch's MNIST example
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.step_size, gamma=config.gamma), False
    if config.schedule == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.gamma), False
    return None, False


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
        """Record one epoch."""
        for name, value in zip(asdict(self), (train_loss, val_loss, val_accuracy, lr, seconds)):
            getattr(self, name).append(value)

    def records(self) -> list[dict[str, float]]:
        """Per-epoch dictionaries, as written to metrics.json."""
        return [dict(zip(asdict(self), values)) for values in zip(*asdict(self).values())]

    @property
    def best_epoch(self) -> int:
        """1-based epoch with the best validation accuracy (earliest on ties)."""
        return best_epoch(self.val_accuracy)


def best_epoch(val_accuracy: list[float]) -> int:
    """1-based epoch of the best validation accuracy; the earliest on ties (a tie is no improvement)."""
    return max(range(len(val_accuracy)), key=lambda i: (val_accuracy[i], -i)) + 1


def out_of_patience(val_accuracy: list[float], patience: int | None) -> bool:
    """Early stopping's rule: ``patience`` epochs have passed without a better validation accuracy."""
    return patience is not None and bool(val_accuracy) and len(val_accuracy) - best_epoch(val_accuracy) >= patience


@dataclass
class TrainingState:
    """Everything ``fit`` changes as it goes: enough to save and to resume exactly."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    per_batch: bool  # the scheduler steps after every batch (one-cycle), else after every epoch
    generator: torch.Generator  # the shuffling (and augmentation) of the training batches
    history: History = field(default_factory=History)
    best_weights: dict[str, Tensor] | None = None
    config: TrainConfig | None = None  # what it trains with (what its checkpoints record)
    elapsed_seconds: float = 0.0  # the run's wall time at its last save, earlier sessions' included (run sets it)

    @classmethod
    def begin(
        cls, model: nn.Module, batches: Batches, config: TrainConfig, resume_from: dict[str, Any] | None = None
    ) -> TrainingState:
        """A new optimizer and schedule for ``model``; with ``resume_from``, as an interrupted run left them."""
        optimizer = make_optimizer(model, config)
        state = cls(
            model, optimizer, *make_scheduler(optimizer, config, len(batches)), batches.generator, config=config
        )
        if resume_from is not None:
            state.load_state_dict(resume_from)
        return state

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to go on exactly: weights, optimizer, scheduler, history, random state."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            **self.random_state(),
            "history": asdict(self.history),
            "best_weights": self.best_weights,
            "elapsed_seconds": self.elapsed_seconds,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` saved, random state included."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.load_random_state(state)
        self.history = History(**state["history"])
        self.best_weights = state["best_weights"]
        self.elapsed_seconds = elapsed_seconds(state)

    def random_state(self) -> dict[str, Any]:
        """The batches' shuffling and PyTorch's global random numbers (dropout, initialisation)."""
        return {
            "batch_generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "mps_rng": torch.mps.get_rng_state() if torch.backends.mps.is_available() else None,  # dropout there
        }

    def load_random_state(self, state: dict[str, Any]) -> None:
        """Restore the batch order's generator and PyTorch's random number generators."""
        self.generator.set_state(state["batch_generator"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        if state.get("mps_rng") is not None and torch.backends.mps.is_available():  # absent from older checkpoints
            torch.mps.set_rng_state(state["mps_rng"])


# what a resume reads of a saved state_dict() (mps_rng and elapsed_seconds are absent from older checkpoints)
TRAINING_STATE_KEYS = (
    "model",
    "optimizer",
    "scheduler",
    "batch_generator",
    "torch_rng",
    "cuda_rng",
    "history",
    "best_weights",
)


def training_state_problem(state: Any) -> str | None:
    """What makes ``state`` (a saved ``TrainingState.state_dict()``) unfit to resume from, or None if nothing."""
    if not isinstance(state, dict):
        return f"a {type(state).__name__}, not a dict"
    missing = [key for key in TRAINING_STATE_KEYS if key not in state]
    if missing:
        return f"no {', '.join(missing)}"
    history = state["history"]
    fields = list(asdict(History()))
    if not isinstance(history, dict) or sorted(history) != sorted(fields):
        return f"its history is not the {', '.join(fields)} of each epoch"
    if not all(isinstance(history[name], list) for name in fields) or len({len(history[n]) for n in fields}) != 1:
        return "its history's lists are not one entry per epoch"
    return None


def elapsed_seconds(training_state: dict[str, Any]) -> float:
    """The run's wall time when ``training_state`` was saved; older checkpoints kept only the epochs' training time."""
    return training_state.get("elapsed_seconds", sum(training_state["history"]["seconds"]))


def fit(
    model: nn.Module,
    splits: Splits,
    config: TrainConfig,
    resume_from: dict[str, Any] | None = None,
    on_epoch_end: Callable[[TrainingState], None] | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> History:
    """Train for ``config.epochs`` epochs at ``config.lr``, validating after each; ``model`` ends with the best epoch.

    Stops early after ``config.patience`` epochs without improvement. ``on_epoch_end`` gets the TrainingState after
    each epoch; ``resume_from`` (a ``state_dict()`` of one) continues a run exactly. In a process group every rank
    calls ``fit`` and trains its DistributedDataParallel replica on its shard; all end alike.
    """
    layout = torch.channels_last if config.channels_last else torch.contiguous_format
    model.to(splits.train_x.device).to(memory_format=layout)
    replica = distributed.wrap(model, config.sync_bn)  # the model itself outside a process group
    batches, val_batches = training_batches(splits, config), Batches(splits.val_x, splits.val_y, EVAL_BATCH_SIZE)
    state = TrainingState.begin(model, batches, config, resume_from)
    history = state.history
    with tqdm(total=config.epochs, initial=len(history), desc="Training", unit="epoch", disable=not progress) as bar:
        for epoch in range(len(history) + 1, config.epochs + 1):
            if out_of_patience(history.val_accuracy, config.patience):
                log(
                    f"Early stopping: no better validation accuracy for {config.patience} epochs "
                    f"(best {100 * max(history.val_accuracy):.2f}% at epoch {history.best_epoch})"
                )
                break
            lr_now, start = state.optimizer.param_groups[0]["lr"], time.perf_counter()
            train_loss = _train_epoch_on_every_rank(state, replica, batches, epoch, config, progress, log)
            seconds = time.perf_counter() - start
            val = _validate_on_rank_zero(model, val_batches, config)
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


def _train_epoch_on_every_rank(
    state: TrainingState,
    replica: nn.Module,
    batches: Batches,
    epoch: int,
    config: TrainConfig,
    progress: bool,
    log: Callable[[str], None],
) -> float:
    """One epoch of this rank's replica, the schedule stepped; the mean training loss over all ranks."""
    distributed.seed_epoch(config.seed, epoch)
    per_batch = state.scheduler if state.per_batch else None
    train_loss = train_epoch(replica, batches, state.optimizer, epoch, config, per_batch, progress, log)
    train_loss = distributed.mean_over_ranks(train_loss)  # equal shards: the mean of means is the mean
    if state.scheduler is not None and not state.per_batch:
        state.scheduler.step()
    return train_loss


def _validate_on_rank_zero(model: nn.Module, val_batches: Batches, config: TrainConfig) -> EvalResult:
    """The validation result, computed on rank 0 and sent to all, so early stopping decides alike everywhere."""
    distributed.sync_buffers(model)  # every rank now holds the model that rank 0 validates and saves
    device = model_device(model)
    return distributed.from_rank_zero(lambda: evaluate(model, val_batches, device, config.bf16, config.channels_last))
