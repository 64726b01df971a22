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
    exact = gradients(layers, x.double(), copy.deepcopy(norm).double(), grad.double())[1]
    eager = gradients(layers, x, copy.deepcopy(norm), grad)[1]
    kernel = gradients(batchnorm_leaky_pool, x, copy.deepcopy(norm), grad)[1]

    def error(value):
        return ((value.double() - exact).norm() / exact.norm()).item()

    assert error(kernel) < 0.01
    assert error(kernel) < error(eager)


def test_fused_net_trains_as_net_does():
    """Same weights, same random dropout masks (the same calls in the same order): the same steps, up to rounding.

    Two steps only: where two values of a pooling window lie within rounding of each other, either implementation may
    pick the other one, and later steps drift apart as two runs of one recipe on two machines do."""
    torch.manual_seed(0)
    net = Net().to(memory_format=torch.channels_last)
    fused_net = FusedNet().to(memory_format=torch.channels_last)
    fused_net.load_state_dict(net.state_dict())
    x, y = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    config = make_config("fast", lr=0.05, bf16=False)
    losses = {}
    for model in (net, fused_net):
        torch.manual_seed(1)
        optimizer = make_optimizer(model, config)
        losses[type(model)] = [train_step(model.train(), x, y, optimizer, config) for _ in range(2)]
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
