"""benchmarks/speedrun.py: the progress its runs report is their share of the steps they take."""

import sys
from pathlib import Path

import pytest
from torch.optim.optimizer import register_optimizer_step_post_hook

from fmnist_lab.config import make_config

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
from recipes import whole_run  # noqa: E402
from speedrun import planned_steps  # noqa: E402

SMALL = {"epochs": 2, "val_size": 200, "limit_train": 640, "device": "cpu"}


@pytest.mark.filterwarnings("ignore:limit_train=640:fmnist_lab.errors.DegenerateRunWarning")
@pytest.mark.parametrize(
    "recipe, changes",
    [
        ("report", {"report_sweep_batches": 1}),  # its sweep (100 LRs, here 1 mini-batch each), then its epochs
        ("speedrun", {}),  # its LR given: its epochs alone
    ],
)
def test_the_planned_steps_are_the_steps_a_whole_run_takes(tiny_data, recipe, changes):
    config = make_config(recipe, **SMALL, **changes)
    steps = []
    handle = register_optimizer_step_post_hook(lambda optimizer, args, kwargs: steps.append(1))
    try:
        whole_run(config, tiny_data)
    finally:
        handle.remove()
    assert len(steps) == planned_steps(config)
