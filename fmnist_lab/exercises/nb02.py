"""Exercises of notebook 02: a convolution's output size, BatchNorm in training mode by hand, a conv's parameters,
the receptive field of a stack of layers."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from ..model import count_parameters
from . import (
    Exercise,
    Misused,
    Wrong,
    all_close,
    as_number,
    as_tensor,
    call,
    close,
    describe,
    expect_data,
    missing_exercise,
    notebook_values,
)


def _explain(
    answer: Any,
    cases: dict[str, tuple],
    answers: list,
    right: Callable,
    mistakes: list[tuple[str, Callable]],
    same: Callable[[Any, Any], bool],
    show: Callable[[Any], str],
) -> None:
    """Raise Wrong on the first case where ``answers`` (what ``answer`` returned, case by case) differ from
    ``right(*case)``.

    A named mistake explains the answer only if it reproduces the answer on every case; otherwise the
    sentence gives the case, the right value and the answer's.
    """
    wrong_at = [i for i, (args, got) in enumerate(zip(cases.values(), answers)) if not same(got, right(*args))]
    if not wrong_at:
        return
    first = wrong_at[0]
    case, args = list(cases.items())[first]
    for message, mistake in mistakes:
        if all(same(got, mistake(*a)) for a, got in zip(cases.values(), answers)):
            raise Wrong(f"on {case}, {message}")
    name = getattr(answer, "__name__", "your function")
    raise Wrong(f"on {case}, the answer should be {show(right(*args))}, but `{name}` returned {show(answers[first])}")


def _show_count(value: float) -> str:
    """A count as a count: one that is not a whole number is shown with the digits that make it none, and said so."""
    if float(value).is_integer():
        return f"{int(value):,}"
    shown = f"{value:.10g}"
    return f"{shown if not float(shown).is_integer() else repr(float(value))}, not a whole number"


def _same_count(got: float, right: float) -> bool:
    """Close, and a whole number where the right value is one (28.0025 is no size); a named mistake's fraction too."""
    return close(got, right) and (float(got).is_integer() or not float(right).is_integer())


# q1: the output size of a convolution (or a pooling window)


def _conv_output_size(n: int, kernel: int, padding: int, stride: int) -> int:
    return (n + 2 * padding - kernel) // stride + 1


