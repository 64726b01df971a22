"""The learning-rate range test (Leslie Smith, 2015), done so that students can trust it.

What the report did (``replay_report_lr_choice`` replays it), and what ``find_lr`` does instead:
- its sweep was linear from 1e-4 to 1, so 99 of its 100 points sat above 1e-2 and 90 above
  0.1; ours is exponential (equal steps in log LR) by default;
- it trained 30 mini-batches at each LR and logged their mean loss (our reading of its
  ``find_lr(model, train_loader, 1e-4, 1, 100, 30)``: it matches the first steps of its log,
  see benchmarks/report_sweep_probe.py), then, in our reading too, took the LR of the lowest
  logged loss divided by 4 (its log: lowest loss at 0.620038, "Best LR 0.15500949999999986"; its text
  says the LR "that minimizes the loss is selected"); a single point of a noisy curve decides, so
  we smooth the loss (bias-corrected exponential moving average) and read labelled suggestions off
  the smoothed curve;
- it then re-initialised the conv and linear layers and, in our reading, not BatchNorm, whose scale, shift and
  running statistics training then inherited from the sweep's last steps at LRs near 1; we
  restore weights, BatchNorm statistics, optimizer and random-number states exactly.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from .config import TrainConfig
from .data import Batches, Splits
from .errors import ConfigError, TrainingDiverged, warn
from .model import Net
from .train import TrainingState, make_optimizer, train_mode, train_step

SKIP_START_FRACTION = 0.1  # the first steps are dominated by the initial loss drop
SKIP_END_FRACTION = 0.05  # the last steps are where the loss blows up
MIN_POINTS = 10


def _trimmed(n: int) -> tuple[int, int]:
    """The [start, end) of a sweep's ``n`` points that ``suggest`` reads: the noisy start and exploding end left out."""
    return int(n * SKIP_START_FRACTION), n - int(n * SKIP_END_FRACTION)


# the fewest steps whose points, the ends trimmed, are MIN_POINTS: a shorter sweep cannot suggest an LR
MIN_SWEEP_STEPS = next(
    n for n in range(MIN_POINTS, 10 * MIN_POINTS) if (ends := _trimmed(n))[1] - ends[0] >= MIN_POINTS
)
# An EMA run long lags beta/(1-beta) steps behind the raw loss: 49 steps for 0.98, 9 for 0.9 (bias-corrected,
# beta/(1-beta) - t beta^t/(1-beta^t) at step t: 0.98 lags 34 steps at step 100). Over 200 steps spanning 6 decades
# of LR, 0.9 lags ~0.3 decades; 0.98 would lag 1-1.5 in the sweep's second half and hide the blow-up.
DEFAULT_BETA = 0.9
FLAT_RELATIVE_CHANGE = 0.05
REPORT_DIVISOR = 4
REPORT_SWEEP_STEPS = 100
FINDER_STEPS = 200  # the LR finder's sweep, at most (it stops where the loss diverges)


class LRFinderWarning(UserWarning):
    """The sweep is too short or too flat to suggest a learning rate."""


@dataclass
class LRFinderResult:
    """One LR sweep: the LRs tried, their losses raw and smoothed, why it stopped, and the LRs it suggests."""

    lrs: list[float]
    losses: list[float]  # raw losses: one per LR (the mean of its mini-batches when there are several)
    smoothed: list[float]  # bias-corrected EMA of the losses
    stop_reason: str
    mode: str = "exp"
    suggestions: dict[str, float] = field(default_factory=dict)  # label -> LR
    warnings: list[str] = field(default_factory=list)

    @property
    def one_cycle_lr(self) -> float | None:
        """The peak LR to hand to a one-cycle schedule: the LR of the smoothed minimum.

        A constant LR must be safe from the first step (hence "minimum/10"); one-cycle reaches
        its peak only after warming up over 30% of the steps, and anneals away from it at once:
        Smith (2018) takes the LR where the loss stops falling as the upper bound of the cycle.
        """
        return self.suggestions["minimum/10"] * 10 if self.suggestions else None

    @property
    def lowest_raw_loss_step(self) -> int:
        """The step (from 0) of the lowest raw (unsmoothed, noisy) loss."""
        return min(range(len(self.losses)), key=self.losses.__getitem__)

    @property
    def lowest_raw_loss_lr(self) -> float:
        """The LR of the lowest raw (unsmoothed, noisy) loss."""
        return self.lrs[self.lowest_raw_loss_step]

    @property
    def report_lr(self) -> float:
        """The report's rule as we read it: the LR of the lowest logged loss, divided by 4 (its log: 0.620038 / 4 =
        0.155)."""
        return self.lowest_raw_loss_lr / REPORT_DIVISOR


