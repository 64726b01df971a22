"""The exercises' framework: solution() from the instructor notebooks, strict mode, seeds, sentences."""

from __future__ import annotations

import importlib
import pkgutil

import nbformat
import pytest
import torch
from torch import nn

import fmnist_lab.exercises as exercises
from fmnist_lab.exercises import CORRECT, NOT_DONE, WRONG, Exercise, Wrong, solution_code

MODULES = [importlib.import_module(f"fmnist_lab.exercises.{m.name}") for m in pkgutil.iter_modules(exercises.__path__)]
ALL = [value for module in MODULES for value in vars(module).values() if isinstance(value, Exercise)]


def stub(*args):
    # YOUR CODE HERE
    raise NotImplementedError()


def defined(code: str):
    """The one function that ``code`` (a printed solution) defines, defined for real."""
    namespace = {"torch": torch, "nn": nn, "F": torch.nn.functional}
    before = set(namespace)
    exec(code, namespace)
    (name,) = [k for k in namespace if k not in before and k != "__builtins__"]
    return namespace[name]


@pytest.mark.parametrize("exercise", ALL, ids=lambda e: e.label)
def test_every_printed_solution_passes_and_a_stub_is_not_done(exercise):
    text = solution_code(exercise.label)
    assert text.startswith("One solution:\n\ndef "), text
    assert "### BEGIN SOLUTION" not in text and "### END SOLUTION" not in text
    assert exercise.verdict(defined(text.split("\n", 2)[2])).status == CORRECT
    result = exercise.verdict(stub)
    assert result.status == NOT_DONE and "still raises NotImplementedError" in result.message


def test_solution_prints_the_solution_cell_before_the_check_call(capsys, tmp_path, monkeypatch):
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("def first(x):\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION"),
        nbformat.v4.new_code_cell("nb09.q1.check(first)"),
        nbformat.v4.new_code_cell("def second(x):\n    ### BEGIN SOLUTION\n    return 2\n    ### END SOLUTION"),
        nbformat.v4.new_markdown_cell("text between"),
        nbformat.v4.new_code_cell("print('not a solution')"),
        nbformat.v4.new_code_cell("nb09.q10.check(second)"),  # q10 must not be taken for q1
    ])
    nbformat.write(notebook, tmp_path / "09_example.ipynb")
    monkeypatch.setattr(exercises, "INSTRUCTOR_DIR", tmp_path)
    Exercise("nb09.q10", lambda answer, generator=None: "fine", "a hint").solution()
    assert capsys.readouterr().out == "One solution:\n\ndef second(x):\n    return 2\n"
    assert solution_code("nb09.q1") == "One solution:\n\ndef first(x):\n    return 1"


def test_without_the_instructor_notebooks_solution_says_why_and_how_to_get_them(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(exercises, "INSTRUCTOR_DIR", tmp_path / "not-installed")
    ALL[0].solution()
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.count(". ") == 0  # one sentence
    assert "not part of this installation" in out and "graded course" in out
    assert "clone" in out and "pip install -e ." in out


def test_strict_is_silent_when_correct_and_raises_the_sentence_otherwise(capsys):
    def checker(answer, generator=None):
        if exercises.call(answer, 2, case="two") != 4:
            raise Wrong("on two, it should be 4")
        return "fine"

    exercise = Exercise("nb09.q1", checker, "square it")
    exercise.check(lambda x: x * x, strict=True)
    assert capsys.readouterr().out == ""
    with pytest.raises(AssertionError, match=r"^Not yet: `<lambda>` raised ZeroDivisionError"):
        exercise.check(lambda x: 1 / 0, strict=True)
    with pytest.raises(AssertionError, match=r"^Not done yet: `stub` still raises"):
        exercise.check(stub, strict=True)
    exercise.check(lambda x: x * x)
    assert capsys.readouterr().out == "Correct: fine\n"


def test_a_seed_hands_the_checker_a_generator_seeded_with_it():
    drawn = []

    def checker(answer, generator=None):
        drawn.append(None if generator is None else torch.rand(3, generator=generator))
        return "fine"

    exercise = Exercise("nb09.q1", checker, "a hint")
    exercise.verdict(abs)
    exercise.verdict(abs, seed=7)
    exercise.verdict(abs, seed=7)
    exercise.verdict(abs, seed=8)
    assert drawn[0] is None
    assert torch.equal(drawn[1], drawn[2]) and not torch.equal(drawn[1], drawn[3])
    assert torch.equal(drawn[1], torch.rand(3, generator=torch.Generator().manual_seed(7)))
    with pytest.raises(TypeError, match="seed must be an int"):
        exercise.verdict(abs, seed="7")


def test_wrong_ends_with_the_hint_pointer():
    def checker(answer, generator=None):
        raise Wrong("on a case, it is off")

    result = Exercise("nb09.q1", checker, "a hint").verdict(abs)
    assert result.status == WRONG and result.message == "Not yet: on a case, it is off. Stuck? Run nb09.q1.hint()."
