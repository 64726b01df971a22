"""Evaluation batch sizes side by side in one run: the 10,000 test images through ``evaluate`` in batches of each size.

    python benchmarks/eval_batch.py [--sizes 1000 256 128 64] [--repeats 3] [--threads N]

On Linux, glibc serves a block above its mmap threshold (at most 32 MiB) with a fresh mapping and unmaps it
when freed. At 1,000 images c1's and b1's outputs are 100 MB each, so every batch faults in and zeroes its
memory anew; at 256 (``EVAL_BATCH_SIZE``, the lab's) they are 26 MB, under the threshold, and the heap reuses
them. The network is untrained (the time does not depend on the weights); each size is timed in turn, best of
--repeats, after a warm-up.
"""

from __future__ import annotations

import argparse
import time

import torch

from fmnist_lab import Batches, Net, evaluate, load_fashion_mnist, normalize, pixel_stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 256, 128, 64])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: PyTorch's, all cores)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    data = load_fashion_mnist(verbose=False)
    images = normalize(data.test_images, *pixel_stats(data.train_images))
    model, device = Net(), torch.device("cpu")
    batches = {size: Batches(images, data.test_labels, size) for size in args.sizes}
    for size in args.sizes:  # warm-up: oneDNN's kernels for each shape
        evaluate(model, Batches(images[: 2 * size], data.test_labels[: 2 * size], size), device)
    best = dict.fromkeys(args.sizes, float("inf"))
    for _ in range(args.repeats):
        for size in args.sizes:
            start = time.perf_counter()
            evaluate(model, batches[size], device)
            best[size] = min(best[size], time.perf_counter() - start)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; 10,000 test images, best of {args.repeats}")
    first = args.sizes[0]
    for size, seconds in best.items():
        print(f"batches of {size:>5}: {seconds:6.2f} s   {best[first] / seconds:5.2f}x the speed of {first}")


if __name__ == "__main__":
    main()
