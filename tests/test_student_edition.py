"""The student edition, notebooks/: nbgrader's build of instructor/, committed, and never drifting from it.

`make student` builds it (tools/make_student_edition.py, a wrapper over `nbgrader generate_assignment`).
This file executes no notebook: nbval does, since pytest's testpaths include notebooks/, and the
root conftest.py makes every check there answer "Not done yet" (and "Correct" in instructor/).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
import tomllib

from .conftest import root_conftest

ROOT = Path(__file__).resolve().parent.parent
INSTRUCTOR = sorted((ROOT / "instructor").glob("*.ipynb"))
STUDENT_DIR = ROOT / "notebooks"
SPEC = importlib.util.spec_from_file_location("make_student_edition", ROOT / "tools" / "make_student_edition.py")
tool = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(tool)

REBUILD = "run `make student` and commit notebooks/ (and instructor/, if its grading metadata changed)"


def solution_regions(source: str) -> list[list[str]]:
    """The lines of each marked solution region of a cell."""
    return [
        region.strip("\n").split("\n")
        for region in re.findall(r"### BEGIN SOLUTION\n(.*?)\n[ \t]*### END SOLUTION", source, re.DOTALL)
    ]


def is_check(cell) -> bool:
    return cell.cell_type == "code" and re.search(r"\bnb\d\d\.q\d+\.check\(", cell.source) is not None


def student(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(STUDENT_DIR / path.name, as_version=4)


@pytest.fixture(scope="module")
def fresh_build(tmp_path_factory) -> Path:
    """The student edition built now from instructor/, in a temporary folder."""
    out = tmp_path_factory.mktemp("student")
    tool.build(INSTRUCTOR, out, course=tmp_path_factory.mktemp("edition"))
    return out


def test_the_committed_student_edition_is_a_fresh_build(fresh_build):
    assert sorted(p.name for p in STUDENT_DIR.glob("*.ipynb")) == [p.name for p in INSTRUCTOR], REBUILD
    for path in INSTRUCTOR:
        committed, fresh = student(path), nbformat.read(fresh_build / path.name, as_version=4)
        assert committed.metadata == fresh.metadata, f"{path.name}: notebook metadata differs; {REBUILD}"
        assert len(committed.cells) == len(fresh.cells), f"{path.name}: cells added or removed; {REBUILD}"
        for index, (old, new) in enumerate(zip(committed.cells, fresh.cells)):
            assert (old.cell_type, old.source, old.metadata) == (new.cell_type, new.source, new.metadata), (
                f"{path.name}, cell {index} differs from a fresh build; {REBUILD}"
            )


def test_every_notebook_has_exercises_with_a_check_and_a_prediction():
    for path in INSTRUCTOR:
        cells = nbformat.read(path, as_version=4).cells
        headings = [c.source for c in cells if c.cell_type == "markdown"]
        assert any(re.search(r"^## Exercises", s, re.M) for s in headings), f"{path.name}: no Exercises section"
        assert any(map(is_check, cells)), f"{path.name}: no checked exercise"  # 03, 05 and 08 have one each
        assert any(re.search(r"predict, then run", s, re.I) for s in headings), f"{path.name}: no predict-then-run task"


@pytest.mark.parametrize("path", INSTRUCTOR, ids=lambda p: p.stem)
def test_no_solution_hidden_test_or_output_is_left(path):
    original, released = nbformat.read(path, as_version=4).cells, student(path).cells
    assert len(released) == len(original)
    regions = 0
    for before, after in zip(original, released):
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "strict=True"):
            assert marker not in after.source, f"{path.name}: {marker!r} left in\n{after.source}"
        for region in solution_regions(before.source):
            regions += 1
            kept = [line for line in region if line.strip() and line in after.source.split("\n")]
            assert kept == [], f"{path.name}: solution lines left in the student edition: {kept}"
            stub = "raise NotImplementedError()" if before.cell_type == "code" else "YOUR ANSWER HERE"
            assert stub in after.source
        if after.cell_type == "code":  # no output at all, so none gives an exercise away
            assert after.outputs == [] and after.execution_count is None
    checks = sum(map(is_check, original))
    assert regions >= checks, f"{path.name}: {checks} checked exercises but only {regions} solution regions"


@pytest.mark.parametrize("path", INSTRUCTOR, ids=lambda p: p.stem)
def test_students_can_edit_only_their_answers_and_the_cells_yours_to_change(path):
    yours = 0
    for cell in student(path).cells:
        grading = cell.metadata.nbgrader
        to_change = cell.cell_type == "code" and cell.source.startswith("# YOURS TO CHANGE")
        yours += to_change
        assert cell.metadata.get("editable", True) == (grading["solution"] or to_change), (
            f"{path.name}, {grading['grade_id']}: editable is {cell.metadata.get('editable', True)}"
        )
        if to_change:
            assert not grading["grade"] and not grading["solution"]  # nobody grades what a student tries out
        if is_check(cell):
            assert grading["grade"] and grading["points"] > 0  # each check is an autograded test
    assert yours >= 1  # at least the Colab cell's REPOSITORY, for a student working from a fork


def test_nbval_runs_both_editions_and_the_student_checks_must_say_not_done_yet():
    """What replaced executing the student edition here: nbval on notebooks/ (05-07 in the browser) and the rule."""
    testpaths = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["testpaths"]
    assert {"instructor", "notebooks"} <= set(testpaths)
    conftest = root_conftest
    assert conftest.FIRST_WORDS == {ROOT / "instructor": "Correct: ", ROOT / "notebooks": "Not done yet: "}
    # the notebooks nbval leaves out are the ones tests/test_browser.py runs (it copies IN_THE_BROWSER), and exist
    assert conftest.collect_ignore == [f"notebooks/{name}" for name in conftest.IN_THE_BROWSER]
    assert all((ROOT / "notebooks" / name).is_file() for name in conftest.IN_THE_BROWSER)
    stream = {"output_type": "stream", "name": "stdout", "text": "Not done yet: `f` still raises ..."}
    assert conftest.printed([stream, {"output_type": "stream", "name": "stderr", "text": "warning"}]) == stream["text"]

    def after_the_cell_ran(edition: str, source: str, said: str):
        """Drive the root conftest's hook as pytest does around one nbval cell that printed ``said``."""
        item = SimpleNamespace(
            cell=SimpleNamespace(source=source),
            path=ROOT / edition / "01_data_inspection.ipynb",
            test_outputs=[{"output_type": "stream", "name": "stdout", "text": said}],
        )
        hook = conftest.pytest_runtest_call(item)
        next(hook)  # nbval runs the cell here
        return lambda: hook.send(None)

    check = "nb01.q1.check(pixel_std, data.train_images)"
    for edition, right, wrong in (
        ("notebooks", "Not done yet: ...", "Correct: ..."),
        ("instructor", "Correct: ...", "Not done yet: ..."),
    ):
        with pytest.raises(StopIteration):
            after_the_cell_ran(edition, check, right)()
        with pytest.raises(AssertionError, match=f"should answer {right.split(':')[0] + ':'!r} in this edition"):
            after_the_cell_ran(edition, check, wrong)()
    with pytest.raises(StopIteration):  # a cell that calls no check may print anything
        after_the_cell_ran("notebooks", "print(pixel_std(data.train_images))", "Correct: ...")()
