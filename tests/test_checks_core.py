"""The exercises' framework: solution() from the instructor notebooks, strict mode, seeds, sentences."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import signal
import subprocess
import sys
import textwrap
import time
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from fmnist_lab import exercises
from fmnist_lab.exercises import (
    CORRECT,
    NOT_DONE,
    WRONG,
    Exercise,
    Wrong,
    all_close,
    as_bool,
    as_number,
    as_tensor,
    call,
    close,
    describe_images,
    nb01,
    nb02,
    solution_code,
)

MODULES = [importlib.import_module(f"fmnist_lab.exercises.{m.name}") for m in pkgutil.iter_modules(exercises.__path__)]
ALL = [value for module in MODULES for value in vars(module).values() if isinstance(value, Exercise)]

ROOT = Path(__file__).resolve().parent.parent


def stub(*args):
    # YOUR CODE HERE
    raise NotImplementedError()


def defined(code: str):
    """The one function that ``code`` (a printed solution) defines, defined for real."""
    namespace = {"torch": torch, "nn": nn, "F": torch.nn.functional}
    before = set(namespace)
    exec(code, namespace)  # noqa: S102 -- code written in this test
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


TOKEN = re.compile(r"\w+|[^\s\w]")


def longest_copied_run(text: str, code: str) -> list[str]:
    """The longest run of tokens (names, numbers, single symbols) that ``text`` shares with ``code``."""
    words = TOKEN.findall(text.translate(str.maketrans("·×−", "**-")))  # a formula typeset is a formula all the same
    source = TOKEN.findall(code)
    longest: list[str] = []
    for n in range(1, len(words) + 1):
        runs = {tuple(source[i : i + n]) for i in range(len(source) - n + 1)}
        shared = next((words[i : i + n] for i in range(len(words) - n + 1) if tuple(words[i : i + n]) in runs), None)
        if shared is None:
            return longest
        longest = shared
    return longest


@pytest.mark.parametrize("exercise", ALL, ids=lambda e: e.label)
def test_a_hint_points_the_way_without_spelling_out_the_solution(exercise):
    """In a graded course solution() has nothing to print, but hint() still works: it must not be the answer."""
    number = exercise.label[2:4]
    (student_path,) = (ROOT / "notebooks").glob(f"{number}_*.ipynb")
    given = {
        line.strip() for cell in nbformat.read(student_path, as_version=4).cells for line in cell.source.split("\n")
    }
    written = [line for line in solution_code(exercise.label).split("\n")[2:] if line.strip() not in given]
    copied = longest_copied_run(exercise.hint_text, "\n".join(written))
    assert len(copied) <= 5, f"{exercise.label}'s hint copies {' '.join(copied)!r} from the solution's code"


def test_solution_prints_the_solution_cell_before_the_check_call(capsys, tmp_path, monkeypatch):
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("def first(x):\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION"),
            nbformat.v4.new_code_cell("nb09.q1.check(first)"),
            nbformat.v4.new_code_cell("def second(x):\n    ### BEGIN SOLUTION\n    return 2\n    ### END SOLUTION"),
            nbformat.v4.new_markdown_cell("text between"),
            nbformat.v4.new_code_cell("print('not a solution')"),
            nbformat.v4.new_code_cell("nb09.q10.check(second)"),  # q10 must not be taken for q1
        ]
    )
    nbformat.write(notebook, tmp_path / "09_example.ipynb")
    monkeypatch.setattr(exercises, "INSTRUCTOR_DIR", tmp_path)
    Exercise("nb09.q10", lambda answer, generator=None: "fine", "a hint").solution()
    assert capsys.readouterr().out == "One solution:\n\ndef second(x):\n    return 2\n"
    assert solution_code("nb09.q1") == "One solution:\n\ndef first(x):\n    return 1"


def test_without_the_instructor_notebooks_solution_says_why_and_not_where_to_find_them(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(exercises, "INSTRUCTOR_DIR", tmp_path / "not-installed")
    ALL[0].solution()
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.count(". ") == 0  # one sentence
    assert "not part of this installation" in out and "graded course" in out
    assert "clone" not in out and "github" not in out  # a graded course's students are not sent to the solutions


def test_while_submissions_are_graded_solution_shows_none(monkeypatch):
    """nbgrader sets NBGRADER_EXECUTION while it autogrades (make's target and Formgrader's button alike): an answer
    that printed or ran solution() scored full (helper 103)."""
    monkeypatch.setenv("NBGRADER_EXECUTION", "validate")  # a student's `nbgrader validate` at home
    assert solution_code("nb01.q1").startswith("One solution:")
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert solution_code("nb01.q1") == "The solutions are not shown while submissions are graded."


@pytest.mark.parametrize("module", MODULES, ids=lambda module: module.__name__.rsplit(".", 1)[-1])
def test_an_exercise_without_a_check_is_named_as_one_graded_by_hand(module):
    """`nb02.q2.hint()`, exercise 2 being a prediction, said only "module has no attribute 'q2'" (helper 106)."""
    checked = [name for name, value in vars(module).items() if isinstance(value, Exercise)]
    missing = next(f"q{n}" for n in range(1, 10) if f"q{n}" not in checked)
    with pytest.raises(AttributeError, match=rf"has no check {missing}: the checked exercises? of notebook \d\d"):
        getattr(module, missing)
    assert ", ".join(checked) in str(pytest.raises(AttributeError, getattr, module, missing).value)
    assert not hasattr(module, "no_such_name")


def test_a_course_secret_makes_the_hidden_cases_its_own(monkeypatch):
    """The hidden cases of a public seed could be computed from this repository and answered from a table: such an
    answer scored full (helper 103). With a secret phrase in FMNIST_LAB_SECRET, the same seed draws other cases."""
    from fmnist_lab import distributed
    from fmnist_lab.exercises import nb08

    def cases(seed):
        return nb08._shard_cases(torch.Generator().manual_seed(exercises.hidden_seed(seed)))

    table = {
        (tuple(order.tolist()), rank, world_size): distributed.shard(order, rank, world_size).tolist()
        for order, rank, world_size in cases(7).values()
    }

    def from_a_table(order, rank, world_size):  # right on the cases of seed 7 without a secret, wrong elsewhere
        return table.get((tuple(order.tolist()), rank, world_size), [0])

    assert nb08.q1.verdict(from_a_table, seed=7).passed
    monkeypatch.setenv("FMNIST_LAB_SECRET", "spring term")
    assert exercises.hidden_seed(7) == exercises.hidden_seed(7) != 7
    assert not nb08.q1.verdict(from_a_table, seed=7).passed


def test_hidden_seeds_under_a_secret_do_not_give_each_other_away(monkeypatch):
    """crc32's linearity let one hidden seed learned, with the phrase's length, give every other (helper 109):
    crc(s:a) ^ crc(s:b) == crc(z:a) ^ crc(z:b) for z zero bytes as long as s."""
    import zlib

    secret = "spring term"
    monkeypatch.setenv("FMNIST_LAB_SECRET", secret)
    zeros = "\0" * len(secret)
    for a, b in ((3955, 8544), (2850, 2206)):
        from_the_other = (
            exercises.hidden_seed(a) ^ zlib.crc32(f"{zeros}:{a}".encode()) ^ zlib.crc32(f"{zeros}:{b}".encode())
        )
        assert exercises.hidden_seed(b) != from_the_other
        assert 0 <= exercises.hidden_seed(b) < 2**63  # a seed torch.Generator takes


def test_a_passing_strict_check_prints_its_grading_code_only_while_graded_with_a_secret(capsys, monkeypatch, tmp_path):
    """The code is what tells a check that ran from a fake that prints the same lines (helper 104); it is the
    student's own, from the folder nbgrader runs the submission in, autograded/<student>/<assignment>/ (helper 105)."""
    exercise = Exercise("nb09.q1", lambda answer, generator=None: "fine", "a hint")
    exercise.check(abs, strict=True, seed=5)
    monkeypatch.setenv("FMNIST_LAB_SECRET", "spring term")
    exercise.check(abs, strict=True, seed=5)  # outside autograde: silent, as nbval's runs of the notebooks need
    assert capsys.readouterr().out == ""
    (tmp_path / "alice" / "09_example").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "alice" / "09_example")
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    exercise.check(abs, strict=True, seed=5)
    exercise.check(abs)
    code = exercises.grading_code("spring term", "nb09.q1", 5, "alice")
    assert capsys.readouterr().out == f"Graded: {code}\nCorrect: fine\n"
    assert code != exercises.grading_code("spring term", "nb09.q1", 5, "bob")
    others = ("autumn", "nb09.q1", 5, "alice"), ("spring term", "nb09.q2", 5, "alice")
    assert code not in {exercises.grading_code(*other) for other in others}


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


