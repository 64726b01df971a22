"""Which LR schedule did the report use? Fit candidates to its logged per-epoch test accuracy.

    python benchmarks/report_replay.py [--candidates constant step-0.7 ...] [--epochs 23] [--jobs 2]

The report names no scheduler, but its log holds 23 per-epoch test accuracies. The report's
LR sweep (30 mini-batches per LR in our reading, linear 1e-4 -> 1) and its reset of the conv and
linear layers (BatchNorm left as the sweep left it, our reading) run once; from that state each
candidate trains the report's recipe (plain SGD; batch 64 and float32 ours; at the LR it
printed, 0.155) for 23 epochs with one schedule, and is scored on the TEST set after
every epoch — only because that reproduces the report's own log; nothing in the lab chooses
anything on the test set. Candidates run ``--jobs`` at a time, one thread each (on 2 cores two
one-thread runs train ~30% more images per second than one two-thread run).

Each candidate is scored by two distances to the report's curve, both in percentage points:
its level (RMSE over the 23 epochs) and its late movement (the mean epoch-to-epoch change over
the second half, which a decayed LR freezes and a large one keeps). The distance is their sum
(RMSE + the gap in movement); the closest candidate is the report recipe's schedule. Prints
the scores and writes benchmarks/results/report_replay.{json,md,png}; ``--rescore`` scores the
saved curves again without training.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from fmnist_lab import report  # noqa: E402
from fmnist_lab.config import make_config  # noqa: E402
from fmnist_lab.data import (
    Batches,  # noqa: E402
    make_splits,  # noqa: E402
)
from fmnist_lab.dataset import load_fashion_mnist  # noqa: E402
from fmnist_lab.files import atomic_savefig, atomic_write_text  # noqa: E402
from fmnist_lab.lr_finder import replay_report_lr_choice  # noqa: E402
from fmnist_lab.model import Net  # noqa: E402
from fmnist_lab.train import evaluate, fit  # noqa: E402

CANDIDATES = {  # name: (description, TrainConfig changes)
    "constant": ("constant LR", {"schedule": "constant"}),
    "step-0.7": (
        "StepLR, x0.7 every epoch (PyTorch's MNIST example)",
        {"schedule": "step", "step_size": 1, "gamma": 0.7},
    ),
    "step-7-0.1": (
        "StepLR, x0.1 every 7 epochs (PyTorch's transfer-learning tutorial)",
        {"schedule": "step", "step_size": 7, "gamma": 0.1},
    ),
    "exp-0.95": ("ExponentialLR, x0.95 every epoch", {"schedule": "exponential", "gamma": 0.95}),
}


def swept_state(epochs: int, seed: int) -> tuple[dict, float]:
    """The model after the report's sweep and reset (BatchNorm keeps what the sweep left, in our reading), and the
    sweep's pick."""
    config = make_config("report", epochs=epochs, seed=seed)
    torch.manual_seed(config.seed)
    splits = make_splits(load_fashion_mnist(), config)
    model = Net().to(splits.train_x.device)
    result = replay_report_lr_choice(model, splits, config)
    return model.state_dict(), result.report_lr


def replay(state_path: str, changes: dict, epochs: int, seed: int, threads: int) -> list[float]:
    """Per-epoch test accuracy (%) of the report's recipe with the given schedule, from the swept state."""
    torch.set_num_threads(threads)
    config = make_config("report", epochs=epochs, seed=seed, lr=report.LR, log_interval=10**9, **changes)
    splits = make_splits(load_fashion_mnist(), config)
    model = Net().to(splits.train_x.device)
    model.load_state_dict(torch.load(state_path))
    torch.manual_seed(config.seed)
    test_batches = Batches(splits.test_x, splits.test_y, 1000)
    accuracies = []

    def score_test(state) -> None:  # the report's practice, reproduced here only
        accuracies.append(100 * evaluate(state.model, test_batches, splits.test_x.device, config.bf16).accuracy)

    fit(model, splits, config, on_epoch_end=score_test, progress=False, log=lambda line: None)
    return accuracies


def score(logged: list[float], key: str, curve: list[float]) -> dict:
    """Two distances to the report's curve, both in points: its level (RMSE) and its late movement."""
    rmse = math.sqrt(sum((a - b) ** 2 for a, b in zip(curve, logged)) / len(logged))
    moved = report.late_movement(curve)
    return {
        "candidate": key,
        "description": CANDIDATES[key][0],
        "curve": curve,
        "rmse_pp": rmse,
        "movement_pp": moved,
        "distance_pp": rmse + abs(moved - report.late_movement(logged)),
        "final_diff_pp": curve[-1] - logged[-1],
    }


