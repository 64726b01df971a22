"""The exercise checks: a right answer passes, each typical wrong answer gets its sentence, a stub is "not done yet".

Every model solution the package prints with ``solution()`` is run through its own check, so the
printed solutions cannot drift from what the checks accept.
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest
import torch
from torch import nn

import fmnist_lab.exercises as exercises
from fmnist_lab.exercises import CORRECT, NOT_DONE, WRONG, Exercise, Wrong, call, nb01

MODULES = [importlib.import_module(f"fmnist_lab.exercises.{m.name}") for m in pkgutil.iter_modules(exercises.__path__)]
ALL = [(module.__name__.rsplit(".", 1)[1], name, value) for module in MODULES
       for name, value in vars(module).items() if isinstance(value, Exercise)]


def solution_function(exercise: Exercise):
    """The function that ``exercise.solution()`` prints, defined for real."""
    namespace = {"torch": torch, "nn": nn}
    before = set(namespace)
    exec(exercise.solution_text, namespace)
    (name,) = [k for k in namespace if k not in before and k != "__builtins__"]
    return namespace[name]


def stub(*args):
    # YOUR CODE HERE
    raise NotImplementedError()


def verdict(exercise: Exercise, answer, *data):
    result = exercise.verdict(answer, *data)
    assert result.message.startswith({CORRECT: "Correct: ", WRONG: "Not yet: ", NOT_DONE: "Not done yet: "}[result.status])
    return result


# the framework

def test_check_prints_one_sentence_and_never_raises(capsys):
    def broken(images):
        return images.nonexistent_method()

    nb01.q1.check(broken)
    out = capsys.readouterr().out
    assert out.startswith("Not yet: `broken` raised AttributeError") and out.count("\n") == 1
    assert "Stuck? Run nb01.q1.hint()." in out


def test_a_value_instead_of_a_function_is_explained():
    result = verdict(nb01.q1, 0.353)
    assert result.status == WRONG and "pass your function itself" in result.message


def test_a_forgotten_return_is_named():
    result = verdict(nb01.q1, lambda images: None)
    assert result.status == WRONG and "did you forget the `return`" in result.message


def test_call_passes_copies_so_an_answer_cannot_spoil_the_cases():
    x = torch.zeros(3)
    call(lambda t: t.add_(1), x, case="a case")
    assert torch.equal(x, torch.zeros(3))


def test_call_turns_a_stub_into_not_done_and_a_bug_into_wrong():
    from fmnist_lab.exercises import NotDone
    with pytest.raises(NotDone, match="`stub` still raises NotImplementedError"):
        call(stub, 1, case="a case")
    with pytest.raises(Wrong, match=r"`<lambda>` raised ZeroDivisionError \(division by zero\) when called on a case"):
        call(lambda v: v / 0, 1, case="a case")


def test_hint_and_solution_print(capsys):
    nb01.q1.hint()
    nb01.q1.solution()
    out = capsys.readouterr().out
    assert out.startswith("Hint: ") and "One solution:" in out and "def pixel_std(images):" in out


@pytest.mark.parametrize("notebook, name, exercise", ALL, ids=[f"{nb}.{name}" for nb, name, _ in ALL])
def test_every_printed_solution_passes_and_every_stub_is_not_done(notebook, name, exercise):
    assert exercise.label == f"{notebook}.{name}"
    assert exercise.hint_text and exercise.solution_text
    assert verdict(exercise, solution_function(exercise)).status == CORRECT
    result = verdict(exercise, stub)
    assert result.status == NOT_DONE and "still raises NotImplementedError" in result.message