def test_a_message_ending_in_its_own_punctuation_gets_no_second_full_stop():
    def forgot_return(x):
        x * 2

    def checker(answer, generator=None):
        return exercises.call(answer, 2, case="two")

    result = Exercise("nb09.q1", checker, "a hint").verdict(forgot_return)
    assert result.message == (
        "Not yet: `forgot_return` returned None on two: did you forget the `return`? Stuck? Run nb09.q1.hint()."
    )


def test_a_value_handed_to_check_instead_of_the_function_gets_no_hint_pointer():
    def checker(answer, generator=None):
        return exercises.call(answer, 2, case="two")

    result = Exercise("nb09.q1", checker, "a hint").verdict(4)
    assert result.message == "Not yet: pass your function itself to check(), without calling it; it got int 4."


@pytest.mark.parametrize("exercise", ALL, ids=lambda e: e.label)
def test_more_values_than_the_check_takes_are_named_not_a_python_error(exercise):
    # the function's own arguments handed to check() after it used to give "got multiple values for
    # argument 'generator'" (nb02.q1, nb03.q2, nb04.q2) or an error inside the checker
    takes = len(inspect.signature(exercise.checker).parameters) - 2  # less the answer and the generator
    extra = [torch.zeros(2)] * (takes + 1)
    result = exercise.verdict(stub, *extra)
    assert result.status == WRONG, result.message
    assert result.message.startswith("Not yet: check() takes your function "), result.message
    assert "a torch.float32 tensor of shape (2,)" in result.message and "hint()" not in result.message


