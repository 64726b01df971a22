"""Exercises that the lab checks on the spot, one module per notebook.

    from fmnist_lab.exercises import nb01
    nb01.q1.check(pixel_std)                         # prints its verdict
    nb01.q1.check(pixel_std, strict=True, seed=7)    # grading: silent if right, CheckFailed otherwise
    nb01.q1.hint()                                   # prints a hint
    nb01.q1.solution()                               # prints the instructor notebook's solution

The contract of every exercise's ``check(answer, *data, strict=False, seed=None, **named_data)``:

- it runs ``answer`` (usually the student's function) on cases of its own, not only the notebook's, and
  prints one message that starts with ``Correct:`` (all cases passed), ``Not yet:`` (what is
  wrong, on which case) or ``Not done yet:`` (the answer is still the stub that raises
  ``NotImplementedError``);
- it never raises for a wrong or unfinished answer: the student's exceptions become sentences;
- ``data`` (optional) is the notebook's real data: once the answer has passed its own cases, the message
  also says what the answer gives there. The answer only ever sees copies of it. Each value may also be
  given by its name in the notebook's call (``nb07.q3.check(my_nearest, features, query=query)``); a value
  it does not take is named in a sentence;
- ``seed`` (an int) adds random cases drawn from ``torch.Generator().manual_seed(seed)``: the grader's
  hidden cases, different from the fixed cases a student sees;
- ``strict=True`` prints nothing when the answer is correct and raises ``CheckFailed(sentence)``, an AssertionError,
  otherwise: nbgrader's autograded cells call ``nbNN.qK.check(fn, strict=True, seed=S)``;
- each call of the answer has a time limit (``call``); a time-out and a Ctrl-C each give one sentence;
- ``verdict(answer, *data, seed=None)`` returns the same outcome without printing, for tests and scripts.

A checker is ``checker(answer, *data, generator=None) -> str``: it returns the praise (the message
without the "Correct: " prefix) or raises ``Wrong`` / ``NotDone``. With a generator it also runs the
random cases drawn from it.

The instructor notebooks (``instructor/NN_*.ipynb``) hold the solutions between nbgrader's
``### BEGIN SOLUTION`` / ``### END SOLUTION`` markers inside function bodies; ``solution()`` prints that
region, so each answer is written once, in its notebook. The student edition (tools/make_student_edition.py)
swaps the regions for ``raise NotImplementedError()``, which ``check`` reports as "not done yet".
"""

from __future__ import annotations

import copy
import dis
import functools
import hashlib
import hmac
import inspect
import json
import math
import numbers
import os
import re
import signal
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

CORRECT, WRONG, NOT_DONE, INTERRUPTED = "correct", "wrong", "not done", "interrupted"
PREFIXES = {CORRECT: "Correct: ", WRONG: "Not yet: ", NOT_DONE: "Not done yet: ", INTERRUPTED: "Stopped: "}

# Where solution() looks for the instructor notebooks: next to the package in a repository checkout
# (an editable install); a wheel installs the package alone, so there is no such folder there.
INSTRUCTOR_DIR = Path(__file__).resolve().parent.parent.parent / "instructor"

# The time limit of one call of an answer: TIME_FACTOR times the reference's time on that case, at least
# TIME_FLOOR_S (a floor, because a tiny reference time says little about a slow but fair answer). The limit
# is wall-clock time, so that an answer that sleeps in a loop is stopped too; and a shared machine can stall
# a process for seconds: at 5 s, notebook 01's solution (0.3 s on the 60,000 images) was once refused in CI.
TIME_FLOOR_S = 20.0
TIME_FACTOR = 10.0


class Wrong(Exception):
    """Raised by a checker: the answer is wrong, and the message says how."""


class NotDone(Exception):
    """Raised by a checker: the answer is still the stub that raises NotImplementedError."""


class TooSlow(Wrong):
    """Raised by ``call``: the answer ran past its time limit (the message is the whole sentence)."""


class Misused(Wrong):
    """Raised by a checker: ``check`` was handed the wrong thing (a value for the function, the wrong data)."""


class CheckFailed(AssertionError):
    """Raised by a strict check that did not pass; the message is the verdict the student reads."""

    def _render_traceback_(self) -> list[str]:
        # IPython shows these lines in place of a traceback: graded feedback shows the verdict, not the lab's
        # source and the path it is installed at
        return [f"{type(self).__name__}: {self}"]


class _TimeUp(BaseException):
    """Raised inside the answer by the alarm; a BaseException so that an ``except Exception`` cannot swallow it."""


@dataclass(frozen=True)
class Verdict:
    """A check's outcome: its status and the message the student reads."""

    status: str  # CORRECT, WRONG, NOT_DONE or INTERRUPTED
    message: str  # starting with "Correct:", "Not yet:", "Not done yet:" or "Stopped:"

    @property
    def passed(self) -> bool:
        """True when the check said Correct."""
        return self.status == CORRECT


