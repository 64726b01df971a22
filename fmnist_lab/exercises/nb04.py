"""Exercises of notebook 04: the bias-corrected moving average, its lag in LR, and a reset that covers BatchNorm."""

from __future__ import annotations

import math
import random

import torch
from torch import nn

from ..lr_finder import LRFinderResult, smooth
from ..model import Net
from . import (
    Exercise,
    Misused,
    Wrong,
    all_close,
    as_number,
    as_tensor,
    call,
    close,
    expect_data,
    missing_exercise,
    own_random_state,
    refuse_notebook_values,
)

# q1: the bias-corrected exponential moving average


def _ema(losses: list[float], beta: float, new_weight: float, correction_offset: int | None) -> list[float]:
    """A moving average with the given weight on the new loss; bias-corrected with 1 - beta**(t + offset)
    (infinite where that is 0, as a tensor's division makes it)."""
    avg, out = 0.0, []
    for t, loss in enumerate(losses, start=1):
        avg = (1 - new_weight) * avg + new_weight * loss
        correction = 1.0 if correction_offset is None else 1 - beta ** (t + correction_offset)
        out.append(avg / correction if correction else math.inf)
    return out


def _ema_corrected_in_place(losses: list[float], beta: float) -> list[float]:
    """The running average itself divided by 1 - beta**t at every step, so that each correction compounds."""
    avg, out = 0.0, []
    for t, loss in enumerate(losses, start=1):
        avg = (beta * avg + (1 - beta) * loss) / (1 - beta**t)
        out.append(avg)
    return out


def _ema_from_first(losses: list[float], beta: float) -> list[float]:
    """The moving average started at the first loss instead of at 0, with no correction."""
    avg, out = losses[0], []
    for loss in losses:
        avg = beta * avg + (1 - beta) * loss
        out.append(avg)
    return out


# a student who counted from 1 but wrote beta**(t - 1) gets the same values: name the exponent, not a t = 0
_FROM_ONE = "the first correction is 1 - beta**0 = 0; the first step is t = 1, so its correction is 1 - beta**1"


def _smoothing_cases(generator: torch.Generator | None = None) -> dict[str, tuple[list[float], float]]:
    rng = random.Random(3)
    cases = {
        "five losses of 2.0 with beta 0.9": ([2.0] * 5, 0.9),
        "the losses [1, 2, 3, 4] with beta 0.5": ([1.0, 2.0, 3.0, 4.0], 0.5),
        "60 noisy losses with beta 0.98": ([2.3 - 0.02 * i + rng.gauss(0, 0.1) for i in range(60)], 0.98),
    }
    if generator is not None:
        count = int(torch.randint(5, 80, (1,), generator=generator))
        beta = round(float(torch.rand(1, generator=generator)) * 0.9 + 0.05, 3)
        losses = (torch.rand(count, generator=generator, dtype=torch.float64) * 3).tolist()
        cases[f"hidden case: {count} random losses with beta {beta}"] = (losses, beta)
    return cases


