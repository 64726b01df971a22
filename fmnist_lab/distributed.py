"""Data-parallel training on several processes: PyTorch's ``torch.distributed`` and ``DistributedDataParallel``.

``torchrun --nproc-per-node N -m fmnist_lab train ...`` starts N copies of the command; each
joins one process group (``process_group``), holds a replica of the network and trains on its
own shard of every epoch (``shard``). ``DistributedDataParallel`` (DDP) averages the gradients
of all replicas with an all-reduce after every backward pass, so every replica takes the same
SGD step: apart from the per-process BatchNorm statistics and dropout masks, the step one process
would take on the whole global batch. ``fmnist-lab train
--nproc N`` runs torchrun for you (``launch``).

What each rank does, and why:

- the backend is gloo on the CPU and nccl on CUDA, one process per GPU (``LOCAL_RANK`` picks it);
- ``batch_size`` is the *global* batch: each of N ranks takes ``batch_size / N`` images per step;
- BatchNorm keeps per-process statistics, as the report's network does on one device, unless
  ``sync_bn`` turns its layers into ``nn.SyncBatchNorm`` (GPUs only: PyTorch has no CPU version);
- rank 0 alone writes the run folder, the log and the progress bar; it also computes the
  validation metrics and broadcasts them, so early stopping decides the same on every rank;
- dropout draws differ between ranks: each rank reseeds at every epoch from (seed, epoch, rank).
"""

from __future__ import annotations

import codecs
import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from .errors import ConfigError, LabError
from .model import model_device

if TYPE_CHECKING:
    from .config import TrainConfig

T = TypeVar("T")
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


class RankZeroFailed(LabError, RuntimeError):
    """Rank 0 stopped with an error while the other ranks waited for its result."""


def launched_by_torchrun() -> bool:
    """True in a process that torchrun (or any launcher setting its variables) started."""
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


def is_active() -> bool:
    """True while this process belongs to a process group (between ``process_group``'s start and end)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank: 0 when training is not distributed."""
    return dist.get_rank() if is_active() else 0


def world_size() -> int:
    """The number of processes training together: 1 when training is not distributed."""
    return dist.get_world_size() if is_active() else 1


def is_main() -> bool:
    """Rank 0, the process that writes files and logs (any process outside a group is its own rank 0)."""
    return rank() == 0