def test_a_network_handed_in_for_the_function_is_named_not_run():
    # nn.Module is callable: it was run as the answer ("Net.forward() takes 2 positional arguments")
    message = nb01.q1.verdict(nn.Linear(2, 2)).message
    assert message.startswith("Not yet: pass your function itself to check() first, then the notebook's values")
    assert "hint()" not in message


@pytest.mark.parametrize("exercise", [e for e in ALL if len(inspect.signature(e.checker).parameters) > 2])
def test_none_for_a_notebooks_value_is_named_not_read_as_not_given(exercise):
    # check(fn, None) ran without the notebook's data and could say Correct, silent about it
    name = list(inspect.signature(exercise.checker).parameters)[1]
    for result in (exercise.verdict(stub, None), exercise.verdict(stub, **{name: None})):
        assert result.status == WRONG, result.message
        assert result.message.startswith(f"Not yet: check() got None for the notebook's `{name}`: "), result.message


def test_the_function_given_after_the_notebooks_values_is_told_to_swap_them():
    # nb02.q4.check(net, conv_params) was told it got "a function object" where the network belongs (helper 96)
    def conv_params(in_channels, out_channels, kernel):
        return in_channels * kernel * kernel * out_channels + out_channels

    assert exercises.nb02.q4.verdict(nn.Conv2d(1, 2, 3), conv_params).message == (
        "Not yet: check() takes your function first and the notebook's values after it, but it got your function "
        "`conv_params` after them: swap them, as in nb02.q4.check(conv_params, model)."
    )


