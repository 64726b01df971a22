"""Exercises of notebook 05: early stopping's rule."""

from __future__ import annotations

import numbers

import numpy as np
import torch

from ..config import TrainConfig
from ..experiment import RunResult
from ..train import History, best_epoch, out_of_patience
from . import Exercise, Misused, Wrong, as_bool, call, describe, missing_exercise, refuse_notebook_values


def _stop_cases(generator: torch.Generator | None) -> dict[str, tuple[list[float], int]]:
    cases = {
        "no epochs yet, patience 2": ([], 2),
        "[0.80, 0.85, 0.84, 0.83], patience 2": ([0.80, 0.85, 0.84, 0.83], 2),
        "[0.80, 0.85, 0.84, 0.83], patience 3": ([0.80, 0.85, 0.84, 0.83], 3),
        "[0.80, 0.85, 0.85, 0.85], patience 2 (a tie is no improvement)": ([0.80, 0.85, 0.85, 0.85], 2),
        "[0.80, 0.85, 0.85], patience 2 (a tie is no improvement)": ([0.80, 0.85, 0.85], 2),
        "[0.80, 0.82, 0.84, 0.86], patience 1 (still improving)": ([0.80, 0.82, 0.84, 0.86], 1),
        "[0.90, 0.70, 0.75, 0.80], patience 3": ([0.90, 0.70, 0.75, 0.80], 3),
        # still rising, but below the best of three epochs ago: a rule that looks only at the last epochs goes on
        "[0.90, 0.70, 0.75, 0.80], patience 2 (the best was 3 epochs ago)": ([0.90, 0.70, 0.75, 0.80], 2),
        # better inside the window, then worse: a rule that compares only the last epoch with the best before stops
        "[0.85, 0.90, 0.80], patience 2 (better, then worse)": ([0.85, 0.90, 0.80], 2),
        # a gain of 0.0005 is a gain: a rule with a minimum improvement (Keras's min_delta) stops here
        "[0.8, 0.8005, 0.79], patience 2 (a small gain)": ([0.8, 0.8005, 0.79], 2),
    }
    if generator is not None:
        for n in range(4):
            epochs = int(torch.randint(1, 15, (1,), generator=generator))
            # accuracies on a coarse grid, so that ties happen
            accuracies = [round(0.8 + 0.01 * int(v), 2) for v in torch.randint(0, 8, (epochs,), generator=generator)]
            patience = int(torch.randint(1, 5, (1,), generator=generator))
            cases[f"hidden case {n + 1}: {accuracies}, patience {patience}"] = (accuracies, patience)
    return cases


def _expect_accuracies(val_accuracies: object, patience: object) -> None:
    is_number = (numbers.Real, np.floating)
    if not isinstance(val_accuracies, (list, tuple)) or not all(isinstance(a, is_number) for a in val_accuracies):
        hint = " (its .val_accuracy)" if hasattr(val_accuracies, "val_accuracy") else ""
        raise Misused(
            f"check() expects the run's list of validation accuracies{hint} after your function, then the "
            f"patience, but it got {describe(val_accuracies)}"
        )
    if isinstance(patience, bool) or not isinstance(patience, numbers.Integral):
        raise Misused(
            f"check() expects the patience (an int) after the validation accuracies, but it got {describe(patience)}"
        )


def _check_should_stop(
    should_stop, val_accuracies: list[float] | None = None, patience: int | None = None, generator=None
) -> str:
    if val_accuracies is not None:
        _expect_accuracies(val_accuracies, patience)
    # the notebook's run or its config read in place of the arguments was told only a case's verdict (helper 101)
    refuse_notebook_values(
        should_stop,
        (TrainConfig, History, RunResult),
        "should_stop",
        "decide on the `val_accuracies` and `patience` it is given (its arguments)",
    )
    for case, (accuracies, p) in _stop_cases(generator).items():
        got = as_bool(call(should_stop, list(accuracies), p, case=case), "should_stop", case)
        if got != out_of_patience(accuracies, p):
            verb = "stop" if out_of_patience(accuracies, p) else "go on"
            raise Wrong(f"on {case}, training should {verb}, but you returned {got}")
    praise = "your rule agrees with fit's early stopping on every case, ties included"
    if val_accuracies is not None:
        case = "the run above"
        epochs = range(1, len(val_accuracies) + 1)
        fits = next((n for n in epochs if out_of_patience(list(val_accuracies[:n]), patience)), None)
        if fits is not None and fits != len(val_accuracies):  # the data, not the answer: fit would not have run on
            raise Misused(
                f"check() expects the validation accuracies of a run and the patience it ran with, but with "
                f"patience {patience} fit would have stopped after epoch {fits} of the {len(val_accuracies)} it "
                f"got (accuracies rise as the model learns; a loss falls): pass that run's val_accuracy and patience"
            )
        stop = next(
            (
                n
                for n in epochs
                if as_bool(call(should_stop, list(val_accuracies[:n]), patience, case=case), "should_stop", case)
            ),
            None,
        )
        if stop != fits:
            went = f"stopped after epoch {fits}" if fits else f"ran all {len(val_accuracies)} epochs without stopping"
            yours = f"stops after epoch {stop}" if stop else "never stops"
            raise Wrong(f"on the run above, your rule {yours}, but fit {went} with the same patience")
        if stop is not None:
            praise += "; on the constant-LR run above it stops after the same epoch as fit did"
    return praise + "."


q1 = Exercise(
    "nb05.q1",
    _check_should_stop,
    hint_text="With no epochs yet there is nothing to compare. Otherwise: which epoch was the best (the first one, "
    "if several tie)? How many epochs have passed since then? Stop when that count reaches patience.",
    lab_functions=(out_of_patience, best_epoch, History),
)

__getattr__ = missing_exercise(__name__, globals())
