"""nbval on both editions: every exercise check answers as its edition promises.

nbval runs each notebook of instructor/ and notebooks/ cell by cell. On top of its own
comparisons, a cell that calls an exercise check (``nbNN.qK.check(...)``) must print a sentence
starting with "Correct:" in the instructor's edition (the solutions are filled in, and the hidden
tests after it pass silently) and with "Not done yet:" in the student edition (the stubs raise
NotImplementedError). The student edition stores no outputs, so nbval compares none there: this
is what tests its checks.
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
