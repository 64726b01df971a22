"""Exercises of notebook 04: the bias-corrected moving average, its lag in LR, and a reset that covers BatchNorm."""

from __future__ import annotations

import math
import random

import torch
from torch import nn

from ..lr_finder import LRFinderResult, smooth
from ..model import Net
from . import Exercise, Wrong, as_number, as_tensor, call, close


# q1: the bias-corrected exponential moving average

def _ema(losses: list[float], beta: float, new_weight: float, correction_offset: int | None) -> list[float]:
    """A moving average with the given weight on the new loss; bias-corrected with 1 - beta**(t + offset)."""
    avg, out = 0.0, []
    for t, loss in enumerate(losses, start=1):
        avg = (1 - new_weight) * avg + new_weight * loss
        out.append(avg if correction_offset is None else avg / (1 - beta ** (t + correction_offset)))
    return out


def _smoothing_cases() -> dict[str, tuple[list[float], float]]:
    rng = random.Random(3)
    return {
        "five losses of 2.0 with beta 0.9": ([2.0] * 5, 0.9),
        "the losses [1, 2, 3, 4] with beta 0.5": ([1.0, 2.0, 3.0, 4.0], 0.5),
        "60 noisy losses with beta 0.98": ([2.3 - 0.02 * i + rng.gauss(0, 0.1) for i in range(60)], 0.98),
    }


def _check_smooth_losses(smooth_losses, sweep: LRFinderResult | None = None, generator=None) -> str:
    for case, (losses, beta) in _smoothing_cases().items():
        got = as_tensor(call(smooth_losses, losses, beta, case=case), "smooth_losses", case, (len(losses),)).tolist()
        right = smooth(losses, beta)
        if all(close(g, r) for g, r in zip(got, right)):
            continue
        mistakes = {
            "your values are the plain moving average: it starts at (1 - beta) x the first loss and is dragged "
            "towards 0; divide it by 1 - beta**t at step t (t = 1, 2, ...), the bias correction":
                _ema(losses, beta, 1 - beta, None),
            "the running average keeps weight beta and the new loss gets 1 - beta, not the other way round":
                _ema(losses, beta, beta, 0),
            "the bias correction at step t is 1 - beta**t with t starting at 1 (your exponent is off by one)":
                _ema(losses, beta, 1 - beta, 1),
        }
        for message, wrong in mistakes.items():
            if all(close(g, w) for g, w in zip(got, wrong)):
                raise Wrong(f"on {case}, {message}")
        first = next(i for i, (g, r) in enumerate(zip(got, right)) if not close(g, r))
        raise Wrong(f"on {case}, value {first} should be {right[first]:.6f}, but yours is {got[first]:.6f}")
    praise = "your smooth_losses matches the lab's on constant, short and noisy losses"
    if sweep is not None:
        mine = call(smooth_losses, sweep.losses, 0.9, case="the lab's sweep")
        if not all(close(float(m), s) for m, s in zip(mine, sweep.smoothed)):
            raise Wrong("on the lab's sweep your beta = 0.9 curve differs from find_lr's smoothed curve")
        lowest = min(range(len(mine)), key=lambda i: float(mine[i]))
        praise += (f"; on the lab's sweep your beta = 0.9 curve is find_lr's, lowest at step {lowest + 1} "
                   f"(LR {sweep.lrs[lowest]:.3g})")
    return praise + "."


q1 = Exercise(
    "nb04.q1", _check_smooth_losses,
    hint_text="Keep a running average avg = 0. For each loss at step t = 1, 2, ...: avg = beta * avg + (1 - beta) "
              "* loss, then append avg / (1 - beta ** t). The division undoes the pull towards the starting 0.",
)


# q2: the moving average's lag, as a factor in LR

def _lag_factor(start_lr: float, end_lr: float, num_steps: int, beta: float, steps_between: int | None = None,
                lag: float | None = None) -> float:
    steps_between = num_steps - 1 if steps_between is None else steps_between
    lag = beta / (1 - beta) if lag is None else lag
    return (end_lr / start_lr) ** (lag / steps_between)


LAG_CASES = {
    "a 100-step sweep from 1e-6 to 1 with beta 0.98": (1e-6, 1.0, 100, 0.98),
    "a 200-step sweep from 1e-6 to 1 with beta 0.9": (1e-6, 1.0, 200, 0.9),
    "a 50-step sweep from 1e-3 to 10 with beta 0.8": (1e-3, 10.0, 50, 0.8),
}


