"""Exercises that the lab checks on the spot, one module per notebook.

    from fmnist_lab.exercises import nb01
    nb01.q1.check(pixel_std)     # prints one sentence
    nb01.q1.hint()               # prints a hint
    nb01.q1.solution()           # prints a model answer

The contract of every exercise's ``check(answer, *data)``:

- it runs ``answer`` (usually the student's function) on cases of its own, not only the
  notebook's, and prints exactly one sentence that starts with
  ``Correct:`` (all cases passed), ``Not yet:`` (what is wrong, on which case) or
  ``Not done yet:`` (the answer is still the stub that raises ``NotImplementedError``);
- it never raises for a wrong or unfinished answer: the student's exceptions become sentences;
- ``data`` (optional) is the notebook's real data: once the answer has passed its own cases,
  the sentence also says what the answer gives there;
- ``verdict(answer, *data)`` returns the same outcome without printing, for tests and scripts.

The notebooks hold the instructor's solutions between nbgrader's ``### BEGIN SOLUTION`` /
``### END SOLUTION`` markers inside function bodies; ``tools/make_student_edition.py`` swaps
them for ``raise NotImplementedError()``, which ``check`` reports as "not done yet".
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

CORRECT, WRONG, NOT_DONE = "correct", "wrong", "not done"
PREFIXES = {CORRECT: "Correct: ", WRONG: "Not yet: ", NOT_DONE: "Not done yet: "}


class Wrong(Exception):
    """Raised by a checker: the answer is wrong, and the message says how."""


class NotDone(Exception):
    """Raised by a checker: the answer is still the stub that raises NotImplementedError."""


@dataclass(frozen=True)
class Verdict:
    status: str  # CORRECT, WRONG or NOT_DONE
    message: str  # one sentence, starting with "Correct:", "Not yet:" or "Not done yet:"

    @property
    def passed(self) -> bool:
        return self.status == CORRECT


@dataclass(frozen=True)
class Exercise:
    """One exercise: ``checker(answer, *data)`` returns the praise or raises Wrong/NotDone."""

    label: str  # how the notebook refers to it, e.g. "nb01.q1"
    checker: Callable[..., str]
    hint_text: str
    solution_text: str

    def verdict(self, answer: Any, *data: Any) -> Verdict:
        try:
            praise = self.checker(answer, *data)
        except NotDone as err:
            return Verdict(NOT_DONE, PREFIXES[NOT_DONE] + str(err))
        except Wrong as err:
            return Verdict(WRONG, f"{PREFIXES[WRONG]}{err}. Stuck? Run {self.label}.hint().")
        return Verdict(CORRECT, PREFIXES[CORRECT] + praise)

    def check(self, answer: Any, *data: Any) -> None:
        """Print whether ``answer`` is correct, wrong (and how) or not done yet."""
        print(self.verdict(answer, *data).message)

    def hint(self) -> None:
        print("Hint: " + self.hint_text)

    def solution(self) -> None:
        print("One solution:\n\n" + self.solution_text.strip())


def call(function: Any, *args: Any, case: str, returns: bool = True, copy_args: bool = True) -> Any:
    """Call the student's ``function`` on one of the exercise's cases (described by ``case``).

    Its arguments are copies (unless ``copy_args`` is False, for answers that must change their
    input in place), so an answer that changes its input cannot spoil later cases.
    NotImplementedError becomes NotDone, any other exception and a forgotten ``return``
    (when ``returns``) become Wrong, each with a sentence that names the case.
    """
    if not callable(function):
        raise Wrong(f"pass your function itself to check(), without calling it; it got {describe(function)}")
    name = getattr(function, "__name__", "your function")
    try:
        result = function(*[copy.deepcopy(a) for a in args] if copy_args else args)
    except NotImplementedError:
        raise NotDone(f"`{name}` still raises NotImplementedError. Replace `raise NotImplementedError()` with "
                      f"your code, run that cell, then run this check again.") from None
    except Exception as err:  # the student's bug, reported as a sentence instead of a traceback
        raise Wrong(f"`{name}` raised {type(err).__name__} ({err}) when called on {case}") from None
    if returns and result is None:
        raise Wrong(f"`{name}` returned None on {case}: did you forget the `return`?")
    return result


def describe(value: Any) -> str:
    """A short description of a value for a sentence: its type and a glimpse of it."""
    if isinstance(value, Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def as_number(value: Any, name: str, case: str) -> float:
    """The answer as a float; a one-element tensor counts, anything else is Wrong."""
    if isinstance(value, Tensor) and value.numel() == 1:
        return float(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    raise Wrong(f"`{name}` should return one number, but on {case} it returned {describe(value)}")


def as_tensor(value: Any, name: str, case: str, shape: tuple[int, ...]) -> Tensor:
    """The answer as a tensor of the given shape (lists and NumPy arrays are accepted)."""
    try:
        tensor = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        raise Wrong(f"`{name}` should return a tensor of shape {shape}, but on {case} it returned "
                    f"{describe(value)}") from None
    if tuple(tensor.shape) != shape:
        raise Wrong(f"`{name}` should return shape {shape} on {case}, but returned shape {tuple(tensor.shape)}")
    return tensor


def close(a: float, b: float, tolerance: float = 1e-6) -> bool:
    """Equal up to a relative (or, near zero, absolute) tolerance."""
    return abs(a - b) <= tolerance * max(1.0, abs(a), abs(b))