def train_candidates(args: argparse.Namespace) -> tuple[dict[str, list[float]], float]:
    """The report's sweep once, then every candidate from its state; per-epoch test accuracies by candidate."""
    state, sweep_lr = swept_state(args.epochs, args.seed)
    print(
        f"the report's sweep, replayed: its rule picks {sweep_lr:.4g} here; every candidate trains at the "
        f"report's printed {report.LR}",
        flush=True,
    )
    curves = {}
    threads = 1 if args.jobs > 1 else torch.get_num_threads()
    with (
        tempfile.TemporaryDirectory() as tmp,
        ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool,
    ):
        state_path = str(Path(tmp) / "swept.pt")
        torch.save(state, state_path)
        futures = {
            pool.submit(replay, state_path, CANDIDATES[key][1], args.epochs, args.seed, threads): key
            for key in args.candidates
        }
        for future in as_completed(futures):
            curves[futures[future]] = future.result()
            print(f"{futures[future]} done", flush=True)
    return curves, sweep_lr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    parser.add_argument("--epochs", type=int, default=len(report.TEST_ACCURACY))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2, help="candidates trained at once (one thread each when > 1)")
    parser.add_argument(
        "--rescore", action="store_true", help="score the curves saved in report_replay.json again, without training"
    )
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()

    out = Path(args.out)
    if args.rescore:
        saved = json.loads((out / "report_replay.json").read_text())
        curves = {row["candidate"]: row["curve"] for row in saved["rows"]}
        meta = {key: saved[key] for key in ("lr", "sweep_pick", "seed", "torch")}
    else:
        curves, sweep_lr = train_candidates(args)
        meta = {"lr": report.LR, "sweep_pick": sweep_lr, "seed": args.seed, "torch": torch.__version__}
    logged = list(report.TEST_ACCURACY[: len(next(iter(curves.values())))])
    rows = sorted((score(logged, key, curve) for key, curve in curves.items()), key=lambda row: row["distance_pp"])
    report_movement = report.late_movement(logged)
    print(f"the report's log: late movement {report_movement:.2f} pp per epoch")
    for r in rows:
        print(
            f"{r['candidate']:<12} RMSE {r['rmse_pp']:.2f} pp   late movement {r['movement_pp']:.2f} pp   "
            f"distance {r['distance_pp']:.2f} pp   final epoch {r['curve'][-1]:.2f}% ({r['final_diff_pp']:+.2f} pp)"
        )
    best = rows[0]
    print(
        f"closest to the report's log: {best['candidate']} ({best['description']}), "
        f"distance {best['distance_pp']:.2f} pp"
    )

    out.mkdir(parents=True, exist_ok=True)
    table = [
        "| schedule | RMSE to the report's curve | late movement (report: "
        f"{report_movement:.2f} pp/epoch) | distance (RMSE + movement gap) | final epoch (report: 92.54%) |",
        "|---|---|---|---|---|",
    ]
    table += [
        f"| {r['description']} | {r['rmse_pp']:.2f} pp | {r['movement_pp']:.2f} pp | {r['distance_pp']:.2f} pp | "
        f"{r['curve'][-1]:.2f}% ({r['final_diff_pp']:+.2f} pp) |"
        for r in rows
    ]
    atomic_write_text(out / "report_replay.md", "\n".join(table) + "\n")
    atomic_write_text(out / "report_replay.json", json.dumps({"report": logged, **meta, "rows": rows}, indent=2))
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    epochs = range(1, len(logged) + 1)
    ax.plot(epochs, logged, "ko-", lw=0.8, label="the report's log")
    for r in rows:
        ax.plot(
            epochs,
            r["curve"],
            "-",
            lw=2.5 if r is best else 1,
            label=f"{r['description']} (RMSE {r['rmse_pp']:.2f}, movement {r['movement_pp']:.2f})",
        )
    ax.set(
        xlabel="epoch",
        ylabel="test accuracy (%) — scored every epoch, as the report did",
        title="Fitting the report's unnamed LR schedule",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    atomic_savefig(fig, out / "report_replay.png", dpi=120, bbox_inches="tight")


if __name__ == "__main__":
    main()
