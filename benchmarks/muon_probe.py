"""A route the speedrun issue did not list: Muon, orthogonalised momentum, on the convolutions' weights.

    python benchmarks/muon_probe.py                 # the four candidates below, two processes at a time
    python benchmarks/muon_probe.py --candidates sgd muon-0.02 --seed 1 --out /tmp/muon_seed1.jsonl

Muon (Keller Jordan's optimizer behind the CIFAR-10 and nanoGPT speedruns) replaces a weight
matrix's momentum-SGD update by the nearest orthogonal matrix (five Newton-Schulz steps), so that
every direction of the update moves at the same rate. A conv weight (out, in, 3, 3) is treated as
the matrix (out, in*9). Here it updates the chosen weights; every other parameter (biases,
BatchNorm, the rest) gets the lab's Nesterov SGD with weight decay, and the one-cycle schedule
scales both (Muon's peak LR in a fixed ratio to SGD's). Each candidate is the fast recipe at a
given SGD peak LR (no LR finder), in float32, scored like the speedrun: the epoch picked on
validation, the test set once.

The lab has no optimizer hook, so each run swaps ``fmnist_lab.train.make_optimizer`` for its own
process only. Results: one JSON line per run, by default in ``benchmarks/results/avx2/muon_probe.jsonl``
(docs/speedrun.md; ``--out`` elsewhere, so that a partial run does not replace it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from unittest import mock

import torch
from torch import nn

from fmnist_lab import load_fashion_mnist, make_config, run
from fmnist_lab.experiment import RunResult
from fmnist_lab.files import atomic_write_text

NEWTON_SCHULZ = (3.4445, -4.7750, 2.0315)  # Keller Jordan's quintic coefficients
CONVS = ("c2.weight", "c3.weight")
# name -> (Muon's peak LR, the weights it updates); SGD's peak LR is --lr for all of them
CANDIDATES = {
    "sgd": (None, ()),
    "muon-0.02": (0.02, CONVS),
    "muon-0.05": (0.05, CONVS),
    "muon-0.02-all": (0.02, ("c1.weight", *CONVS, "fc_1.weight")),  # every weight but the 10-way head
}
RESULTS = Path(__file__).parent / "results" / "avx2" / "muon_probe.jsonl"


def orthogonalise(matrix: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """The nearest orthogonal matrix, approximately (singular values pushed towards 0.7-1.2)."""
    a, b, c = NEWTON_SCHULZ
    x = matrix / (matrix.norm() + 1e-7)
    tall = x.size(0) > x.size(1)
    if tall:
        x = x.T
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


class MuonSGD(torch.optim.Optimizer):
    """Muon on ``muon_names``; Nesterov SGD with (coupled) weight decay on every other parameter."""

    def __init__(self, model: nn.Module, lr: float, momentum: float, weight_decay: float, muon_lr: float, muon_names):
        named = dict(model.named_parameters())
        groups = [
            dict(params=[p for n, p in named.items() if n in muon_names], muon=True),
            dict(params=[p for n, p in named.items() if n not in muon_names], muon=False),
        ]
        self.muon_ratio = muon_lr / lr  # the schedule sets one LR for both groups
        super().__init__(groups, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None) -> None:
        for group in self.param_groups:
            lr, momentum = group["lr"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad if group["muon"] else p.grad.add(p, alpha=group["weight_decay"])
                buffer = self.state[p].setdefault("momentum_buffer", torch.zeros_like(grad))
                buffer.mul_(momentum).add_(grad)
                update = grad.add(buffer, alpha=momentum)  # Nesterov
                if group["muon"]:
                    matrix = update.reshape(len(update), -1)
                    rectangular = max(1.0, matrix.size(0) / matrix.size(1)) ** 0.5
                    p.add_(orthogonalise(matrix).view_as(p), alpha=-lr * self.muon_ratio * rectangular)
                else:
                    p.add_(update, alpha=-lr)


def run_candidate(name: str, sgd_lr: float, epochs: int, seed: int) -> dict:
    muon_lr, muon_names = CANDIDATES[name]
    config = make_config("fast", lr=sgd_lr, epochs=epochs, seed=seed, bf16=False)
    data = load_fashion_mnist(download=False, verbose=False)

    def optimizer(model: nn.Module, config) -> torch.optim.Optimizer:
        return MuonSGD(model, config.lr, config.momentum, config.weight_decay, muon_lr, muon_names)

    swap = mock.patch("fmnist_lab.train.make_optimizer", optimizer) if muon_lr else contextlib.nullcontext()
    start = time.perf_counter()
    with swap:
        result = run(config, data, progress=False, log=lambda line: None)
    return dict(
        name=name,
        sgd_lr=sgd_lr,
        muon_lr=muon_lr,
        muon_weights=list(muon_names),
        **scored(result, start, epochs, seed),
    )


def scored(result: RunResult, start: float, epochs: int, seed: int) -> dict:
    """What a probe records of every run (``start``: its ``time.perf_counter()`` before training)."""
    return dict(
        epochs=epochs,
        seed=seed,
        threads=torch.get_num_threads(),
        minutes=(time.perf_counter() - start) / 60,
        best_val=max(result.history.val_accuracy),
        best_epoch=result.history.best_epoch,
        test=result.test_accuracy,
        val=result.history.val_accuracy,
        epoch_seconds=result.history.seconds,
        torch=torch.__version__,
    )


def run_in_pairs(script: str, runs: list[tuple[str, list[str]]]) -> Iterator[dict]:
    """Each of ``runs`` (a label, the arguments) is ``script`` in a process of its own, yielding the JSON of its
    output's last line, in order. Two processes of one thread each at a time, as the 2-core machine runs the test
    command; a failed run stops its pair and exits, naming its label. The probes share it."""
    pending = list(runs)
    while pending:
        pair, pending = pending[:2], pending[2:]
        processes = [
            subprocess.Popen(
                [sys.executable, script, *arguments],
                stdout=subprocess.PIPE,
                text=True,
                env={**os.environ, "OMP_NUM_THREADS": "1"},
            )
            for _, arguments in pair
        ]
        for (label, _), process in zip(pair, processes):
            out, _ = process.communicate()
            if process.returncode != 0:
                for other in processes:
                    other.kill()
                sys.exit(f"{label} failed (exit {process.returncode}); nothing written")
            yield json.loads(out.strip().splitlines()[-1])


def probe_main(script: str, doc: str, candidates: dict, results_path: Path, run_candidate: Callable) -> None:
    """A probe's command line: ``run_candidate(name, lr, epochs, seed)`` for each candidate, two processes at a time
    (``script --one NAME``), a failed one stopping its pair; one JSON line each written to ``--out``, a table printed.
    dropout_probe.py shares it."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--candidates", nargs="+", choices=candidates, default=list(candidates))
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=0.1, help="SGD's peak LR (the fast recipe's finder: 0.077-0.14)")
    parser.add_argument("--out", type=Path, default=results_path, help="the JSON-lines file to write")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a single candidate, in this process (what probe_main starts)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_candidate(args.one, args.lr, args.epochs, args.seed)), flush=True)
        return
    common = ["--epochs", str(args.epochs), "--seed", str(args.seed), "--lr", str(args.lr)]
    runs = [(f"candidate {name}", ["--one", name, *common]) for name in args.candidates]
    results = list(run_in_pairs(script, runs))
    atomic_write_text(args.out, "".join(json.dumps(r) + "\n" for r in results))
    print(f"{'candidate':<15} {'best validation':>15} {'test':>7} {'minutes':>8}")
    for r in results:
        print(f"{r['name']:<15} {100 * r['best_val']:>14.2f}% {100 * r['test']:>6.2f}% {r['minutes']:>8.1f}")
    print(f"written: {args.out}")


if __name__ == "__main__":
    probe_main(__file__, __doc__, CANDIDATES, RESULTS, run_candidate)
