"""Training throughput: the report's pipeline against the lab's, and the lab's step against its floor, in one run.

    python benchmarks/throughput.py [--images 6400] [--rounds 9]     # FMNIST_LAB_BF16=0: the lab in float32

The report's pipeline as we read it: torchvision's FashionMNIST dataset with ToTensor + Normalize through a
DataLoader, batch 64, float32, plain SGD. The lab's: in-memory tensors sliced into batches of
256, bfloat16 autocast (where the CPU has native bf16), channels-last, Nesterov SGD, and ``FusedNet``:
each block's BatchNorm, LeakyReLU and max-pool in one compiled kernel (``fmnist_lab/fused.py``).
Both train the same network; the lab's pipeline also trains it as ``Net``, PyTorch's layers
(``--no-fused``). The floor: the lab's pipeline training the same convolutions, max-pools and
linear layers without BatchNorm, LeakyReLU or dropout; the lab's step runs at a share of the
floor's speed. After a warm-up, each of --rounds rounds times all four in turn. A pipeline's speed is its best
round; a share is the median over the rounds of the two speeds' ratio within a round (with its range),
so that the machine's drift between rounds, which moves both speeds of a round alike, cancels.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision import datasets, transforms

from fmnist_lab.config import TrainConfig
from fmnist_lab.data import Batches, Splits, make_splits, pixel_stats
from fmnist_lab.dataset import default_data_dir, load_fashion_mnist
from fmnist_lab.devices import bf16_is_native
from fmnist_lab.fused import FusedNet, kernel
from fmnist_lab.model import Net
from fmnist_lab.train import make_optimizer, train_step


def report_pipeline(data_dir: str, mean: float, std: float):
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((mean,), (std,))])
    dataset = datasets.FashionMNIST(data_dir, train=True, download=False, transform=transform)
    loader = torch.utils.data.DataLoader(dataset, batch_size=64, shuffle=True)
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)

    def step(x, y):
        optimizer.zero_grad()
        loss = F.nll_loss(model(x), y)
        loss.backward()
        optimizer.step()

    return loader, step


class Floor(Net):
    """The network's convolutions, max-pools and linear layers alone: what a step cannot be faster than."""

    def forward(self, x: Tensor) -> Tensor:
        x = F.max_pool2d(self.c3(F.max_pool2d(self.c2(F.max_pool2d(self.c1(x), 2)), 2)), 2)
        return F.log_softmax(self.fc_2(self.fc_1(x.flatten(1))), dim=1)


def lab_pipeline(splits: Splits, network: type[Net] = FusedNet, lr: float = 0.05, sgd_options: dict | None = None):
    """The lab's batches and training step; ``sgd_options`` are added to ``make_optimizer``'s SGD (``fused=True``)."""
    config = TrainConfig(lr=lr)
    batches = Batches(splits.train_x, splits.train_y, config.batch_size, shuffle=True)
    model = network().to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, config)
    if sgd_options:
        optimizer = torch.optim.SGD(model.parameters(), **{**optimizer.defaults, **sgd_options})
    return batches, lambda x, y: train_step(model, x, y, optimizer, config)


def images_per_second(batches, step, images: int) -> float:
    """Time training steps (data loading included) until ``images`` images have been seen."""
    seen, start = 0, time.perf_counter()
    for x, y in _forever(batches):
        step(x, y)
        seen += len(y)
        if seen >= images:
            return seen / (time.perf_counter() - start)


def timed_rounds(pipelines: dict, images: int, rounds: int) -> dict[str, list[float]]:
    """Each pipeline's images/s in each of ``rounds`` rounds (the pipelines in turn), after a warm-up."""
    for batches, step in pipelines.values():  # warm-up: allocator, oneDNN kernels
        images_per_second(batches, step, 1024)
    rates = {name: [] for name in pipelines}
    for _ in range(rounds):
        for name, (batches, step) in pipelines.items():
            rates[name].append(images_per_second(batches, step, images))
    return rates


def best_rates(pipelines: dict, images: int, repeats: int) -> dict[str, float]:
    """Each pipeline's best images/s over ``repeats`` rounds of ``timed_rounds``."""
    return {name: max(rates) for name, rates in timed_rounds(pipelines, images, repeats).items()}


def share(rates: list[float], floor_rates: list[float]) -> str:
    """The median over rounds of a pipeline's speed as a share of the floor's in the same round, and its range."""
    shares = sorted(rate / floor for rate, floor in zip(rates, floor_rates, strict=True))
    return f"{statistics.median(shares):.0%} (rounds: {shares[0]:.0%} to {shares[-1]:.0%})"


def _forever(batches):
    """Pass after pass over the batches (each pass reshuffled)."""
    while True:
        yield from batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=6_400, help="images per timing (default 6,400)")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()

    if kernel() is None:  # else the "fused" row would time PyTorch's layers under that name
        raise SystemExit("the fused kernel could not be built here (the warning above says why): nothing to compare")
    data = load_fashion_mnist()
    mean, std = pixel_stats(data.train_images)
    splits = make_splits(data, TrainConfig())
    precision = "bf16" if bf16_is_native(torch.device("cpu")) else "fp32"  # FMNIST_LAB_BF16=0: fp32
    pipelines = {
        "report (DataLoader, batch 64, fp32)": report_pipeline(str(default_data_dir()), mean, std),
        f"lab (in-memory, batch 256, {precision}, channels-last, fused)": lab_pipeline(splits),
        "lab with PyTorch's layers (--no-fused)": lab_pipeline(splits, Net),
        # no BatchNorm to tame it: a small LR keeps the floor's loss finite (the LR does not change the time)
        f"floor (lab's, no BatchNorm, LeakyReLU, dropout; {precision})": lab_pipeline(splits, Floor, lr=1e-3),
    }
    rates = timed_rounds(pipelines, args.images, args.rounds)
    report, lab, layers, floor = rates.values()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, best of {args.rounds} rounds")
    for name, pipeline_rates in rates.items():
        rate = max(pipeline_rates)
        print(f"{name:<56} {rate:8.0f} images/s   {55_000 / rate:5.1f} s per 55,000-image epoch")
    print(f"speed-up: {max(lab) / max(report):.2f}x")
    print(f"the lab's step at {share(lab, floor)} of its floor's speed")
    print(f"with PyTorch's layers: {share(layers, floor)}")


if __name__ == "__main__":
    main()