def _check_smooth_losses(smooth_losses, sweep: LRFinderResult | None = None, generator=None) -> str:
    if sweep is not None:
        expect_data(sweep, LRFinderResult, "the sweep's result (lab_sweep, what find_lr returned)")
        if sweep.mode != "exp":  # the report's sweep was once praised as the lab's (helper 108)
            raise Misused(
                "check() expects the lab's sweep after your function (lab_sweep, exponential), but it got a "
                f"{sweep.mode} one (the report's, linear_sweep)"
            )
    # the notebook's sweeps in place of `losses` were told only a shape (helper 99)
    refuse_notebook_values(
        smooth_losses, (LRFinderResult, list), "smooth_losses", "smooth the `losses` it is given (its argument)"
    )
    for case, (losses, beta) in _smoothing_cases(generator).items():
        returned = call(
            smooth_losses,
            losses,
            beta,
            case=case,
            advice={ZeroDivisionError: _FROM_ONE},
            keep_input="return a new list, and leave `losses` as it is (in the notebook it is the sweep's record)",
        )
        got = as_tensor(returned, "smooth_losses", case, (len(losses),), finite=False)
        right = torch.tensor(smooth(losses, beta), dtype=torch.float64)
        if all_close(got, right):
            continue
        if all_close(got[1:], torch.tensor(_ema(losses, beta, 1 - beta, -1)[1:])):  # t from 0, value 0 aside
            raise Wrong(f"on {case}, {'value 0 is infinite: ' if got[0].isinf() else ''}{_FROM_ONE}")
        as_tensor(got, "smooth_losses", case, (len(losses),))  # NaN and infinity get their own sentence
        plain = _ema(losses, beta, 1 - beta, None)  # no bias correction: the mistakes below build on it
        mistakes = {
            "your values are the plain moving average: it starts at (1 - beta) x the first loss and is dragged "
            "towards 0; divide it by 1 - beta**t at step t (t = 1, 2, ...), the bias correction": plain,
            "the running average keeps weight beta and the new loss gets 1 - beta, not the other way round": _ema(
                losses, beta, beta, 0
            ),
            "the bias correction at step t is 1 - beta**t with t starting at 1 (your exponent is off by one)": _ema(
                losses, beta, 1 - beta, 1
            ),
            # each told only a value (helper 99)
            "your values are those of beta 0.9 whatever `beta` is given: use the argument": smooth(losses, 0.9),
            "the correction at step t is 1 - beta**t, with that step's t, not the number of losses": [
                value / (1 - beta ** len(losses)) for value in plain
            ],
            "you recorded the average before adding the step's loss: update it first, then correct and record it": [
                value / (1 - beta**t) for t, value in enumerate([0.0, *plain[:-1]], 1)
            ],
            "the correction is 1 - beta**t, one minus beta to the power t, not (1 - beta)**t": [
                value / (1 - beta) ** t for t, value in enumerate(plain, 1)
            ],
            "you divided the running average itself, so each step's correction is carried into the next: keep "
            "the running average as it is and divide only the value you return": _ema_corrected_in_place(losses, beta),
            # told the numbers only (helper-92)
            "your average starts at the first loss: that avoids the start near 0 but weights the first loss more than "
            "the bias-corrected average does; start it at 0 and divide by 1 - beta**t instead": _ema_from_first(
                losses, beta
            ),
        }
        for message, wrong in mistakes.items():
            if all_close(got, torch.tensor(wrong, dtype=torch.float64)):
                raise Wrong(f"on {case}, {message}")
        first = next(i for i, (g, r) in enumerate(zip(got.tolist(), right.tolist())) if not close(g, r, scale=1))
        raise Wrong(f"on {case}, value {first} should be {right[first]:.6f}, but yours is {got[first]:.6f}")
    praise = "your smooth_losses matches the lab's on constant, short and noisy losses"
    if sweep is not None:
        case = "the lab's sweep"
        mine = as_tensor(
            call(smooth_losses, list(sweep.losses), 0.9, case=case), "smooth_losses", case, (len(sweep.losses),)
        )
        if not all_close(mine, torch.tensor(sweep.smoothed, dtype=torch.float64)):
            raise Wrong("on the lab's sweep your beta = 0.9 curve differs from find_lr's smoothed curve")
        lowest = int(mine.argmin())
        praise += (
            f"; on the lab's sweep your beta = 0.9 curve is find_lr's, lowest at step {lowest} "
            f"(LR {sweep.lrs[lowest]:.3g}; steps counted from 0, as section 4's plot counts them)"
        )
    return praise + "."


q1 = Exercise(
    "nb04.q1",
    _check_smooth_losses,
    hint_text="A moving average that starts at 0 and moves a fraction (1 - beta) of the way towards each new loss "
    "lags behind and starts too low. The bias correction divides its value at step t (counting from 1) by"
    " the weight all the losses so far have had in it: 1 minus beta to the power t.",
    lab_functions=(smooth,),
)


# q2: the moving average's lag, as a factor in LR


def _lag_factor(
    start_lr: float,
    end_lr: float,
    num_steps: int,
    beta: float,
    steps_between: int | None = None,
    lag: float | None = None,
) -> float:
    steps_between = num_steps - 1 if steps_between is None else steps_between
    lag = beta / (1 - beta) if lag is None else lag
    return (end_lr / start_lr) ** (lag / steps_between)


