"""The CUDA path: run where a GPU is present (CI has none; see README for how it was checked)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from fmnist_lab import distributed
from fmnist_lab.checkpoint import load_checkpoint
from fmnist_lab.config import TrainConfig
from fmnist_lab.data import Batches, make_splits
from fmnist_lab.devices import bf16_is_native, pick_device
from fmnist_lab.errors import ConfigError
from fmnist_lab.exercises import nb03
from fmnist_lab.experiment import run
from fmnist_lab.lr_finder import find_lr
from fmnist_lab.model import Net
from fmnist_lab.train import evaluate, fit
from tests.checks_support import assert_right
from tests.test_distributed import on_processes, quiet

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_auto_device_is_cuda_and_bf16_is_used():
    assert pick_device("auto").type == "cuda"
    assert bf16_is_native(torch.device("cuda")) == (torch.cuda.get_device_capability() >= (8, 0))


def test_training_on_cuda_learns_and_checkpoint_loads_on_cpu(tiny_data, tmp_path):
    config = TrainConfig(epochs=3, batch_size=64, val_size=200, lr=0.05, device="cuda")
    result = run(config, tiny_data, out_dir=tmp_path, progress=False, log=lambda line: None)
    assert result.history.val_accuracy[-1] > 0.8
    assert next(result.model.parameters()).is_cuda
    cpu = load_checkpoint(tmp_path / "best.pt", "cpu")
    splits = make_splits(tiny_data, config)
    batches = Batches(splits.test_x, splits.test_y, 100)
    on_cpu = evaluate(cpu.model, batches, torch.device("cpu"), bf16=False)
    on_gpu = evaluate(result.model.float(), batches, torch.device("cuda"), bf16=False)
    assert torch.allclose(on_cpu.probabilities, on_gpu.probabilities, atol=1e-3)


def test_lr_finder_on_cuda_restores_everything(tiny_data):
    config = TrainConfig(batch_size=32, val_size=200, device="cuda")
    splits = make_splits(tiny_data, config)
    assert splits.train_x.is_cuda  # the configured device is honoured
    model = Net().cuda()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cuda_rng = torch.cuda.get_rng_state()
    result = find_lr(model, Batches(splits.train_x, splits.train_y, 32, shuffle=True), 1e-5, 10.0, 30, config=config)
    assert len(result.lrs) > 10
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(cuda_rng, torch.cuda.get_rng_state())


class DropoutOffNet(Net):
    """The lab's network with dropout held off; BatchNorm trains on the batch's statistics."""

    def train(self, mode: bool = True) -> DropoutOffNet:
        super().train(mode)
        for module in self.modules():
            if isinstance(module, (nn.Dropout, nn.Dropout2d)):
                module.eval()
        return self


def train_with_sync_bn(data, config: TrainConfig, result_file) -> None:
    torch.manual_seed(0)
    model = DropoutOffNet()
    history = fit(model, make_splits(data, config), config, progress=False, log=quiet)
    if distributed.is_main():
        torch.save(
            {
                "weights": {name: value.cpu() for name, value in model.state_dict().items()},
                "history": dataclasses.asdict(history),
                "sync_bn": isinstance(model.b1, nn.SyncBatchNorm),
                "processes": distributed.world_size(),
                "backend": torch.distributed.get_backend(),
            },
            result_file,
        )


def test_ddp_with_sync_bn_on_gpus_trains_the_weights_of_one_process(tiny_data, tmp_path):
    # one process per GPU (2 where there are 2): BatchNorm over the global batch of 128, as one process computes it
    processes = min(2, torch.cuda.device_count())
    config = TrainConfig(
        epochs=1,
        batch_size=128,
        val_size=200,
        limit_train=384,
        lr=0.05,  # fit trains with a given LR (the LR finder's choice is run()'s)
        schedule="constant",
        bf16=False,
        device="cuda",
        sync_bn=True,
    )
    on_processes(processes, train_with_sync_bn, tiny_data, config, tmp_path / "ddp.pt")
    ddp = torch.load(tmp_path / "ddp.pt")
    assert (ddp["processes"], ddp["backend"], ddp["sync_bn"]) == (processes, "nccl", True)

    torch.manual_seed(0)
    model = DropoutOffNet()
    history = fit(model, make_splits(tiny_data, config), config, progress=False, log=quiet)
    for name, weights in model.state_dict().items():
        assert torch.allclose(ddp["weights"][name], weights.cpu(), atol=1e-4, rtol=1e-3), name
    assert ddp["history"]["train_loss"] == pytest.approx(history.train_loss, rel=1e-4)


def test_more_processes_than_gpus_are_refused():
    with pytest.raises(ConfigError, match="need one GPU each, but PyTorch sees"):
        distributed.check_settings(TrainConfig(device="cuda", batch_size=256), torch.cuda.device_count() + 1)


SECTION_3_LOOP = """
import torch.nn.functional as F

def train_one_epoch(model, batches, optimizer):
    model.train()
    total, seen = 0.0, 0
    for images, labels in batches:
        images, labels = images.to(device), labels.to(device)  # as section 3's train() does
        optimizer.zero_grad()
        loss = F.nll_loss(model(images), labels)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(labels)
        seen += len(labels)
    return total / seen
"""


def test_notebook_03s_loop_moving_batches_to_the_notebooks_gpu_is_correct():
    # notebook 03 sets device = splits.train_x.device: the GPU; the check used to train its network on the CPU
    namespace = {"device": torch.device("cuda")}
    exec(SECTION_3_LOOP, namespace)  # noqa: S102 -- a notebook's code, written in this test
    assert_right(nb03.q2, namespace["train_one_epoch"])


def test_a_loop_that_moves_the_network_to_the_cpu_gets_a_sentence():
    namespace = {"device": torch.device("cpu")}
    exec(SECTION_3_LOOP.replace("    model.train()", "    model.train().to(device)"), namespace)  # noqa: S102
    assert nb03.q2.verdict(namespace["train_one_epoch"]).message  # compared its weights without raising
