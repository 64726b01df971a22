"""Notebook 02's checks: right answers written in different ways pass, each typical mistake gets its sentence,
and an answer that hands the work to PyTorch's own layer is refused (also on the grader's hidden cases)."""

from __future__ import annotations

import math
import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.functional import batch_norm as renamed_batch_norm

from fmnist_lab import Net, count_parameters
from fmnist_lab.exercises import nb02
from tests.checks_support import SEEDS as CHECK_SEEDS
from tests.checks_support import assert_right, assert_wrong

FIRST_LAYER = Net().c1

SEEDS = (None, *CHECK_SEEDS)  # the fixed cases alone, then with the grader's hidden cases of each seed


# q1: conv_output_size

SIZE_RIGHT = {
    "floor division": lambda n, kernel, padding, stride: (n + 2 * padding - kernel) // stride + 1,
    "math.floor": lambda n, kernel, padding, stride: math.floor((n + 2 * padding - kernel) / stride) + 1,
    "int() of a positive quotient": lambda n, kernel, padding, stride: int((n + 2 * padding - kernel) / stride) + 1,
    "counting the window's positions": lambda n, kernel, padding, stride: len(
        range(0, n + 2 * padding - kernel + 1, stride)
    ),
    "a loop over the positions": lambda n, kernel, padding, stride: sum(
        1 for start in range(n + 2 * padding) if start % stride == 0 and start + kernel <= n + 2 * padding
    ),
    "a whole float": lambda n, kernel, padding, stride: float((n + 2 * padding - kernel) // stride + 1),
}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("answer", SIZE_RIGHT.values(), ids=SIZE_RIGHT.keys())
def test_conv_output_size_right_answers_pass(answer, seed):
    assert "fits ⌊(7 − 2) / 2⌋ + 1 = 3 windows at the last max-pool" in assert_right(nb02.q1, answer, seed=seed)


SIZE_WRONG = {
    "forgot the padding": (
        lambda n, k, p, s: (n - k) // s + 1,
        ("on c1 (n=28, kernel 3, padding 1, stride 1), you forgot the padding"),
    ),
    "padding once": (lambda n, k, p, s: (n + p - k) // s + 1, "you added the padding once"),
    "rounded up": (
        lambda n, k, p, s: math.ceil((n + 2 * p - k) / s) + 1,
        ("on the last max-pool (n=7, kernel 2, padding 0, stride 2), you rounded up"),
    ),
    # helper 96: the message handed over the whole formula, which the hint keeps back; round() got numbers only
    "rounded up, told without the formula": (
        lambda n, k, p, s: math.ceil((n + 2 * p - k) / s) + 1,
        "you rounded up; a window that does not fit is dropped, so round down. Stuck?",
    ),
    "rounded to the nearest": (
        lambda n, k, p, s: round((n + 2 * p - k) / s) + 1,
        "you rounded to the nearest whole number; a window that does not fit is dropped, so round down",
    ),
    "not rounded": (lambda n, k, p, s: (n + 2 * p - k) / s + 1, "your size is not a whole number"),
    "no + 1": (lambda n, k, p, s: (n + 2 * p - k) // s, "you forgot the + 1"),
    "no stride": (lambda n, k, p, s: n + 2 * p - k + 1, "you forgot the stride"),
    "+ 1 before dividing": (lambda n, k, p, s: (n + 2 * p - k + 1) // s, "you added the 1 before dividing"),
    "the notebook's 28, always": (
        lambda n, k, p, s: 28,
        (
            "on the first max-pool (n=28, kernel 2, padding 0, stride "
            "2), the answer should be 14, but `<lambda>` returned 28"
        ),
    ),
    "a string": (lambda n, k, p, s: str((n + 2 * p - k) // s + 1), "should return one number"),
    # both were judged right, as close to the size (helper 106)
    "a size scaled by 1.00009": (
        lambda n, k, p, s: ((n + 2 * p - k) // s + 1) * 1.00009,
        "on c1 (n=28, kernel 3, padding 1, stride 1), the answer should be 28, but `<lambda>` returned 28.00252, not "
        "a whole number",
    ),
    "a size plus 1e-6": (
        lambda n, k, p, s: (n + 2 * p - k) // s + 1 + 1e-6,
        "the answer should be 28, but `<lambda>` returned 28.000001, not a whole number",
    ),
    "n // stride when the stride is not 1": (
        lambda n, k, p, s: (n + 2 * p - k) // s + 1 if s == 1 else n // s,
        "on n=21, kernel 4, padding 2, stride 2, the answer should be 11, but `<lambda>` returned 10",
    ),
}


@pytest.mark.parametrize("seed", (None, 1))
@pytest.mark.parametrize("answer, sentence", SIZE_WRONG.values(), ids=SIZE_WRONG.keys())
def test_conv_output_size_wrong_answers_get_their_sentence(answer, sentence, seed):
    assert_wrong(nb02.q1, answer, sentence, seed=seed)


def test_conv_output_size_hidden_cases_catch_an_answer_tuned_to_the_fixed_ones():
    fixed = {args: nb02._conv_output_size(*args) for args in nb02.SIZE_CASES.values()}

    def tuned(n, k, p, s):
        return fixed.get((n, k, p, s), 1)

    assert_right(nb02.q1, tuned)
    assert_wrong(nb02.q1, tuned, "the answer should be", seed=3)


def conv_output_size_by_running_conv2d(n, kernel, padding, stride):
    return nn.Conv2d(1, 1, kernel, stride=stride, padding=padding)(torch.zeros(1, 1, n, n)).shape[-1]


def conv_output_size_by_running_max_pool(n, kernel, padding, stride):
    padded = n + 2 * padding
    return F.max_pool2d(torch.zeros(1, 1, padded, padded), kernel, stride).shape[-1]


SIZE_LIBRARY = {
    "nn.Conv2d on a blank image": (conv_output_size_by_running_conv2d, "calls PyTorch's ready-made `Conv2d`"),
    "F.conv2d": (
        lambda n, k, p, s: F.conv2d(torch.zeros(1, 1, n, n), torch.zeros(1, 1, k, k), stride=s, padding=p).shape[-1],
        "calls PyTorch's ready-made `conv2d`",
    ),
    "F.unfold": (
        lambda n, k, p, s: math.isqrt(F.unfold(torch.zeros(1, 1, n, n), k, padding=p, stride=s).shape[-1]),
        "calls PyTorch's ready-made `unfold`",
    ),
    # run on a tensor or built under another name, a layer is not seen in the answer's names, but seen running
    "Tensor.unfold": (
        lambda n, k, p, s: torch.zeros(1, n + 2 * p).unfold(1, k, s).shape[1],
        "runs PyTorch's `unfold` and reads the size off its result instead of computing it from n, kernel, padding",
    ),
    "nn.Conv1d": (
        lambda n, k, p, s: nn.Conv1d(1, 1, k, stride=s, padding=p)(torch.zeros(1, 1, n)).shape[-1],
        "runs PyTorch's `conv1d`",
    ),
    "F.avg_pool2d, padded by hand": (
        lambda n, k, p, s: F.avg_pool2d(F.pad(torch.zeros(1, 1, n, n), (p, p, p, p)), k, s).shape[-1],
        "runs PyTorch's `avg_pool2d`",
    ),
    "NumPy's sliding windows": (
        lambda n, k, p, s: np.lib.stride_tricks.sliding_window_view(np.zeros(n + 2 * p), k)[::s].shape[0],
        "calls NumPy's ready-made `sliding_window_view`",
    ),
}


@pytest.mark.parametrize("answer, sentence", SIZE_LIBRARY.values(), ids=SIZE_LIBRARY.keys())
def test_conv_output_size_that_runs_a_pytorch_layer_is_refused(answer, sentence):
    assert answer(28, 3, 1, 1) == 28 and answer(7, 2, 0, 2) == 3  # the right sizes,
    assert_wrong(nb02.q1, answer, sentence)  # refused all the same
    assert_wrong(nb02.q1, answer, "compute it yourself")


def test_conv_output_size_that_runs_max_pooling_is_refused():
    assert conv_output_size_by_running_max_pool(28, 3, 1, 1) == 28  # right, as a window of any kind counts alike
    assert_wrong(nb02.q1, conv_output_size_by_running_max_pool, "calls PyTorch's ready-made `max_pool2d`")


# q3: batchnorm_train


def channel_view(values):
    return values.view(1, -1, 1, 1)


def bn_keepdim(x, gamma, beta, eps):
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    var = x.var(dim=(0, 2, 3), correction=0, keepdim=True)
    return gamma.view(1, -1, 1, 1) * (x - mean) / torch.sqrt(var + eps) + beta.view(1, -1, 1, 1)


def bn_channels_first(x, gamma, beta, eps):
    rows = x.transpose(0, 1).reshape(x.shape[1], -1)  # one row per channel
    mean, var = rows.mean(dim=1), rows.var(dim=1, unbiased=False)
    return channel_view(gamma) * (x - channel_view(mean)) / channel_view((var + eps).sqrt()) + channel_view(beta)


def bn_squared_deviations(x, gamma, beta, eps):
    centred = x - x.mean(dim=(0, 2, 3), keepdim=True)
    var = (centred**2).mean(dim=(0, 2, 3), keepdim=True)
    return channel_view(gamma) * centred * torch.rsqrt(var + eps) + channel_view(beta)


def bn_loop_over_channels(x, gamma, beta, eps):
    out = torch.empty_like(x)
    for c in range(x.shape[1]):
        channel = x[:, c]
        out[:, c] = gamma[c] * (channel - channel.mean()) / math.sqrt(channel.var(correction=0).item() + eps) + beta[c]
    return out


def bn_float64_numpy(x, gamma, beta, eps):
    a = x.double().numpy()
    mean, var = a.mean(axis=(0, 2, 3), keepdims=True), a.var(axis=(0, 2, 3), keepdims=True)
    return (
        gamma.double().numpy()[None, :, None, None] * (a - mean) / (var + eps) ** 0.5
        + beta.double().numpy()[None, :, None, None]
    )


def batch_norm(x, gamma, beta, eps):  # a helper of the student's own that happens to share PyTorch's name
    return bn_keepdim(x, gamma, beta, eps)


def bn_own_helper_named_batch_norm(x, gamma, beta, eps):
    return torch.as_tensor(batch_norm(x, gamma, beta, eps))  # used to be refused as torch.batch_norm


class Norms:
    def batch_norm(self, x, gamma, beta, eps):  # a method of the student's own class, named like PyTorch's
        return bn_keepdim(x, gamma, beta, eps)


def bn_own_method_named_batch_norm(x, gamma, beta, eps):
    return torch.as_tensor(Norms().batch_norm(x, gamma, beta, eps))  # used to be refused as torch.batch_norm


BN_RIGHT = [
    bn_keepdim,
    bn_channels_first,
    bn_squared_deviations,
    bn_loop_over_channels,
    bn_float64_numpy,
    bn_own_helper_named_batch_norm,
    bn_own_method_named_batch_norm,
]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("answer", BN_RIGHT, ids=lambda f: f.__name__)
def test_batchnorm_train_right_answers_pass(answer, seed):
    features = torch.randn(6, 5, 4, 4, generator=torch.Generator().manual_seed(0)) * 3 + 1
    message = assert_right(nb02.q3, answer, features, seed=seed)
    assert "agrees with nn.BatchNorm2d in training mode to within 1e-4" in message


def normalised(x, mean, var, eps):
    return (x - mean) / torch.sqrt(var + eps)


def scaled(x_hat, gamma, beta):
    return channel_view(gamma) * x_hat + channel_view(beta)


NOTEBOOK_FEATURES = torch.randn(4, 32, 5, 5)  # stands for section 3's `features`, a global of the notebook
# section 3's `var` too: an answer's `x.var(...)` names an attribute, not it, and was told it read it (helper 96)
var = torch.ones(32)
bn = torch.nn.BatchNorm2d(32)  # stands for section 3's layer, whose running variance an answer read (helper 106)


def normalised_in_place(x, gamma, beta, eps):
    mean, variance = x.mean((0, 2, 3), keepdim=True), x.var((0, 2, 3), correction=0, keepdim=True)
    x -= mean
    x /= torch.sqrt(variance + eps)
    x *= channel_view(gamma)
    x += channel_view(beta)
    return x


def with_the_layers_variance(x, gamma, beta, eps):
    mean = x.mean((0, 2, 3), keepdim=True)
    return channel_view(gamma) * (x - mean) / torch.sqrt(bn.running_var.view(1, -1, 1, 1) + eps) + channel_view(beta)


BN_WRONG = {
    "unbiased variance": (
        lambda x, g, b, eps: scaled(
            normalised(x, x.mean((0, 2, 3), keepdim=True), x.var((0, 2, 3), keepdim=True), eps), g, b
        ),
        "you divided by the unbiased variance (N − 1)",
    ),
    "one mean for everything": (
        lambda x, g, b, eps: scaled(normalised(x, x.mean(), x.var(correction=0), eps), g, b),
        "one mean and variance over the whole tensor",
    ),
    "per image (InstanceNorm)": (
        lambda x, g, b, eps: scaled(
            normalised(x, x.mean((2, 3), keepdim=True), x.var((2, 3), correction=0, keepdim=True), eps), g, b
        ),
        "that is InstanceNorm",
    ),
    "per pixel, over the batch": (
        lambda x, g, b, eps: scaled(normalised(x, x.mean(0), x.var(0, correction=0), eps), g, b),
        "over the batch only, one per pixel",
    ),
    "no eps": (lambda x, g, b, eps: bn_keepdim(x, g, b, 0.0), "you left out eps"),
    "eps written in, not the one given": (
        lambda x, g, b, eps: bn_keepdim(x, g, b, 1e-5),
        "or used an eps other than the `eps` given",
    ),
    "eps outside the root": (
        lambda x, g, b, eps: scaled(
            (x - x.mean((0, 2, 3), keepdim=True)) / (x.var((0, 2, 3), correction=0, keepdim=True).sqrt() + eps), g, b
        ),
        "eps belongs inside the square root",
    ),
    "no gamma and beta": (
        lambda x, g, b, eps: bn_keepdim(x, torch.ones_like(g), torch.zeros_like(b), eps),
        "you forgot gamma and beta",
    ),
    "gamma and beta swapped": (lambda x, g, b, eps: bn_keepdim(x, b, g, eps), "gamma and beta are swapped"),
    "evaluation mode of a fresh layer": (
        lambda x, g, b, eps: scaled(x / math.sqrt(1 + eps), g, b),
        "which is evaluation mode",
    ),
    "half the answer": (
        lambda x, g, b, eps: bn_keepdim(x, g, b, eps) / 2,
        (
            "on 4 images, 3 channels of different means and spreads, 5x5 pixels, eps 1e-5, the answer "
            "should be a tensor starting"
        ),
    ),
    "the channel means only": (lambda x, g, b, eps: x.mean(dim=(0, 2, 3)), "should return shape (4, 3, 5, 5)"),
    # told as the answer's own RuntimeError alone (carried over from helper-85's read)
    # both told as the answer's own RuntimeError alone (helper-90)
    "the notebook's features read instead of x": (
        lambda x, g, b, eps: bn_keepdim(NOTEBOOK_FEATURES, g, b, eps),
        "your function reads the notebook's `NOTEBOOK_FEATURES` instead of its arguments; compute everything from x",
    ),
    "32 channels assumed": (
        lambda x, g, b, eps: (
            g.view(1, 32, 1, 1)
            * normalised(x, x.mean((0, 2, 3), keepdim=True), x.var((0, 2, 3), correction=0, keepdim=True), eps)
        ),
        "your function assumes a number of channels: take it from x",
    ),
    "statistics of shape (C,), with x.var beside the notebook's var": (
        lambda x, g, b, eps: g * (x - x.mean((0, 2, 3))) / (x.var((0, 2, 3), correction=0) + eps).sqrt() + b,
        "at non-singleton dimension 3) when called on 4 images, 3 channels of different means and spreads, 5x5 "
        "pixels, eps 1e-5: values of shape (C,), one per channel, line up with x's last dimension (its width)",
    ),
    # accepted: in the notebook it overwrites `features` (helper 106)
    "x changed in place": (normalised_in_place, "return a new tensor, and leave x as it is"),
    # told to give (1, C, 1, 1) shapes, which it had (helper 106)
    "a layer's running variance read": (
        with_the_layers_variance,
        "your function reads the notebook's `bn` instead of its arguments; compute everything from x",
    ),
    "computed in float16": (
        lambda x, g, b, eps: bn_keepdim(x.half(), g.half(), b.half(), eps),
        "your output is float16, which keeps only 3 significant digits",
    ),
    "returned in bfloat16": (
        lambda x, g, b, eps: bn_keepdim(x, g, b, eps).bfloat16(),
        "your output is bfloat16, which keeps only 2 significant digits",
    ),
    "a NumPy array in float16": (
        lambda x, g, b, eps: bn_float64_numpy(x, g, b, eps).astype(np.float16),
        "your output is float16, which keeps only 3 significant digits",
    ),
}


@pytest.mark.parametrize("seed", (None, 1))
@pytest.mark.parametrize("answer, sentence", BN_WRONG.values(), ids=BN_WRONG.keys())
def test_batchnorm_train_wrong_answers_get_their_sentence(answer, sentence, seed):
    assert_wrong(nb02.q3, answer, sentence, seed=seed)


@pytest.mark.parametrize("answer", [answer for answer, _ in BN_WRONG.values()], ids=BN_WRONG.keys())
def test_batchnorm_train_mistakes_are_named_without_the_answers_code(answer):
    """A message names the idea that went wrong; the dims to reduce over and the variance's argument are the answer."""
    message = nb02.q3.verdict(answer).message
    assert message.startswith("Not yet") and "dim=" not in message and "correction=" not in message, message


def bn_through_a_helper(x, gamma, beta, eps):
    return bn_functional(x, gamma, beta, eps)


def bn_functional(x, gamma, beta, eps):
    return F.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)


def bn_module(x, gamma, beta, eps):
    layer = nn.BatchNorm2d(x.shape[1], eps=eps)
    with torch.no_grad():
        layer.weight.copy_(gamma)
        layer.bias.copy_(beta)
    return layer(x).detach()


def bn_imported_inside(x, gamma, beta, eps):
    from torch.nn.functional import batch_norm

    return batch_norm(x, None, None, gamma, beta, training=True, eps=eps)


def bn_sync_module(x, gamma, beta, eps):
    layer = nn.SyncBatchNorm(x.shape[1], eps=eps)  # outside a process group it is BatchNorm
    with torch.no_grad():
        layer.weight.copy_(gamma)
        layer.bias.copy_(beta)
    return layer(x).detach()


def bn_lazy_1d_over_pixels(x, gamma, beta, eps):
    n, c, h, w = x.shape
    rows = x.permute(0, 2, 3, 1).reshape(-1, c)  # one row per pixel, one column per channel
    out = nn.LazyBatchNorm1d(eps=eps, affine=False)(rows).detach()
    return channel_view(gamma) * out.reshape(n, h, w, c).permute(0, 3, 1, 2) + channel_view(beta)


@torch.no_grad()
def bn_decorated(x, gamma, beta, eps):
    return F.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)


class LibraryNorm:
    def run(self, x, gamma, beta, eps):
        return F.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)


def bn_in_a_method_of_a_class_of_the_notebook(x, gamma, beta, eps):
    return LibraryNorm().run(x, gamma, beta, eps)


BN_LIBRARY = {
    "F.batch_norm under @torch.no_grad()": (bn_decorated, "calls PyTorch's ready-made `batch_norm`"),
    "F.batch_norm in a method": (bn_in_a_method_of_a_class_of_the_notebook, "calls PyTorch's ready-made `batch_norm`"),
    "nn.SyncBatchNorm": (bn_sync_module, "calls PyTorch's ready-made `SyncBatchNorm`"),
    "nn.LazyBatchNorm1d over the pixels": (bn_lazy_1d_over_pixels, "calls PyTorch's ready-made `LazyBatchNorm1d`"),
    "F.batch_norm": (bn_functional, "calls PyTorch's ready-made `batch_norm`"),
    "nn.BatchNorm2d": (bn_module, "calls PyTorch's ready-made `BatchNorm2d`"),
    "batch_norm under another name": (
        lambda x, g, b, eps: renamed_batch_norm(x, None, None, g, b, True, 0.1, eps),
        "calls PyTorch's ready-made `batch_norm`",
    ),
    "torch.nn.functional spelled out": (
        lambda x, g, b, eps: torch.nn.functional.batch_norm(x, None, None, g, b, training=True, eps=eps),
        "calls PyTorch's ready-made `batch_norm`",
    ),
    "F.batch_norm in a helper": (bn_through_a_helper, "calls PyTorch's ready-made `batch_norm`"),
    "batch_norm imported inside the function": (bn_imported_inside, "calls PyTorch's ready-made `batch_norm`"),
    "group_norm with one group per channel, the batch folded into the pixels": (
        lambda x, g, b, eps: (
            F.group_norm(x.transpose(0, 1).reshape(1, x.shape[1], -1), x.shape[1], g, b, eps)
            .reshape(x.shape[1], x.shape[0], *x.shape[2:])
            .transpose(0, 1)
        ),
        "calls PyTorch's ready-made `group_norm`",
    ),
    "instance_norm with the batch folded into the pixels": (
        lambda x, g, b, eps: (
            F.instance_norm(x.transpose(0, 1).reshape(1, x.shape[1], -1), weight=g, bias=b, eps=eps)
            .reshape(x.shape[1], x.shape[0], *x.shape[2:])
            .transpose(0, 1)
        ),
        "calls PyTorch's ready-made `instance_norm`",
    ),
    # reached without a name the answer's code shows: seen running; both used to pass
    "aten's native_batch_norm": (
        lambda x, g, b, eps: torch.ops.aten.native_batch_norm(x, g, b, None, None, True, 0.1, eps)[0],
        "runs PyTorch's `native_batch_norm` and takes its normalisation",
    ),
    "rms_norm of the centred channels": (
        lambda x, g, b, eps: (
            F.rms_norm(
                (c := x.transpose(0, 1).reshape(x.shape[1], -1)) - c.mean(1, keepdim=True), (c.shape[1],), eps=eps
            )
            .reshape(x.shape[1], x.shape[0], *x.shape[2:])
            .transpose(0, 1)
            * g.view(1, -1, 1, 1)
            + b.view(1, -1, 1, 1)
        ),
        "runs PyTorch's `rms_norm` and takes its normalisation",
    ),
}


@pytest.mark.parametrize("answer, sentence", BN_LIBRARY.values(), ids=BN_LIBRARY.keys())
def test_batchnorm_train_that_calls_pytorchs_batchnorm_is_refused(answer, sentence):
    x, gamma, beta = torch.randn(3, 2, 2, 2), torch.rand(2) + 0.5, torch.randn(2)
    assert torch.allclose(
        answer(x, gamma, beta, 1e-5), bn_keepdim(x, gamma, beta, 1e-5), atol=1e-5
    )  # the right numbers,
    assert_wrong(nb02.q3, answer, sentence)  # refused all the same
    assert_wrong(nb02.q3, answer, "compute it yourself")


def test_batchnorm_train_through_a_module_of_the_students_own_is_not_refused(monkeypatch):
    helpers = types.ModuleType("student_helpers")
    helpers.batch_norm = bn_keepdim  # a module of the student's with a function named like PyTorch's
    monkeypatch.setitem(sys.modules, "student_helpers", helpers)

    def answer(x, gamma, beta, eps):
        from student_helpers import batch_norm

        return torch.as_tensor(batch_norm(x, gamma, beta, eps))

    assert_right(nb02.q3, answer)


def test_batchnorm_train_hidden_cases_use_eps_of_several_sizes():
    for seed in CHECK_SEEDS:
        cases = nb02._batchnorm_cases(torch.Generator().manual_seed(seed))
        hidden = [eps for name, (_, _, _, eps) in cases.items() if name.startswith("hidden")]
        assert len(hidden) == 8 and all(1e-5 <= eps <= 0.1 for eps in hidden) and len(set(hidden)) > 1, hidden


# q4: conv_params

PARAMS_RIGHT = {
    "weights plus biases": lambda i, o, k: i * k * k * o + o,
    "per filter, plus its bias": lambda i, o, k: (i * k * k + 1) * o,
    "k squared": lambda i, o, k: o * (i * k**2 + 1),
    "a loop over the filters": lambda i, o, k: sum(i * k * k + 1 for _ in range(o)),
    "math.prod": lambda i, o, k: math.prod((i, k, k, o)) + o,
    "a weight tensor's numel": lambda i, o, k: torch.empty(o, i, k, k).numel() + o,
}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("answer", PARAMS_RIGHT.values(), ids=PARAMS_RIGHT.keys())
def test_conv_params_right_answers_pass(answer, seed):
    message = assert_right(nb02.q4, answer, Net(), seed=seed)
    assert "it gives 92,672, as count_parameters does: 13% of the network" in message


PARAMS_WRONG = {
    "no biases": (lambda i, o, k: i * k * k * o, "on c1 (1 -> 32 channels, 3x3), you forgot the biases"),
    "a bias per input channel": (lambda i, o, k: i * k * k * o + i, "you gave each *input* channel a bias"),
    "one bias": (lambda i, o, k: i * k * k * o + 1, "you gave the whole layer one bias"),
    "kernel not squared": (lambda i, o, k: i * k * o + o, "a kernel is kernel × kernel weights"),
    "no input channels": (lambda i, o, k: k * k * o + o, "you forgot the input channels"),
    "a 3 x 3 kernel, always": (  # numbers alone (helper 96)
        lambda i, o, k: i * 9 * o + o,
        "on 3 -> 16 channels, 5x5 (a colour image), you counted a 3 × 3 kernel whatever `kernel` is",
    ),
    # told "the answer should be 320, but ... returned 320" (helper 106)
    "a count a hair above": (
        lambda i, o, k: (i * k * k * o + o) * (1 + 1e-12),
        "the answer should be 320, but `<lambda>` returned 320.00000000032",
    ),
    "c1's 320, always": (
        lambda i, o, k: 320,
        ("on c2 (32 -> 64 channels, 3x3), the answer should be 18,496, but `<lambda>` returned 320"),
    ),
    "count_parameters of a Conv2d": (
        lambda i, o, k: count_parameters(nn.Conv2d(i, o, k)),
        "calls the lab's own `count_parameters`",
    ),
    "a Conv2d's parameters summed": (
        lambda i, o, k: sum(p.numel() for p in nn.Conv2d(i, o, k).parameters()),
        "calls PyTorch's ready-made `Conv2d`",
    ),
    # a convolution of another dimension, or a Linear layer of as many inputs, counts alike; both used to pass
    "a depth-1 Conv3d's parameters summed": (
        lambda i, o, k: sum(p.numel() for p in nn.Conv3d(i, o, (1, k, k)).parameters()),
        "calls PyTorch's ready-made `Conv3d`",
    ),
    "a Linear layer's parameters summed": (
        lambda i, o, k: sum(p.numel() for p in nn.Linear(i * k * k, o).parameters()),
        "calls PyTorch's ready-made `Linear`",
    ),
    # a layer built under a name the answer's code does not show: seen initialising its weights; both used to pass
    "a ConvTranspose1d's parameters summed": (
        lambda i, o, k: sum(p.numel() for p in nn.ConvTranspose1d(i, o, k * k).parameters()),
        "runs PyTorch's `kaiming_uniform_` and counts the parameters it initialised, instead of computing them",
    ),
    "a layer of the type of the network's first": (
        lambda i, o, k: sum(p.numel() for p in type(FIRST_LAYER)(i, o, k).parameters()),
        "runs PyTorch's `kaiming_uniform_` and counts the parameters it initialised, instead of computing them",
    ),
}


@pytest.mark.parametrize("seed", (None, 1))
@pytest.mark.parametrize("answer, sentence", PARAMS_WRONG.values(), ids=PARAMS_WRONG.keys())
def test_conv_params_wrong_answers_get_their_sentence(answer, sentence, seed):
    assert_wrong(nb02.q4, answer, sentence, seed=seed)


# the notebook's data handed in some other form: a sentence about the call, not a traceback or the answer's fault


def test_batchnorm_train_takes_the_notebooks_features_in_any_float_form():
    features = torch.randn(6, 5, 4, 4, generator=torch.Generator().manual_seed(0))
    weight = torch.ones(1, requires_grad=True)
    # computed with autograd: deepcopy used to refuse it; in float64: the layer used to refuse the mix
    for given in (features * weight, features.double()):
        assert "agrees with nn.BatchNorm2d" in assert_right(nb02.q3, bn_keepdim, given)


def by_einsum(x, gamma, beta, eps):
    centred = x - x.mean(dim=(0, 2, 3), keepdim=True)
    var = torch.einsum("nchw,nchw->c", centred, centred) / (x.numel() / x.shape[1])
    return channel_view(gamma) * centred / torch.sqrt(channel_view(var) + eps) + channel_view(beta)


def test_batchnorm_train_by_einsum_passes_on_features_the_size_of_the_notebooks():
    # float32's rounding in an einsum over 50,176 numbers per channel moved the output by 1e-3 from the layer's,
    # and the comparison on the notebook's features refused it (helper-84)
    features = torch.randn(64, 32, 28, 28, generator=torch.Generator().manual_seed(0)) ** 3  # heavy tails, as c1's
    assert "agrees with nn.BatchNorm2d" in assert_right(nb02.q3, by_einsum, features)


@pytest.mark.parametrize(
    "given, sentence",
    [
        (np.zeros((6, 5, 4, 4), dtype=np.float32), "a NumPy float32 array of shape (6, 5, 4, 4)"),
        (torch.zeros(5, 4, 4), "a float tensor of shape (N, C, H, W), but it got a torch.float32 tensor of shape"),
    ],
    ids=["a NumPy array", "one image"],
)
def test_batchnorm_train_handed_other_data_names_what_it_expects(given, sentence):
    message = assert_wrong(nb02.q3, bn_keepdim, sentence, given)
    assert message.startswith("Not yet: check() expects the notebook's features") and "hint()" not in message


@pytest.mark.parametrize(
    "given, sentence",
    [
        (Net, "the class Net itself, not an object made from it"),
        ("net", "str 'net'"),
        (Net().state_dict(), "an OrderedDict of 25 entries ('c1.weight', 'c1.bias', 'b1.weight', ...)"),
        # a network without convolutions used to divide by zero, or be praised for their 0 parameters
        (nn.Linear(3, 4), "but the Linear it got has no Conv2d layer to count"),
    ],
    ids=["the class", "a name", "a state_dict", "no convolution"],
)
def test_conv_params_handed_something_other_than_the_network_names_what_it_expects(given, sentence):
    message = assert_wrong(nb02.q4, PARAMS_RIGHT["weights plus biases"], sentence, given)
    assert message.startswith("Not yet: check() expects the network (an nn.Module, the notebook's `net`)")


@pytest.mark.parametrize(
    "given, layer",
    [
        (nn.Conv2d(1, 8, 3, bias=False), "Conv2d(1, 8, kernel_size=(3, 3), stride=(1, 1), bias=False)"),
        (nn.Conv2d(1, 8, (3, 5)), "Conv2d(1, 8, kernel_size=(3, 5), stride=(1, 1))"),
        (nn.Conv2d(4, 8, 3, groups=2), "Conv2d(4, 8, kernel_size=(3, 3), stride=(1, 1), groups=2)"),
    ],
    ids=["no bias", "a kernel not square", "groups"],
)
def test_conv_params_handed_convolutions_it_does_not_describe_blames_the_network_not_the_answer(given, layer):
    # a right conv_params was told it was wrong (carried over from helper-85's read)
    message = assert_wrong(nb02.q4, PARAMS_RIGHT["weights plus biases"], layer, nn.Sequential(given))
    assert message.startswith("Not yet: check() expects the notebook's `net` after your function")


# q5: the receptive field


def field_by_loop(layers):
    field, jump = 1, 1
    for kernel, stride in layers:
        field += (kernel - 1) * jump
        jump *= stride
    return field


def field_by_recursion(layers):
    if not layers:
        return 1
    *before, (kernel, _) = layers
    return field_by_recursion(before) + (kernel - 1) * math.prod(stride for _, stride in before)


def field_from_the_output_back(layers):  # the other classic walk: from one output value back to the input
    width = 1
    for kernel, stride in reversed(layers):
        width = (width - 1) * stride + kernel
    return width


FIELD_RIGHT = {
    "a loop with the jump": field_by_loop,
    "recursion": field_by_recursion,
    "from the output back": field_from_the_output_back,
    "a float": lambda layers: float(field_by_loop(layers)),
    "NumPy": lambda layers: (
        1
        + int(
            np.sum([(k - 1) * np.prod([s for _, s in layers[:i]], dtype=np.int64) for i, (k, _) in enumerate(layers)])
        )
    ),
}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("answer", FIELD_RIGHT.values(), ids=FIELD_RIGHT.keys())
def test_receptive_field_right_answers_pass(answer, seed):
    assert "gives 22 for Net's three blocks" in assert_right(nb02.q5, answer, seed=seed)


def field_measured_by_a_gradient(layers):
    x = torch.zeros(1, 1, 64, 64, requires_grad=True)
    y = x
    for kernel, stride in layers:
        y = F.avg_pool2d(y, kernel, stride)
    y[0, 0, 0, 0].backward()
    return int((x.grad[0, 0].sum(dim=0) != 0).sum())


def field_with_its_own_stride(layers):
    field, jump = 1, 1
    for kernel, stride in layers:
        jump *= stride  # a line too early: this layer's own stride counts for its own window
        field += (kernel - 1) * jump
    return field


def field_changing_the_list(layers):
    layers.append((1, 1))  # a 1×1 layer adds nothing: right, but the notebook's list grows
    return field_by_loop(layers)


FIELD_WRONG = {
    "strides left out": (
        lambda layers: 1 + sum(kernel - 1 for kernel, _ in layers),
        "on Net's three blocks ([(3, 1), (2, 2)] three times), you left out the strides",
    ),
    "its own stride too": (
        field_with_its_own_stride,
        "you multiplied each layer's (kernel − 1) by its own stride too",
    ),
    "kernels added": (lambda layers: sum(kernel for kernel, _ in layers), "you added the kernel sizes"),
    "from 0": (lambda layers: field_by_loop(layers) - 1, "your widths are one too small: before any layer"),
    # the five below (helper 119): three were told only the right width, two passed the visible check
    "kernel, not kernel − 1": (
        lambda layers: field_by_loop([(kernel + 1, stride) for kernel, stride in layers]),
        "each layer widens the field by kernel − 1, not kernel",
    ),
    "the jump set to the last stride": (
        lambda layers: 1 + sum((k - 1) * (layers[i - 1][1] if i else 1) for i, (k, _) in enumerate(layers)),
        "your jump is the last stride alone; it multiplies",
    ),
    "pairs read as (stride, kernel)": (
        lambda layers: field_by_loop([(stride, kernel) for kernel, stride in layers]),
        "you read each pair as (stride, kernel); it is (kernel, stride)",
    ),
    "cut at the image's 28 pixels": (
        lambda layers: min(field_by_loop(layers), 28),
        "on four 5×5 convolutions of stride 2 ([(5, 2)] four times: wider than a 28×28 image), the answer should be 61",
    ),
    "a jump that only doubles": (
        lambda layers: field_by_loop([(kernel, min(stride, 2)) for kernel, stride in layers]),
        "on a 3×3 of stride 3 and then a 3×3 ([(3, 3), (3, 1)]), the answer should be 9",
    ),
    "the area": (lambda layers: field_by_loop(layers) ** 2, "you returned the field's area"),
    "last layer first": (
        lambda layers: field_by_loop(layers[::-1]),
        "you walked the layers from the last to the first",
    ),
    "no layers, no pixel": (
        lambda layers: field_by_loop(layers) if layers else 0,
        "on no layers at all ([]: the image itself), the answer should be 1, but `<lambda>` returned 0",
    ),
    "the list changed": (field_changing_the_list, "changed the input it was given: read the list without changing"),
    "measured through real layers": (field_measured_by_a_gradient, "runs PyTorch's `avg_pool2d` and measures"),
}


@pytest.mark.parametrize("seed", (None, 1))
@pytest.mark.parametrize("answer, sentence", FIELD_WRONG.values(), ids=FIELD_WRONG.keys())
def test_receptive_field_wrong_answers_get_their_sentence(answer, sentence, seed):
    assert_wrong(nb02.q5, answer, sentence, seed=seed)


def test_receptive_field_hidden_cases_catch_an_answer_tuned_to_the_fixed_ones():
    fixed = {tuple(layers): field_by_loop(layers) for layers in nb02.FIELD_CASES.values()}

    def tuned(layers):
        return fixed.get(tuple(layers), 1)

    assert_right(nb02.q5, tuned)
    assert_wrong(nb02.q5, tuned, "the answer should be", seed=3)
