"""Three routes to a faster run, side by side in one run: the optimizer step, validation passes, a step's profile.

    python benchmarks/step_routes.py [--images 12800] [--repeats 3]

1. The optimizer step. ``make_optimizer``'s SGD (PyTorch's default on the CPU: a Python loop over
   the 16 parameter tensors) against the same SGD with ``foreach=True`` (one multi-tensor kernel per
   operation) and ``fused=True`` (one fused kernel): the lab's whole training step timed with each,
   alternately, best of --repeats, after a warm-up.
2. Validation passes. ``fit`` validates on 5,000 images after every epoch; one pass, timed, against
   one training epoch (55,000 images at the step's measured speed): what validating less often could save.
3. A profile of one step (``torch.profiler``, the lab's step with ``make_optimizer``'s SGD): the
   operations that take its time, to see what a faster optimizer or less validation can reach at all.

The lab's step, as ``benchmarks/throughput.py`` builds it: in-memory batches of 256, channels-last,
bfloat16 autocast where the CPU has it natively (float32 elsewhere), Nesterov SGD with weight decay.
"""

from __future__ import annotations

import argparse
import time

import torch
from throughput import best_rates, lab_pipeline  # benchmarks/throughput.py: this script's folder is on the path
from torch.profiler import ProfilerActivity, profile

from fmnist_lab.config import TrainConfig
from fmnist_lab.data import EVAL_BATCH_SIZE, Batches, make_splits
from fmnist_lab.dataset import load_fashion_mnist
from fmnist_lab.devices import bf16_is_native
from fmnist_lab.model import Net
from fmnist_lab.train import evaluate

BASELINE = "make_optimizer's SGD (for-loop)"
OPTIMIZERS = {  # name -> the keyword arguments added to make_optimizer's SGD
    BASELINE: {},
    "SGD foreach=True": {"foreach": True},
    "SGD fused=True": {"fused": True},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=12_800, help="images per timing (default 12,800)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    config = TrainConfig()  # the lab's step, as benchmarks/throughput.py times it
    splits = make_splits(load_fashion_mnist(verbose=False), config)
    pipelines = {name: lab_pipeline(splits, sgd_options=options) for name, options in OPTIMIZERS.items()}
    best = best_rates(pipelines, args.images, args.repeats)

    precision = "bfloat16" if bf16_is_native(torch.device("cpu")) and config.bf16 else "float32"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {precision}")
    print("\n1. The optimizer step (the whole training step timed)")
    baseline = best[BASELINE]
    for name, rate in best.items():
        print(f"   {name:<34} {rate:7.0f} images/s   x{rate / baseline:.3f}")

    model = Net().to(memory_format=torch.channels_last)
    val_batches = Batches(splits.val_x, splits.val_y, EVAL_BATCH_SIZE)
    evaluate(model, val_batches, torch.device("cpu"), config.bf16, config.channels_last)  # warm-up
    validation = min(_timed_validation(model, val_batches, config) for _ in range(args.repeats))
    epoch = len(splits.train_y) / baseline
    print("\n2. Validation passes")
    print(
        f"   one pass over {len(splits.val_y):,} images: {validation:.2f} s; one training epoch: {epoch:.1f} s; "
        f"validating after every epoch costs {validation / (epoch + validation):.1%} of a run's epochs, "
        f"every second epoch would save {validation / 2 / (epoch + validation):.1%}"
    )

    print("\n3. One step's profile (make_optimizer's SGD), the 12 operations with the most self CPU time")
    batches, step = pipelines[BASELINE]
    x, y = next(iter(batches))
    step(x, y)
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        step(x, y)
    print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


def _timed_validation(model: Net, val_batches: Batches, config: TrainConfig) -> float:
    start = time.perf_counter()
    evaluate(model, val_batches, torch.device("cpu"), config.bf16, config.channels_last)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
