"""glibc's defaults against the lab's kept memory: the lab's training step, side by side in one run.

    python benchmarks/freed_memory.py [--images 55000] [--rounds 2]

The lab tunes glibc's malloc as it is imported (``fmnist_lab.devices.keep_freed_memory``), so each
setting runs in a process of its own: ``FMNIST_LAB_KEEP_MEMORY=0`` (glibc's defaults) and 1 (the
lab's), with bfloat16 on (where native) and off. The settings take turns, --rounds times over; each
process trains the lab's step as ``benchmarks/throughput.py`` builds it (batch 256, channels-last,
Nesterov SGD) on --images images after a warm-up, and counts the minor page faults of those steps.
Whole passes, not the best of short timings: glibc's defaults fault in some stretches of steps and
not in others, and a run pays for all of them. The report: each setting's mean over the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

SETTINGS = {
    "glibc's defaults": {"FMNIST_LAB_KEEP_MEMORY": "0"},
    "kept memory (the lab's)": {"FMNIST_LAB_KEEP_MEMORY": "1"},
}
PRECISIONS = {"bf16": {"FMNIST_LAB_BF16": "1"}, "fp32": {"FMNIST_LAB_BF16": "0"}}


def measure(images: int) -> dict[str, float]:
    """In this process: the lab's step's images/s over ``images`` images after a warm-up, and its page faults a step."""
    import torch
    from throughput import images_per_second, lab_pipeline

    from fmnist_lab import load_fashion_mnist, make_splits
    from fmnist_lab.config import TrainConfig

    splits = make_splits(load_fashion_mnist(), TrainConfig())
    batches, step = lab_pipeline(splits)
    images_per_second(batches, step, 2_048)  # warm-up: oneDNN's kernels, the heap grown to a step's size
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    rate = images_per_second(batches, step, images)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    steps = -(-images // batches.batch_size)  # images_per_second stops at the first step reaching ``images``
    return {"images_per_s": rate, "faults_per_step": faults / steps, "threads": torch.get_num_threads()}


def run_child(environment: dict[str, str], images: int) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", "--images", str(images)]
    done = subprocess.run(command, env={**os.environ, **environment}, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"freed_memory.py: the run with {environment} failed:\n{done.stderr}")
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=55_000, help="images per process (default 55,000: an epoch)")
    parser.add_argument("--rounds", type=int, default=2, help="times each setting runs, in turns")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.images)))
        return

    start = time.perf_counter()
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    for _ in range(args.rounds):
        for precision, precision_env in PRECISIONS.items():
            for setting, setting_env in SETTINGS.items():
                result = run_child({**precision_env, **setting_env}, args.images)
                results.setdefault((precision, setting), []).append(result)
    mean = {key: {name: statistics.mean(r[name] for r in runs) for name in runs[0]} for key, runs in results.items()}
    threads = int(next(iter(mean.values()))["threads"])
    print(f"the lab's step (batch 256, channels-last), {threads} threads, {args.images:,} images a process,")
    print(f"mean of {args.rounds} rounds:")
    for (precision, setting), result in mean.items():
        rates = ", ".join(f"{r['images_per_s']:.0f}" for r in results[(precision, setting)])
        print(
            f"{precision}  {setting:<24} {result['images_per_s']:7.0f} images/s ({rates})"
            f"   {result['faults_per_step']:7.0f} page faults a step"
        )
    for precision in PRECISIONS:
        defaults, kept = (mean[(precision, setting)]["images_per_s"] for setting in SETTINGS)
        print(f"{precision}: kept memory steps {kept / defaults:.2f}x as fast as glibc's defaults")
    print(f"({(time.perf_counter() - start) / 60:.1f} minutes)")


if __name__ == "__main__":
    main()