@dataclass(frozen=True)
class Exercise:
    """One exercise: ``checker(answer, *data, generator=None)`` returns the praise or raises Wrong/NotDone.

    ``lab_functions`` are functions of the lab (or of a library) that do the exercise's work, or module
    prefixes whose every function counts: an answer that calls one of them is refused, since the exercise
    asks the student to write that computation.
    """

    label: str  # how the notebook refers to it, e.g. "nb01.q1"
    checker: Callable[..., str]
    hint_text: str
    lab_functions: tuple[Callable[..., Any] | str, ...] = ()

    def verdict(self, answer: Any, *data: Any, seed: int | None = None, **named: Any) -> Verdict:
        """The outcome of checking ``answer`` (on the hidden cases of ``seed`` too), without printing.

        ``data`` and ``named``: the notebook's values, by position or by the names the checker gives them."""
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
            raise TypeError(f"seed must be an int (the grader's hidden cases), not {describe(seed)}")
        generator = None if seed is None else torch.Generator().manual_seed(hidden_seed(int(seed)))
        try:
            values = self._data(data, named)
            if callable(answer):
                refuse_lab_functions(answer, self.lab_functions)
            praise = self.checker(answer, **values, generator=generator)
            if callable(answer):  # again: a library the answer imports is found only once it has been imported,
                # and in a fresh kernel that was the answer's own first run (nb06.q1 said Correct once, helper 114)
                refuse_lab_functions(answer, self.lab_functions)
        except NotDone as err:
            return Verdict(NOT_DONE, PREFIXES[NOT_DONE] + str(err))
        except (TooSlow, Misused) as err:  # no hint: it is not the answer's code that needs one
            return Verdict(WRONG, PREFIXES[WRONG] + _sentence(err))
        except Wrong as err:
            return Verdict(WRONG, f"{PREFIXES[WRONG]}{_sentence(err)} Stuck? Run {self.label}.hint().")
        except KeyboardInterrupt:  # Ctrl-C or the notebook's stop button: one sentence, no traceback
            return Verdict(
                INTERRUPTED,
                f"{PREFIXES[INTERRUPTED]}the check of {self.label} was interrupted before it finished (the stop "
                f"button, Ctrl-C, or a KeyboardInterrupt raised in the answer); run it again to get its verdict.",
            )
        return Verdict(CORRECT, PREFIXES[CORRECT] + praise)

    def _data(self, data: tuple[Any, ...], named: dict[str, Any]) -> dict[str, Any]:
        """The notebook's values handed to ``check``, by the checker's names for them, given by position or by
        name; Misused (not Python's "got multiple values for argument") for more than it takes, or a name it
        does not know, such as one of the function's own arguments."""
        parameters = list(inspect.signature(self.checker).parameters.values())[1:]
        names = [parameter.name for parameter in parameters if parameter.name != "generator"]
        function = next((value for value in data if inspect.isfunction(value)), None)
        if function is not None and names:  # check(net, conv_params): a function among the notebook's values
            example = ", ".join([function.__name__, *names[: len(data)]])
            raise Misused(
                f"check() takes your function first and the notebook's values after it, but it got your function "
                f"`{function.__name__}` after them: swap them, as in {self.label}.check({example})"
            )
        takes = (
            f"your function and then at most {in_words(len(names))} of the notebook's values "
            f"({', '.join(f'`{name}`' for name in names)}), by position or by name"
            if names
            else f"your function alone, as in {self.label}.check(my_function), and runs it on cases of its own"
        )
        if len(data) > len(names):
            more = "more argument" + ("s" if len(data) > 1 else "") if not names else "values"
            given = ", ".join(describe(value) for value in data)
            raise Misused(f"check() takes {takes}; it got {in_words(len(data))} {more} after it: {given}")
        unknown = [name for name in named if name not in names]
        if unknown:
            raise Misused(f"check() takes {takes}; it got {', '.join(f'`{name}=`' for name in unknown)}")
        twice = [name for name in names[: len(data)] if name in named]
        if twice:
            raise Misused(f"check() got `{twice[0]}` twice, by position and as `{twice[0]}=`: give it once")
        values = {**dict(zip(names, data)), **named}
        empty = [name for name, value in values.items() if value is None]
        if empty:  # a checker reads None as "not given": it would pass without the notebook's data, saying nothing
            raise Misused(
                f"check() got None for the notebook's `{empty[0]}`: give the value itself (a cell above may not have "
                f"run, or a function returned nothing), or leave it out"
            )
        return values

    def check(self, answer: Any, *data: Any, strict: bool = False, seed: int | None = None, **named: Any) -> None:
        """Print whether ``answer`` is correct, wrong (and how) or not done yet.

        ``strict``: print nothing when correct and raise CheckFailed(the sentence), an AssertionError, otherwise
        (grading); while nbgrader autogrades under a course secret, print the submission's ``grading_code`` when
        correct.
        ``seed``: also run the random cases drawn from ``torch.Generator().manual_seed(hidden_seed(seed))``.
        """
        result = self.verdict(answer, *data, seed=seed, **named)
        secret = os.environ.get("FMNIST_LAB_SECRET", "")
        if not strict:
            print(result.message)
        elif not result.passed:
            raise CheckFailed(result.message)
        elif secret and autograding():
            # nbgrader runs each submission in autograded/<student>/<assignment>/
            print(f"{GRADED}{grading_code(secret, self.label, seed, Path.cwd().parent.name)}")

    def hint(self) -> None:
        """Print a hint."""
        print("Hint: " + self.hint_text)

    def solution(self) -> None:
        """Print the solution written in the instructor notebook, or why this installation has none."""
        print(solution_code(self.label))