_SIZE_MISTAKES = [  # (what went wrong, the size it gives)
    (
        "you forgot the padding: it adds `padding` pixels on *both* sides, n + 2·padding",
        lambda n, k, p, s: (n - k) // s + 1,
    ),
    ("you added the padding once; it goes on both sides: n + 2·padding", lambda n, k, p, s: (n + p - k) // s + 1),
    (
        "you rounded up; a window that does not fit is dropped, so round down",
        lambda n, k, p, s: math.ceil((n + 2 * p - k) / s) + 1,
    ),
    (
        "you rounded to the nearest whole number; a window that does not fit is dropped, so round down",
        lambda n, k, p, s: round((n + 2 * p - k) / s) + 1,
    ),
    (
        "your size is not a whole number: round down with // (a window that does not fit is dropped)",
        lambda n, k, p, s: (n + 2 * p - k) / s + 1,
    ),
    ("you forgot the + 1: the first window sits at position 0 and counts too", lambda n, k, p, s: (n + 2 * p - k) // s),
    (
        "you forgot the stride: the window moves `stride` pixels at a time, so divide by it",
        lambda n, k, p, s: n + 2 * p - k + 1,
    ),
    (
        "you added the 1 before dividing by the stride: the + 1 counts the first window, so it comes after the "
        "division",
        lambda n, k, p, s: (n + 2 * p - k + 1) // s,
    ),
]

SIZE_CASES = {
    "c1 (n=28, kernel 3, padding 1, stride 1)": (28, 3, 1, 1),
    "the first max-pool (n=28, kernel 2, padding 0, stride 2)": (28, 2, 0, 2),
    "the last max-pool (n=7, kernel 2, padding 0, stride 2)": (7, 2, 0, 2),
    "n=28, kernel 5, padding 0, stride 1": (28, 5, 0, 1),
    "n=32, kernel 3, padding 1, stride 2": (32, 3, 1, 2),
    "n=10, kernel 3, padding 0, stride 3": (10, 3, 0, 3),
    "n=21, kernel 4, padding 2, stride 2": (21, 4, 2, 2),  # 11, where n // stride would be 10
    "n=5, kernel 5, padding 2, stride 1": (5, 5, 2, 1),
}


def _random_size_cases(generator: torch.Generator, count: int = 20) -> dict[str, tuple[int, int, int, int]]:
    cases = {}
    while len(cases) < count:
        n, kernel, padding, stride = (
            int(torch.randint(low, high, (), generator=generator)) for low, high in ((1, 65), (1, 8), (0, 4), (1, 5))
        )
        if n + 2 * padding >= kernel:  # the window must fit at least once
            cases[f"n={n}, kernel {kernel}, padding {padding}, stride {stride}"] = (n, kernel, padding, stride)
    return cases


class _FunctionWatch(TorchFunctionMode):
    """Records the PyTorch functions run inside it whose names hold one of ``fragments``.

    It sees what a reading of the answer's names cannot: ``torch.zeros(1, 1, n, n).unfold(...)``, ``nn.Conv1d``,
    ``torch.ops.aten.native_batch_norm``, ``type(layer)(...)``: whatever runs the library's own computation.
    """

    def __init__(self, *fragments: str) -> None:
        super().__init__()
        self.fragments = fragments
        self.ran: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if any(fragment in name for fragment in self.fragments):
            self.ran.append(name)
        return func(*args, **(kwargs or {}))

    def refuse(self, answer: Callable[..., Any], what: str) -> None:
        """Wrong if anything it watched ran: ``what`` says what the answer does with it."""
        if self.ran:
            raise Wrong(
                f"`{getattr(answer, '__name__', 'your function')}` runs PyTorch's `{self.ran[0]}` and {what}; "
                f"this exercise asks you to compute it yourself"
            )


@contextmanager
def _named_as_watched(watch: _FunctionWatch, answer: Callable[..., Any], what: str) -> Iterator[None]:
    """An error the answer raised on a case is refused as what the watch saw it run, where it ran something: a
    measurement through real layers that failed on a shape is named as a measurement, not as its error."""
    try:
        yield
    except Wrong:
        watch.refuse(answer, what)
        raise


def _check_conv_output_size(conv_output_size, generator: torch.Generator | None = None) -> str:
    cases = dict(SIZE_CASES)
    if generator is not None:
        cases.update(_random_size_cases(generator))
    reads = "reads the size off its result instead of computing it from n, kernel, padding and stride"
    with _FunctionWatch("conv", "pool", "unfold") as watch, _named_as_watched(watch, conv_output_size, reads):
        answers = [
            as_number(call(conv_output_size, *args, case=case), "conv_output_size", case)
            for case, args in cases.items()
        ]
    watch.refuse(conv_output_size, reads)
    _explain(
        conv_output_size,
        cases,
        answers,
        _conv_output_size,
        _SIZE_MISTAKES,
        same=_same_count,
        show=_show_count,
    )
    return (
        f"your conv_output_size keeps c1's 28×28 (padding 1), halves 28 to 14, fits ⌊(7 − 2) / 2⌋ + 1 = 3 windows "
        f"at the last max-pool, and is right on all {len(cases)} cases."
    )


# What would measure q1's size instead of computing it: run the layer on a blank image and read the shape
_SIZE_LIBRARY = (
    F.conv2d,
    torch.conv2d,
    nn.Conv2d,
    nn.LazyConv2d,
    F.max_pool2d,
    torch.max_pool2d,
    nn.MaxPool2d,
    F.unfold,
    nn.Unfold,
    np.convolve,
    np.lib.stride_tricks.sliding_window_view,
    "scipy.signal",
)

q1 = Exercise(
    "nb02.q1",
    _check_conv_output_size,
    hint_text="Padding adds `padding` pixels on each side. The window's left edge starts at 0 and moves `stride` "
    "pixels at a time, as long as all `kernel` pixels still fit: count those positions (a window that does not fit "
    "is dropped, so round down). Section 1 wrote that count as a formula.",
    lab_functions=_SIZE_LIBRARY,
)


# q3: BatchNorm2d's forward pass in training mode, by hand


def _per_channel(values: Tensor) -> Tensor:
    return values.view(1, -1, 1, 1)  # (C,) -> (1, C, 1, 1): one value per channel, broadcast over N, H, W


def _normalise(x: Tensor, mean: Tensor, var: Tensor, eps: float) -> Tensor:
    return (x - mean) / torch.sqrt(var + eps)


def _batchnorm_train(x: Tensor, gamma: Tensor, beta: Tensor, eps: float) -> Tensor:
    x = x.double()
    dims = (0, 2, 3)
    x_hat = _normalise(x, x.mean(dims, keepdim=True), x.var(dims, correction=0, keepdim=True), eps)
    return _scaled(x_hat, gamma, beta)


def _scaled(x_hat: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
    return _per_channel(gamma.double()) * x_hat + _per_channel(beta.double())


_BATCHNORM_MISTAKES = [  # (what went wrong, the output it gives from float64 x)
    (
        (
            "you divided by the unbiased variance (N − 1); BatchNorm normalises with the biased variance, which "
            "divides by N (torch.var's `correction` argument chooses)"
        ),
        lambda x, g, b, eps: _scaled(
            _normalise(
                x.double(), x.double().mean((0, 2, 3), keepdim=True), x.double().var((0, 2, 3), keepdim=True), eps
            ),
            g,
            b,
        ),
    ),
    (
        (
            "you took one mean and variance over the whole tensor; BatchNorm takes one per channel, over the batch and "
            "the positions"
        ),
        lambda x, g, b, eps: _scaled(
            _normalise(x.double(), x.double().mean(), x.double().var(correction=0), eps), g, b
        ),
    ),
    (
        (
            "you normalised each image's channel on its own (that is InstanceNorm); BatchNorm pools the whole "
            "batch and every position of a channel"
        ),
        lambda x, g, b, eps: _scaled(
            _normalise(
                x.double(),
                x.double().mean((2, 3), keepdim=True),
                x.double().var((2, 3), correction=0, keepdim=True),
                eps,
            ),
            g,
            b,
        ),
    ),
    (
        (
            "you took the statistics over the batch only, one per pixel; after a convolution BatchNorm "
            "also pools the positions"
        ),
        lambda x, g, b, eps: _scaled(
            _normalise(
                x.double(), x.double().mean(0, keepdim=True), x.double().var(0, correction=0, keepdim=True), eps
            ),
            g,
            b,
        ),
    ),
    (
        (
            "you left out eps, or used an eps other than the `eps` given: divide by sqrt(var + eps), which also "
            "keeps a constant channel from dividing by zero"
        ),
        lambda x, g, b, eps: _batchnorm_train(x, g, b, 0.0),
    ),
    (
        "eps belongs inside the square root: divide by sqrt(var + eps), not by sqrt(var) + eps",
        lambda x, g, b, eps: _scaled(
            (x.double() - x.double().mean((0, 2, 3), keepdim=True))
            / (x.double().var((0, 2, 3), correction=0, keepdim=True).sqrt() + eps),
            g,
            b,
        ),
    ),
    (
        "you forgot gamma and beta: scale the normalised values by gamma and shift them by beta, per channel",
        lambda x, g, b, eps: _batchnorm_train(x, torch.ones_like(g), torch.zeros_like(b), eps),
    ),
    (
        "gamma and beta are swapped: gamma scales (multiplies), beta shifts (adds)",
        lambda x, g, b, eps: _batchnorm_train(x, b, g, eps),
    ),
    (
        (
            "you used a fresh layer's running averages (mean 0, variance 1), which is evaluation mode; in training "
            "mode BatchNorm uses the statistics of the batch itself"
        ),
        lambda x, g, b, eps: _scaled(x.double() / math.sqrt(1 + eps), g, b),
    ),
]

# What would do q3 in one line; the notebook uses both to show the layer at work
_BATCHNORM_LIBRARY = (
    F.batch_norm,
    torch.batch_norm,
    torch.native_batch_norm,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.LazyBatchNorm1d,
    nn.LazyBatchNorm2d,
    nn.LazyBatchNorm3d,
    nn.SyncBatchNorm,
    # the other normalisations, which give BatchNorm's numbers when the tensor is reshaped to suit them
    F.group_norm,
    torch.group_norm,
    nn.GroupNorm,
    F.instance_norm,
    torch.instance_norm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    F.layer_norm,
    torch.layer_norm,
    nn.LayerNorm,
)


def _batchnorm_case(
    generator: torch.Generator,
    shape: tuple[int, int, int, int],
    eps: float,
    spread: float = 1.0,
    identity: bool = False,
) -> tuple[Tensor, Tensor, Tensor, float]:
    """A float32 batch whose channels have different means and spreads, and per-channel gamma and beta."""
    c = shape[1]  # channels
    means = torch.randn(c, generator=generator) * 3
    spreads = (torch.rand(c, generator=generator) * 2 + 0.2) * spread
    x = torch.randn(shape, generator=generator) * _per_channel(spreads) + _per_channel(means)
    if identity:  # a fresh layer's gamma and beta
        return x, torch.ones(c), torch.zeros(c), eps
    return x, torch.rand(c, generator=generator) * 2 + 0.5, torch.randn(c, generator=generator), eps


def _batchnorm_cases(generator: torch.Generator | None) -> dict[str, tuple[Tensor, Tensor, Tensor, float]]:
    g = torch.Generator().manual_seed(3)
    cases = {
        "4 images, 3 channels of different means and spreads, 5x5 pixels, eps 1e-5": _batchnorm_case(
            g, (4, 3, 5, 5), 1e-5
        ),
        "2 images, 2 channels of 3x3 pixels with a spread near sqrt(eps) (eps 0.1)": _batchnorm_case(
            g, (2, 2, 3, 3), 0.1, spread=0.3
        ),
        "8 images, 2 channels of 2x2 pixels, a fresh layer's gamma 1 and beta 0": _batchnorm_case(
            g, (8, 2, 2, 2), 1e-5, identity=True
        ),
        "3 images, 4 channels of 4x6 pixels, eps 1e-3": _batchnorm_case(g, (3, 4, 4, 6), 1e-3),
    }
    if generator is not None:
        for i in range(8):
            shape = tuple(int(torch.randint(low, 7, (), generator=generator)) for low in (2, 1, 1, 1))
            eps = 10.0 ** -int(torch.randint(1, 6, (), generator=generator))  # 0.1 down to 1e-5
            cases[f"hidden case {i + 1}: shape {shape}, eps {eps:g}"] = _batchnorm_case(generator, shape, eps)
    return cases


# what a likely error in an answer means here (a fragment of PyTorch's message -> what to do)
_BATCHNORM_ADVICE = {
    # (C,) against x's (N, C, H, W) fails at dimension 3; at dimension 1 the channels differ (a layer's own values)
    "at non-singleton dimension 3": "values of shape (C,), one per channel, line up with x's last dimension (its "
    "width), not its channels; give them the shape (1, C, 1, 1), which broadcasts over the images and the positions",
    "is invalid for input of size": "your function assumes a number of channels: take it from x, since the check's "
    "cases have other numbers",
}


def _call_batchnorm(batchnorm_train, *args: Any, case: str) -> Any:
    """The answer called on one case; an error with one likely cause in this exercise gets the fix added."""
    # such as section 3's `features`, or a layer whose own statistics or gamma it reads (`bn.running_var`)
    read = [f"`{name}`" for name in notebook_values(batchnorm_train, (Tensor, nn.Module))]
    advice = _BATCHNORM_ADVICE
    if read:  # whatever it raised, the notebook's tensors in place of the arguments come first
        advice = {
            Exception: f"your function reads the notebook's {', '.join(read)} instead of its arguments; compute "
            f"everything from x, gamma, beta and eps, which the check gives with other shapes"
        }
    keep = "return a new tensor, and leave x as it is (in the notebook, x is section 3's `features`)"
    return call(batchnorm_train, *args, case=case, advice=advice, keep_input=keep)


def _compare_with_the_layer(batchnorm_train, features: Tensor) -> None:
    """The answer on the notebook's own features against nn.BatchNorm2d in training mode, γ and β not trivial."""
    case = "the notebook's features"
    # in float64: float32's rounding in a sum over N * H * W numbers per channel (50,176 in the notebook) moves
    # the output by up to 1e-3 with an einsum or bmm, which is right, and would be blamed on the answer
    features = features.detach().to("cpu", torch.float64)
    channels, device = features.shape[1], features.device
    gamma = torch.linspace(0.5, 2.0, channels, device=device, dtype=features.dtype)
    beta = torch.linspace(-1.0, 1.0, channels, device=device, dtype=features.dtype)
    got = as_tensor(
        _call_batchnorm(batchnorm_train, features, gamma, beta, 1e-5, case=case),
        "batchnorm_train",
        case,
        tuple(features.shape),
    )
    layer = nn.BatchNorm2d(channels).to(device=device, dtype=features.dtype).train()
    with torch.no_grad():
        layer.weight.copy_(gamma)
        layer.bias.copy_(beta)
        expected = layer(features)
    difference = float((got.to(expected) - expected).abs().max())
    if difference > 1e-4:
        raise Wrong(
            f"on {case} with gamma from 0.5 to 2 and beta from -1 to 1, your output differs from "
            f"nn.BatchNorm2d's by up to {difference:.2g}"
        )


_LOW_PRECISION = {"float16": 3, "bfloat16": 2}  # dtype (PyTorch's or NumPy's) -> its significant decimal digits, about


def _check_batchnorm_train(
    batchnorm_train, features: Tensor | None = None, generator: torch.Generator | None = None
) -> str:
    if features is not None:
        expect_data(features, Tensor, "the notebook's features (a tensor of shape (N, C, H, W))")
        if features.dim() != 4 or not features.is_floating_point():
            raise Misused(
                f"check() expects the notebook's features after your function, a float tensor of shape "
                f"(N, C, H, W), but it got {describe(features)}"
            )
    cases = _batchnorm_cases(generator)
    with _FunctionWatch("batch_norm", "group_norm", "layer_norm", "instance_norm", "rms_norm") as watch:
        returned = {case: _call_batchnorm(batchnorm_train, *args, case=case) for case, args in cases.items()}
        answers = [
            as_tensor(returned[case], "batchnorm_train", case, tuple(args[0].shape)) for case, args in cases.items()
        ]
    watch.refuse(batchnorm_train, "takes its normalisation")
    dtypes = (str(getattr(value, "dtype", "")).removeprefix("torch.") for value in returned.values())
    low = next((dtype for dtype in dtypes if dtype in _LOW_PRECISION), None)
    if low is not None:  # its rounding alone is larger than the tolerance: say so, not "should be ..."
        raise Wrong(
            f"your output is {low}, which keeps only {_LOW_PRECISION[low]} significant digits: compute in x's own "
            "dtype (float32 here)"
        )
    _explain(
        batchnorm_train,
        cases,
        answers,
        _batchnorm_train,
        _BATCHNORM_MISTAKES,
        same=all_close,
        show=lambda v: f"a tensor starting {v.flatten()[:3].numpy().round(4).tolist()}",
    )
    praise = f"your batchnorm_train matches BatchNorm2d in training mode on all {len(cases)} cases"
    if features is not None:
        _compare_with_the_layer(batchnorm_train, features.detach())
        praise += (
            f". On the notebook's tensor of shape {tuple(features.shape)}, with gamma from 0.5 to 2 and beta from -1 "
            f"to 1, it agrees with nn.BatchNorm2d in training mode to within 1e-4"
        )
    return praise + "."


q3 = Exercise(
    "nb02.q3",
    _check_batchnorm_train,
    hint_text="Section 3 did this for `features`: do the same for any x. Each channel gets its own mean and "
    "variance, taken over the images and both image dimensions; training mode uses the biased variance. "
    "eps goes inside the square root. Mind the shapes: the statistics, gamma and beta must broadcast "
    "against x (N, C, H, W).",
    lab_functions=_BATCHNORM_LIBRARY,
)


# q4: the parameters of a convolution


def _conv_params(in_channels: int, out_channels: int, kernel: int) -> int:
    return in_channels * kernel * kernel * out_channels + out_channels


_PARAMS_MISTAKES = [
    ("you forgot the biases: one per output channel, + out_channels", lambda i, o, k: i * k * k * o),
    ("you gave each *input* channel a bias; there is one bias per *output* channel", lambda i, o, k: i * k * k * o + i),
    ("you gave the whole layer one bias; there is one per output channel", lambda i, o, k: i * k * k * o + 1),
    ("a kernel is kernel × kernel weights, not kernel: square it", lambda i, o, k: i * k * o + o),
    ("you counted a 3 × 3 kernel whatever `kernel` is: use the argument", lambda i, o, k: i * 9 * o + o),
    (
        "you forgot the input channels: each output channel has a kernel × kernel filter for *every* input channel",
        lambda i, o, k: k * k * o + o,
    ),
]

PARAMS_CASES = {
    "c1 (1 -> 32 channels, 3x3)": (1, 32, 3),
    "c2 (32 -> 64 channels, 3x3)": (32, 64, 3),
    "c3 (64 -> 128 channels, 3x3)": (64, 128, 3),
    "3 -> 16 channels, 5x5 (a colour image)": (3, 16, 5),
    "8 -> 8 channels, 1x1": (8, 8, 1),
    "2 -> 5 channels, 7x7": (2, 5, 7),
}

# What would do q4 in one line: count the parameters of a layer built for the purpose
# a layer built to count its parameters: any convolution (a 3-D one of depth 1 counts alike), or a Linear layer
_PARAMS_LIBRARY = (
    count_parameters,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.LazyConv1d,
    nn.LazyConv2d,
    nn.LazyConv3d,
    nn.ConvTranspose2d,
    nn.Linear,
)


def _check_conv_params(conv_params, model: nn.Module | None = None, generator: torch.Generator | None = None) -> str:
    if model is not None:
        expect_data(model, nn.Module, "the network (an nn.Module, the notebook's `net`)")
    cases = dict(PARAMS_CASES)
    if generator is not None:
        for _ in range(10):
            args = tuple(
                int(torch.randint(low, high, (), generator=generator)) for low, high in ((1, 65), (1, 129), (1, 8))
            )
            cases[f"{args[0]} -> {args[1]} channels, {args[2]}x{args[2]}"] = args
    with _FunctionWatch("kaiming", "uniform_", "normal_") as watch:  # a new layer initialising its weights
        answers = [as_number(call(conv_params, *args, case=case), "conv_params", case) for case, args in cases.items()]
    watch.refuse(conv_params, "counts the parameters it initialised, instead of computing them from the sizes")
    _explain(
        conv_params,
        cases,
        answers,
        _conv_params,
        _PARAMS_MISTAKES,
        same=lambda got, right: got == right,
        show=_show_count,
    )
    praise = f"your conv_params gives c1's 320 parameters and is right on all {len(cases)} cases"
    if model is not None:
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        if not convs:
            raise Misused(
                f"check() expects the network (an nn.Module, the notebook's `net`) after your function, but the "
                f"{type(model).__name__} it got has no Conv2d layer to count"
            )
        unusual = next((m for m in convs if m.bias is None or m.groups != 1 or len(set(m.kernel_size)) > 1), None)
        if unusual is not None:  # conv_params counts a square kernel, no groups, and a bias
            raise Misused(
                f"check() expects the notebook's `net` after your function, whose convolutions have square kernels "
                f"and biases, but the {type(model).__name__} it got has {unusual}, which conv_params does not "
                f"describe: pass `net`"
            )
        yours = sum(
            as_number(
                call(conv_params, m.in_channels, m.out_channels, m.kernel_size[0], case="the network's convolutions"),
                "conv_params",
                "the network's convolutions",
            )
            for m in convs
        )
        counted = sum(count_parameters(m) for m in convs)
        convolutions = f"{len(convs)} convolution{'s' * (len(convs) > 1)}"
        if yours != counted:
            raise Wrong(
                f"on the network's {convolutions}, count_parameters finds {counted:,} parameters, "
                f"your conv_params {_show_count(yours)}"
            )
        praise += (
            f". Summed over the network's {convolutions} it gives {counted:,}, as count_parameters "
            f"does: {100 * counted / count_parameters(model):.0f}% of the network"
        )
    return praise + "."


q4 = Exercise(
    "nb02.q4",
    _check_conv_params,
    hint_text="Look at the weight's shape in section 1: each output channel has one kernel × kernel grid for every "
    "input channel. Count those numbers, then the bias: one per output channel (c1 has 320 in all).",
    lab_functions=_PARAMS_LIBRARY,
)


# q5: the receptive field of a stack of layers


def _receptive_field(layers: list[tuple[int, int]]) -> int:
    field, jump = 1, 1
    for kernel, stride in layers:
        field += (kernel - 1) * jump
        jump *= stride
    return field


_FIELD_MISTAKES = [  # (what went wrong, the width it gives)
    (
        "you left out the strides: after a layer of stride s, one step in its output spans s steps of its input, so "
        "each later layer's (kernel − 1) counts times the product of the strides before it",
        lambda layers: 1 + sum(kernel - 1 for kernel, _ in layers),
    ),
    (
        "you multiplied each layer's (kernel − 1) by its own stride too; only the strides of the layers before it "
        "count (a layer's stride spaces its outputs, not its own window)",
        lambda layers: (
            1 + sum((kernel - 1) * math.prod(s for _, s in layers[: i + 1]) for i, (kernel, _) in enumerate(layers))
        ),
    ),
    (
        "you added the kernel sizes; each layer widens the field by kernel − 1 (a 1×1 layer adds nothing), times "
        "the product of the strides before it",
        lambda layers: sum(kernel for kernel, _ in layers),
    ),
    (
        "your widths are one too small: before any layer the field is one pixel wide, so start from 1",
        lambda layers: _receptive_field(layers) - 1,
    ),
    (
        "each layer widens the field by kernel − 1, not kernel: its k window positions lie jump pixels apart, so "
        "they reach (k − 1) · jump pixels beyond what one position sees",
        lambda layers: _receptive_field([(kernel + 1, stride) for kernel, stride in layers]),
    ),
    (
        "your jump is the last stride alone; it multiplies: after two layers of stride 2 one step spans 4 pixels",
        lambda layers: 1 + sum((kernel - 1) * (layers[i - 1][1] if i else 1) for i, (kernel, _) in enumerate(layers)),
    ),
    (
        "you read each pair as (stride, kernel); it is (kernel, stride), the kernel first",
        lambda layers: _receptive_field([(stride, kernel) for kernel, stride in layers]),
    ),
    (
        "you returned the field's area; return its width (the field is width × width pixels)",
        lambda layers: _receptive_field(layers) ** 2,
    ),
    (
        "you walked the layers from the last to the first; the list is in the order an image meets them",
        lambda layers: _receptive_field(layers[::-1]),
    ),
]

NET_LAYERS = [(3, 1), (2, 2), (3, 1), (2, 2), (3, 1), (2, 2)]  # c1, max-pool, c2, max-pool, c3, max-pool

FIELD_CASES = {
    "c1 alone ([(3, 1)])": [(3, 1)],
    "c1 and its max-pool ([(3, 1), (2, 2)])": [(3, 1), (2, 2)],
    "Net's three blocks ([(3, 1), (2, 2)] three times)": NET_LAYERS,
    "Net up to c3 (its last max-pool left out)": NET_LAYERS[:-1],
    "two 3×3 convolutions ([(3, 1), (3, 1)])": [(3, 1), (3, 1)],
    "a 5×5 convolution of stride 2 and then a 3×3 ([(5, 2), (3, 1)])": [(5, 2), (3, 1)],
    "a 1×1 convolution ([(1, 1)])": [(1, 1)],
    "no layers at all ([]: the image itself)": [],
    "VGG's start (two 3×3 convolutions, a max-pool, two more)": [(3, 1), (3, 1), (2, 2), (3, 1), (3, 1)],
    # a stride of 3, and a field wider than the image: once passed by a jump that only ever doubled, and by a
    # width cut at 28 (helper 119)
    "a 3×3 of stride 3 and then a 3×3 ([(3, 3), (3, 1)])": [(3, 3), (3, 1)],
    "four 5×5 convolutions of stride 2 ([(5, 2)] four times: wider than a 28×28 image)": [(5, 2)] * 4,
}


def _random_field_cases(generator: torch.Generator, count: int = 10) -> dict[str, list[tuple[int, int]]]:
    cases = {}
    while len(cases) < count:
        depth = int(torch.randint(1, 7, (), generator=generator))
        layers = [
            (int(torch.randint(1, 6, (), generator=generator)), int(torch.randint(1, 4, (), generator=generator)))
            for _ in range(depth)
        ]
        cases[f"hidden case: the layers {layers}"] = layers
    return cases


def _check_receptive_field(receptive_field, generator: torch.Generator | None = None) -> str:
    cases = dict(FIELD_CASES)
    if generator is not None:
        cases.update(_random_field_cases(generator))
    measures = "measures the field through real layers instead of computing it from the list"
    # measured by a gradient through real layers, not computed
    with _FunctionWatch("conv", "pool") as watch, _named_as_watched(watch, receptive_field, measures):
        answers = [
            as_number(
                call(
                    receptive_field,
                    list(layers),
                    case=case,
                    keep_input="read the list without changing it",
                ),
                "receptive_field",
                case,
            )
            for case, layers in cases.items()
        ]
    watch.refuse(receptive_field, measures)
    _explain(
        receptive_field,
        {case: (layers,) for case, layers in cases.items()},
        answers,
        _receptive_field,
        _FIELD_MISTAKES,
        same=_same_count,
        show=_show_count,
    )
    return (
        f"your receptive_field gives 22 for Net's three blocks (the centre value of block 3 sees 22 × 22 of the 28 × "
        f"28 image) and is right on all {len(cases)} cases."
    )


q5 = Exercise(
    "nb02.q5",
    _check_receptive_field,
    hint_text="Keep two numbers as you walk the list: the field's width (1 before any layer) and how many input "
    "pixels one step in the current map spans (1 at first). Which of the two does a layer's kernel widen, by how "
    "much, and which does its stride change?",
)


__getattr__ = missing_exercise(__name__, globals())
