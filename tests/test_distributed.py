"""Data-parallel training: sharding, equivalence with one process, resume, the CLI on 2 processes, a dying rank.

The multi-process tests run 2 CPU processes with the gloo backend on tiny sizes.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import DistributedSampler

from fmnist_lab import distributed
from fmnist_lab.checkpoint import read_checkpoint
from fmnist_lab.cli import main
from fmnist_lab.config import TrainConfig
from fmnist_lab.data import Batches, make_splits
from fmnist_lab.errors import ConfigError
from fmnist_lab.experiment import resume, run
from fmnist_lab.model import Net
from fmnist_lab.run_folder import RUN_FILES, RunFolder
from fmnist_lab.train import fit

from .conftest import tiny_dataset

REPO = Path(__file__).resolve().parent.parent


# --- sharding ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n, world_size", [(12, 2), (13, 2), (10, 3), (2, 4)])
def test_shards_are_disjoint_equal_and_cover_the_epoch(n, world_size):
    order = torch.randperm(n, generator=torch.Generator().manual_seed(n))
    shards = [distributed.shard(order, r, world_size) for r in range(world_size)]
    assert len({len(s) for s in shards}) == 1  # no rank waits for a step the others skip
    assert len(shards[0]) == -(-n // world_size)
    together = torch.cat(shards)
    assert set(together.tolist()) == set(order.tolist())  # the union is the epoch
    assert len(together) - n == -n % world_size  # what repeats is the padding, nothing more
    if n % world_size == 0:
        assert len(set(together.tolist())) == len(together)  # disjoint


@pytest.mark.parametrize("shuffle", [False, True])
def test_shards_follow_distributed_sampler(shuffle):
    n, world_size, seed = 11, 3, 5
    for r in range(world_size):
        sampler = DistributedSampler(range(n), num_replicas=world_size, rank=r, shuffle=shuffle, seed=seed)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)) if shuffle else torch.arange(n)
        assert distributed.shard(order, r, world_size).tolist() == list(sampler)


@pytest.mark.parametrize("augment", [{}, {"max_shift": 2, "flip": True}])
def test_rank_batches_put_together_are_the_single_process_batches(augment):
    images, labels = torch.randn(96, 1, 28, 28), torch.arange(96)
    single = list(Batches(images, labels, 32, shuffle=True, seed=3, **augment))
    ranks = [list(Batches(images, labels, 32, shuffle=True, seed=3, rank=r, world_size=2, **augment)) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == len(single) == 3
    for step, (x, y) in enumerate(single):
        (x0, y0), (x1, y1) = ranks[0][step], ranks[1][step]
        assert len(y0) == len(y1) == 16  # the global batch of 32, split in two
        assert torch.equal(y0, y[0::2]) and torch.equal(y1, y[1::2])
        assert torch.equal(x0, x[0::2]) and torch.equal(x1, x[1::2])  # augmented alike, too


def test_an_uneven_epoch_is_padded_and_every_rank_takes_the_same_steps():
    images, labels = torch.randn(25, 1, 28, 28), torch.arange(25)
    ranks = [Batches(images, labels, 8, shuffle=True, rank=r, world_size=2) for r in (0, 1)]
    sizes = [[len(y) for _, y in batches] for batches in ranks]
    assert sizes[0] == sizes[1] == [4, 4, 4, 1] and len(ranks[0]) == 4
    seen = torch.cat([y for batches in ranks for _, y in batches])
    assert set(seen.tolist()) == set(range(25)) and len(seen) == 26  # one image repeats to pad 25 to 26


def test_a_global_batch_that_does_not_split_is_refused():
    with pytest.raises(ValueError, match="batch_size 100 .* does not split evenly over 3 processes"):
        Batches(torch.zeros(10, 1, 28, 28), torch.zeros(10), 100, world_size=3)
    with pytest.raises(ConfigError, match="use a multiple of 3"):
        distributed.check_settings(TrainConfig(batch_size=100, device="cpu"), 3)


def test_sync_bn_on_the_cpu_is_refused_with_the_fix():
    with pytest.raises(ConfigError, match="SyncBatchNorm runs on GPUs only; on the CPU drop it"):
        distributed.check_settings(TrainConfig(sync_bn=True, device="cpu"), 2)
    with pytest.raises(ConfigError, match="SyncBatchNorm runs on GPUs only"):  # --nproc 1 used to crash in training
        distributed.check_settings(TrainConfig(sync_bn=True, device="cpu"), 1)


def test_one_gpu_named_for_every_process_is_refused(monkeypatch):
    # each rank would have trained on cuda:1 (helper 97); two GPUs stand in here, as the CPU machine has none
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ConfigError, match="device='cuda:1': each process trains on the GPU of its own rank"):
        distributed.check_settings(TrainConfig(device="cuda:1"), 2)
    distributed.check_settings(TrainConfig(device="cuda"), 2)
    distributed.check_settings(TrainConfig(device="cuda:1"), 1)


def test_the_launcher_hands_the_command_on_without_nproc():
    argv = ["train", "--nproc", "2", "--epochs", "1", "--nproc=2", "--out", "x"]
    command = distributed.torchrun_command(argv, 2)
    assert command[:6] == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m"]
    assert command[6:] == ["fmnist_lab", "train", "--epochs", "1", "--out", "x"]


def test_the_launcher_passes_torchruns_output_on_and_closes_its_pipe(tmp_path, capsys, monkeypatch):
    stand_in = "import sys; sys.stderr.write('rank 0: épocas\\n'); sys.exit(3)"  # torchrun's place: a line, a failure
    monkeypatch.setattr(distributed, "torchrun_command", lambda argv, processes: [sys.executable, "-c", stand_in])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        assert distributed.launch(["train"], 2, tmp_path) == 3
        gc.collect()
    assert "rank 0: épocas" in capsys.readouterr().err
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)], [str(w.message) for w in caught]


def test_on_windows_several_processes_are_refused_before_torchrun_fails(tmp_path, capsys, monkeypatch):
    # PyTorch's Windows builds lack libuv, which torchrun's rendezvous store needs whatever USE_LIBUV says
    monkeypatch.setattr(distributed, "launch", lambda *a: pytest.fail("torchrun started"))
    monkeypatch.setattr(distributed.sys, "platform", "win32")
    distributed.check_settings(TrainConfig(device="cpu"), 1)
    assert main(["train", "--nproc", "2", "--device", "cpu", "--out", str(tmp_path)]) == 1
    assert "--nproc 2: torchrun does not start on PyTorch's Windows builds" in capsys.readouterr().err


# --- several processes in this test: equivalence and resume --------------------------------------------------------


class FrozenNormNet(Net):
    """The lab's network with BatchNorm and dropout held in eval mode while it trains.

    BatchNorm then normalises with fixed statistics, so its output for an image does not depend
    on the other images of the batch: 2 x 64 images can give exactly the gradient of 128.
    """

    def train(self, mode: bool = True) -> FrozenNormNet:
        super().train(mode)
        for module in self.modules():
            if isinstance(module, (nn.BatchNorm2d, nn.Dropout, nn.Dropout2d)):
                module.eval()
        return self


def quiet(line: str) -> None:
    """No log lines from the tests' runs."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def in_process_group(rank: int, world_size: int, port: int, work, data, config: TrainConfig, path: Path) -> None:
    """``work(data, config, path)`` as rank ``rank`` of a gloo group, with the variables torchrun would set."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_WORLD_SIZE=str(world_size),
    )
    torch.set_num_threads(1)  # the processes share the test machine's cores
    with distributed.process_group(config):
        work(data, config, path)


def on_processes(processes: int, work, data, config: TrainConfig, path: Path) -> None:
    """``work(data, config, path)`` on ``processes`` processes of one group (gloo on CPU, nccl on CUDA)."""
    mp.spawn(in_process_group, args=(processes, free_port(), work, data, config, path), nprocs=processes, join=True)


def train_frozen_norm_net(data, config: TrainConfig, result_file: Path) -> None:
    torch.manual_seed(0)
    model = FrozenNormNet()
    history = fit(model, make_splits(data, config), config, progress=False, log=quiet)
    torch.save(
        {"weights": model.state_dict(), "history": dataclasses.asdict(history)},
        result_file.with_suffix(f".rank{distributed.rank()}"),
    )


def train_interrupt_and_resume(data, config: TrainConfig, folder: Path) -> None:
    whole = run(config, data, folder / "whole", progress=False, log=quiet)

    def stop(state) -> None:
        raise KeyboardInterrupt  # as Ctrl-C would, on every rank after epoch 1

    with pytest.raises(KeyboardInterrupt):  # it must come: a run that finished would "resume" by doing nothing
        run(config, data, folder / "resumed", progress=False, log=quiet, on_epoch_end=stop)
    if distributed.is_main():  # rank 0 wrote last.pt before its on_epoch_end ran
        assert read_checkpoint(folder / "resumed" / "last.pt")["metrics"]["epoch"] == 1  # of config.epochs = 2
    resumed = resume(folder / "resumed", data, progress=False, log=quiet)
    torch.save(
        {
            "whole": whole.model.state_dict(),
            "resumed": resumed.model.state_dict(),
            "history": dataclasses.asdict(resumed.history),
            "whole_history": dataclasses.asdict(whole.history),
        },
        folder / f"rank{distributed.rank()}.pt",
    )


# The two tests below share one group of 2 processes: starting the processes (each imports torch, then torch._dynamo
# for its first optimizer) takes longer than the little training they do.
EQUIVALENCE = TrainConfig(  # 3 steps of 128 images, float32, no augmentation
    epochs=1, batch_size=128, lr=0.05, val_size=200, limit_train=384, schedule="constant", bf16=False, device="cpu"
)
RESUMING = TrainConfig(  # the lab's own network: per-process BatchNorm, dropout on, augmentation on
    epochs=2, batch_size=64, limit_train=256, val_size=200, lr=0.05, max_shift=2, device="cpu"
)


def both_runs(data, config: TrainConfig, folder: Path) -> None:
    """On each rank: the frozen-norm network under EQUIVALENCE, then ``config``'s run interrupted and resumed."""
    train_frozen_norm_net(data, EQUIVALENCE, folder / "result")
    train_interrupt_and_resume(data, config, folder)


