"""The speedrun recipe's early dropout, measured on validation: how many of its 7 epochs should drop?

    python benchmarks/early_dropout_probe.py    # dropout in the first 1, 2 or 3 epochs, seeds 0-2: 27 min, 2 cores

When this probe ran, the speedrun recipe trained 7 epochs with the network's dropout on in the first 3
only; it has since taken the probe's pick, 1 (README, "Time to accuracy"; docs/speedrun.md). Fewer dropping epochs leave
the under-fitted network more of its capacity and cost less (a dropping step draws its masks); more
keep more of the regulariser. Each setting runs seeds 0-2 in the precision this machine trains in
(bfloat16 where native; ``FMNIST_LAB_BF16=0`` for float32), two processes of one thread at a time
(``muon_probe.run_in_pairs``). The rule, fixed before the runs: the setting with the highest mean
best-validation accuracy over the seeds wins, and 3, the recipe's then, stays on a tie. The test
accuracy is recorded for the speedrun's later comparison, not for the choice.

Results: one JSON line per run in ``--out`` (default ``benchmarks/results/avx512/early_dropout_probe.jsonl``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from muon_probe import run_in_pairs, scored  # benchmarks/muon_probe.py: python puts this script's folder on the path

from fmnist_lab import load_fashion_mnist, make_config, run
from fmnist_lab.devices import bf16_is_native
from fmnist_lab.files import atomic_write_text

RESULTS = Path(__file__).parent / "results" / "avx512" / "early_dropout_probe.jsonl"


def one_run(dropout_epochs: int, seed: int) -> dict:
    """The speedrun recipe with ``dropout_epochs``, trained and scored like the speedrun's runs."""
    config = make_config("speedrun", dropout_epochs=dropout_epochs, seed=seed)
    data = load_fashion_mnist(download=False, verbose=False)
    start = time.perf_counter()
    result = run(config, data, progress=False, log=lambda line: None)
    return dict(
        dropout_epochs=dropout_epochs,
        bf16=config.bf16 and bf16_is_native(torch.device(config.device)),  # what the run trained in
        **scored(result, start, config.epochs, seed),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dropout-epochs", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--one", nargs=2, type=int, help=argparse.SUPPRESS)  # DROPOUT_EPOCHS SEED, in this process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(*args.one)), flush=True)
        return
    runs = [
        (f"dropout_epochs={k}, seed {seed}", ["--one", str(k), str(seed)])
        for seed in args.seeds
        for k in args.dropout_epochs
    ]
    results = []
    for (label, _), result in zip(runs, run_in_pairs(__file__, runs)):
        results.append(result)
        print(f"{label}: best validation {100 * result['best_val']:.2f}%", flush=True)
    atomic_write_text(args.out, "".join(json.dumps(r) + "\n" for r in results))
    print(f"{'dropout epochs':<15} {'best validation, mean':>22} {'(seeds)':<24} {'minutes':>8}")
    for k in args.dropout_epochs:
        mine = [r for r in results if r["dropout_epochs"] == k]
        seeds = ", ".join(f"{100 * r['best_val']:.2f}" for r in mine)
        print(
            f"{k:<15} {100 * statistics.mean(r['best_val'] for r in mine):>21.2f}% ({seeds})"
            f" {statistics.mean(r['minutes'] for r in mine):>8.1f}"
        )
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
