"""``FusedNet``: the report's network, trained on the CPU through one compiled kernel per block.

``Net`` runs each block as PyTorch's layers, BatchNorm -> LeakyReLU -> max-pool, which pass over the block's
activations about a dozen times in a training step; on a CPU whose convolutions are fast (bfloat16 on AMX) those
passes took half the step (README, "Throughput"). ``fused_block.cpp`` computes the same three layers in
three passes, forward and backward. ``FusedNet`` is ``Net`` with the same layers and weights (checkpoints and
``state_dict`` are interchangeable); only its training-mode forward on the CPU calls the kernel, and everything
else, evaluation included, is ``Net.forward``.

The kernel is compiled on Linux the first time a process needs it (about 30 s, once per machine: PyTorch caches
the build). Where it cannot be built (no C++ compiler with OpenMP), the lab warns once and trains ``Net``'s layers:
the same network, slower; on macOS and Windows, where it is untested, it trains them without trying.
``TrainConfig(fused=False)`` (``--no-fused``) trains ``Net``'s layers anywhere.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import platform
import sys
from pathlib import Path
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from .config import TrainConfig
from .errors import warn
from .model import NEGATIVE_SLOPE, Net

SOURCE = Path(__file__).with_name("fused_block.cpp")


@functools.cache
def kernel() -> ModuleType | None:
    """The compiled kernel, built on first use; None off Linux, and (after one warning) where it cannot be built."""
    if sys.platform != "linux":  # built and tested with GCC and OpenMP on Linux only: elsewhere PyTorch's layers
        return None
    # imported here: it takes a second, and only training needs it; quietly: PyTorch built for CUDA logs "No CUDA
    # runtime is found" on a machine with a CUDA toolkit and no GPU, a warning about nothing this kernel uses
    extension_log = logging.getLogger("torch.utils.cpp_extension")
    level = extension_log.level
    extension_log.setLevel(logging.ERROR)
    try:
        from torch.utils import cpp_extension
    finally:
        extension_log.setLevel(level)
    try:
        _put_ninja_on_path()
        return cpp_extension.load(
            name=f"fmnist_lab_fused_block_{_build_tag()}",
            sources=[str(SOURCE)],
            extra_cflags=["-O3", "-march=native", "-fopenmp"],  # the CPU's own vector instructions, OpenMP threads
            extra_ldflags=["-fopenmp"],
            verbose=False,
        )
    except Exception as err:  # a missing compiler shows as OSError, RuntimeError or CalledProcessError
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        warn(
            f"The fused training kernel could not be built ({reason}); training uses PyTorch's layers instead: the "
            "same network, slower. Install a C++ compiler with OpenMP (Debian or Ubuntu: apt install g++) to build "
            "it, or train with fused=False (--no-fused) to skip this."
        )
        return None


def _build_tag() -> str:
    """A short hash of what the build depends on. The CPU's features: -march=native code built on one machine of a
    shared home folder must not be loaded on another whose CPU lacks some of them. The source file's path and text,
    this Python's environment and PyTorch's version: the builder's cache folder is named by the extension alone, and
    two checkouts or environments sharing one name rebuild it each time they take turns (about 30 s)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        features = next(line for line in lines if line.startswith(("flags", "Features")))  # x86, Arm
    except (OSError, StopIteration):
        features = platform.processor() or platform.machine()
    depends_on = [features, str(SOURCE), SOURCE.read_text(), sys.prefix, torch.__version__]
    return hashlib.sha256("\n".join(depends_on).encode()).hexdigest()[:10]


def _put_ninja_on_path() -> None:
    """PyTorch's builder runs ``ninja`` from PATH; the ``ninja`` package installs it beside this Python, which is
    not on PATH when the environment is not activated (``.venv/bin/python``, a Jupyter kernel)."""
    here = str(Path(sys.executable).parent)
    if here not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = here + os.pathsep + os.environ.get("PATH", "")


class BatchNormLeakyPool(torch.autograd.Function):
    """``max_pool2d(leaky_relu(batch_norm(x), NEGATIVE_SLOPE), 2)`` in training mode; the running statistics are
    updated in place, as ``nn.BatchNorm2d`` updates them."""

    @staticmethod
    def forward(
        ctx,
        x: Tensor,
        weight: Tensor,
        bias: Tensor,
        running_mean: Tensor,
        running_var: Tensor,
        momentum: float,
        eps: float,
    ) -> Tensor:
        out, chosen, where, mean, invstd = kernel().forward(
            x, weight, bias, running_mean, running_var, momentum, eps, NEGATIVE_SLOPE
        )
        ctx.save_for_backward(x, chosen, where, mean, invstd, weight, bias)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        grad_x, grad_weight, grad_bias = kernel().backward(grad, *ctx.saved_tensors, NEGATIVE_SLOPE)
        return grad_x, grad_weight, grad_bias, None, None, None, None


def batchnorm_leaky_pool(x: Tensor, norm: nn.BatchNorm2d) -> Tensor:
    """``F.max_pool2d(F.leaky_relu(norm(x), NEGATIVE_SLOPE), 2)`` with ``norm`` in training mode, in one kernel."""
    norm.num_batches_tracked.add_(1)
    return BatchNormLeakyPool.apply(
        x, norm.weight, norm.bias, norm.running_mean, norm.running_var, norm.momentum, norm.eps
    )


class FusedNet(Net):
    """``Net``, whose blocks train through the fused kernel on the CPU. Same layers, weights and function."""

    def forward(self, x: Tensor) -> Tensor:
        if not self._fusable(x):
            return super().forward(x)
        for conv, norm in ((self.c1, self.b1), (self.c2, self.b2), (self.c3, self.b3)):
            x = self.drop_2d(batchnorm_leaky_pool(conv(x), norm))
        x = self.drop(F.leaky_relu(self.fc_1(x.flatten(1)), NEGATIVE_SLOPE))
        return F.log_softmax(self.fc_2(x), dim=1)

    def _fusable(self, x: Tensor) -> bool:
        """Training on the CPU in float32 or bfloat16 autocast, with the three BatchNorm layers as built and training
        (not SyncBatchNorm, a cumulative average, a frozen layer or another dtype), and the kernel at hand."""
        autocast_ok = not torch.is_autocast_enabled("cpu") or torch.get_autocast_dtype("cpu") == torch.bfloat16
        return (
            self.training
            and x.device.type == "cpu"
            and x.dtype == torch.float32
            and len(x) > 0
            and autocast_ok
            and all(self._as_built(norm) for norm in (self.b1, self.b2, self.b3))
            and kernel() is not None
        )

    @staticmethod
    def _as_built(norm: nn.Module) -> bool:
        return (
            type(norm) is nn.BatchNorm2d
            and norm.training
            and norm.affine
            and norm.track_running_stats
            and norm.momentum is not None
            and norm.weight.dtype == norm.running_var.dtype == torch.float32
        )


def new_net(config: TrainConfig) -> Net:
    """A new network to train with ``config``: ``FusedNet`` where ``config.fused`` asks for it, else ``Net``."""
    return FusedNet() if config.fused else Net()
