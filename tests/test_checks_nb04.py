"""Notebook 04's checks (smoothing, the lag factor, a full reset): right answers of every kind pass, each wrong
one gets its sentence (issue #24)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from fmnist_lab.exercises import nb04
from fmnist_lab.lr_finder import LRFinderResult, smooth
from fmnist_lab.model import Net
from tests.checks_support import assert_right, assert_wrong

# q1: the bias-corrected moving average


def smooth_losses(losses, beta):
    avg, smoothed = 0.0, []
    for t, loss in enumerate(losses, start=1):
        avg = beta * avg + (1 - beta) * loss
        smoothed.append(avg / (1 - beta**t))
    return smoothed


def smooth_generator(losses, beta):
    avg = 0.0
    for t, loss in enumerate(losses, start=1):
        avg = beta * avg + (1 - beta) * loss
        yield avg / (1 - beta**t)


def smooth_closed_form(losses, beta):
    x = torch.tensor(losses, dtype=torch.float64)
    t = torch.arange(1, len(x) + 1, dtype=torch.float64)
    weights = (1 - beta) * beta ** (t[:, None] - t[None, :]) * (t[None, :] <= t[:, None])  # row t: weights of 1..t
    return (weights @ x) / (1 - beta**t)


history = []  # the answer's own list, not the notebook's: once refused as "the notebook's `history`" (helper 108)


def kept_in_history(losses, beta):
    history.append(smooth_losses(losses, beta))
    return history[-1]


SMOOTH_RIGHT = {
    "a list": smooth_losses,
    "a generator (the task asks for a list)": smooth_generator,
    "a float32 tensor": lambda losses, beta: torch.tensor(smooth_losses(losses, beta), dtype=torch.float32),
    "a NumPy array": lambda losses, beta: np.array(smooth_losses(losses, beta)),
    "0-d tensors in a list": lambda losses, beta: [torch.tensor(v) for v in smooth_losses(losses, beta)],
    "in closed form": smooth_closed_form,
    "keeping a global record of its calls": kept_in_history,
}


def counted_from_zero(losses, beta):  # enumerate() from 0: the correction 1 - beta**0 divides by zero
    avg, out = 0.0, []
    for t, loss in enumerate(losses):
        avg = beta * avg + (1 - beta) * loss
        out.append(avg / (1 - beta**t))  # in floats ZeroDivisionError; in a tensor infinity
    return out


def plain_ema(losses, beta):
    avg, out = 0.0, []
    for loss in losses:
        avg = beta * avg + (1 - beta) * loss
        out.append(avg)
    return out


def ema_corrected_in_place(losses, beta):  # the student's slip, written out: the stored average is divided
    avg, out = 0.0, []
    for t, loss in enumerate(losses, start=1):
        avg = beta * avg + (1 - beta) * loss
        avg = avg / (1 - beta**t)
        out.append(avg)
    return out


def started_at_the_first_loss(losses, beta):
    avg, out = losses[0], []
    for loss in losses:
        avg = beta * avg + (1 - beta) * loss
        out.append(avg)
    return out


def recorded_before_the_update(losses, beta):
    avg, out = 0.0, []
    for t, loss in enumerate(losses, start=1):
        out.append(avg / (1 - beta**t))
        avg = beta * avg + (1 - beta) * loss
    return out


def written_over_the_input(losses, beta):  # right values, but lab_sweep.losses is lost in the notebook
    avg = 0.0
    for t, loss in enumerate(list(losses), start=1):
        avg = beta * avg + (1 - beta) * loss
        losses[t - 1] = avg / (1 - beta**t)
    return losses


hand_losses = [2.0] * 185  # stands for the notebook's list of section 2's losses


def the_notebooks_losses(losses, beta):
    avg, out = 0.0, []
    for t, loss in enumerate(hand_losses, start=1):
        avg = beta * avg + (1 - beta) * loss
        out.append(avg / (1 - beta**t))
    return out


SMOOTH_WRONG = {
    # each told only a number, or a shape (helper 99)
    "beta 0.9 whatever beta is": (
        lambda losses, beta: [v / (1 - 0.9**t) for t, v in enumerate(plain_ema(losses, 0.9), 1)],
        "your values are those of beta 0.9 whatever `beta` is given: use the argument",
    ),
    "corrected by the number of losses": (
        lambda losses, beta: [v / (1 - beta ** len(losses)) for v in plain_ema(losses, beta)],
        "the correction at step t is 1 - beta**t, with that step's t, not the number of losses",
    ),
    "recorded before the update": (recorded_before_the_update, "you recorded the average before adding the step's"),
    "(1 - beta)**t": (
        lambda losses, beta: [v / (1 - beta) ** t for t, v in enumerate(plain_ema(losses, beta), 1)],
        "the correction is 1 - beta**t, one minus beta to the power t, not (1 - beta)**t",
    ),
    "written over the input": (written_over_the_input, "changed the input it was given: return a new list"),
    "the notebook's losses": (
        the_notebooks_losses,
        "`smooth_losses` uses the notebook's `hand_losses`: smooth the `losses` it is given (its argument)",
    ),
    "no bias correction": (plain_ema, "your values are the plain moving average"),
    # told the numbers only (helper-92)
    "started at the first loss": (started_at_the_first_loss, "your average starts at the first loss"),
    "weights swapped": (
        lambda losses, beta: [v for v in nb04._ema(losses, beta, beta, 0)],
        "the running average keeps weight beta and the new loss gets 1 - beta",
    ),
    "the running average itself corrected": (
        ema_corrected_in_place,
        "you divided the running average itself, so each step's correction is carried into the next",
    ),
    "exponent off by one": (
        lambda losses, beta: nb04._ema(losses, beta, 1 - beta, 1),
        "the bias correction at step t is 1 - beta**t with t starting at 1",
    ),
    # both used to get a message about a division by zero, without the step count that causes it
    "t counted from 0, in floats": (
        counted_from_zero,
        "`counted_from_zero` raised ZeroDivisionError (float division by zero) when called on five losses of 2.0 "
        "with beta 0.9: the first correction is 1 - beta**0 = 0; the first step is t = 1, so its correction is "
        "1 - beta**1",
    ),
    "t counted from 0, in a tensor": (
        lambda losses, beta: counted_from_zero(torch.tensor(losses), beta),
        "on five losses of 2.0 with beta 0.9, value 0 is infinite: the first correction is 1 - beta**0 = 0",
    ),
    # counted from 1 with the exponent t - 1: once told it had counted t from 0, which it had not
    "exponent t - 1": (
        lambda losses, beta: [
            avg / (1 - beta ** (t - 1)) for t, avg in enumerate(nb04._ema(losses, beta, 1 - beta, None), 1)
        ],
        "the first correction is 1 - beta**0 = 0; the first step is t = 1, so its correction is 1 - beta**1",
    ),
    # the first step's division left out, t still counted from 0 after it: once told only value 0's number
    "t counted from 0, the first step skipped": (
        lambda losses, beta: [
            avg / (1 - beta**t) if t else avg for t, avg in enumerate(nb04._ema(losses, beta, 1 - beta, None))
        ],
        "on five losses of 2.0 with beta 0.9, the first correction is 1 - beta**0 = 0",
    ),
    "one value short": (
        lambda losses, beta: smooth_losses(losses, beta)[1:],
        ("`smooth_losses` should return shape (5,) on five losses of 2.0 with beta 0.9, but returned shape (4,)"),
    ),
    "NaN": (lambda losses, beta: [float("nan")] * len(losses), "`smooth_losses` returned NaN (not a number)"),
    "the running mean": (
        lambda losses, beta: [sum(losses[: t + 1]) / (t + 1) for t in range(len(losses))],
        "on the losses [1, 2, 3, 4] with beta 0.5, value 1 should be 1.666667, but yours is 1.500000",
    ),
    "the lab's smooth": (
        lambda losses, beta: smooth(losses, beta),
        "`<lambda>` calls the lab's own `smooth` (fmnist_lab.lr_finder.smooth)",
    ),
}


@pytest.mark.parametrize("answer", SMOOTH_RIGHT.values(), ids=SMOOTH_RIGHT)
def test_smooth_losses_right_answers_pass(answer):
    assert_right(nb04.q1, answer)


@pytest.mark.parametrize("answer, sentence", SMOOTH_WRONG.values(), ids=SMOOTH_WRONG)
def test_smooth_losses_wrong_answers_get_their_sentence(answer, sentence):
    assert_wrong(nb04.q1, answer, sentence)


def sweep(count: int = 30) -> LRFinderResult:
    losses = [2.3 - 0.05 * i + 0.1 * math.sin(i) for i in range(count)]
    return LRFinderResult([1e-6 * 1.5**i for i in range(count)], losses, smooth(losses, 0.9), "done")


def test_smooth_losses_compares_with_the_lab_sweep():
    result = sweep()
    message = assert_right(nb04.q1, smooth_losses, result)
    assert "on the lab's sweep your beta = 0.9 curve is find_lr's" in message
    lowest = result.smoothed.index(min(result.smoothed))  # the step as notebook 04's plots number it, from 0
    assert f"lowest at step {lowest} (LR {result.lrs[lowest]:.3g}; steps counted from 0" in message


def test_smooth_losses_handed_the_sweeps_losses_names_what_it_expects():
    message = nb04.q1.verdict(smooth_losses, sweep().losses).message
    assert message.startswith(
        "Not yet: check() expects the sweep's result (lab_sweep, what find_lr returned) after "
        "your function, but it got a list of 30 items"
    )


def test_smooth_losses_handed_the_reports_sweep_names_the_labs():
    linear = dataclasses.replace(sweep(), mode="linear")
    message = nb04.q1.verdict(smooth_losses, linear).message
    assert message.startswith(
        "Not yet: check() expects the lab's sweep after your function (lab_sweep, exponential), but it got a linear one"
    )


# q2: the lag as a factor in LR


def lag_factor(start_lr, end_lr, num_steps, beta):
    per_step = (end_lr / start_lr) ** (1 / (num_steps - 1))
    return per_step ** (beta / (1 - beta))


LAG_RIGHT = {
    "a float": lag_factor,
    "by exp and log": lambda s, e, n, b: math.exp(math.log(e / s) * b / (1 - b) / (n - 1)),
    "a 0-d NumPy array": lambda s, e, n, b: np.array(lag_factor(s, e, n, b)),
    "a float32 tensor": lambda s, e, n, b: torch.tensor(lag_factor(s, e, n, b), dtype=torch.float32),
    "in decades": lambda s, e, n, b: 10 ** (math.log10(e / s) / (n - 1) * b / (1 - b)),
    "a NumPy float": lambda s, e, n, b: np.float64(e / s) ** (b / (1 - b) / (n - 1)),
}

LAG_WRONG = {
    # both told only the number (helper 99)
    "the reciprocal": (
        lambda s, e, n, b: 1 / lag_factor(s, e, n, b),
        "that is 1 / the factor: the LR grows along the sweep; divide the later LR by the earlier one",
    ),
    "(1 - beta) / beta": (
        lambda s, e, n, b: (e / s) ** ((1 - b) / b / (n - 1)),
        "the average lags beta / (1 - beta) = 49 steps, not (1 - beta) / beta",
    ),
    # told the numbers only (helper-92)
    "the LR reached": (
        lambda s, e, n, b: s * lag_factor(s, e, n, b),
        "that is the LR the lag reaches from the sweep's first LR; the factor is that LR divided by the first one",
    ),
    "num_steps instead of num_steps - 1": (
        lambda s, e, n, b: (e / s) ** (b / (1 - b) / n),
        "100 LRs have 99 steps between them, not 100",
    ),
    "1 / (1 - beta)": (
        lambda s, e, n, b: (e / s) ** (1 / (1 - b) / (n - 1)),
        "the average lags beta / (1 - beta) = 49 steps, not 1 / (1 - beta) = 50",
    ),
    "decades": (lambda s, e, n, b: math.log10(lag_factor(s, e, n, b)), "that is the lag in decades"),
    "steps": (lambda s, e, n, b: b / (1 - b), "that is the lag in steps; convert it into a factor in LR"),
    "one step's factor": (lambda s, e, n, b: (e / s) ** (1 / (n - 1)), "that is the factor of one step"),
    "infinity": (lambda s, e, n, b: math.inf, "`lag_factor` returned infinity"),
    "the lag rounded to whole steps": (
        lambda s, e, n, b: (e / s) ** (round(b / (1 - b)) / (n - 1)),
        "on a 100-step sweep from 1e-4 to 1 with beta 0.85, you returned 1.748: the average lags "
        "beta / (1 - beta) = 5.667 steps, a fraction of a step included: do not round the lag to whole steps",
    ),
    # 0.98 / 0.02 is 48.99999999999996 in floats: int() makes it 48, on the first case already
    "the lag truncated to whole steps": (
        lambda s, e, n, b: (e / s) ** (int(b / (1 - b)) / (n - 1)),
        "on a 100-step sweep from 1e-6 to 1 with beta 0.98, you returned 811.1: the average lags "
        "beta / (1 - beta) = 49 steps, a fraction of a step included: do not round the lag to whole steps",
    ),
}


@pytest.mark.parametrize("answer", LAG_RIGHT.values(), ids=LAG_RIGHT)
def test_lag_factor_right_answers_pass(answer):
    assert_right(nb04.q2, answer)


@pytest.mark.parametrize("answer, sentence", LAG_WRONG.values(), ids=LAG_WRONG)
def test_lag_factor_wrong_answers_get_their_sentence(answer, sentence):
    assert_wrong(nb04.q2, answer, sentence)


# q4: a reset that covers BatchNorm

BATCHNORM = nn.modules.batchnorm._BatchNorm


def reset_each(model):
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d)):
            module.reset_parameters()


def init_with(weight_init, bias_init=nn.init.zeros_):
    def full_reset(model):
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                weight_init(module.weight)
                bias_init(module.bias)
            elif isinstance(module, BATCHNORM):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
                module.reset_running_stats()

    return full_reset


def without(*kinds):
    """reset_each, except for the parts of BatchNorm named in ``kinds``."""

    def full_reset(model):
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                module.reset_parameters()
            elif isinstance(module, BATCHNORM):
                kept = module.num_batches_tracked.clone()
                if "affine" not in kinds:
                    nn.init.ones_(module.weight)
                    nn.init.zeros_(module.bias)
                if "statistics" not in kinds:
                    module.reset_running_stats()
                if "count" in kinds:
                    module.num_batches_tracked.copy_(kept)

    return full_reset


def nudge(model):
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1e-3 * torch.randn_like(p))
        for module in model.modules():
            if isinstance(module, BATCHNORM):
                module.reset_parameters()


def reset_with_new_buffers(model):
    # an optimizer holds no buffers: replacing them is a reset all the same (refused once)
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            module.reset_parameters()
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
            module.running_mean = torch.zeros_like(module.running_mean)
            module.running_var = torch.ones_like(module.running_var)
            module.num_batches_tracked = torch.tensor(0)


RESET_RIGHT = {
    "reset_parameters": reset_each,
    "new buffers": reset_with_new_buffers,
    "apply, where there is a reset_parameters": lambda model: model.apply(
        lambda m: m.reset_parameters() if m is not model and hasattr(m, "reset_parameters") else None
    ),
    "Kaiming normal and zero biases": init_with(lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu")),
    # in fan-out mode fc_2's std is sqrt(2 / 10): refused as "not a fresh initialisation" before
    "Kaiming normal in fan-out mode and zero biases": init_with(
        lambda w: nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    ),
    "Xavier uniform and zero biases": init_with(nn.init.xavier_uniform_),
    "orthogonal and zero biases": init_with(nn.init.orthogonal_),
    # VGG's initialisation, N(0, 0.01), used to be refused on c1 (fan-in 9) as "not a fresh initialisation"
    "normal with std 0.01 and zero biases (VGG)": init_with(lambda w: nn.init.normal_(w, 0, 0.01)),
    "Kaiming uniform with small uniform biases": init_with(
        nn.init.kaiming_uniform_, lambda b: nn.init.uniform_(b, -0.01, 0.01)
    ),
    # TensorFlow's MNIST tutorial's biases: refused on fc_1, whose 3 / sqrt(1152) is 0.088 (helper-92)
    "default weights and biases of 0.1": init_with(
        lambda w: nn.init.kaiming_uniform_(w, a=5**0.5), lambda b: nn.init.constant_(b, 0.1)
    ),
}


def replace_parameters(model):
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear, nn.modules.batchnorm._BatchNorm)):
            fresh = type(module)(*_layer_sizes(module))
            for name, value in fresh.named_parameters(recurse=False):
                setattr(module, name, nn.Parameter(value.detach().clone()))
            for name, value in fresh.named_buffers(recurse=False):
                setattr(module, name, value.clone())


def _layer_sizes(module: nn.Module) -> tuple:
    if isinstance(module, nn.Conv2d):
        return module.in_channels, module.out_channels, module.kernel_size
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    return (module.num_features,)


def only_batchnorm2d(model):
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear, nn.BatchNorm2d)):
            module.reset_parameters()


def running_var_zeroed(model):
    reset_each(model)
    for module in model.modules():
        if isinstance(module, BATCHNORM):
            module.running_var.zero_()


swept = Net()  # stands for the notebook's swept network


def the_notebooks_model(model):
    for module in swept.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()


def weights_scaled(model):
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            with torch.no_grad():
                module.weight.mul_(0.5)


def reset_then(change):
    """A right reset of every layer, then ``change`` applied to each module (or to the model)."""

    def full_reset(model):
        for module in model.modules():
            if module is not model and hasattr(module, "reset_parameters"):
                module.reset_parameters()
        change(model)

    return full_reset


RESET_WRONG = {
    # the three below passed, and a model turned to float64 ended the check in a traceback (helper 120)
    "the layers frozen": (
        reset_then(lambda model: model.requires_grad_(False)),
        "`c1.weight` changed from requires_grad=True, torch.float32 on cpu to requires_grad=False",
    ),
    "BatchNorm's momentum changed": (
        reset_then(lambda model: setattr(model.b1, "momentum", None) if hasattr(model, "b1") else None),
        "layer b1 changed its settings, from (32, eps=1e-05, momentum=0.1,",
    ),
    "turned to float64": (reset_then(lambda model: model.double()), "to requires_grad=True, torch.float64 on cpu"),
    # told "the model you were given is unchanged", and "all its weights equal" (helper 99)
    "the notebook's model reset": (
        the_notebooks_model,
        "`full_reset` uses the notebook's `swept`: reset the model it is given (its argument)",
    ),
    "weights only scaled": (weights_scaled, "layer c1 (Conv2d) still holds the sweep's weights, only scaled by 0.5"),
    # PyTorch's AttributeError alone on the nn.Sequential cases (helper 108)
    "the model's own reset_parameters()": (
        lambda model: model.reset_parameters(),
        "not every model has a reset_parameters() of its own (the lab's Net has; an nn.Sequential has none)",
    ),
    # PyTorch's "Missing key(s)" alone (helper-92)
    "a new model's state_dict loaded": (
        lambda model: model.load_state_dict(type(model)().state_dict()),
        "a new model of the same class is not always the same network (a new nn.Sequential is empty",
    ),
    "biases of 0.5": (
        init_with(lambda w: nn.init.kaiming_uniform_(w, a=5**0.5), lambda b: nn.init.constant_(b, 0.5)),
        "has a bias up to 0.5, not a fresh one: 0, a small constant, or values within ±1 / sqrt(fan-in)",
    ),
    # both were told "still holds what the sweep left" (helper-84)
    "BatchNorm2d reset, BatchNorm1d not": (
        only_batchnorm2d,
        "you reset BatchNorm2d but not BatchNorm1d: every kind of BatchNorm needs it",
    ),
    "the running variance set to 0": (
        running_var_zeroed,
        "holds values a fresh layer does not in its running mean and variance (fresh: 0 and 1)",
    ),
    "BatchNorm skipped": (
        without("affine", "statistics", "count"),
        (
            "still holds what the sweep left in its weight and "
            "bias (gamma and beta; fresh: 1 and 0) and in its running mean and variance"
        ),
    ),
    "statistics only": (
        without("affine"),
        (
            "still holds what the sweep left in its weight and bias (gamma and beta; "
            "fresh: 1 and 0): reset_parameters() resets it too"
        ),
    ),
    "weight and bias only": (
        without("statistics", "count"),
        ("still holds what the sweep left in its running mean and variance (fresh: 0 and 1) and in its batch count"),
    ),
    # a batch count left as it was used to be reported as "running mean and variance"
    "batch count kept": (
        without("count"),
        (
            "still holds what the sweep left in its batch count, num_batches_tracked "
            "= 500 (fresh: 0): reset_running_stats() (or reset_parameters())"
        ),
    ),
    # weights nudged by tiny noise used to pass as "reset"
    "nudged by tiny noise": (nudge, "(Conv2d) still holds the sweep's weights (changed by at most"),
    "a new model returned": (
        lambda model: type(model)() if isinstance(model, nn.Module) else None,
        (
            "the model you were given is unchanged: reset its layers in place (returning a new "
            "model leaves the one your code holds as it was)"
        ),
    ),
    "zero weights": (init_with(nn.init.zeros_), "has all its weights equal"),
    # equal weights of 0.05: float32's std() of them is about 1e-9, not 0, and they were told "std 1.87e-09"
    "constant weights": (init_with(lambda w: nn.init.constant_(w, 0.05)), "has all its weights equal"),
    # fresh values in new Parameters: an optimizer made before goes on training the old ones; it used to pass
    "new Parameters in place of the old": (
        replace_parameters,
        "is a new Parameter, not the old one reset: an optimizer made before the reset would go on training the old "
        "one",
    ),
    "the model's children only, not the layers inside them": (
        lambda model: [m.reset_parameters() for m in model.children() if hasattr(m, "reset_parameters")],
        "whose first layer is an nn.Sequential of Conv2d and BatchNorm2d, after a sweep, layer 0.0 (Conv2d) still "
        "holds the sweep's weights (changed by at most 0): it sits inside `0`, and model.children() goes one level "
        "deep; model.modules() reaches every layer",
    ),
    "the children's BatchNorm only": (  # the nested BatchNorm missed, its convolution reset by hand
        lambda model: [
            m.reset_parameters()
            for m in [*model.children(), *(m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))]
            if hasattr(m, "reset_parameters")
        ],
        "BatchNorm layer 0.1 still holds what the sweep left in its weight and bias (gamma and beta; fresh: 1 and "
        "0) and in its running mean and variance (fresh: 0 and 1) and in its batch count, num_batches_tracked = "
        "500 (fresh: 0): it sits inside `0`, and model.children() goes one level deep",
    ),
}


@pytest.mark.parametrize("answer", RESET_RIGHT.values(), ids=RESET_RIGHT)
def test_full_reset_right_answers_pass(answer):
    assert_right(nb04.q4, answer)


@pytest.mark.parametrize("answer, sentence", RESET_WRONG.values(), ids=RESET_WRONG)
def test_full_reset_wrong_answers_get_their_sentence(answer, sentence):
    assert_wrong(nb04.q4, answer, sentence)


# the grader's hidden cases


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_on_hidden_cases_right_answers_still_pass_and_wrong_ones_still_fail(seed):
    for exercise, right, wrong in (
        (nb04.q1, SMOOTH_RIGHT, SMOOTH_WRONG),
        (nb04.q2, LAG_RIGHT, LAG_WRONG),
        (nb04.q4, RESET_RIGHT, RESET_WRONG),
    ):
        for answer in list(right.values())[:4]:
            assert_right(exercise, answer, seed=seed)
        for answer, _ in list(wrong.values())[:4]:
            assert_wrong(exercise, answer, "", seed=seed)


def test_vggs_initialisation_counts_as_fresh_on_the_narrowest_hidden_networks():
    """The hidden case's last layer has a fan-in of 3 to 39: N(0, 0.01) is smallest against it at 3 and 4."""
    narrow = [
        seed
        for seed in range(100)
        if any(
            f"({width} units)" in case
            for width in (3, 4)
            for case in nb04._reset_cases(torch.Generator().manual_seed(seed))
        )
    ]
    assert len(narrow) >= 2
    with torch.random.fork_rng():
        for seed in narrow:
            for draw in range(5):  # the answer draws its weights from the global generator: five draws each
                torch.manual_seed(draw)
                assert_right(nb04.q4, RESET_RIGHT["normal with std 0.01 and zero biases (VGG)"], seed=seed)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0.01, 10), min_size=1, max_size=40), st.floats(0.05, 0.99))
def test_smoothing_the_check_holds_is_the_bias_corrected_average(losses, beta):
    """Independently stated: value t is the average of the first t losses weighted by beta**(t - i), normalised."""
    expected = [
        sum(beta ** (t - i) * losses[i] for i in range(t + 1)) / sum(beta ** (t - i) for i in range(t + 1))
        for t in range(len(losses))
    ]
    assert nb04.all_close(torch.tensor(smooth(losses, beta)), torch.tensor(expected), 1e-9)