def shard(order: Tensor, rank: int, world_size: int) -> Tensor:
    """Rank ``rank``'s share of one epoch's ``order``: ``DistributedSampler``'s rule.

    The order is padded by repeating its start until its length divides by ``world_size``, and
    rank r takes positions r, r + N, r + 2N, ...: the shards are disjoint (apart from the
    padding), together they are the epoch, and all have the same length, so no rank waits at
    the end of an epoch for a step the others do not take.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in 0..{world_size - 1}, got {rank}")
    return pad_to_multiple(order, world_size)[rank::world_size]


def pad_to_multiple(order: Tensor, world_size: int) -> Tensor:
    """``order`` with its start repeated at its end until its length is a multiple of ``world_size``."""
    padding = -len(order) % world_size
    if padding == 0:
        return order
    return torch.cat([order, order.repeat(padding // len(order) + 1)[:padding]])


def check_settings(config: TrainConfig, processes: int, processes_here: int | None = None) -> None:
    """Refuse, before any process starts, settings that cannot train on ``processes`` processes.

    ``processes_here``: the processes on this machine (one per GPU on CUDA); default all of them.
    """
    here = processes if processes_here is None else processes_here
    problems = []
    if config.batch_size % processes:
        problems.append(
            (
                "batch_size",
                config.batch_size,
                f"is the global batch, split evenly over the {processes} processes: use a multiple of {processes}",
            )
        )
    if processes > 1 and sys.platform == "win32":
        problems.append(
            (
                "nproc",
                processes,
                "torchrun does not start on PyTorch's Windows builds (its rendezvous needs libuv, which they "
                "lack: pytorch#139990): train in one process, or under WSL or Linux",
            )
        )
    device = torch.device(config.device)  # resolved by TrainConfig
    if device.type == "mps":
        problems.append(("device", config.device, "torch.distributed does not train on Apple's MPS; use cpu"))
    if device.type == "cuda" and here > torch.cuda.device_count():
        problems.append(
            (
                "device",
                config.device,
                f"{here} processes on this machine need one GPU each, but PyTorch sees "
                f"{torch.cuda.device_count()}: start fewer processes, or train on the CPU (device cpu)",
            )
        )
    if device.type == "cuda" and device.index is not None and processes > 1:
        problems.append(
            (
                "device",
                config.device,
                "each process trains on the GPU of its own rank on this machine, so one GPU named for all of them "
                "would hold them all: give cuda, without an index",
            )
        )
    if config.sync_bn and device.type == "cpu":  # even one: torchrun's group of one would convert the layers
        problems.append(
            (
                "sync_bn",
                True,
                "PyTorch's SyncBatchNorm runs on GPUs only; on the CPU drop it (each "
                "process then keeps its own BatchNorm statistics)",
            )
        )
    if problems:
        raise ConfigError(problems)


@contextlib.contextmanager
def process_group(config: TrainConfig) -> Iterator[None]:
    """Join the group that torchrun started, train inside the ``with``, leave at its end.

    Outside torchrun this does nothing, so the same code trains on one process. On CUDA,
    ``LOCAL_RANK`` picks this process's GPU and the backend is nccl; elsewhere gloo.
    """
    if not launched_by_torchrun():
        yield
        return
    check_settings(config, int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_WORLD_SIZE"]))
    device = torch.device(config.device)
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))  # "cuda" now means this process's own GPU
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield
    finally:
        dist.destroy_process_group()


def wrap(model: nn.Module, sync_bn: bool = False) -> nn.Module:
    """The module that trains: ``model`` inside DistributedDataParallel in a group, else ``model`` itself.

    ``model`` stays the plain network whose ``state_dict`` is saved (no ``module.`` prefixes);
    the wrapper shares its parameters. ``sync_bn`` swaps its BatchNorm layers for SyncBatchNorm
    in place (same parameters and buffers, so the checkpoint keys do not change).
    """
    if not is_active():
        return model
    if sync_bn:
        for name, child in list(model.named_children()):
            setattr(model, name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
    device = model_device(model)
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def _collective_device() -> torch.device:
    """nccl reduces tensors on the GPU, gloo on the CPU."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def mean_over_ranks(value: float) -> float:
    """The mean of ``value`` over all ranks (``value`` itself outside a group)."""
    if not is_active():
        return value
    total = torch.tensor([value], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(total)
    return float(total) / world_size()


def sync_buffers(model: nn.Module) -> None:
    """Give every rank rank 0's buffers (BatchNorm's running statistics).

    DistributedDataParallel sends rank 0's buffers to every rank before each forward pass, and
    each rank's forward then updates them with its own batch: after an epoch's last step the ranks
    differ by that one update. After this, every rank holds the model that rank 0 validates and saves.
    """
    if is_active():
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def seed_epoch(seed: int, epoch: int) -> None:
    """Seed this rank's dropout for ``epoch`` from (seed, epoch, rank), in a group only.

    Different on every rank (replicas with the same masks would waste the extra images' noise),
    and a function of the epoch, so a resumed run draws what the uninterrupted one would have.
    """
    if is_active():
        torch.manual_seed(hash((seed, epoch, rank())) & (2**63 - 1))  # a tuple of ints hashes the same every run


def from_rank_zero(compute: Callable[[], T]) -> T:
    """``compute()`` on rank 0, its result sent to every rank (just ``compute()`` outside a group).

    For what must be decided once: the LR, the run id, the state to resume, the validation
    metrics. If rank 0 fails, the others raise RankZeroFailed instead of waiting forever.
    """
    if not is_active():
        return compute()
    box: list[Any] = [None]
    if is_main():
        try:
            box[0] = ("ok", compute())
        except BaseException as err:
            dist.broadcast_object_list([("error", f"{type(err).__name__}: {err}")], src=0)
            raise
    dist.broadcast_object_list(box, src=0)
    status, value = box[0]
    if status == "error":
        raise RankZeroFailed(f"rank 0 stopped ({value}); rank {rank()} stops with it")
    return value


def torchrun_command(argv: list[str], processes: int) -> list[str]:
    """``python -m torch.distributed.run`` running ``python -m fmnist_lab *argv`` on ``processes`` processes.

    ``--nproc`` is left out of what each rank gets: the ranks run under torchrun already, and
    torchrun itself would take ``--nproc`` for an abbreviation of its ``--nproc-per-node``.
    """
    passed_on = [
        arg
        for i, arg in enumerate(argv)
        if not (arg == "--nproc" or arg.startswith("--nproc=") or (i > 0 and argv[i - 1] == "--nproc"))
    ]
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={processes}",
        "-m",
        "fmnist_lab",
        *passed_on,
    ]