def sweep_lrs(start_lr: float, end_lr: float, num_steps: int, mode: str = "exp") -> list[float]:
    """``num_steps`` LRs from ``start_lr``, equally spaced in log up to ``end_lr`` ("exp"), or linearly.

    The linear mode steps as the report's sweep did: ``(end_lr - start_lr) / num_steps`` apart, so
    1e-4 -> 1 over 100 steps gives 0.0001, 0.010099, ..., 0.990001 (its log), never ``end_lr`` itself.
    """
    problems = []
    if not 0 < end_lr < math.inf:  # nan too: every comparison with it is False
        problems.append(("end_lr", end_lr, "must be a finite number above 0"))
    elif not 0 < start_lr < end_lr:
        problems.append(("start_lr", start_lr, f"must be above 0 and below the end LR ({end_lr}), a finite number"))
    if num_steps < 2:
        problems.append(("num_steps", num_steps, "must be at least 2"))
    if mode not in ("exp", "linear"):
        problems.append(("mode", mode, "must be exp or linear"))
    if problems:
        raise ConfigError(problems)
    if mode == "exp":
        return [start_lr * (end_lr / start_lr) ** (i / (num_steps - 1)) for i in range(num_steps)]
    return [start_lr + (end_lr - start_lr) * i / num_steps for i in range(num_steps)]


def smooth(losses: list[float], beta: float = DEFAULT_BETA) -> list[float]:
    """Bias-corrected exponential moving average, as in Adam: early values are not pulled to 0."""
    avg, out = 0.0, []
    for i, loss in enumerate(losses, start=1):
        avg = beta * avg + (1 - beta) * loss
        out.append(avg / (1 - beta**i))
    return out


def suggest(lrs: list[float], smoothed: list[float]) -> tuple[dict[str, float], list[str]]:
    """Labelled suggestions from the smoothed curve, with warnings where it cannot tell.

    - "steepest": where the smoothed loss falls fastest against log(LR);
    - "valley": the middle of the longest descent (fastai's heuristic), robust to wiggles;
    - "minimum/10": a tenth of the LR with the lowest smoothed loss.
    The first 10% and last 5% of the points are trimmed first (noisy start, exploding end),
    and the descent is searched only up to the minimum: past it the loss is blowing up.
    """
    n = len(lrs)
    start, end = _trimmed(n)
    x = [math.log10(lr) for lr in lrs[start:end]]
    y = smoothed[start:end]
    if len(y) < MIN_POINTS:
        return {}, [
            f"The sweep is too short to suggest an LR: {len(y)} usable points after trimming the "
            f"ends (need {MIN_POINTS}). Use more steps (if the sweep was capped at one pass over the training "
            f"data, more images or a smaller batch), or a lower end_lr if it diverged early."
        ]
    top, bottom = max(y), min(y)
    if top - bottom < FLAT_RELATIVE_CHANGE * abs(top):
        return {}, [
            f"The loss curve is flat (it changed by less than {FLAT_RELATIVE_CHANGE:.0%}): no LR "
            f"in this range trains noticeably. Widen the range (a higher end_lr) or check the data."
        ]
    lowest = min(range(len(y)), key=y.__getitem__)
    if lowest < 2:
        return {}, ["The loss never decreases in this range: start the sweep at a lower LR."]
    slopes = [(y[i + 1] - y[i]) / (x[i + 1] - x[i]) for i in range(lowest)]
    steepest = min(range(len(slopes)), key=slopes.__getitem__)
    # longest decreasing subsequence ending at each point of the descent
    run = [1] * (lowest + 1)
    for i in range(1, lowest + 1):
        run[i] = 1 + max((run[j] for j in range(i) if y[j] > y[i]), default=0)
    valley_end = max(range(lowest + 1), key=run.__getitem__)
    valley_start = valley_end - run[valley_end] + 1
    valley = (valley_start + valley_end) // 2
    suggestions = {
        "steepest": 10 ** ((x[steepest] + x[steepest + 1]) / 2),
        "valley": 10 ** x[valley],
        "minimum/10": 10 ** x[lowest] / 10,
    }
    return suggestions, []