def test_a_long_error_message_is_cut_before_the_advice():
    # load_state_dict's list of every missing key buried the fix behind 900 characters (helper 99)
    def full_reset(model):
        model.load_state_dict(nn.Sequential().state_dict())

    message = exercises.nb04.q4.verdict(full_reset).message
    assert "…) when called on" in message and "a new model of the same class is not always the same network" in message
    assert len(message) < 800, message


def test_an_int_too_large_for_a_float_is_a_sentence():
    # OverflowError escaped from check() (helper-84)
    with pytest.raises(exercises.Wrong, match="should return one number"):
        exercises.as_number(10**400, "f", "a case")
    with pytest.raises(exercises.Wrong, match="should return a tensor of shape"):
        exercises.as_tensor([10**400, 1], "f", "a case", (2,))


def test_an_answer_that_calls_exit_gets_a_sentence():
    # SystemExit used to escape from check(), a traceback (or the end of a script that checks)
    def quits(images):
        sys.exit(1)

    message = nb01.q1.verdict(quits).message
    assert message.startswith("Not yet: `quits` called exit() on ") and "return its result instead" in message


def test_the_notebooks_values_may_be_given_by_name_and_an_unknown_name_is_told():
    # by name they used to raise TypeError out of check() ("unexpected keyword argument 'query'")
    def my_nearest(features, query, k):
        distances = (features - features[query]).norm(dim=1)
        distances[query] = float("inf")
        return distances.argsort()[:k]

    features = torch.randn(30, 4)
    assert exercises.nb07.q3.verdict(my_nearest, features, query=3).status == CORRECT
    assert exercises.nb07.q3.verdict(my_nearest, features=features, query=3).status == CORRECT
    assert exercises.nb07.q3.verdict(my_nearest, features, 3, k=8).message == (
        "Not yet: check() takes your function and then at most two of the notebook's values (`features`, "
        "`query`), by position or by name; it got `k=`."
    )
    assert exercises.nb07.q3.verdict(my_nearest, features, 3, query=3).message == (
        "Not yet: check() got `query` twice, by position and as `query=`: give it once."
    )


# the solutions written in the instructor notebooks

