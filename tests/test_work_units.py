"""The units of work that conftest.py gives pytest-xdist (make test runs two processes).

A notebook that reads the run notebook 05 trained must run after 05, in the same process: in one
unit with it. A unit named to start first must exist, or the ordering silently does nothing.
"""

from pathlib import Path

import nbformat
import pytest

from .conftest import root_conftest as conftest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("edition", ["instructor", "notebooks"])
def test_every_notebook_that_reads_notebook_05s_run_shares_its_unit(edition):
    # (the student edition's 05-07 run in the browser tests today, which also run them in order)
    notebooks = sorted((ROOT / edition).glob("*.ipynb"))
    unit_of_05 = conftest.work_unit(f"{edition}/05_training_recipes.ipynb::Cell 0")
    uses_05s_run = [p for p in notebooks if any('"runs/notebook05"' in c.source for c in nbformat.read(p, 4).cells)]
    readers = [p for p in uses_05s_run if not p.name.startswith("05_")]  # 05 writes there
    assert [p.name[:2] for p in readers] == ["06", "07"]
    for path in readers:
        assert conftest.work_unit(f"{edition}/{path.name}::Cell 3") == unit_of_05
    others = [p for p in notebooks if p not in readers and not p.name.startswith("05_")]
    assert all(conftest.work_unit(f"{edition}/{p.name}::Cell 0") == f"{edition}/{p.name}" for p in others)


def test_a_test_file_is_one_unit_and_the_longest_units_exist():
    assert conftest.work_unit("tests/test_data.py::test_labels_are_int64") == "tests/test_data.py"
    assert conftest.work_unit("tests/test_lr_finder.py::test_sweep[normal]") == "tests/test_lr_finder.py"
    for unit in conftest.LONGEST_FIRST:
        folder, _, name = unit.rpartition("/")
        matches = [p for p in (ROOT / folder).iterdir() if conftest.work_unit(f"{folder}/{p.name}::x") == unit]
        assert matches, f"{unit} names no file: conftest.LONGEST_FIRST is out of date"