@pytest.fixture(scope="module")
def two_process_runs(tmp_path_factory) -> Path:
    """The folder in which each rank of one 2-process group saved what both runs left."""
    folder = tmp_path_factory.mktemp("two_processes")
    on_processes(2, both_runs, tiny_dataset(), RESUMING, folder)
    return folder


def test_two_processes_of_64_train_the_weights_of_one_process_of_128(two_process_runs):
    ranks = [torch.load(two_process_runs / f"result.rank{r}") for r in (0, 1)]

    torch.manual_seed(0)
    model = FrozenNormNet()
    history = fit(model, make_splits(tiny_dataset(), EQUIVALENCE), EQUIVALENCE, progress=False, log=quiet)
    initial = FrozenNormNet().state_dict()  # a differently seeded start: the weights did move
    for name, weights in model.state_dict().items():
        for r in (0, 1):
            assert torch.allclose(ranks[r]["weights"][name], weights, atol=1e-5, rtol=1e-4), (name, r)
        if weights.is_floating_point() and "running" not in name:
            assert not torch.allclose(initial[name], weights)
    for r in (0, 1):
        assert ranks[r]["history"]["train_loss"] == pytest.approx(history.train_loss, rel=1e-5)
        assert ranks[r]["history"]["val_accuracy"] == history.val_accuracy


