"""The fused kernel computes what Net's layers compute: outputs, gradients and running statistics."""

import copy
import os
import shutil
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fmnist_lab import fused
from fmnist_lab.config import make_config
from fmnist_lab.fused import FusedNet, batchnorm_leaky_pool, new_net
from fmnist_lab.model import NEGATIVE_SLOPE, Net
from fmnist_lab.train import make_optimizer, train_step


@pytest.fixture(scope="module", autouse=True)
def built_kernel():
    """The kernel, built here; CI must build it (a C++ compiler is part of its machine), elsewhere no compiler skips."""
    if fused.kernel() is None:
        if os.environ.get("CI") or shutil.which("c++") or shutil.which("g++"):
            pytest.fail("the fused kernel did not build (see the warning above), though this machine has a compiler")
        pytest.skip("no C++ compiler here: the fused kernel cannot be built")


def layers(x, norm):
    return F.max_pool2d(F.leaky_relu(norm(x), NEGATIVE_SLOPE), 2)


def a_norm(channels: int, seed: int) -> nn.BatchNorm2d:
    """A BatchNorm layer in training mode with scales of both signs (a negative one makes the pool take the minimum)."""
    torch.manual_seed(seed)
    norm = nn.BatchNorm2d(channels)
    with torch.no_grad():
        norm.weight.uniform_(-1.5, 1.5)
        norm.bias.uniform_(-1, 1)
        norm.running_mean.uniform_(-1, 1)
    return norm.train()


def gradients(block, x, norm, grad):
    x = x.clone().requires_grad_()
    out = block(x, norm)
    return (out, *torch.autograd.grad(out, (x, norm.weight, norm.bias), grad))


@pytest.mark.parametrize(
    ("channels", "size", "layout", "integers"),
    [
        (32, 28, torch.channels_last, False),
        (64, 14, torch.contiguous_format, False),
        (128, 7, torch.channels_last, False),  # odd: the pool drops the last row and column, which still get gradients
        (8, 6, torch.channels_last, True),  # small integers: ties in most windows, where the first one wins
    ],
)
def test_float32_block_matches_the_layers(channels, size, layout, integers):
    torch.manual_seed(channels)
    x = torch.randn(12, channels, size, size) * 2 + 0.5
    if integers:
        x = x.round().clamp(-2, 2)
    x = x.contiguous(memory_format=layout)
    norm = a_norm(channels, seed=size)
    fused_norm = copy.deepcopy(norm)
    grad = torch.randn(12, channels, size // 2, size // 2)
    expected = gradients(layers, x, norm, grad)
    got = gradients(batchnorm_leaky_pool, x, fused_norm, grad)
    for name, value, right in zip(("output", "x's gradient", "weight's gradient", "bias's gradient"), got, expected):
        torch.testing.assert_close(value, right, rtol=1e-4, atol=1e-5, msg=name)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(fused_norm, name), getattr(norm, name), msg=name)


def test_bfloat16_gradient_is_closer_to_float64_than_the_layers_own():
    """In bfloat16 the layers round after each of them; the kernel computes in float32 and rounds once."""
    torch.manual_seed(0)
    norm = a_norm(32, seed=1)
    x = (torch.randn(64, 32, 28, 28) * 2 + 0.5).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    grad = torch.randn(64, 32, 14, 14).to(torch.bfloat16)
    exact = gradients(layers, x.double(), copy.deepcopy(norm).double(), grad.double())
    eager = gradients(layers, x, copy.deepcopy(norm), grad)
    kernel = gradients(batchnorm_leaky_pool, x, copy.deepcopy(norm), grad)

    def error(values, i):
        return ((values[i].double() - exact[i]).norm() / exact[i].norm()).item()

    assert error(kernel, 1) < 0.01  # x's gradient
    assert error(kernel, 1) < error(eager, 1)
    for i, name in enumerate(("output", "x's gradient", "weight's gradient", "bias's gradient")):
        assert error(kernel, i) <= max(error(eager, i), 0.004), name  # bfloat16 keeps 8 bits: 0.4% a value


def count_kernel_calls(monkeypatch) -> list:
    """A list that grows by one at each call of the kernel's forward: proof that FusedNet did not fall back."""
    calls, apply = [], fused.BatchNormLeakyPool.apply
    monkeypatch.setattr(fused.BatchNormLeakyPool, "apply", lambda *args: calls.append(1) or apply(*args))
    return calls


def test_fused_net_trains_as_net_does(monkeypatch):
    """Same weights, same random dropout masks (the same calls in the same order): the same steps, up to rounding.

    Two steps only: where two values of a pooling window lie within rounding of each other, either implementation may
    pick the other one, and later steps drift apart as two runs of one recipe on two machines do."""
    torch.manual_seed(0)
    net = Net().to(memory_format=torch.channels_last)
    fused_net = FusedNet().to(memory_format=torch.channels_last)
    fused_net.load_state_dict(net.state_dict())
    x, y = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    config = make_config("fast", lr=0.05, bf16=False)
    calls = count_kernel_calls(monkeypatch)
    losses = {}
    for model in (net, fused_net):
        torch.manual_seed(1)
        optimizer = make_optimizer(model, config)
        losses[type(model)] = [train_step(model.train(), x, y, optimizer, config) for _ in range(2)]
    assert len(calls) == 2 * 3  # two steps, three blocks: the kernel trained it
    assert losses[FusedNet] == pytest.approx(losses[Net], rel=1e-5)
    for (name, expected), value in zip(net.state_dict().items(), fused_net.state_dict().values()):
        torch.testing.assert_close(value, expected, rtol=1e-4, atol=1e-6, msg=name)


