"""A route the speedrun issue did not list: when the network's dropout is on, epoch by epoch.

    python benchmarks/dropout_probe.py              # the four candidates below, two processes at a time
    python benchmarks/dropout_probe.py --candidates late early --seed 1 --out /tmp/dropout_seed1.jsonl

The network keeps its layers, Dropout2d(0.25) after each block and Dropout(0.5) before the head;
what changes is only which training epochs drop anything. At short budgets the network is
under-fitted (its validation accuracy is still rising when the schedule ends), so dropout may cost
more than it gives early on. "Early dropout" and "late dropout" (Liu et al., "Dropout Reduces
Underfitting", ICML 2023) turn it on for the first or the last epochs only; "off" never drops
(a reference: it trains the network without its regulariser). Each candidate is the fast recipe
at a given peak LR (no LR finder), in float32, scored like the speedrun: the epoch picked on
validation, the test set once. The rates are set between epochs by the ``on_epoch_end`` hook, so
that "late" can be measured too; the lab's ``dropout_epochs`` setting does what "early" and "off" do.
Evaluation never drops, whatever the schedule.

The committed results are three runs' files concatenated, in this order: the first command above
(seed 0, all four candidates), then ``--candidates early off --seed 1 --out FILE`` and the same with
``--seed 2`` (each run writes its own file).

Results: one JSON line per run, by default in ``benchmarks/results/avx2/dropout_probe.jsonl``
(docs/speedrun.md; ``--out`` elsewhere, so that a partial run does not replace it).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from muon_probe import probe_main, scored  # benchmarks/muon_probe.py: python puts this script's folder on the path

from fmnist_lab import Net, load_fashion_mnist, make_config, run
from fmnist_lab.train import TrainingState

# name -> for epoch e of E (1-based), whether that epoch drops as the network's layers say
CANDIDATES = {
    "network": lambda e, epochs: True,
    "off": lambda e, epochs: False,
    "early": lambda e, epochs: e <= epochs // 2,
    "late": lambda e, epochs: e > epochs // 2,
}
RESULTS = Path(__file__).parent / "results" / "avx2" / "dropout_probe.jsonl"


def run_candidate(name: str, lr: float, epochs: int, seed: int) -> dict:
    drops = CANDIDATES[name]
    config = make_config("fast", lr=lr, epochs=epochs, seed=seed, bf16=False)
    data = load_fashion_mnist(download=False, verbose=False)
    torch.manual_seed(config.seed)  # the model run() would make, from the same random numbers
    model = Net()
    layers = (model.drop_2d, model.drop)
    rates = [layer.p for layer in layers]  # the network's own (0.25 after each block, 0.5 before the head)

    def set_dropout(epoch: int) -> None:
        for layer, rate in zip(layers, rates):
            layer.p = rate if drops(epoch, epochs) else 0.0

    set_dropout(1)

    def next_epoch(state: TrainingState) -> None:
        set_dropout(len(state.history.val_accuracy) + 1)

    start = time.perf_counter()
    result = run(config, data, progress=False, log=lambda line: None, on_epoch_end=next_epoch, model=model)
    return dict(
        name=name,
        lr=lr,
        dropout_epochs=[e for e in range(1, epochs + 1) if drops(e, epochs)],
        train_loss=result.history.train_loss,
        **scored(result, start, epochs, seed),
    )


if __name__ == "__main__":
    probe_main(__file__, __doc__, CANDIDATES, RESULTS, run_candidate)
