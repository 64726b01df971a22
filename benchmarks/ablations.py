"""Does each optional piece of the recipe help? Train a recipe with one piece changed at a time.

    python benchmarks/ablations.py [--recipe fast] [--epochs 8] [--lr 0.2] [--seed 0] [--variants baseline shift ...]

Prints one row per variant: the best validation accuracy (what decides), the test accuracy
(shown, never used to choose), minutes, and the differences to the baseline. Writes
benchmarks/results/ablations.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from recipes import whole_run  # benchmarks/recipes.py: python puts this script's folder on the path

from fmnist_lab.config import RECIPES, make_config
from fmnist_lab.dataset import load_fashion_mnist
from fmnist_lab.files import atomic_write_text

VARIANTS = {  # name: (description, overrides)
    "baseline": ("baseline (the recipe as it is)", {}),
    "augment": ("+ augmentation (shift 2 px, flip)", {"max_shift": 2, "flip": True}),
    "shift": ("+ random shifts (2 px)", {"max_shift": 2}),
    "flip": ("+ random horizontal flips", {"flip": True}),
    "smoothing": ("+ label smoothing 0.1", {"label_smoothing": 0.1}),
    "fp32": ("fp32 instead of bf16", {"bf16": False}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="fast", choices=list(RECIPES))
    parser.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    parser.add_argument(
        "--lr", type=float, default=None, help="peak LR for every variant (default: each run's LR finder)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--variants",
        nargs="*",
        default=["baseline", "augment", "smoothing", "fp32"],
        choices=list(VARIANTS),
        help="the first is the baseline the others are compared with",
    )
    parser.add_argument("--out", default="benchmarks/results/ablations.json")
    args = parser.parse_args()

    data = load_fashion_mnist()
    rows = []
    for key in args.variants:
        name, overrides = VARIANTS[key]
        config = make_config(args.recipe, epochs=args.epochs, lr=args.lr, seed=args.seed, **overrides)
        result, minutes = whole_run(config, data)
        rows.append(
            {
                "variant": name,
                "val_accuracy": max(result.history.val_accuracy),
                "test_accuracy": result.test_accuracy,
                "minutes": minutes,
                "epochs": len(result.history),
                "lr": result.config.lr,
            }
        )
        print(
            f"{name:<36} best validation {100 * rows[-1]['val_accuracy']:.2f}%  "
            f"(test {100 * result.test_accuracy:.2f}%)"
            f"  {minutes:.1f} min",
            flush=True,
        )
    base = rows[0]
    print("\nDifferences to the baseline (percentage points; minutes ratio):")
    for row in rows:
        print(
            f"  {row['variant']:<36} validation {100 * (row['val_accuracy'] - base['val_accuracy']):+.2f} pp   "
            f"(test {100 * (row['test_accuracy'] - base['test_accuracy']):+.2f} pp)   "
            f"time x{row['minutes'] / base['minutes']:.2f}"
        )
    atomic_write_text(
        Path(args.out),
        json.dumps(
            {
                "recipe": args.recipe,
                "epochs": rows[0]["epochs"],
                "lr": args.lr,
                "seed": args.seed,
                "torch": torch.__version__,
                "rows": rows,
            },
            indent=2,
        ),
    )


if __name__ == "__main__":
    main()