def test_a_two_process_run_resumes_exactly(two_process_runs):
    ranks = [torch.load(two_process_runs / f"rank{r}.pt") for r in (0, 1)]
    for name, weights in ranks[0]["whole"].items():
        assert torch.equal(ranks[0]["resumed"][name], weights), name  # resumed after epoch 1 = never stopped
        assert torch.equal(ranks[1]["resumed"][name], weights), name  # every rank ends with rank 0's model
    assert ranks[0]["history"]["val_accuracy"] == ranks[0]["whole_history"]["val_accuracy"]
    assert ranks[1]["history"] == {**ranks[0]["history"], "seconds": ranks[1]["history"]["seconds"]}
    assert sorted(p.name for p in (two_process_runs / "resumed").iterdir()) == sorted(RUN_FILES)  # rank 0's only


# --- the command line -----------------------------------------------------------------------------------------------


def cli(*argv: str, **popen) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **popen.pop("env", {})}
    return subprocess.Popen(
        [sys.executable, "-m", "fmnist_lab", *argv],
        cwd=REPO,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **popen,
    )


# 1,000 validation and test images, not 5,000 and 10,000: rank 0 alone evaluates, while the others wait
TRAIN = ["train", "--nproc", "2", "--limit-train", "512", "--val-size", "1000", "--limit-test", "1000"]
TRAIN += ["--batch-size", "128", "--lr", "0.05", "--no-progress"]