# the prefix of the line a strict check prints when it passes under a course secret
GRADED = "Graded: "


def autograding() -> bool:
    """Whether nbgrader is autograding this process's notebook: it sets NBGRADER_EXECUTION for `nbgrader autograde`
    and for Formgrader's autograde button alike."""
    return os.environ.get("NBGRADER_EXECUTION") == "autograde"


def missing_exercise(module: str, namespace: dict[str, Any]) -> Callable[[str], Any]:
    """A module's ``__getattr__``: ``nb02.q2``, an exercise without a check (a prediction), says which ones have
    one, where Python said only "module has no attribute 'q2'" (helper 106)."""

    def __getattr__(name: str) -> Any:
        if re.fullmatch(r"q\d+", name):
            checked = [key for key, value in namespace.items() if isinstance(value, Exercise)]
            short = module.rsplit(".", 1)[-1]
            which = (
                f"exercises of notebook {short[2:]} are" if len(checked) > 1 else f"exercise of notebook {short[2:]} is"
            )
            raise AttributeError(
                f"{short} has no check {name}: the checked {which} {', '.join(checked)}; any other exercise of it (a "
                f"prediction, a written answer) is graded by hand"
            )
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__


def grading_code(secret: str, label: str, seed: int | None, student: str) -> str:
    """The code a passing strict check prints while autograde runs with the course's ``secret``: only the secret's
    holder can compute it, so `tools/second_look.py` can tell a check that ran from code that printed what a check
    prints (helper 104's quiet fake check scored a blank submission with nothing said); one per student, so that
    a code read in one student's feedback proves nothing in another's notebook (helper 105)."""
    return hmac.new(secret.encode(), f"{label}:{seed}:{student}".encode(), hashlib.sha256).hexdigest()[:16]