def find_lr(
    model: nn.Module,
    batches: Batches,
    start_lr: float = 1e-6,
    end_lr: float = 1.0,
    num_steps: int = FINDER_STEPS,
    mode: str = "exp",
    beta: float = DEFAULT_BETA,
    diverge_factor: float = 4.0,
    config: TrainConfig | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    restore: bool = True,
    batches_per_step: int = 1,
    max_passes: int = 1,
) -> LRFinderResult:
    """Train at ``num_steps`` rising LRs, ``batches_per_step`` mini-batches each, and record the (mean) loss.

    Stops early when the smoothed loss exceeds ``diverge_factor`` times its best or the
    loss is NaN/inf. The sweep is capped at ``max_passes`` passes over ``batches`` (each
    pass reshuffled, as a DataLoader's). The random-number states are restored afterwards either
    way; with ``restore`` (the default) the model, its BatchNorm statistics and the optimizer too,
    exactly as before the sweep.
    """
    config = config or TrainConfig()
    num_steps = _affordable_steps(num_steps, batches, batches_per_step, max_passes)
    lrs = sweep_lrs(start_lr, end_lr, num_steps, mode)
    optimizer = optimizer or make_optimizer(model, dataclasses.replace(config, lr=lrs[0]))
    before = TrainingState(model, optimizer, None, False, batches.generator)
    saved = copy.deepcopy(before.state_dict())  # weights, BatchNorm statistics, optimizer, random states
    try:
        used_lrs, losses, stop_reason = _sweep(
            model, batches, optimizer, lrs, config, beta, diverge_factor, batches_per_step, max_passes
        )
    finally:
        if restore:
            before.load_state_dict(saved)
        else:
            before.load_random_state(saved)
    smoothed_losses = smooth(losses, beta)
    suggestions, problems = suggest(used_lrs, smoothed_losses)
    for problem in problems:
        warn(problem, LRFinderWarning)
    return LRFinderResult(used_lrs, losses, smoothed_losses, stop_reason, mode, suggestions, problems)


def _affordable_steps(num_steps: int, batches: Batches, batches_per_step: int, max_passes: int) -> int:
    """``num_steps``, or fewer (with a warning) where ``max_passes`` over the data cannot feed them all.

    Fewer than 2 (a training set of one mini-batch) is no sweep at all: refused with what to do.
    """
    if batches_per_step < 1 or max_passes < 1:
        raise ValueError(f"batches_per_step and max_passes must be at least 1, got {batches_per_step} and {max_passes}")
    affordable = max_passes * len(batches) // batches_per_step
    if affordable < 2:
        raise ConfigError(
            [
                (
                    "batch_size",
                    batches.batch_size,
                    f"{batches.dataset_size} training images in mini-batches of {batches.batch_size} feed too "
                    f"few steps of an LR sweep ({affordable}; it needs 2 at least): use more images or smaller "
                    f"batches, or give the LR yourself",
                )
            ]
        )
    if num_steps > affordable:
        passes = "one pass" if max_passes == 1 else f"{max_passes} passes"
        warn(
            f"The sweep is capped at {passes} over the training data: {affordable} steps instead of "
            f"{num_steps}. With so little data the suggestions are rough.",
            LRFinderWarning,
        )
        return affordable
    return num_steps


def _sweep(
    model: nn.Module,
    batches: Batches,
    optimizer: torch.optim.Optimizer,
    lrs: list[float],
    config: TrainConfig,
    beta: float,
    diverge_factor: float,
    batches_per_step: int,
    max_passes: int,
) -> tuple[list[float], list[float], str]:
    """Train at each LR in turn: the LRs used, their (mean) losses, and why the sweep stopped."""
    used_lrs: list[float] = []
    losses: list[float] = []
    best = math.inf
    train_mode(model, config, epoch=1)  # the network of the epoch it picks the LR for (dropout_epochs=0: no dropout)
    stream = (batch for _ in range(max_passes) for batch in batches)
    for step, lr in enumerate(lrs, start=1):
        for group in optimizer.param_groups:
            group["lr"] = lr
        try:
            loss = (
                sum(train_step(model, *next(stream), optimizer, config) for _ in range(batches_per_step))
                / batches_per_step
            )
        except TrainingDiverged as err:
            return used_lrs, losses, f"stopped at step {step}: the loss became {err.loss} at LR {lr:.3g}"
        used_lrs.append(lr)
        losses.append(loss)
        smoothed = smooth(losses, beta)[-1]  # the whole curve again: a few hundred steps at most
        best = min(best, smoothed)
        if smoothed > diverge_factor * best:
            return (
                used_lrs,
                losses,
                (
                    f"stopped at step {step}: the smoothed loss {smoothed:.3g} exceeded "
                    f"{diverge_factor:g}x its best ({best:.3g}) at LR {lr:.3g}"
                ),
            )
    return used_lrs, losses, f"completed all {len(lrs)} steps"


