"""Does each optional piece of the recipe help? Train a recipe with one piece changed at a time.

    python benchmarks/ablations.py [--recipe fast] [--epochs 8] [--lr 0.2] [--seed 0] [--variants baseline shift ...]

Prints one row per variant: validation and test accuracy, minutes, and the difference to the
baseline; flip test-time augmentation is scored on every variant's final model. Writes
benchmarks/results/ablations.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from fmnist_lab.checkpoint import atomic_write_text
from fmnist_lab.data import Batches, load_fashion_mnist
from fmnist_lab.experiment import make_config, run
from fmnist_lab.train import evaluate, make_splits, pick_device

VARIANTS = {  # name: (description, overrides)
    "baseline": ("baseline (the recipe as it is)", {}),
    "augment": ("+ augmentation (shift 2 px, flip)", {"max_shift": 2, "flip": True}),
    "shift": ("+ random shifts (2 px)", {"max_shift": 2}),
    "flip": ("+ random horizontal flips", {"flip": True}),
    "ema": ("+ EMA of weights (0.999)", {"ema_decay": 0.999}),
    "smoothing": ("+ label smoothing 0.1", {"label_smoothing": 0.1}),
    "fp32": ("fp32 instead of bf16", {"bf16": False}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="fast", choices=["fast", "default"])
    parser.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--lr", type=float, default=None, help="peak LR for every variant (default: each run's LR finder)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="*", default=["baseline", "augment", "ema", "smoothing", "fp32"],
                        choices=list(VARIANTS), help="the first is the baseline the others are compared with")
    parser.add_argument("--out", default="benchmarks/results/ablations.json")
    args = parser.parse_args()

    data = load_fashion_mnist()
    # the variants change no setting the split depends on (seed, sizes), so one test set serves all
    base_config = make_config(args.recipe, seed=args.seed)
    device = pick_device(base_config.device)
    splits = make_splits(data, base_config, device)
    test_batches = Batches(splits.test_x, splits.test_y, 1000)
    rows = []
    for key in args.variants:
        name, overrides = VARIANTS[key]
        config = make_config(args.recipe, epochs=args.epochs, lr=args.lr, seed=args.seed, **overrides)
        result = run(config, data, args.recipe, progress=False, log=lambda line: None)
        # score the same final model with flip test-time augmentation
        start = time.perf_counter()
        tta = evaluate(result.model, test_batches, device, config.bf16, flip_tta=True)
        rows.append({"variant": name, "val_accuracy": max(result.history.val_accuracy), "test_accuracy": result.test_accuracy,
                     "test_accuracy_flip_tta": tta.accuracy, "tta_seconds": time.perf_counter() - start,
                     "minutes": result.minutes, "epochs": len(result.history), "lr": result.lr})
        print(f"{name:<36} val {100 * rows[-1]['val_accuracy']:.2f}%  test {100 * result.test_accuracy:.2f}%  "
              f"with flip TTA {100 * tta.accuracy:.2f}%  {result.minutes:.1f} min", flush=True)
    base = rows[0]
    print("\nDifferences to the baseline (test accuracy, percentage points; minutes ratio):")
    for row in rows:
        print(f"  {row['variant']:<36} {100 * (row['test_accuracy'] - base['test_accuracy']):+.2f} pp   "
              f"time x{row['minutes'] / base['minutes']:.2f}   flip TTA {100 * (row['test_accuracy_flip_tta'] - row['test_accuracy']):+.2f} pp")
    atomic_write_text(Path(args.out), json.dumps({"recipe": args.recipe, "epochs": rows[0]["epochs"], "lr": args.lr,
                                                  "seed": args.seed, "torch": torch.__version__, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
