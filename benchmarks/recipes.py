"""The report's recipe against the lab's, on the real data: accuracy against wall time.

    python benchmarks/recipes.py --recipes report fast default --seeds 0 1

Each run goes through ``fmnist_lab.experiment.pick_lr`` and ``run`` (``whole_run``: the LR choice
included in the minutes), picks its epoch on the validation split and touches the test set once. Writes
benchmarks/results/recipes.{json,md,png}: a table (mean over seeds) and a plot of validation
accuracy against wall time with each run's final test accuracy.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from fmnist_lab.config import RECIPES, TrainConfig, make_config  # noqa: E402
from fmnist_lab.dataset import FashionMNIST, load_fashion_mnist  # noqa: E402
from fmnist_lab.experiment import RunResult, pick_lr, run  # noqa: E402
from fmnist_lab.files import atomic_savefig, atomic_write_text  # noqa: E402


def whole_run(config: TrainConfig, data: FashionMNIST) -> tuple[RunResult, float]:
    """One quiet run, its LR picked by the recipe's rule first; the result and the minutes of both together."""
    start = time.perf_counter()
    config, model = pick_lr(config, data, log=lambda line: None)
    result = run(config, data, progress=False, log=lambda line: None, model=model)
    return result, (time.perf_counter() - start) / 60


def machine() -> str:
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    return f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--report-seeds", nargs="+", type=int, help="seeds for the report's recipe (default: --seeds)")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()

    data = load_fashion_mnist()
    runs = []
    for recipe in args.recipes:
        seeds = args.report_seeds if recipe == "report" and args.report_seeds else args.seeds
        for seed in seeds:
            result, minutes = whole_run(make_config(recipe, seed=seed), data)
            runs.append(
                {
                    "recipe": recipe,
                    "seed": seed,
                    "test_accuracy": result.test_accuracy,
                    "minutes": minutes,
                    "epochs": len(result.history),
                    "best_epoch": result.history.best_epoch,
                    "lr": result.config.lr,
                    "history": result.history.records(),
                }
            )
            print(
                f"{recipe:<8} seed {seed}: test {100 * result.test_accuracy:.2f}%  {len(result.history)} epochs  "
                f"{minutes:.1f} min  (LR {result.config.lr:.3g}, best epoch {result.history.best_epoch})",
                flush=True,
            )

    out = Path(args.out)
    rows = []
    for recipe in args.recipes:
        mine = [r for r in runs if r["recipe"] == recipe]
        rows.append(
            {
                "recipe": recipe,
                "seeds": len(mine),
                "test_accuracy": statistics.mean(r["test_accuracy"] for r in mine),
                "epochs": statistics.mean(r["epochs"] for r in mine),
                "minutes": statistics.mean(r["minutes"] for r in mine),
            }
        )
    table = ["| recipe | test accuracy (mean) | epochs | minutes | seeds | command |", "|---|---|---|---|---|---|"]
    for row in rows:
        command = f"fmnist-lab train --recipe {row['recipe']}"
        table.append(
            f"| {row['recipe']} | {100 * row['test_accuracy']:.2f}% | {row['epochs']:g} | {row['minutes']:.1f} | "
            f"{row['seeds']} | `{command}` |"
        )
    table.append(f"\nMachine: {machine()}.")
    print("\n".join(table))
    if "report" in args.recipes:
        report = rows[args.recipes.index("report")]
        for row in rows:
            print(
                f"{row['recipe']:<8} {100 * (row['test_accuracy'] - report['test_accuracy']):+.2f} pp accuracy, "
                f"{report['minutes'] / row['minutes']:.1f}x less time than the report's recipe"
            )

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, recipe in enumerate(args.recipes):
        for k, r in enumerate(r for r in runs if r["recipe"] == recipe):
            elapsed = [sum(h["seconds"] for h in r["history"][: e + 1]) / 60 for e in range(len(r["history"]))]
            ax.plot(
                elapsed,
                [100 * h["val_accuracy"] for h in r["history"]],
                color=f"C{i}",
                alpha=0.6,
                label=f"{recipe} (validation)" if k == 0 else None,
            )
            ax.plot(r["minutes"], 100 * r["test_accuracy"], "*", ms=12, color=f"C{i}")
    ax.axhline(92.54, ls="--", color="gray", lw=1, label="report's 92.54% (its last epoch, test set)")
    ax.set(
        xlabel="wall time (minutes, training epochs; stars: whole run incl. LR finder, at its test accuracy)",
        ylabel="accuracy (%)",
        ylim=(88, 95),
        title="Accuracy against wall time",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    out.mkdir(parents=True, exist_ok=True)
    atomic_savefig(fig, out / "recipes.png", dpi=120, bbox_inches="tight")
    atomic_write_text(out / "recipes.json", json.dumps({"machine": machine(), "runs": runs, "summary": rows}, indent=2))
    atomic_write_text(out / "recipes.md", "\n".join(table) + "\n")


if __name__ == "__main__":
    main()