def report_sweep(model: nn.Module, batches: Batches, config: TrainConfig, restore: bool = True) -> LRFinderResult:
    """The report's sweep: 100 LRs linear from 1e-4 to 1, ``config.report_sweep_batches`` mini-batches each.

    With ``config``'s optimizer (the report recipe's: plain SGD; float32 and batch 64 in our reading). Each
    point is the mean loss of its mini-batches; the data is reshuffled and reused as often as
    the sweep needs (30 x 100 batches of 64 are 3.5 passes over 55,000 images), as, in our
    reading, the report's loop over its DataLoader did to log 100 steps. It runs all 100 LRs, as the report's log
    does: only a loss that is not a finite number stops it, not ``find_lr``'s stop at 4x the best smoothed loss.
    """
    per_step = config.report_sweep_batches
    return find_lr(
        model,
        batches,
        1e-4,
        1.0,
        REPORT_SWEEP_STEPS,
        mode="linear",
        config=config,
        restore=restore,
        batches_per_step=per_step,
        diverge_factor=math.inf,
        max_passes=math.ceil(REPORT_SWEEP_STEPS * per_step / len(batches)),
    )


def sweep_batches(splits: Splits, config: TrainConfig) -> Batches:
    """What a sweep trains on: the training images at ``config.batch_size``, shuffled by its seed, not augmented."""
    return Batches(splits.train_x, splits.train_y, config.batch_size, shuffle=True, seed=config.seed)


def replay_report_lr_choice(model: Net, splits: Splits, config: TrainConfig) -> LRFinderResult:
    """The report's LR search, replayed: then take ``result.report_lr`` (lowest logged loss / 4).

    ``report_sweep``, not undone afterwards; then, as in the report, ``reset_parameters``
    re-initialises the conv and linear layers, and (our reading) nothing else, so BatchNorm keeps the scale, shift and
    running statistics that the sweep (up to LR 0.99) left; all of them too, with a warning, where a sweep that ended
    in a non-finite loss left them non-finite.
    """
    result = report_sweep(model, sweep_batches(splits, config), config, restore=False)
    finite = all(t.isfinite().all() for t in model.state_dict().values() if t.is_floating_point())
    if not finite:  # the last steps before a loss that is not a number leave BatchNorm's statistics so (helper 112)
        warn(
            "The report's sweep ended in a loss that is not a finite number, which left BatchNorm's statistics "
            "non-finite: they are reset with the other layers (the report's reset, as we read it, kept them).",
            LRFinderWarning,
        )
    model.reset_parameters(batchnorm=not finite)
    return result


def with_picked_lr(config: TrainConfig, model: Net, splits: Splits, log: Callable[[str], None] = print) -> TrainConfig:
    """``config`` with the LR that ``config.lr_rule`` picks where it gives none (the model is left ready to train)."""
    if config.lr is not None:
        return config
    if config.lr_rule == "report":
        result = replay_report_lr_choice(model, splits, config)
        log(
            f"Report's LR sweep ({len(result.lrs)} LRs, {config.report_sweep_batches} "
            f"mini-batch{'es' * (config.report_sweep_batches > 1)} each): lowest "
            f"logged loss {min(result.losses):.4f} at LR {result.lowest_raw_loss_lr:.6f}; "
            f"divided by {REPORT_DIVISOR} (its rule, as we read it): LR {result.report_lr:.6g}"
        )
        return dataclasses.replace(config, lr=result.report_lr)
    batches = sweep_batches(splits, config)
    if len(batches) < MIN_SWEEP_STEPS:  # refused before the sweep: one pass over the data feeds it
        raise ConfigError(
            [
                (
                    "lr",
                    None,
                    f"none given, and the LR finder cannot pick one from {batches.dataset_size} training images: "
                    f"in mini-batches of {config.batch_size} they feed {len(batches)} "
                    f"step{'s' * (len(batches) != 1)} of its sweep, and it needs {MIN_SWEEP_STEPS}. Give the LR "
                    f"yourself, or use at least {MIN_SWEEP_STEPS * config.batch_size} images, or smaller batches",
                )
            ]
        )
    result = find_lr(model, batches, config=config)
    if result.one_cycle_lr is None:
        raise ConfigError(
            [("lr", None, "the LR finder could not suggest one (" + " ".join(result.warnings) + "); give it yourself")]
        )
    log(f"LR finder: {result.stop_reason}; picked LR {result.one_cycle_lr:.4g}")
    return dataclasses.replace(config, lr=result.one_cycle_lr)