@pytest.mark.real_data
def test_a_one_epoch_run_on_two_processes_from_the_command_line(real_data, tmp_path):
    out = tmp_path / "run"
    process = cli(*TRAIN, "--epochs", "1", "--out", str(out))
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert "Training on cpu x 2 processes with 512 images" in stdout
    # rank 0 alone logs: one line per step it logs, one validation, one test line
    assert stdout.count("Train Epoch: 1 [0/512 (0%)]") == 1
    assert stdout.count("Validation set:") == 1 and stdout.count("Test set:") == 1
    assert stdout.count("Fashion-MNIST from") == 1
    # rank 0 alone writes: rank 1 claiming the folder too would have failed on rank 0's lock
    assert sorted(p.name for p in out.iterdir()) == sorted(RUN_FILES)
    metrics = read_checkpoint(out / "last.pt")["metrics"]
    assert metrics["epoch"] == 1
    result = json.loads((out / "metrics.json").read_text())
    assert result["processes"] == 2 and result["epochs_run"] == 1 and result["config"]["batch_size"] == 128


def environment_of(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:  # gone, or not ours
        return {}
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def pid_of_rank(rank: int, token: str) -> int | None:
    """The process of ``rank`` among those this test started (marked by ``token`` in their environment)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            env = environment_of(int(entry.name))
            if env.get("FMNIST_LAB_TEST_RUN") == token and env.get("RANK") == str(rank):
                return int(entry.name)
    return None


@pytest.mark.real_data
def test_a_killed_rank_ends_the_run_with_a_clear_message_and_whole_files(real_data, tmp_path):
    if not Path("/proc/self/environ").exists():  # it finds the rank's process through /proc (Linux)
        if os.environ.get("CI"):
            pytest.fail("CI must run this test, but this machine has no /proc")
        pytest.skip("finds the rank's process through /proc, which this machine lacks")
    out, token = tmp_path / "run", uuid.uuid4().hex
    process = cli(*TRAIN, "--epochs", "30", "--out", str(out), env={"FMNIST_LAB_TEST_RUN": token})
    deadline = time.monotonic() + 240
    while not (out / "last.pt").exists():  # epoch 1 is saved: kill rank 1 in the middle of the run
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.2)
    victim = pid_of_rank(1, token)
    assert victim is not None, "rank 1's process not found"
    os.kill(victim, signal.SIGKILL)
    stdout, stderr = process.communicate(timeout=120)

    assert process.returncode != 0
    message = stderr.strip().splitlines()[-1]
    assert message.startswith("fmnist-lab train: the process of rank 1 was killed by SIGKILL"), message
    assert f"{out} holds the last completed epoch" in message
    assert f"fmnist-lab train --resume {out} --nproc 2" in message
    assert not (out / "metrics.json").exists()  # the run did not finish
    assert not [p.name for p in out.iterdir() if p.name.endswith(".partial")]  # nothing half-written
    assert read_checkpoint(out / "last.pt")["metrics"]["epoch"] >= 1  # whole, and loadable
    RunFolder(out).check(resume=True)  # the folder can be resumed (the dead run's lock is cleared)


def test_nproc_settings_that_cannot_work_are_refused_before_launching(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(distributed, "launch", lambda *a: pytest.fail("torchrun started"))
    assert main(["train", "--nproc", "3", "--batch-size", "64", "--device", "cpu", "--out", str(tmp_path)]) == 1
    assert "--batch-size 64: is the global batch, split evenly over the 3 processes" in capsys.readouterr().err


def test_the_failure_message_names_the_rank_torchrun_reports(tmp_path):
    report = """Failures:
[1]:
  rank      : 0 (local_rank: 0)
  exitcode  : -15 (pid: 9133)  (SIGTERM)
------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-11-30_19:37:56
  host      : localhost
  rank      : 1 (local_rank: 1)
  exitcode  : -9 (pid: 9134)  (SIGKILL)
"""
    assert distributed.failed_rank(report) == (1, -9)
    assert "nothing to resume" in distributed.failure_message(report, tmp_path, 2)
    (tmp_path / "last.pt").write_bytes(b"")
    assert distributed.failure_message(report, tmp_path, 2) == (
        f"fmnist-lab train: the process of rank 1 was killed by SIGKILL, and torchrun stopped the other processes. "
        f"{tmp_path} holds the last completed epoch (every file is written whole or not at all); continue with "
        f"`fmnist-lab train --resume {tmp_path} --nproc 2`."
    )
    # an overwrite whose first epoch failed puts the old run's last.pt back: that one is not offered to resume
    old = (tmp_path / "last.pt").stat().st_mtime_ns
    assert "nothing to resume" in distributed.failure_message(report, tmp_path, 2, last_before=old)
    exited = report.replace("-9 (pid: 9134)  (SIGKILL)", "1 (pid: 9134)")
    assert "rank 1 stopped with exit code 1 (its error is above)" in distributed.failure_message(exited, tmp_path, 2)