def test_evaluation_is_net_forward():
    torch.manual_seed(0)
    net = Net().eval()
    fused_net = FusedNet().eval()
    fused_net.load_state_dict(net.state_dict())
    x = torch.randn(5, 1, 28, 28)
    assert torch.equal(fused_net(x), net(x))


def test_new_net_follows_the_config():
    assert type(new_net(make_config("fast"))) is FusedNet
    assert type(new_net(make_config("fast", fused=False))) is Net
    assert type(new_net(make_config("report"))) is Net  # the report's layers, as it ran them


def test_a_machine_that_cannot_build_it_warns_once_and_trains_the_layers(monkeypatch):
    from torch.utils import cpp_extension

    def no_compiler(**kwargs):
        raise RuntimeError("Error building extension 'fmnist_lab_fused_block': c++: command not found")

    monkeypatch.setattr(cpp_extension, "load", no_compiler)
    fused.kernel.cache_clear()
    try:
        with pytest.warns(
            UserWarning, match=r"could not be built \(Error building extension.*apt install g\+\+.*--no-fused"
        ):
            assert fused.kernel() is None
        model = FusedNet().train()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # said once: not again at each step
            torch.manual_seed(2)
            out = model(torch.randn(4, 1, 28, 28))
        torch.manual_seed(2)
        assert torch.equal(out, Net.forward(model, torch.randn(4, 1, 28, 28)))
    finally:
        fused.kernel.cache_clear()  # the next test builds (loads) the real kernel again


def test_off_linux_it_trains_the_layers_without_trying(monkeypatch):
    from torch.utils import cpp_extension

    def must_not_build(**kwargs):
        raise AssertionError("built off Linux")

    monkeypatch.setattr(cpp_extension, "load", must_not_build)
    monkeypatch.setattr(fused.sys, "platform", "darwin")
    fused.kernel.cache_clear()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert fused.kernel() is None
    finally:
        fused.kernel.cache_clear()


def test_a_channel_whose_mean_dwarfs_its_spread_is_normalised_as_float64_does():
    """The statistics are summed about each channel's first value: E[x^2] - E[x]^2 in float32 lost the variance
    at a mean of 1000 and a spread of 1 (13% off, helper 121)."""
    torch.manual_seed(0)
    norm = a_norm(8, seed=3)
    x = (torch.randn(64, 8, 28, 28) + 1000).contiguous(memory_format=torch.channels_last)
    grad = torch.randn(64, 8, 14, 14)
    exact_norm = copy.deepcopy(norm).double()
    exact = gradients(layers, x.double(), exact_norm, grad.double())
    fused_norm = copy.deepcopy(norm)
    got = gradients(batchnorm_leaky_pool, x, fused_norm, grad)
    for name, value, right in zip(("output", "x's gradient", "weight's gradient", "bias's gradient"), got, exact):
        assert ((value.double() - right).norm() / right.norm()).item() < 2e-3, name
    torch.testing.assert_close(fused_norm.running_var.double(), exact_norm.running_var, rtol=1e-4, atol=0)


def test_a_zero_scale_takes_the_windows_first_value_as_the_pool_does():
    """gamma 0: every output of a window is beta; PyTorch's pool takes the first, and gamma's gradient follows it."""
    torch.manual_seed(0)
    norm = a_norm(4, seed=4)
    with torch.no_grad():
        norm.weight[1:3] = 0
    x = torch.randn(6, 4, 8, 8).contiguous(memory_format=torch.channels_last)
    grad = torch.randn(6, 4, 4, 4)
    expected = gradients(layers, x, copy.deepcopy(norm), grad)
    got = gradients(batchnorm_leaky_pool, x, copy.deepcopy(norm), grad)
    for value, right in zip(got, expected):
        torch.testing.assert_close(value, right, rtol=1e-4, atol=1e-5)


def test_sizes_the_pool_cannot_take_are_refused():
    norm = a_norm(4, seed=5)
    with pytest.raises(RuntimeError, match="at least one image of at least 2 x 2 values"):
        batchnorm_leaky_pool(torch.randn(2, 4, 1, 5), norm)


@pytest.mark.parametrize(
    "change",
    [
        lambda model: model.b2.eval(),  # a frozen BatchNorm: running statistics, not the batch's
        lambda model: model.double(),
        lambda model: setattr(model.b3, "momentum", None),  # a cumulative average
    ],
    ids=["frozen BatchNorm", "float64", "momentum None"],
)
def test_what_the_kernel_does_not_compute_trains_as_net(change, monkeypatch):
    torch.manual_seed(0)
    net, fused_net = Net().train(), FusedNet().train()
    fused_net.load_state_dict(net.state_dict())
    for model in (net, fused_net):
        change(model)
        model.drop_2d.eval()
        model.drop.eval()
    calls = count_kernel_calls(monkeypatch)
    x = torch.randn(4, 1, 28, 28, dtype=next(net.parameters()).dtype)
    assert torch.equal(fused_net(x), net(x))
    assert calls == []
    for name, value in fused_net.state_dict().items():
        assert torch.equal(value, net.state_dict()[name]), name
