"""Three short seeded runs, their losses, accuracies, LRs and final weights, as JSON: for checking that a
change to the core trains exactly as before.

    python tools/seeded_runs.py before.json          # in a checkout of the old commit
    python tools/seeded_runs.py after.json           # in the new one, on the same machine
    cmp before.json after.json

The three runs cover the LR finder (the fast recipe), the report's sweep and rule, and a given LR with a
step schedule, augmentation, label smoothing and early stopping. Timings are left out; everything else
that metrics.json records is compared, and a hash of the chosen epoch's weights.
"""

from __future__ import annotations

import argparse
import hashlib
import json

from fmnist_lab import load_fashion_mnist, make_config, pick_lr, run
from fmnist_lab.files import atomic_write_text

CASES = {
    "fast recipe, LR finder": dict(recipe="fast", epochs=2, limit_train=3000),
    "report recipe, its sweep and rule": dict(recipe="report", epochs=2, limit_train=2000, report_sweep_batches=2),
    "step schedule, given LR, augmentation, early stopping": dict(
        recipe="fast",
        epochs=3,
        schedule="step",
        lr=0.05,
        limit_train=2000,
        max_shift=2,
        flip=True,
        patience=1,
        label_smoothing=0.1,
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="JSON file to write")
    out = parser.parse_args().out
    data = load_fashion_mnist(verbose=False)
    results = {}
    for name, settings in CASES.items():
        config, model = pick_lr(make_config(**settings, device="cpu"), data, log=lambda line: None)
        result = run(config, data, progress=False, log=lambda line: None, model=model)
        metrics = result.metrics
        weights = b"".join(v.detach().cpu().numpy().tobytes() for v in result.model.state_dict().values())
        results[name] = {
            "lr": metrics["config"]["lr"],
            "best_epoch": metrics["best_epoch"],
            "test_accuracy": metrics["test_accuracy"],
            "test_loss": metrics["test_loss"],
            "history": [{k: v for k, v in epoch.items() if k != "seconds"} for epoch in metrics["history"]],
            "weights_sha256": hashlib.sha256(weights).hexdigest(),
        }
        print(f"{name}: test accuracy {100 * metrics['test_accuracy']:.2f}%", flush=True)
    atomic_write_text(out, json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