def hidden_seed(seed: int) -> int:
    """The seed of a check's hidden cases: the cell's own, mixed with the course's secret phrase when the grader
    sets one (the environment variable FMNIST_LAB_SECRET), so that they cannot be computed in advance from the
    public seed and this repository (helper 103). An HMAC: with crc32, which is linear, one hidden seed learned
    gave every other (helper 109)."""
    secret = os.environ.get("FMNIST_LAB_SECRET", "")
    if not secret:
        return seed
    digest = hmac.new(secret.encode(), f"hidden cases:{seed}".encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") >> 1  # 63 bits: a seed torch.Generator takes


def _sentence(err: Exception) -> str:
    """The checker's message as a sentence: a full stop added unless it already ends in one (or in ? or !)."""
    text = str(err)
    return text if text.endswith((".", "?", "!")) else text + "."


def solution_code(label: str) -> str:
    """The text ``solution()`` prints for ``label`` ("nbNN.qK"): the instructor notebook's solution cell.

    That is the nearest code cell holding ``### BEGIN SOLUTION`` before the cell that calls
    ``nbNN.qK.check(``, with the marker lines removed (the def line stays, so it reads as a whole function).
    """
    if autograding():  # an answer could print them (helper 103)
        return "The solutions are not shown while submissions are graded."
    number = label[2:].split(".")[0]
    notebooks = sorted(INSTRUCTOR_DIR.glob("*.ipynb"), key=lambda path: not path.name.startswith(f"{number}_"))
    if not notebooks:
        return (
            "The solutions are not part of this installation: it was installed without the instructor's "
            "notebooks (from a wheel or by Colab's install cell, as a graded course hands it out)."
        )
    check_call = re.compile(rf"\b{re.escape(label)}\.check\(")
    for notebook in notebooks:  # its own notebook first; any other while exercises move between notebooks
        sources = _code_cells(notebook)
        calling = next((i for i, source in enumerate(sources) if check_call.search(source)), None)
        if calling is not None:
            break
    else:
        return f"No notebook in {INSTRUCTOR_DIR} calls {label}.check(...), so there is no solution to show."
    solved = next((i for i in range(calling - 1, -1, -1) if "### BEGIN SOLUTION" in sources[i]), None)
    if solved is None:
        return f"{notebook.name} has no solution cell before its call of {label}.check(...)."
    lines = [
        line for line in sources[solved].split("\n") if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION")
    ]
    return "One solution:\n\n" + "\n".join(lines).strip()


def _code_cells(notebook: Path) -> list[str]:
    """The sources of the notebook's code cells (read as JSON: nbformat is not a dependency of the package)."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return [
        "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        for cell in cells
        if cell["cell_type"] == "code"
    ]


# calling the student's function


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Raise _TimeUp in the code of the with-block once it has run ``seconds``.

    SIGALRM interrupts the answer where it is (Linux and macOS kernels run cells in the main thread).
    Elsewhere (Windows, a check called from another thread) the answer cannot be stopped: it runs to its
    end and is then refused as too slow if it took longer. Either way a single long C operation (one huge
    matrix product) ends before the alarm is seen.
    """
    if hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread():

        def alarm(signum: int, frame: Any) -> None:
            raise _TimeUp

        previous = signal.signal(signal.SIGALRM, alarm)
        outer_delay, outer_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
        start = time.monotonic()
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            if outer_delay:  # someone else's alarm (a test runner's timeout, say) was set: it goes on
                remaining = max(outer_delay - (time.monotonic() - start), 1e-3)
                signal.setitimer(signal.ITIMER_REAL, remaining, outer_interval)
    else:
        start = time.perf_counter()
        yield
        if time.perf_counter() - start > seconds:
            raise _TimeUp


def timed(function: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """``function(*args)`` and the seconds it took: a reference's time, to set the answer's time limit."""
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def time_limit(reference_s: float = 0.0) -> float:
    """The seconds an answer may take on a case where the reference took ``reference_s``."""
    return max(TIME_FLOOR_S, TIME_FACTOR * reference_s)


def call(
    function: Any,
    *args: Any,
    case: str,
    returns: bool = True,
    copy_args: bool = True,
    reference_s: float = 0.0,
    keep_input: str | None = None,
    advice: dict[type[Exception] | str, str] | None = None,
) -> Any:
    """Call the student's ``function`` on one of the exercise's cases (described by ``case``).

    Its arguments are deep copies (unless ``copy_args`` is False, for the checker's own objects that the
    answer must change in place), so an answer never reaches the notebook's data, model or optimizer and
    cannot spoil later cases. With ``keep_input`` (the advice to give), an answer that changed its input
    in place is Wrong. NotImplementedError becomes NotDone; any other exception, a forgotten ``return``
    (when ``returns``) and a run past ``time_limit(reference_s)`` become Wrong, each naming the case.
    ``advice`` adds a sentence to an exception that has one likely cause in this exercise, recognised by its
    type or by a fragment of its message (PyTorch raises RuntimeError for most things).
    """
    if not callable(function):
        raise Misused(f"pass your function itself to check(), without calling it; it got {describe(function)}")
    if isinstance(function, nn.Module):  # callable, but a network: it would be run as if it were the answer
        raise Misused(
            f"pass your function itself to check() first, then the notebook's values; it got {describe(function)}"
        )
    name = getattr(function, "__name__", "your function")
    given = [_copy(a) for a in args] if copy_args else list(args)
    limit = time_limit(reference_s)
    try:
        with _time_limit(limit):
            result = function(*given)
    except _TimeUp:
        raise TooSlow(f"your function ran longer than {limit:g} s on {case}") from None
    except NotImplementedError:
        raise NotDone(
            f"`{name}` still raises NotImplementedError. Replace `raise NotImplementedError()` with "
            f"your code, run that cell, then run this check again."
        ) from None
    except SystemExit:  # exit() or sys.exit() in the answer would otherwise end the check, or the kernel
        raise Wrong(f"`{name}` called exit() on {case}: return its result instead") from None
    except Exception as err:  # noqa: BLE001 -- the student's bug, reported as a sentence, not a traceback
        likely = next((f": {text}" for key, text in (advice or {}).items() if _matches(err, key)), "")
        said = str(err) if len(str(err)) <= 300 else f"{str(err)[:300]}…"  # load_state_dict lists every key
        raise Wrong(f"`{name}` raised {type(err).__name__} ({said}) when called on {case}{likely}") from None
    if keep_input is not None and not all(_same(a, b) for a, b in zip(args, given)):
        raise Wrong(f"on {case}, `{name}` changed the input it was given: {keep_input}")
    if returns and result is None:
        raise Wrong(f"`{name}` returned None on {case}: did you forget the `return`?")
    return result


def _matches(err: Exception, key: type[Exception] | str) -> bool:
    """Whether ``err`` is of the type ``key``, or its message holds the text ``key``."""
    return isinstance(err, key) if isinstance(key, type) else key in str(err)


def _copy(value: Any) -> Any:
    """A deep copy; a tensor computed by autograd (which deepcopy refuses) is copied without its history."""
    if isinstance(value, Tensor) and not value.is_leaf:
        return value.detach().clone()
    return copy.deepcopy(value)


def _same(a: Any, b: Any) -> bool:
    """Whether ``b`` still equals ``a`` (tensors element by element, NaN equal to NaN)."""
    if isinstance(a, Tensor):
        return (
            isinstance(b, Tensor)
            and a.shape == b.shape
            and a.dtype == b.dtype
            and bool(torch.equal(a, b) or torch.allclose(a, b, equal_nan=True))
        )
    return bool(a == b)


_OWNERS = {
    "fmnist_lab": "the lab's own",
    "captum": "Captum's ready-made",
    "sklearn": "scikit-learn's ready-made",
    "scipy": "SciPy's ready-made",
    "numpy": "NumPy's ready-made",
}  # whose function a refusal names


def refuse_lab_functions(answer: Callable[..., Any], lab_functions: tuple[Callable[..., Any] | str, ...]) -> None:
    """Wrong if ``answer`` calls one of ``lab_functions``, by any name an honest answer would use.

    A string in ``lab_functions`` is a module prefix: whatever is defined under it (``"sklearn.neighbors"``)
    counts. The answer's code (nested functions, lambdas and comprehensions included) is read instruction by
    instruction for what it names: a global or closure variable and the attributes read from it
    (``lab.smooth``, ``F.batch_norm``, ``torch.nn.functional.batch_norm``), and what it imports in its body
    (``from captum.attr import Saliency``). Each is looked up where the answer would find it, so a helper of
    its own, or a method of its own class, that happens to be called ``batch_norm`` is not refused. Its
    default argument values are read too. Functions of the notebook that it calls are read the same way; a
    decorated answer is read through its wrapper, a ``functools.partial`` through what it binds, a callable
    object through its class's ``__call__`` and what it holds. Only the notebook's own code is read: a library
    function it hands on (a default argument, say) is refused if it is one of ``lab_functions``, never for
    what the library's code calls in turn.
    """
    if not lab_functions:
        return
    functions = tuple(f for f in lab_functions if not isinstance(f, str))
    prefixes = tuple(f for f in lab_functions if isinstance(f, str))

    def refuse_if_lab(value: Any) -> None:
        module = _attribute(value, "__module__")
        by_prefix = isinstance(module, str) and any(module == p or module.startswith(p + ".") for p in prefixes)
        if by_prefix or any(value is lab for lab in functions):
            name = getattr(value, "__name__", type(value).__name__)
            owner = _OWNERS.get(module.split(".")[0], "PyTorch's ready-made")
            raise Wrong(
                f"`{getattr(answer, '__name__', 'your function')}` calls {owner} `{name}` ({module}.{name}); "
                f"this exercise asks you to compute it yourself"
            )

    seen: set[int] = set()
    pending: list[Any] = [answer]
    notebook = _own_globals(answer)  # the namespace of the answer's own code: only its code is read
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        try:
            refuse_if_lab(item)
            if isinstance(item, (list, tuple, set, frozenset, dict)):  # a default such as [pixel_stats]
                pending.extend(item.values() if isinstance(item, dict) else item)
                continue
            if isinstance(item, functools.partial):
                pending.extend([item.func, *item.args, *item.keywords.values()])
                continue
            function = inspect.unwrap(item)  # @torch.no_grad(), functools.wraps, lru_cache
            code = getattr(function, "__code__", None)
            if code is None:
                if callable(item) and not isinstance(item, type) and not inspect.isbuiltin(item):
                    pending.append(type(item).__call__)  # a callable object: its class's __call__ and what it holds
                    pending.extend(vars(item).values() if hasattr(item, "__dict__") else ())
                    pending.extend(getattr(item, name, None) for name in getattr(type(item), "__slots__", ()))
                continue
            globals_ = getattr(function, "__globals__", None)
            if globals_ is not notebook:
                continue  # a library's function: refused above if it is one of lab_functions, not read
            defaults = _defaults(function)
            pending.extend(defaults.values())
            scope = dict(globals_ or {})
            for variable, cell in zip(code.co_freevars, getattr(function, "__closure__", None) or ()):
                try:
                    scope[variable] = cell.cell_contents
                except ValueError:  # a closure variable not yet assigned
                    pass
            for value in _named_objects(code, scope, dict(defaults)):  # a parameter stands for its default
                refuse_if_lab(value)
                if isinstance(value, type) and value.__module__ == getattr(function, "__module__", None):
                    pending.extend(vars(value).values())  # a class of the notebook: its methods
                elif isinstance(value, types.FunctionType) and value.__globals__ is function.__globals__:
                    pending.append(value)  # a helper written in the same notebook
        except Wrong:
            raise
        except Exception:  # noqa: BLE001 -- an object whose attribute hooks raise: nothing more of it is read
            continue


def _defaults(function: types.FunctionType) -> dict[str, Any]:
    """Each parameter with a default value, by name: ``def f(x, lab=fmnist_lab)`` gives {"lab": fmnist_lab}."""
    code = function.__code__
    positional = code.co_varnames[: code.co_argcount]
    values = function.__defaults__ or ()
    return {**dict(zip(positional[len(positional) - len(values) :], values)), **(function.__kwdefaults__ or {})}


def notebook_values(answer: Callable[..., Any], kinds: type | tuple[type, ...]) -> dict[str, Any]:
    """The global values of the kinds given that the answer's code reads as globals (in nested functions and
    comprehensions too): the notebook's own objects, read in place of the answer's arguments. An attribute of
    the same name (``x.var(...)`` beside the notebook's ``var``) is not one."""
    code, scope = getattr(answer, "__code__", None), getattr(answer, "__globals__", {})
    if code is None:
        return {}
    codes, names = [code], set()
    while codes:
        current = codes.pop()
        names |= {i.argval for i in dis.get_instructions(current) if i.opname in ("LOAD_GLOBAL", "LOAD_NAME")}
        codes += [constant for constant in current.co_consts if isinstance(constant, types.CodeType)]
    return {name: scope[name] for name in sorted(names) if isinstance(scope.get(name), kinds)}


def refuse_notebook_values(answer: Callable[..., Any], kinds: type | tuple[type, ...], name: str, instead: str) -> None:
    """Wrong if the answer (called ``name``) reads the notebook's own values of ``kinds`` in place of its arguments,
    with what to do ``instead``. A module without parameters (a loss function) is no network of the notebook's, a
    tensor of one number is a constant, and a list that holds no numbers (an empty one, the answer's own record of
    its calls) is no record of the notebook's."""
    read = [f"`{key}`" for key, value in notebook_values(answer, kinds).items() if _could_be_the_notebooks(value)]
    if read:
        raise Wrong(f"`{name}` uses the notebook's {', '.join(read)}: {instead}")


def _could_be_the_notebooks(value: Any) -> bool:
    if isinstance(value, Tensor):  # one number (SCALE = torch.tensor(255.0)) is a constant, not the notebook's data
        return value.numel() > 1
    if isinstance(value, nn.Module):
        return next(value.parameters(), None) is not None
    if isinstance(value, list):
        return bool(value) and all(isinstance(item, numbers.Real) for item in value)
    return True


def _own_globals(answer: Any) -> dict[str, Any] | None:
    """The global namespace of the answer's own code: of the function a partial binds, of a decorated
    function's original, of a callable object's ``__call__``."""
    while isinstance(answer, functools.partial):
        answer = answer.func
    function = inspect.unwrap(answer)
    if getattr(function, "__code__", None) is None and callable(answer):
        function = type(answer).__call__
    return getattr(function, "__globals__", None)


_ATTRIBUTE_LOADS = {"LOAD_ATTR", "LOAD_METHOD"}
_STORES = {"STORE_FAST", "STORE_NAME", "STORE_GLOBAL", "STORE_DEREF"}


def _named_objects(
    code: types.CodeType, scope: dict[str, Any], imported: dict[str, Any], cells: frozenset[str] = frozenset()
) -> list[Any]:
    """The objects ``code`` and the code nested in it name: each global or closure variable, followed by the
    attributes read from it, and what each import in its body binds (``imported``: local name -> object,
    shared with the nested code). A name it cannot resolve (an ordinary local variable) is left out, as is
    a local variable that nested code shares (``cells``: the answer's own, not the notebook's of that name)."""
    cells = cells | frozenset(code.co_cellvars)
    found: list[Any] = []
    chain: Any = None  # the object named so far, while attributes are read from it
    importing: Any = None  # the module an import statement reads from
    last_import: Any = None  # what the import statement gave last, for the store that binds it
    level: Any = None
    fromlist: Any = None
    for instruction in dis.get_instructions(code):
        op, name = instruction.opname, instruction.argval
        if op in _ATTRIBUTE_LOADS:
            chain = None if chain is None else _attribute(chain, name)
        elif op in ("LOAD_GLOBAL", "LOAD_NAME"):
            chain = scope.get(name, imported.get(name)) if op == "LOAD_GLOBAL" else imported.get(name, scope.get(name))
        elif op in ("LOAD_FAST", "LOAD_FAST_CHECK", "LOAD_DEREF", "LOAD_CLASSDEREF"):
            chain = imported.get(name, None if op.startswith("LOAD_FAST") or name in cells else scope.get(name))
        else:
            chain = None
            if op == "LOAD_CONST":  # an import loads its level, then its fromlist
                level, fromlist = fromlist, name
            elif op == "IMPORT_NAME":  # `import a.b` gives a; with `as` or `from`, what follows reads on
                if level:  # a relative import: no notebook is a package, so it names nothing loaded
                    importing = None
                else:
                    importing = sys.modules.get(name) if fromlist else sys.modules.get(name.split(".")[0])
                last_import = importing
            elif op == "IMPORT_FROM":
                last_import = _attribute(importing, name)
            elif op in ("SWAP", "ROT_TWO"):  # `import a.b as c`: the attribute replaces the module it came from
                importing = last_import
            elif op in _STORES:
                if last_import is not None:
                    imported[name] = last_import
                last_import = None
            elif op != "POP_TOP":
                importing = last_import = None
            if last_import is not None:
                found.append(last_import)
        if chain is not None:
            found.append(chain)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            found.extend(_named_objects(constant, scope, imported, cells))
    return found


def _attribute(value: Any, name: str) -> Any:
    """``value.name``, or None where reading it fails in any way: a lazy module's ``__getattr__`` may raise
    ImportError or worse, and reading the answer must not end the check (helper 117)."""
    try:
        return getattr(value, name, None)
    except Exception:  # noqa: BLE001 -- whatever a library's attribute hook raises, the name resolves to nothing
        return None


def in_words(count: int) -> str:
    """A small count as a word, for the praise ("on each of the three cases"); digits from 13 on."""
    words = "zero one two three four five six seven eight nine ten eleven twelve".split()
    return words[count] if 0 <= count < len(words) else f"{count:,}"


# turning answers into numbers


def describe(value: Any) -> str:
    """A short description of a value for a sentence: what it is, and a glimpse of it."""
    if isinstance(value, Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    if isinstance(value, np.ndarray):
        return f"a NumPy {value.dtype} array of shape {value.shape}"
    if isinstance(value, types.GeneratorType):
        return "a generator"
    if isinstance(value, type):
        return f"the class {value.__name__} itself, not an object made from it"
    kind = type(value).__name__
    article = "an" if kind[0] in "AEIOUaeiou" else "a"
    if isinstance(value, dict):
        keys = ", ".join(repr(key) for key in list(value)[:3])
        entries = "entry" if len(value) == 1 else "entries"
        return f"{article} {kind} of {len(value)} {entries} ({keys}{', ...' if len(value) > 3 else ''})"
    if isinstance(value, (list, tuple)):
        text = repr(value)
        return f"a {type(value).__name__} of {len(value)} items {text[:60]}{'...' if len(text) > 60 else ''}"
    if value is None or isinstance(value, (numbers.Number, str, np.generic)):
        return f"{type(value).__name__} {value!r}"[:80]
    return f"{article} {kind} object"


def describe_images(images: Tensor) -> str:
    """Which images these are, told from their count: Fashion-MNIST's training or test set, or how many."""
    count = len(images)
    named = {60_000: "the 60,000 training images", 10_000: "the 10,000 test images"}
    return named.get(count, f"{count:,} image{'' if count == 1 else 's'}")


def expect_data(value: Any, expected: type | tuple[type, ...], what: str) -> None:
    """Misused unless the data handed to ``check`` is an instance of ``expected`` (``what`` names it)."""
    if not isinstance(value, expected):
        raise Misused(f"check() expects {what} after your function, but it got {describe(value)}")


def expect_classes(classes: Any, count: int, after: str) -> None:
    """Misused unless ``classes`` names at least ``count`` classes: a list or tuple of strings (``after``: what
    precedes it; the first ``count`` names are those of the data's classes)."""
    if not (
        isinstance(classes, (list, tuple)) and len(classes) >= count and all(isinstance(name, str) for name in classes)
    ):
        raise Misused(
            f"check() expects the names of the {count} classes after {after} (a list of strings, such as "
            f"checkpoint.classes), but it got {describe(classes)}"
        )


@contextmanager
def own_random_state() -> Iterator[None]:
    """Seeds set inside (for a case's network and dropout) leave the notebook's random state as it was."""
    with torch.random.fork_rng(devices=[]):
        yield


class _ReadError(Exception):
    """An answer's generator raised while it was read (the message says so)."""


def _numbers(value: Any) -> Tensor:
    """``value`` as a float64 tensor: tensors of any dtype, NumPy arrays and scalars, Python numbers, and
    lists, tuples and generators of them (stacked). TypeError/ValueError if it holds anything else."""
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, Tensor) and value.dtype == torch.bool):
        raise TypeError("a truth value is not a number")
    if isinstance(value, Tensor):
        if value.is_complex():
            raise TypeError("a complex number is not a real one")  # double() would drop its imaginary part
        return value.detach().cpu().double()
    if isinstance(value, (np.ndarray, np.generic)):
        dtype = np.asarray(value).dtype
        if not np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.complexfloating):
            raise TypeError("not an array of real numbers")
        return torch.from_numpy(np.array(value, dtype=np.float64))
    if isinstance(value, numbers.Real):
        return torch.tensor(float(value), dtype=torch.float64)
    if isinstance(value, (types.GeneratorType, map, zip)):
        try:
            value = list(value)  # the answer's own code runs as it is read
        except Exception as err:  # noqa: BLE001 -- the student's bug, told as a sentence by as_number/as_tensor
            raise _ReadError(f"it returned a generator that raised {type(err).__name__} ({err}) when read") from None
    if isinstance(value, (list, tuple, range)):
        items = [_numbers(item) for item in value]
        if not items:
            return torch.zeros(0, dtype=torch.float64)
        if all(item.numel() == 1 for item in items):  # (1,) beside (): as elsewhere, dimensions of size 1 may differ
            items = [item.reshape(()) for item in items]
        return torch.stack(items)  # RuntimeError if their shapes differ
    raise TypeError(f"{type(value).__name__} is not a number")