NOTEBOOKS = sorted(exercises.INSTRUCTOR_DIR.glob("*.ipynb"))
CHECK_CALL = re.compile(r"\b(nb\d\d)\.(q\d+)\.check\((\w+)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_exercise_module_is_checked_by_its_notebook(path):
    code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    module = f"nb{path.name[:2]}"
    labels = {
        value.label
        for value in vars(importlib.import_module(f"fmnist_lab.exercises.{module}")).values()
        if isinstance(value, Exercise)
    }
    called = {f"{nb}.{q}" for nb, q, _ in CHECK_CALL.findall(code)}  # in this notebook
    assert labels, f"{module} defines no exercise"
    assert labels <= called, f"{sorted(labels - called)} are not checked in {path.name}"
    assert all(label.startswith(module) for label in labels)


# one comparison for every check


@pytest.mark.parametrize(
    "value",
    [
        0.25,
        np.float32(0.25),
        np.float64(0.25),
        np.array(0.25),
        np.array([0.25]),
        torch.tensor(0.25),
        torch.tensor([0.25], dtype=torch.float16),
        torch.tensor(0.25, dtype=torch.bfloat16),
        [0.25],
        (torch.tensor(0.25),),
    ],
    ids=repr,
)
def test_as_number_takes_any_kind_of_number(value):
    assert as_number(value, "f", "a case") == 0.25  # 0.25 is exact in every float dtype


def test_as_number_takes_integers_too():
    assert (
        as_number(1, "f", "a case")
        == as_number(np.int64(1), "f", "a case")
        == as_number(torch.tensor(1), "f", "a case")
        == 1.0
    )


@pytest.mark.parametrize(
    "value, sentence",
    [
        (float("nan"), "`f` returned NaN (not a number) on a case"),
        (np.float32("inf"), "`f` returned infinity on a case"),
        (torch.tensor(-float("inf")), "`f` returned infinity on a case"),
        (True, "`f` should return one number, but on a case it returned bool True"),
        ("0.25", "`f` should return one number, but on a case it returned str '0.25'"),
        (torch.ones(2), "`f` should return one number, but on a case it returned a torch.float32 tensor of shape (2,)"),
        ({"std": 0.3}, "`f` should return one number, but on a case it returned a dict of 1 entry ('std')"),
        # complex ones were read as their real part (carried over from helper-85's read)
        (torch.tensor(0.25 + 0j), "`f` should return one number, but on a case it returned a torch.complex64 tensor"),
        (np.complex128(0.25), "`f` should return one number, but on a case it returned complex128"),
        (np.array([0.25 + 1j]), "`f` should return one number, but on a case it returned a NumPy complex128 array"),
    ],
)
def test_as_number_refuses_with_a_sentence(value, sentence):
    with pytest.raises(Wrong) as refused:
        as_number(value, "f", "a case")
    assert str(refused.value).startswith(sentence)


def test_a_generator_that_raises_when_read_is_a_sentence_naming_its_error():
    # the generator's own error escaped check() as a traceback, or was hidden behind "a generator" (helper-88)
    with pytest.raises(Wrong) as refused:
        as_number((1 / 0 for _ in range(1)), "f", "a case")
    assert str(refused.value) == (
        "`f` should return one number, but on a case it returned a generator that raised ZeroDivisionError "
        "(division by zero) when read"
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: [1.0, 2.0, 3.0],
        lambda: (1, 2, 3),
        lambda: (v for v in [1.0, 2.0, 3.0]),
        lambda: np.array([1, 2, 3.0]),
        lambda: torch.tensor([1.0, 2.0, 3.0], dtype=torch.float16),
        lambda: torch.stack([torch.tensor(1.0), torch.tensor(2.0), torch.tensor(3.0)]),
        lambda: [np.float32(1), torch.tensor(2.0), 3],
        lambda: torch.tensor([[1.0, 2.0, 3.0]]),
    ],
    ids=["list", "tuple", "generator", "numpy", "float16", "stacked", "mixed", "extra dimension of 1"],
)
def test_as_tensor_takes_any_container_of_numbers(make):
    assert torch.equal(as_tensor(make(), "f", "a case", (3,)), torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))


def test_as_tensor_refuses_with_a_sentence():
    with pytest.raises(Wrong, match=r"^`f` should return shape \(3,\) on a case, but returned shape \(2,\)$"):
        as_tensor([1, 2], "f", "a case", (3,))
    with pytest.raises(Wrong, match=r"^`f` returned NaN \(not a number\) on a case"):
        as_tensor([1, float("nan"), 2], "f", "a case", (3,))
    with pytest.raises(Wrong, match=r"^`f` should return a tensor of shape \(3,\), but on a case it returned str"):
        as_tensor("abc", "f", "a case", (3,))
    assert as_tensor([1, float("nan"), 2], "f", "a case", (3,), finite=False).isnan().sum() == 1
    uint8 = torch.zeros(2, 3, dtype=torch.uint8)
    with pytest.raises(Wrong, match=r"returned a generator that raised RuntimeError \(.*\) when read$"):
        as_tensor((row.var() for row in uint8), "f", "a case", (2,))


def test_as_bool_takes_numpy_and_torch_truth_values_but_not_numbers():
    assert as_bool(np.bool_(True), "f", "a case") is True
    assert as_bool(torch.tensor(False), "f", "a case") is False
    with pytest.raises(Wrong, match="should return True or False, but on a case it returned int 1"):
        as_bool(1, "f", "a case")


def test_close_never_accepts_nan_or_infinity():
    inf = float("inf")
    assert not close(inf, 1.0) and not close(1.0, inf) and not close(inf, inf) and not close(float("nan"), 0.0)
    assert not all_close(torch.tensor([inf, 1.0]), torch.tensor([1.0, 1.0]))


