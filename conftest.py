"""nbval on both editions: every exercise check answers as its edition promises.

nbval runs each notebook of instructor/ and notebooks/ cell by cell (the student edition's 05-07
run in JupyterLab instead, tests/test_browser.py, under the same rule for their checks). On top of its own
comparisons, a cell that calls an exercise check (``nbNN.qK.check(...)``) must print a sentence
starting with "Correct:" in the instructor's edition (the solutions are filled in, and the hidden
tests after it pass silently) and with "Not done yet:" in the student edition (the stubs raise
NotImplementedError). The student edition stores no outputs, so nbval compares none there: this
is what tests its checks.

``make test`` runs pytest in two processes (pytest-xdist) with the units of work defined below (a
scheduler of our own: ``--dist loadgroup`` groups nothing under pytest 9, whose items keep their node
id in ``_id`` where pytest-xdist 3.8 rewrites ``_nodeid``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
CHECK_CALL = re.compile(r"\bnb\d\d\.q\d+\.check\(")
FIRST_WORDS = {ROOT / "instructor": "Correct: ", ROOT / "notebooks": "Not done yet: "}


def printed(outputs: list) -> str:
    """What a cell printed to stdout, from nbval's record of its outputs."""
    return "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream" and o.get("name") == "stdout")


# The student edition's notebooks 05-07 run in JupyterLab instead, as students open them, under the same rule for
# their checks (tests/test_browser.py); nbval runs every other notebook of both editions.
IN_THE_BROWSER = (
    "05_training_recipes.ipynb",
    "06_evaluation_and_prediction.ipynb",
    "07_what_the_network_learned.ipynb",
)
collect_ignore = [f"notebooks/{name}" for name in IN_THE_BROWSER]

# Units of work for pytest-xdist: a test file or a notebook, except that notebooks 05-07 of an edition are one unit,
# run in order (06 and 07 use the run that 05 trained). The longest units start first, so that no long one is left
# for the end (make test passes --no-loadscope-reorder, which keeps this order).
CHAINED = ("05_", "06_", "07_")
LONGEST_FIRST = ("tests/test_browser.py", "instructor/05-07", "tests/test_grading.py")


def work_unit(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    folder, _, name = path.rpartition("/")
    return f"{folder}/05-07" if name.endswith(".ipynb") and name.startswith(CHAINED) else path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        unit = work_unit(item.nodeid)
        return LONGEST_FIRST.index(unit) if unit in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # a stable sort: every notebook's cells stay in order


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    from xdist.scheduler import LoadScopeScheduling

    class WorkUnits(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return WorkUnits(config, log)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    result = yield  # nbval runs the cell (and compares what it must) first
    cell, outputs = getattr(item, "cell", None), getattr(item, "test_outputs", None)
    expected = FIRST_WORDS.get(Path(item.path).resolve().parent)
    if expected and cell is not None and outputs is not None and CHECK_CALL.search(cell.source):
        said = printed(outputs)
        assert said.startswith(expected), (
            f"{Path(item.path).name}: the check\n{cell.source}\nshould answer {expected.strip()!r} in this edition, "
            f"but printed {said!r}"
        )
    return result
