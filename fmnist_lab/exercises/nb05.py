"""Exercises of notebook 05: early stopping's rule."""

from __future__ import annotations

from . import Exercise, Wrong, call


def _expected_stop(accuracies: list[float], patience: int) -> bool:
    if not accuracies:
        return False
    best = max(range(len(accuracies)), key=lambda i: (accuracies[i], -i))  # earliest best on ties
    return len(accuracies) - 1 - best >= patience


STOP_CASES = {
    "no epochs yet, patience 2": ([], 2),
    "[0.80, 0.85, 0.84, 0.83], patience 2": ([0.80, 0.85, 0.84, 0.83], 2),
    "[0.80, 0.85, 0.84, 0.83], patience 3": ([0.80, 0.85, 0.84, 0.83], 3),
    "[0.80, 0.85, 0.85, 0.85], patience 2 (a tie is no improvement)": ([0.80, 0.85, 0.85, 0.85], 2),
    "[0.80, 0.82, 0.84, 0.86], patience 1 (still improving)": ([0.80, 0.82, 0.84, 0.86], 1),
    "[0.90, 0.70, 0.75, 0.80], patience 3": ([0.90, 0.70, 0.75, 0.80], 3),
}


def _check_should_stop(should_stop, val_accuracies: list[float] | None = None, patience: int | None = None, generator=None) -> str:
    for case, (accuracies, p) in STOP_CASES.items():
        got = call(should_stop, list(accuracies), p, case=case)
        if not isinstance(got, bool):
            raise Wrong(f"`should_stop` should return True or False, but on {case} it returned {type(got).__name__}")
        if got != _expected_stop(accuracies, p):
            verb = "stop" if _expected_stop(accuracies, p) else "go on"
            raise Wrong(f"on {case}, training should {verb}, but you returned {got}")
    praise = "your rule agrees with fit's early stopping on every case, ties included"
    if val_accuracies is not None and patience is not None:
        stop = next((n for n in range(1, len(val_accuracies) + 1)
                     if call(should_stop, list(val_accuracies[:n]), patience, case="the run above")), None)
        if stop is not None and stop != len(val_accuracies):
            raise Wrong(f"on the run above, your rule stops after epoch {stop}, but fit ran {len(val_accuracies)} "
                        f"epochs with the same patience")
        if stop is not None:
            praise += "; on the constant-LR run above it stops after the same epoch as fit did"
    return praise + "."


q1 = Exercise(
    "nb05.q1", _check_should_stop,
    hint_text="Find the epoch of the best accuracy (the first one, if several tie), then count the epochs since "
              "then: len(val_accuracies) - 1 - best_index. Stop when that count reaches patience.",
)