@settings(max_examples=60, deadline=None)
@given(st.floats(-1e6, 1e6, allow_nan=False).filter(lambda v: abs(v) > 1e-6), st.floats(1e-3, 1e-1))
def test_close_is_relative_to_the_quantitys_scale(value, relative_error):
    assert close(value * (1 + 1e-6), value)  # float32 rounding of a right answer
    assert not close(value * (1 + relative_error), value)  # a real difference, at any scale
    assert close(1e-9, 0.0, scale=1.0) and not close(1e-9, 0.0)  # near 0, judged against the vector's scale


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3).filter(lambda v: v == 0 or abs(v) > 1e-30), min_size=1, max_size=20))
def test_all_close_takes_float32_results_and_refuses_a_changed_entry(values):
    exact = torch.tensor(values, dtype=torch.float64)
    assert all_close(exact.float(), exact)
    changed = exact.clone()
    changed[len(values) // 2] += 0.01 * (1 + exact.abs().max())
    assert not all_close(changed, exact)


# answers see copies, and no more than the time limit


def test_call_passes_copies_and_can_refuse_an_answer_that_changes_its_input():
    x = torch.zeros(3)
    call(lambda t: t.add_(1), x, case="a case")
    assert torch.equal(x, torch.zeros(3))
    with pytest.raises(Wrong, match=r"^on a case, `<lambda>` changed the input it was given: work on a copy$"):
        call(lambda t: t.add_(1), x, case="a case", keep_input="work on a copy")


def test_call_adds_advice_to_an_error_recognised_by_its_type_or_by_its_message():
    def divides_by_zero(x):
        return x / 0

    def mismatched(x):
        return torch.ones(3) + torch.ones(x)

    advice = {ZeroDivisionError: "count from 1", "must match the size of tensor": "reshape it"}
    with pytest.raises(Wrong, match=r"\(division by zero\) when called on a case: count from 1$"):
        call(divides_by_zero, 1, case="a case", advice=advice)
    with pytest.raises(Wrong, match=r"at non-singleton dimension 0\) when called on a case: reshape it$"):
        call(mismatched, 2, case="a case", advice=advice)
    with pytest.raises(Wrong, match=r"when called on a case$"):  # an error of neither kind gets none
        call(lambda x: x.missing, 1, case="a case", advice=advice)


def test_the_notebooks_data_is_never_changed_by_an_answer():
    images = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)
    kept = images.clone()

    def pixel_std(batch):
        value = (batch.double() / 255).std().item()
        batch.zero_()  # spoils its input: the notebook's images must not change
        return value

    verdict = nb01.q1.verdict(pixel_std, images)  # refused for it, since the same call on the notebook's own ...
    assert not verdict.passed and "changed the input it was given" in verdict.message
    assert torch.equal(images, kept)  # ... images would change them; the check worked on copies


def loops_forever(*args):
    while True:
        try:
            time.sleep(0.01)
        except Exception:  # noqa: BLE001, S110 -- an answer that swallows every error must still be stopped
            pass


def test_a_looping_answer_is_stopped_by_the_time_limit_with_one_sentence(monkeypatch, capsys):
    monkeypatch.setattr(exercises, "TIME_FLOOR_S", 0.3)
    nb01.q1.check(loops_forever)
    assert capsys.readouterr().out == (
        "Not yet: your function ran longer than 0.3 s on 4 random images of different brightness.\n"
    )


def test_an_alarm_set_before_the_check_still_rings_after_it():
    rang = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: rang.append(signum))
    try:
        signal.setitimer(signal.ITIMER_REAL, 30)
        assert nb01.q1.verdict(lambda images: (images.double() / 255).std()).passed
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 0 < remaining <= 30
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert rang == []


def test_the_limit_is_several_times_the_references_time_with_a_floor():
    assert exercises.time_limit(0.0) == exercises.TIME_FLOOR_S
    assert exercises.time_limit(10.0) == exercises.TIME_FACTOR * 10.0 > exercises.TIME_FLOOR_S


def test_outside_the_main_thread_a_slow_answer_is_refused_once_it_returns(monkeypatch):
    monkeypatch.setattr(exercises, "TIME_FLOOR_S", 0.1)

    def slow(images):
        time.sleep(0.3)
        return 0.5

    with ThreadPoolExecutor(1) as pool:
        result = pool.submit(nb01.q1.verdict, slow).result()
    assert result.message.startswith(
        "Not yet: your function ran longer than 0.1 s on 4 random images of different brightness"
    )