def _lag_cases(generator: torch.Generator | None) -> dict[str, tuple[float, float, int, float]]:
    cases = {
        "a 100-step sweep from 1e-6 to 1 with beta 0.98": (1e-6, 1.0, 100, 0.98),
        "a 200-step sweep from 1e-6 to 1 with beta 0.9": (1e-6, 1.0, 200, 0.9),
        "a 50-step sweep from 1e-3 to 10 with beta 0.8": (1e-3, 10.0, 50, 0.8),
        "a 100-step sweep from 1e-4 to 1 with beta 0.85": (1e-4, 1.0, 100, 0.85),
    }
    if generator is not None:
        start = 10.0 ** -int(torch.randint(3, 8, (1,), generator=generator))
        end = 10.0 ** int(torch.randint(-1, 2, (1,), generator=generator))
        steps = int(torch.randint(40, 300, (1,), generator=generator))
        beta = round(float(torch.rand(1, generator=generator)) * 0.15 + 0.8, 3)
        cases[f"hidden case: a {steps}-step sweep from {start:g} to {end:g} with beta {beta}"] = (
            start,
            end,
            steps,
            beta,
        )
    return cases


def _check_lag_factor(lag_factor, generator=None) -> str:
    for case, args in _lag_cases(generator).items():
        got = as_number(call(lag_factor, *args, case=case), "lag_factor", case)
        right = _lag_factor(*args)
        if close(got, right):
            continue
        _, _, num_steps, beta = args
        steps = beta / (1 - beta)
        mistakes = {
            f"{num_steps} LRs have {num_steps - 1} steps between them, not {num_steps}": _lag_factor(
                *args, steps_between=num_steps
            ),
            f"the average lags beta / (1 - beta) = {steps:.3g} steps, "
            f"not 1 / (1 - beta) = {1 / (1 - beta):.3g}": _lag_factor(*args, lag=1 / (1 - beta)),
            "that is the lag in decades (a log10); return the factor, 10 to that power": math.log10(right),
            "that is the lag in steps; convert it into a factor in LR": steps,
            "that is the factor of one step; raise it to the lag, beta / (1 - beta) steps": _lag_factor(*args, lag=1),
            # both told only the number (helper 99)
            "that is 1 / the factor: the LR grows along the sweep; divide the later LR by the earlier one": 1 / right,
            f"the average lags beta / (1 - beta) = {steps:.3g} steps, not (1 - beta) / beta": _lag_factor(
                *args, lag=(1 - beta) / beta
            ),
            # the LR the lag reaches from the first one (helper-92)
            "that is the LR the lag reaches from the sweep's first LR; the factor is that LR divided by the first "
            "one": args[0] * right,
        }
        for message, wrong in mistakes.items():
            if close(got, wrong):
                raise Wrong(f"on {case}, you returned {got:.4g}: {message}")
        # 0.98 / 0.02 is 48.99999999999996 in floats: int() makes it 48
        if any(close(got, _lag_factor(*args, lag=whole)) for whole in (round(steps), int(steps))):
            raise Wrong(
                f"on {case}, you returned {got:.4g}: the average lags beta / (1 - beta) = {steps:.4g} steps, "
                "a fraction of a step included: do not round the lag to whole steps"
            )
        raise Wrong(f"on {case}, the lag is a factor of {right:.4g} in LR, but you returned {got:.4g}")

    def factor(case: str, *args) -> float:
        return as_number(call(lag_factor, *args, case=case), "lag_factor", case)

    report_like = factor("a 100-step sweep from 1e-6 to 1", 1e-6, 1.0, 100, 0.98)
    lab_98 = factor("the lab's sweep with beta 0.98", 1e-6, 1.0, 200, 0.98)
    lab_90 = factor("the lab's sweep with beta 0.9", 1e-6, 1.0, 200, 0.9)
    return (
        f"run long, beta = 0.98 lags 49 steps, a factor of {report_like:.0f} in LR on a 100-step sweep over six "
        f"decades and {lab_98:.0f} on the lab's 200-step sweep; the lab's beta = 0.9 lags 9 steps there, a factor of "
        f"{lab_90:.1f}. (Bias-corrected, the 0.98 average lags less within a sweep of this length: section 4.)"
    )


q2 = Exercise(
    "nb04.q2",
    _check_lag_factor,
    hint_text="An exponential sweep multiplies the LR by the same factor at every step: find that factor from the "
    "first LR, the last one and the number of steps. The lag in the docstring, counted in steps, is how many "
    "times that factor is applied while the average catches up.",
)


# q4: a reset that covers BatchNorm too