def _refuse_non_finite(values: Tensor, name: str, case: str) -> None:
    if values.isnan().any():
        raise Wrong(f"`{name}` returned NaN (not a number) on {case}: look for a 0 / 0, or a mean of nothing")
    if values.isinf().any():
        raise Wrong(f"`{name}` returned infinity on {case}: look for a division by 0, or a log of 0")


def as_number(value: Any, name: str, case: str) -> float:
    """The answer as a finite float; a one-element tensor or array counts, anything else is Wrong."""
    try:
        number = _numbers(value)
    except _ReadError as err:
        raise Wrong(f"`{name}` should return one number, but on {case} {err}") from None
    except (TypeError, ValueError, RuntimeError, OverflowError):  # OverflowError: an int beyond a float
        number = None
    if number is None or number.numel() != 1:
        raise Wrong(f"`{name}` should return one number, but on {case} it returned {describe(value)}")
    _refuse_non_finite(number, name, case)
    return float(number.reshape(()))


def as_tensor(
    value: Any, name: str, case: str, shape: tuple[int, ...], finite: bool = True, expected: str = ""
) -> Tensor:
    """The answer as a float64 tensor of ``shape``: a tensor of any dtype, a NumPy array, a list or tuple
    (of numbers, 0-d tensors or arrays) or a generator of them; anything else is Wrong. Dimensions of size 1
    may differ. NaN and infinity are Wrong too, unless ``finite`` is False (the checker then names them).
    ``expected`` says what the exercise asks for in its own words (the pair (within, between)), where a
    tensor's shape alone would not."""
    wanted = f"{expected} (a tuple, a list or a tensor of shape {shape})" if expected else f"a tensor of shape {shape}"
    try:
        tensor = _numbers(value)
    except _ReadError as err:
        raise Wrong(f"`{name}` should return {wanted}, but on {case} {err}") from None
    except (TypeError, ValueError, RuntimeError, OverflowError):
        raise Wrong(f"`{name}` should return {wanted}, but on {case} it returned {describe(value)}") from None
    if tuple(tensor.shape) != shape:
        if [n for n in tensor.shape if n != 1] == [n for n in shape if n != 1]:
            tensor = tensor.reshape(shape)  # only dimensions of size 1 differ, e.g. (1, 28, 28) for (28, 28)
        else:
            raise Wrong(
                f"`{name}` should return {f'{expected}, ' if expected else ''}shape {shape} on {case}, but returned "
                f"shape {tuple(tensor.shape)}"
            )
    if finite:
        _refuse_non_finite(tensor, name, case)
    return tensor