def test_an_interrupt_during_a_check_prints_one_sentence(capsys):
    def interrupted(images):
        raise KeyboardInterrupt

    nb01.q1.check(interrupted)
    assert capsys.readouterr().out == (
        "Stopped: the check of nb01.q1 was interrupted before it finished (the stop button, Ctrl-C, or a "
        "KeyboardInterrupt raised in the answer); run it again to get its verdict.\n"
    )
    with pytest.raises(AssertionError, match="^Stopped: the check of nb01.q1 was interrupted"):
        nb01.q1.check(interrupted, strict=True)


# an answer must not call the lab's own function for the exercise

NOTEBOOK_CODE = """
import fmnist_lab
import fmnist_lab.data as lab_data
from fmnist_lab.data import pixel_stats

def direct(images):
    return pixel_stats(images)[1]

def through_a_module(images):
    return lab_data.pixel_stats(images)[1]

def through_the_package(images):
    return fmnist_lab.data.pixel_stats(images)[1]

def in_a_lambda(images):
    get = lambda x: pixel_stats(x)[1]
    return get(images)

def in_a_comprehension(images):
    return [pixel_stats(x)[1] for x in [images]][0]

def helper(images):
    return pixel_stats(images)

def through_a_helper(images):
    return helper(images)[1]

def own(images, pixel_stats=None):
    pixel_stats = (images.double() / 255).std().item()  # a local of that name is the student's own
    return pixel_stats

def own_in_a_comprehension(images):
    pixel_stats = (images.double() / 255).std().item()  # the comprehension reads this local, not the import
    return [pixel_stats for _ in range(1)][0]
"""


@pytest.mark.parametrize(
    "name",
    ["direct", "through_a_module", "through_the_package", "in_a_lambda", "in_a_comprehension", "through_a_helper"],
)
def test_an_answer_that_calls_the_lab_function_is_refused(name):
    namespace = {}
    exec(NOTEBOOK_CODE, namespace)  # noqa: S102 -- code written in this test
    result = nb01.q1.verdict(namespace[name])
    assert result.status == WRONG
    assert result.message.startswith(
        f"Not yet: `{name}` calls the lab's own `pixel_stats` "
        f"(fmnist_lab.data.pixel_stats); this exercise asks you to compute it yourself"
    )


SHAPES_OF_AN_ANSWER = """
import functools
from fmnist_lab import pixel_stats

def as_a_default(images, stats=pixel_stats):
    return stats(images)[1]

as_a_partial = functools.partial(lambda images, stats: stats(images)[1], stats=pixel_stats)

class Std:
    def __call__(self, images):
        return pixel_stats(images)[1]

as_a_callable_object = Std()

class SlottedStd:
    __slots__ = ("stats",)

    def __init__(self):
        self.stats = pixel_stats

    def __call__(self, images):
        return self.stats(images)[1]

as_a_slotted_callable_object = SlottedStd()

def in_a_list_default(images, functions=[pixel_stats]):
    return functions[0](images)[1]

import fmnist_lab

def through_a_module_default(images, lab=fmnist_lab):
    return lab.pixel_stats(images)[1]
"""


@pytest.mark.parametrize(
    "name",
    [
        "as_a_default",
        "as_a_partial",
        "as_a_callable_object",
        "as_a_slotted_callable_object",
        "in_a_list_default",
        "through_a_module_default",
    ],
)
def test_the_lab_function_handed_in_by_another_route_is_refused(name):
    """A default argument, a functools.partial, a callable object: each used to pass."""
    namespace = {}
    exec(SHAPES_OF_AN_ANSWER, namespace)  # noqa: S102 -- code written in this test
    result = nb01.q1.verdict(namespace[name])
    assert result.status == WRONG and "calls the lab's own `pixel_stats`" in result.message, result.message