def _swept(model: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """The model as a sweep to LR 1 might leave it: every parameter and BatchNorm statistic moved far from a
    fresh initialisation (to evenly spaced values, or with a generator to large random ones)."""
    with torch.no_grad():
        for i, tensor in enumerate(model.state_dict().values()):
            if not tensor.is_floating_point():
                tensor.fill_(500)  # num_batches_tracked
            elif generator is None:  # not one constant: weights only rescaled would look set to one value
                tensor.copy_(torch.linspace(3.0 + i, 4.0 + i, tensor.numel()).view(tensor.shape))
            else:
                tensor.copy_(3.0 + 2 * torch.randn(tensor.shape, generator=generator))
    return model


def _reset_cases(generator: torch.Generator | None) -> dict[str, nn.Module]:
    cases = {
        "the lab's Net after a sweep": _swept(Net()),
        "an nn.Sequential of Conv2d, BatchNorm2d, Linear and BatchNorm1d after a sweep": _swept(
            nn.Sequential(
                nn.Conv2d(1, 4, 3),
                nn.BatchNorm2d(4),
                nn.ReLU(),
                nn.Flatten(),
                nn.Linear(4 * 26 * 26, 8),
                nn.BatchNorm1d(8),
            )
        ),
        "an nn.Sequential whose first layer is an nn.Sequential of Conv2d and BatchNorm2d, after a sweep": _swept(
            nn.Sequential(nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3)), nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
        ),
    }
    if generator is not None:
        width = int(torch.randint(3, 40, (1,), generator=generator))
        cases[f"hidden case: a Linear-BatchNorm1d-Linear network ({width} units) after a random sweep"] = _swept(
            nn.Sequential(nn.Linear(20, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Linear(width, 5)), generator
        )
    return cases


def _fresh_weight_problem(weight: torch.Tensor, before: torch.Tensor) -> str | None:
    """Why ``weight`` is not a standard fresh initialisation (None if it is one).

    The standard ones (PyTorch's default, Kaiming/He, Xavier/Glorot, orthogonal, uniform or normal) draw
    values centred on 0 with a spread between about 0.1 and 2 over the square root of the fan-in, or of
    the fan-out (Kaiming's mode="fan_out": 1.4 over the square root of fc_2's fan-out of 10); VGG's
    normal with std 0.01 is smaller on small layers (0.03 on c1's fan-in of 9, 0.017 on a fan-in of 3),
    and BatchNorm after a layer makes its scale matter little, so the lower bound only refuses weights
    all but zero.
    """
    fan_in = weight[0].numel()
    fan_out = weight.shape[0] * weight[0, 0].numel()
    if torch.allclose(weight, before, rtol=0.01, atol=1e-3):
        return f"still holds the sweep's weights (changed by at most {float((weight - before).abs().max()):.2g})"
    std = float(weight.std())
    if std <= 1e-5 * float(weight.abs().max()):  # equal up to float32's rounding in std() itself
        return "has all its weights equal (then every unit computes the same and learns the same)"
    ratio = weight / before.where(before != 0, 1.0)
    if bool((before != 0).all()) and torch.allclose(ratio, ratio.flatten()[0].expand_as(ratio), rtol=1e-4):
        return f"still holds the sweep's weights, only scaled by {float(ratio.flatten()[0]):.3g}"  # helper 99
    in_range = 0.005 <= std * math.sqrt(fan_in) and std * math.sqrt(min(fan_in, fan_out)) <= 3
    if not in_range or abs(float(weight.mean())) > std:
        return (
            f"has weights of mean {float(weight.mean()):.3g} and std {std:.3g}, not a fresh initialisation's "
            f"(centred on 0, std near 1 / sqrt(fan-in) = {1 / math.sqrt(fan_in):.3g}, or 1 / sqrt(fan-out) = "
            f"{1 / math.sqrt(fan_out):.3g})"
        )
    return None


def _fresh_bias_problem(bias: torch.Tensor, before: torch.Tensor, fan_in: int) -> str | None:
    if torch.allclose(bias, before, rtol=0.01, atol=1e-3):
        return "still holds the sweep's bias"
    # PyTorch's default draws within ±1 / sqrt(fan-in); 0 and a small constant (0.1, as TensorFlow's MNIST tutorial
    # set it) are fresh too
    limit = max(3 / math.sqrt(fan_in), 0.1)
    if bias.abs().max() > limit:
        return (
            f"has a bias up to {float(bias.abs().max()):.3g}, not a fresh one: 0, a small constant, or values within "
            f"±1 / sqrt(fan-in) = ±{1 / math.sqrt(fan_in):.3g} (this check takes up to {limit:.3g})"
        )
    return None


def _check_full_reset(full_reset, generator=None) -> str:
    # the notebook's `model` reset in place of the argument was told "the model you were given is unchanged"
    # (helper 99)
    refuse_notebook_values(full_reset, nn.Module, "full_reset", "reset the model it is given (its argument)")
    with own_random_state():  # whatever the answer draws leaves the notebook's random numbers as they were
        for case, model in _reset_cases(generator).items():
            _check_reset_case(full_reset, case, model)
    return (
        "your full_reset re-initialises convolutions and linear layers and puts every BatchNorm back to weight 1, "
        "bias 0, running mean 0 and variance 1, in the lab's Net and in other models built of such layers, nested "
        "ones included."
    )


# said of an answer that loaded a new model's state_dict, which fails on the nested cases
_NEW_MODEL = (
    "a new model of the same class is not always the same network (a new nn.Sequential is empty, and a class built "
    "with arguments gets its default sizes); re-initialise this model's own layers instead"
)


def _check_reset_case(full_reset, case: str, model: nn.Module) -> None:
    before = {k: v.clone() for k, v in model.state_dict().items()}
    parameters = dict(model.named_parameters())  # the objects an optimizer made before the reset holds
    # what a reset leaves as it was (helper 120: a reset that froze the layers, or changed BatchNorm's eps or
    # momentum, passed; one that turned the model to float64 ended the check in a traceback)
    kinds = {k: (p.requires_grad, p.dtype, p.device) for k, p in parameters.items()}
    settings = {name: module.extra_repr() for name, module in model.named_modules()}
    advice = dict.fromkeys(("Missing key(s) in state_dict", "size mismatch for"), _NEW_MODEL)
    advice["has no attribute 'reset_parameters'"] = (  # the model's own method: the lab's Net has one (helper 108)
        "not every model has a reset_parameters() of its own (the lab's Net has; an nn.Sequential has none): walk "
        "model.modules() and reset each layer that has one"
    )
    result = call(full_reset, model, case=case, returns=False, copy_args=False, advice=advice)
    after = model.state_dict()
    replaced = [k for k, v in model.named_parameters() if parameters.get(k) is not v]
    if replaced:
        raise Wrong(
            f"on {case}, `{replaced[0]}` is a new Parameter, not the old one reset: an optimizer made before the reset "
            f"would go on training the old one. Reset the tensors in place (reset_parameters(), or nn.init's "
            f"functions ending in _)"
        )
    for name, now in model.named_parameters():
        if (now.requires_grad, now.dtype, now.device) != kinds[name]:
            was = kinds[name]
            raise Wrong(
                f"on {case}, `{name}` changed from requires_grad={was[0]}, {was[1]} on {was[2]} to requires_grad="
                f"{now.requires_grad}, {now.dtype} on {now.device}: a reset puts back the values a new layer holds "
                f"and leaves the rest as it was, so that the network trains on as before"
            )
    for name, module in model.named_modules():
        if module.extra_repr() != settings[name]:
            raise Wrong(
                f"on {case}, layer {name} changed its settings, from ({settings[name]}) to ({module.extra_repr()}): "
                f"reset the values a new layer holds, and leave settings such as eps and momentum as they were"
            )
    if all(torch.equal(before[k], v) for k, v in after.items()):
        why = (
            " (returning a new model leaves the one your code holds as it was)" if isinstance(result, nn.Module) else ""
        )
        raise Wrong(f"on {case}, the model you were given is unchanged: reset its layers in place{why}")
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            problem = _fresh_weight_problem(module.weight.detach(), before[f"{name}.weight"])
            if problem is None and module.bias is not None:
                problem = _fresh_bias_problem(module.bias.detach(), before[f"{name}.bias"], module.weight[0].numel())
            if problem is not None:
                advice = _nested_reason(model, name, before) or (
                    "re-initialise the convolutional and linear layers (their reset_parameters())"
                )
                raise Wrong(f"on {case}, layer {name} ({type(module).__name__}) {problem}: {advice}")
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            _check_batchnorm(
                case, name, module, before, _nested_reason(model, name, before) or _kind_missed(model, module)
            )


def _nested_reason(model: nn.Module, name: str, before: dict[str, torch.Tensor]) -> str | None:
    """Why layer ``name`` was missed, when it is nested and the layers directly in ``model`` were reset."""
    walked_children = any(
        not torch.equal(before[f"{child_name}.weight"], child.weight.detach())
        for child_name, child in model.named_children()
        if isinstance(getattr(child, "weight", None), torch.Tensor)
    )
    if "." not in name or not walked_children:
        return None
    return (
        f"it sits inside `{name.rsplit('.', 1)[0]}`, and model.children() goes one level deep; model.modules() "
        f"reaches every layer, nested ones included"
    )


# each part of a BatchNorm layer, as the messages name it, and what a fresh layer holds in each of its tensors
_BATCHNORM_PARTS = {
    "its weight and bias (gamma and beta; fresh: 1 and 0)": (("weight", 1), ("bias", 0)),
    "its running mean and variance (fresh: 0 and 1)": (("running_mean", 0), ("running_var", 1)),
    "its batch count, num_batches_tracked = {count} (fresh: 0)": (("num_batches_tracked", 0),),
}


def _unfresh_parts(module: nn.modules.batchnorm._BatchNorm) -> list[str]:
    """The parts of ``module`` that do not hold what a fresh layer holds (keys of _BATCHNORM_PARTS)."""
    return [
        part
        for part, tensors in _BATCHNORM_PARTS.items()
        if not all(torch.all(getattr(module, attr) == fresh) for attr, fresh in tensors)
    ]


def _fresh_batchnorm(module: nn.modules.batchnorm._BatchNorm) -> bool:
    return not _unfresh_parts(module)


def _kind_missed(model: nn.Module, module: nn.modules.batchnorm._BatchNorm) -> str | None:
    """Why ``module`` was missed, when BatchNorm layers of another kind (BatchNorm2d, say) were reset."""
    others = [
        m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and type(m) is not type(module)
    ]
    if _fresh_batchnorm(module) or not any(_fresh_batchnorm(m) for m in others):
        return None
    return (
        f"you reset {type(others[0]).__name__} but not {type(module).__name__}: every kind of BatchNorm needs it "
        f"(isinstance(m, nn.modules.batchnorm._BatchNorm), or reset_parameters() on every layer that has one)"
    )


def _check_batchnorm(
    case: str,
    name: str,
    module: nn.modules.batchnorm._BatchNorm,
    before: dict[str, torch.Tensor],
    reason: str | None = None,
) -> None:
    kept, other = [], []  # what still holds the sweep's values, and what holds values of neither kind
    for part in _unfresh_parts(module):
        tensors = _BATCHNORM_PARTS[part]
        swept = all(torch.equal(getattr(module, attr).detach(), before[f"{name}.{attr}"]) for attr, _ in tensors)
        (kept if swept else other).append(part.format(count=int(module.num_batches_tracked)))
    if not kept and not other:
        return
    if not kept:
        raise Wrong(
            f"on {case}, BatchNorm layer {name} holds values a fresh layer does not in {' and in '.join(other)}: "
            f"reset_parameters() sets them"
        )
    kept += other  # some parts kept, others set anew: the sweep's values are the thing to name
    advice = {
        3: "reset BatchNorm layers too (what, in our reading, the report did not): reset_parameters() resets all of it",
        2: "reset_parameters() resets all of it",
    }.get(len(kept), "reset_parameters() resets it too")
    if len(kept) == 1 and "batch count" in kept[0]:
        advice = "reset_running_stats() (or reset_parameters()) sets it back to 0 with the statistics"
    if reason:
        advice = reason
    raise Wrong(
        f"on {case}, BatchNorm layer {name} still holds what the sweep left in {' and in '.join(kept)}: {advice}"
    )


q4 = Exercise(
    "nb04.q4",
    _check_full_reset,
    hint_text="Walk through every layer of the network. Which of them hold parameters or running statistics, and "
    "which of PyTorch's methods puts such a layer back as new? BatchNorm too: in our reading, the "
    "report's reset left it out.",
)

__getattr__ = missing_exercise(__name__, globals())