def as_indices(
    value: Any, name: str, case: str, shape: tuple[int, ...], advice: str = "", expected: str = ""
) -> list[int]:
    """The answer as whole-number indices, flattened (floats that are whole numbers count); a fraction is
    Wrong rather than cut to an int, with ``advice`` on its likely cause (``expected``: as for as_tensor)."""
    tensor = as_tensor(value, name, case, shape, expected=expected)
    if not bool((tensor == tensor.round()).all()):
        shown = ", ".join(f"{v:.4g}" for v in tensor.flatten().tolist()[:10])
        raise Wrong(f"`{name}` should return whole-number indices, but on {case} it returned ({shown}){advice}")
    return [int(v) for v in tensor.flatten().tolist()]


def as_bool(value: Any, name: str, case: str) -> bool:
    """The answer as True or False: Python's bool, NumPy's bool_ and a one-element bool tensor or array count."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, Tensor) and value.dtype == torch.bool and value.numel() == 1:
        return bool(value)
    if isinstance(value, np.ndarray) and value.dtype == np.bool_ and value.size == 1:  # (helper 101)
        return bool(value.item())
    raise Wrong(f"`{name}` should return True or False, but on {case} it returned {describe(value)}")


def close(a: float, b: float, tolerance: float = 1e-4, scale: float = 0.0) -> bool:
    """Equal up to ``tolerance`` relative to the quantity's scale: the larger of |a|, |b| and ``scale``
    (pass the size of the values the quantity is one of, so that a value near 0 is not judged alone).
    Never true for NaN or infinity."""
    a, b = float(a), float(b)
    if not (math.isfinite(a) and math.isfinite(b)):
        return False
    return abs(a - b) <= tolerance * max(abs(a), abs(b), scale)


def all_close(got: Tensor, expected: Tensor, tolerance: float = 1e-4) -> bool:
    """Element by element ``close``, each relative to the scale of ``expected`` (its largest magnitude)."""
    got, expected = torch.as_tensor(got, dtype=torch.float64), torch.as_tensor(expected, dtype=torch.float64)
    if got.shape != expected.shape or not (got.isfinite().all() and expected.isfinite().all()):
        return False
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    return bool(
        (
            (got - expected).abs() <= tolerance * torch.maximum(got.abs().maximum(expected.abs()), torch.tensor(scale))
        ).all()
    )