def launch(argv: list[str], processes: int, out: Path) -> int:
    """Run ``fmnist-lab *argv`` on ``processes`` processes under torchrun; its exit status.

    torchrun's and the ranks' output pass through. When a rank fails, torchrun stops the
    others; the last line printed then names the rank and what the run folder holds.
    """
    env = dict(os.environ)
    # torchrun would set 1 thread per process and warn about it; share this machine's cores instead
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes)))
    decoder, tail = codecs.getincrementaldecoder("utf-8")(errors="replace"), ""
    last_before = _last_saved(out)  # an old run's: what this run writes is told apart from it
    with subprocess.Popen(torchrun_command(argv, processes), stderr=subprocess.PIPE, env=env) as child:
        try:
            while chunk := os.read(child.stderr.fileno(), 65536):
                text = decoder.decode(chunk)
                sys.stderr.write(text)  # chunks, not lines: the progress bar's \r updates stay live
                sys.stderr.flush()
                tail = (tail + text)[-65536:]
            returncode = child.wait()
        except KeyboardInterrupt:  # Ctrl-C, or a SIGTERM to this process: torchrun stops its ranks
            child.send_signal(signal.SIGTERM)
            child.wait()
            raise
    if returncode != 0:
        print(failure_message(tail, out, processes, last_before), file=sys.stderr)
    return returncode


def _last_saved(out: Path) -> int | None:
    """When ``out/last.pt`` was last written (ns), or None where there is none."""
    try:
        return (out / "last.pt").stat().st_mtime_ns
    except FileNotFoundError:
        return None


def failed_rank(torchrun_output: str) -> tuple[int, int] | None:
    """(rank, exit code) of the first failure that torchrun reports, None if it reports none.

    A negative exit code is the signal that ended the process (-9: SIGKILL).
    """
    root = torchrun_output.rpartition("Root Cause (first observed failure)")[2]
    found = re.search(r"rank\s*:\s*(\d+).*?exitcode\s*:\s*(-?\d+)", root, re.S)
    return (int(found[1]), int(found[2])) if found else None


def failure_message(torchrun_output: str, out: Path, processes: int, last_before: int | None = None) -> str:
    """One sentence: which rank ended the run, how, and what the run folder holds.

    ``last_before``: ``out/last.pt``'s time before the run started (an old run's, which an overwrite puts back when
    the new run saved no epoch): only a last.pt this run wrote is offered to resume.
    """
    failure = failed_rank(torchrun_output)
    if failure is None:
        what = "torchrun stopped the run (its output above says why)"
    else:
        rank_, code = failure
        how = (
            f"was killed by {signal.Signals(-code).name}"
            if code < 0 and -code in signal.valid_signals()
            else f"stopped with exit code {code} (its error is above)"
        )
        what = f"the process of rank {rank_} {how}, and torchrun stopped the other processes"
    if _last_saved(out) not in (None, last_before):
        return (
            f"fmnist-lab train: {what}. {out} holds the last completed epoch (every file is written whole or "
            f"not at all); continue with `fmnist-lab train --resume {out} --nproc {processes}`."
        )
    return f"fmnist-lab train: {what}. No epoch had completed, so there is nothing to resume in {out}."