@pytest.mark.parametrize("name", ["own", "own_in_a_comprehension"])
def test_an_own_variable_named_like_the_lab_function_is_not_refused(name):
    namespace = {}
    exec(NOTEBOOK_CODE, namespace)  # noqa: S102 -- code written in this test
    assert nb01.q1.verdict(namespace[name]).passed


IMPORTS_INSIDE = """
import torch
ONES = torch.ones(3)  # a notebook's tensor, among the globals the answer reads

def imports_inside(in_channels, out_channels, kernel):
    import math
    return (in_channels * kernel * kernel + 1) * out_channels * int(ONES[0].item()) * math.prod([1])
"""


def test_an_import_inside_the_answer_beside_a_notebook_tensor_is_read_without_error():
    # nb02.q4: a check that lets an answer read the notebook's tensors (nb01's now refuse that: helper 110)
    namespace = {}
    exec(IMPORTS_INSIDE, namespace)  # noqa: S102 -- code written in this test
    assert nb02.q4.verdict(namespace["imports_inside"]).passed  # a tensor compared with == used to raise here


@pytest.mark.parametrize(
    "exercise, call_code",
    [
        (
            "nb06.q1",
            ("from fmnist_lab.metrics import confusion_matrix\ndef f(t, p, n):\n    return confusion_matrix(t, p, n)"),
        ),
        (
            "nb06.q2",
            (
                "from fmnist_lab.metrics import most_confused_pairs\n"
                "def f(cm):\n    return most_confused_pairs(cm, 1)[0][:2]"
            ),
        ),
        (
            "nb07.q2",
            (
                "from fmnist_lab.interpretability import saliency\n"
                "def f(model, image, target):\n    return saliency(model, image[None], target)[0]"
            ),
        ),
        (
            "nb07.q3",
            (
                "import fmnist_lab.interpretability as lab\n"
                "def f(features, query, k):\n    return lab.nearest_neighbours(features, query, k)"
            ),
        ),
    ],
)
def test_each_exercise_refuses_its_lab_shortcut(exercise, call_code):
    namespace = {}
    exec(call_code, namespace)  # noqa: S102 -- code written in this test
    module, label = exercise.split(".")
    result = getattr(importlib.import_module(f"fmnist_lab.exercises.{module}"), label).verdict(namespace["f"])
    assert result.status == WRONG and "calls the lab's own" in result.message, result.message


def test_images_are_described_by_what_they_are():
    assert describe_images(torch.zeros(60_000, 1, 1)) == "the 60,000 training images"
    assert describe_images(torch.zeros(10_000, 1, 1)) == "the 10,000 test images"
    assert describe_images(torch.zeros(5, 1, 1)) == "5 images"


def test_reading_an_answer_imports_nothing_the_answer_does_not_run():
    # the first fix of nb06.q1's sklearn pass imported every module an answer names while reading it, outside the
    # answer's time limit, the branches it never takes included (helper 117): now it reads what is loaded, and
    # reads again once the answer has run
    script = textwrap.dedent(
        """
        import sys
        from fmnist_lab.exercises import nb06
        def my_confusion_matrix(targets, predictions, num_classes):
            if num_classes < 0:
                import tabnanny
            from . import anything_relative
            return None
        nb06.q1.verdict(my_confusion_matrix)
        print("tabnanny" in sys.modules)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False", result.stdout + result.stderr


def test_a_library_whose_attributes_raise_does_not_end_the_check():
    # a lazy module's __getattr__ may raise ImportError (or anything) where getattr(..., None) expects
    # AttributeError: reading the answer then ended the check in a traceback (helper 117)
    lazy = types.ModuleType("lazy")

    def refuse(name):
        raise ImportError(f"lazy cannot load {name}")

    lazy.__getattr__ = refuse
    namespace = {"lazy": lazy}
    exec("def pixel_std(images):\n    lazy.helper\n    return (images.double() / 255).std().item()", namespace)
    result = nb01.q1.verdict(namespace["pixel_std"])
    assert result.status == WRONG and "ImportError (lazy cannot load helper)" in result.message, result.message
