"""The committed notebooks follow the output policy stated in README.md.

Outputs are stripped, except in cells marked ``# NBVAL_CHECK_OUTPUT``, whose stored output
nbval compares with a fresh run. Those outputs must exist, and be plain text.
"""

import importlib
import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "instructor").glob("*.ipynb"))
MARKER = "# NBVAL_CHECK_OUTPUT"


def test_the_notebooks_exist_in_the_order_a_student_learns():
    assert [p.stem for p in NOTEBOOKS] == [
        "01_data_inspection",
        "02_the_network",
        "03_training_loop",
        "04_lr_sweep",
        "05_training_recipes",
        "06_evaluation_and_prediction",
        "07_what_the_network_learned",
        "08_more_than_one_device",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_only_in_checked_cells(path):
    notebook = nbformat.read(path, as_version=4)
    assert "widgets" not in notebook.metadata, "saved widget state: run tools/clean_notebooks.py"
    code_cells = [c for c in notebook.cells if c.cell_type == "code"]
    for cell in code_cells:
        if MARKER in cell.source:
            assert cell.outputs, f"checked cell without a stored output:\n{cell.source}"
            assert all(o.output_type == "stream" and o.name == "stdout" for o in cell.outputs), cell.source
        else:
            assert cell.outputs == [] and cell.execution_count is None, f"unchecked cell with output:\n{cell.source}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_import_the_package_not_copies_of_it(path):
    notebook = nbformat.read(path, as_version=4)
    sources = "\n".join(c.source for c in notebook.cells if c.cell_type == "code")
    assert "fmnist_lab" in sources
    for definition in (
        "class Net(",
        "def find_lr(",
        "def train_step(",
        "def train_epoch(",
        "def fit(",
        "def evaluate(",
    ):
        assert definition not in sources
    assert sum(c.cell_type == "markdown" for c in notebook.cells) >= 6  # they teach, not only run


LESSON = re.compile(r"# LESSON: .*the package's version is (fmnist_lab(?:\.\w+)+)")


def without_solutions(source: str) -> str:
    """A cell's code outside nbgrader's solution markers (exercise solutions may train too)."""
    return re.sub(r"### BEGIN SOLUTION.*?### END SOLUTION", "", source, flags=re.S)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_training_loop_is_written_out_at_most_once_as_a_marked_lesson(path):
    """A lesson may write the loop once to show it; it must say which package function it mirrors."""
    notebook = nbformat.read(path, as_version=4)
    loops = [c.source for c in notebook.cells if c.cell_type == "code" and ".backward()" in without_solutions(c.source)]
    assert len(loops) <= 1, f"{path.name} writes a training loop {len(loops)} times"
    for source in loops:
        lesson = LESSON.search(source)
        assert lesson, f"{path.name}: a training loop without a '# LESSON: ... the package's version is ...' line"
        module, _, name = lesson.group(1).rpartition(".")
        assert hasattr(importlib.import_module(module), name), f"{lesson.group(1)} does not exist"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebook_states_its_student_time_and_compute_time_at_the_top(path):
    # the brief: a teaching notebook states its student time and compute time; three wordings had grown (helper 116)
    opening = " ".join(c.source for c in nbformat.read(path, as_version=4).cells[:2] if c.cell_type == "markdown")
    opening = re.sub(r"\s+", " ", opening)
    stated = re.search(r"\*\*Time:\*\* about (\d+) minutes of your own \(our estimate, exercises ", opening)
    assert stated, f"{path.name}: no '**Time:** about N minutes of your own (our estimate, exercises …' in its opening"
    assert 20 <= int(stated.group(1)) <= 120, stated.group(0)
    assert re.search(r"the computing takes (about )?[\d.]+ (seconds|minutes)", opening[stated.end() :]), path.name
