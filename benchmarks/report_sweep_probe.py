"""How did the report's LR sweep log its losses? Three readings against its first eight steps.

    python benchmarks/report_sweep_probe.py

The report called ``find_lr(model, train_loader, 1e-4, 1, 100, 30)`` and never says what the
sixth argument, 30, is. Its log falls from 2.37 to 0.81 in eight steps. This prints, beside
that log, the first eight losses of the report's linear sweep (plain SGD, batch 64, float32: our reading)
read three ways: one mini-batch per LR, 30 mini-batches per LR with the last one's loss logged,
and 30 per LR with their mean logged — the reading that fits, and the one ``report_sweep`` replays.
"""

from __future__ import annotations

import dataclasses

import torch

from fmnist_lab import Net, load_fashion_mnist, make_config, make_optimizer, make_splits, sweep_lrs, train_step
from fmnist_lab.lr_finder import sweep_batches

REPORT_FIRST_LOSSES = [2.367362, 2.177195, 1.644790, 1.226809, 1.056518, 0.968560, 0.987204, 0.811682]
STEPS = len(REPORT_FIRST_LOSSES)


def sweep(splits, config, batches_per_lr: int, mean: bool) -> list[float]:
    torch.manual_seed(config.seed)
    model = Net().to(splits.train_x.device)
    optimizer = make_optimizer(model, dataclasses.replace(config, lr=1e-4))
    batches = iter(sweep_batches(splits, config))
    logged = []
    for lr in sweep_lrs(1e-4, 1.0, 100, "linear")[:STEPS]:
        for group in optimizer.param_groups:
            group["lr"] = lr
        losses = [train_step(model, *next(batches), optimizer, config) for _ in range(batches_per_lr)]
        logged.append(sum(losses) / len(losses) if mean else losses[-1])
    return logged


def main() -> None:
    config = make_config("report")
    splits = make_splits(load_fashion_mnist(), config)
    rows = {
        "the report's log": REPORT_FIRST_LOSSES,
        "1 batch per LR": sweep(splits, config, 1, mean=False),
        "30 per LR, last loss": sweep(splits, config, 30, mean=False),
        "30 per LR, mean loss": sweep(splits, config, 30, mean=True),
    }
    for name, losses in rows.items():
        gap = sum(abs(a - b) for a, b in zip(losses, REPORT_FIRST_LOSSES)) / STEPS
        print(f"{name:<22} " + " ".join(f"{loss:5.3f}" for loss in losses) + f"   mean gap to the log {gap:.3f}")


if __name__ == "__main__":
    main()
