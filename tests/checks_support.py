"""Helpers of the check tests: run a check, and say what it must answer."""

from __future__ import annotations

from typing import Any

from fmnist_lab.exercises import CORRECT, WRONG, Exercise

SEEDS = range(3)  # the grader's hidden cases: a few seeds, each draws other cases


def assert_right(exercise: Exercise, answer: Any, *data: Any, seed: int | None = None) -> str:
    """The check accepts ``answer``; its praise is returned."""
    result = exercise.verdict(answer, *data, seed=seed)
    assert result.status == CORRECT, result.message
    return result.message


def assert_wrong(exercise: Exercise, answer: Any, sentence: str, *data: Any, seed: int | None = None) -> str:
    """The check refuses ``answer`` with a message that holds ``sentence``."""
    result = exercise.verdict(answer, *data, seed=seed)
    assert result.status == WRONG, result.message
    assert result.message.startswith("Not yet: ") and sentence in result.message, result.message
    return result.message
