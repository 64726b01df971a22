"""Where the tensors live and in which precision: the device, and bfloat16 where the hardware runs it natively;
and how the process keeps the memory a training step frees (glibc's malloc thresholds)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from pathlib import Path

import torch
from torch import Tensor

from .errors import ConfigError
from .quick import env_switch, switch_at_import

# mallopt's parameter numbers (glibc's malloc.h) and the values the lab sets
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 * 2**20  # blocks from 32 MiB up are mapped on their own: the largest threshold glibc picks itself
TRIM_THRESHOLD = 2**30  # the heap gives memory back to the kernel once 1 GiB of it lies free at its top


def pick_device(name: str = "auto") -> torch.device:
    """CUDA, then Apple's MPS, then the CPU; or the device you name."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ConfigError([("device", name, "not a device name; use auto, cpu, cuda or mps")]) from err
    if device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError([("device", name, "not a device the lab trains on; use auto, cpu, cuda or mps")])
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError([("device", name, "PyTorch sees no CUDA GPU here; use cpu or auto")])
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise ConfigError([("device", name, f"PyTorch sees {count} GPU(s) here, cuda:0 to cuda:{count - 1}")])
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError([("device", name, "Apple's MPS is not available here; use cpu or auto")])
    return device


def to_device(x: Tensor, y: Tensor, device: torch.device, channels_last: bool) -> tuple[Tensor, Tensor]:
    """Move a batch to ``device``; images optionally in channels-last layout (faster convolutions)."""
    x = x.to(device, non_blocking=True)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y.to(device, non_blocking=True)


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """bfloat16 autocast where the hardware runs bf16 natively, else nothing (float32)."""
    if bf16 and bf16_is_native(device):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def bf16_is_native(device: torch.device) -> bool:
    """GPUs from Ampere on (compute capability 8.0), CPUs with AVX512-BF16 or AMX.

    Not ``torch.cuda.is_bf16_supported()``: it also says yes where bf16 is only emulated
    (Colab's T4, capability 7.5), which is slower than float32. ``FMNIST_LAB_BF16=0`` answers
    no everywhere, so a machine with native bf16 can time what most laptops run (float32).
    """
    if not bf16_allowed():
        return False
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device) >= (8, 0)
    if device.type == "cpu":
        return torch.backends.mkldnn.is_available() and _cpu_has_native_bf16()
    return False


def bf16_allowed() -> bool:
    """False when the environment variable ``FMNIST_LAB_BF16`` is 0; unset or 1, the hardware decides.

    Read at each call, not at import, so a notebook or test can set it after importing the lab.
    """
    return env_switch("FMNIST_LAB_BF16", True, "float32 everywhere", "bfloat16 where native")


def _cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep the memory a training step frees, for the next step. The lab calls it as it is imported.

    By default glibc hands the top of its heap back to the kernel as soon as more than 64 MiB lie
    free there (twice its mmap threshold, 32 MiB at most). A training step frees its activations all at
    once as it ends, about 100 MB at batch 256, and the next step takes them back page by page, each
    page faulted in and zeroed by the kernel: thousands of page faults a step, in stretches. Fixing
    both thresholds keeps that memory in the process for reuse: an epoch of the lab's step ran 1.07x
    as fast with bf16 and 1.14x in float32 (``benchmarks/freed_memory.py``). The cost: the process
    holds on to up to 1 GiB it no longer uses.

    Returns whether it was applied: not where the C library is not glibc (macOS, Windows, musl),
    nor when ``FMNIST_LAB_KEEP_MEMORY=0`` keeps glibc's defaults (to measure them).
    """
    if not switch_at_import(
        "FMNIST_LAB_KEEP_MEMORY", True, "glibc's defaults", "freed memory kept for the next training step"
    ):
        return False
    if sys.platform != "linux" or "CS_GNU_LIBC_VERSION" not in getattr(os, "confstr_names", {}):
        return False
    libc = ctypes.CDLL("libc.so.6")
    # both, or glibc drops its adaptive mmap threshold to 128 KiB and maps every tensor anew
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