def _check_lag_factor(lag_factor, generator=None) -> str:
    for case, args in LAG_CASES.items():
        got = as_number(call(lag_factor, *args, case=case), "lag_factor", case)
        right = _lag_factor(*args)
        if close(got, right):
            continue
        start_lr, end_lr, num_steps, beta = args
        steps = beta / (1 - beta)
        mistakes = {
            f"{num_steps} LRs have {num_steps - 1} steps between them, not {num_steps}":
                _lag_factor(*args, steps_between=num_steps),
            f"the average lags beta / (1 - beta) = {steps:.3g} steps, not 1 / (1 - beta) = {1 / (1 - beta):.3g}":
                _lag_factor(*args, lag=1 / (1 - beta)),
            "that is the lag in decades (a log10); return the factor, 10 to that power": math.log10(right),
            "that is the lag in steps; convert it into a factor in LR": steps,
        }
        for message, wrong in mistakes.items():
            if close(got, wrong):
                raise Wrong(f"on {case}, you returned {got:.4g}: {message}")
        raise Wrong(f"on {case}, the lag is a factor of {right:.4g} in LR, but you returned {got:.4g}")
    def factor(case: str, *args) -> float:
        return as_number(call(lag_factor, *args, case=case), "lag_factor", case)

    report_like = factor("a 100-step sweep from 1e-6 to 1", 1e-6, 1.0, 100, 0.98)
    lab_98 = factor("the lab's sweep with beta 0.98", 1e-6, 1.0, 200, 0.98)
    lab_90 = factor("the lab's sweep with beta 0.9", 1e-6, 1.0, 200, 0.9)
    return (f"beta = 0.98 lags 49 steps, a factor of {report_like:.0f} in LR on a 100-step sweep over six decades "
            f"and {lab_98:.0f} on the lab's 200-step sweep; the lab's beta = 0.9 lags 9 steps there, a factor of "
            f"{lab_90:.1f}.")


q2 = Exercise(
    "nb04.q2", _check_lag_factor,
    hint_text="An exponential sweep multiplies the LR by the same factor at every step: (end_lr / start_lr) ** (1 / "
              "(num_steps - 1)). A lag of beta / (1 - beta) steps is that factor raised to the number of steps.",
)


# q3: a reset that covers BatchNorm too

def _scrambled(model: nn.Module) -> nn.Module:
    """The model as a sweep to LR 1 might leave it: every parameter and BatchNorm statistic moved."""
    with torch.no_grad():
        for i, tensor in enumerate(model.state_dict().values()):
            if tensor.is_floating_point():
                tensor.fill_(3.0 + i)
            else:
                tensor.fill_(500)  # num_batches_tracked
    return model


def _reset_cases() -> dict[str, nn.Module]:
    return {
        "the lab's Net after a sweep": Net(),
        "an nn.Sequential of Conv2d, BatchNorm2d, Linear and BatchNorm1d after a sweep": nn.Sequential(
            nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 8),
            nn.BatchNorm1d(8)),
    }


def _check_full_reset(full_reset, generator=None) -> str:
    for case, model in _reset_cases().items():
        model = _scrambled(model)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        result = call(full_reset, model, case=case, returns=False, copy_args=False)
        if all(torch.equal(before[k], v) for k, v in model.state_dict().items()):
            why = " (returning a new model leaves the one your code holds as it was)"
            raise Wrong(f"on {case}, the model you were given is unchanged: reset its layers in place"
                        f"{why if isinstance(result, nn.Module) else ''}")
        for name, module in model.named_modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                if any(torch.all(p == p.flatten()[0]) for p in (module.weight, module.bias)):
                    raise Wrong(f"on {case}, layer {name} ({type(module).__name__}) still holds the sweep's weights: "
                                f"re-initialise the convolutional and linear layers (their reset_parameters())")
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                stats_kept = not (torch.all(module.running_mean == 0) and torch.all(module.running_var == 1)
                                  and module.num_batches_tracked == 0)
                affine_kept = not (torch.all(module.weight == 1) and torch.all(module.bias == 0))
                if stats_kept and affine_kept:
                    raise Wrong(f"on {case}, BatchNorm layer {name} still holds what the sweep left, its weight, bias "
                                f"and running statistics (the report's defect): reset BatchNorm layers too")
                if stats_kept:
                    raise Wrong(f"on {case}, BatchNorm layer {name} still holds the sweep's running mean and variance: "
                                f"reset its running statistics too (reset_parameters() does both)")
                if affine_kept:
                    raise Wrong(f"on {case}, BatchNorm layer {name} still holds the sweep's weight and bias (gamma and "
                                f"beta): reset them to 1 and 0 (reset_parameters() does both)")
    return ("your full_reset re-initialises convolutions and linear layers and puts every BatchNorm back to weight 1, "
            "bias 0, running mean 0 and variance 1, in the lab's Net and in any other model.")


q4 = Exercise(
    "nb04.q4", _check_full_reset,
    hint_text="Loop over model.modules(). Conv2d, Linear and every BatchNorm layer have a reset_parameters() method; "
              "for BatchNorm it also resets the running mean, variance and batch count. Skip the model itself and "
              "layers without parameters (ReLU, Flatten, Dropout).",
)
