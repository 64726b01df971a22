"""Grading a class with nbgrader, as README "For instructors" does it.

The grading metadata tool on its own first; then a tiny course of notebook 01 graded end to end
through the documented make targets (each one nbgrader command, run in a temporary course
folder), in quick mode: the release, four simulated submissions collected from a folder, autograde,
the CSV export and the feedback. The submissions: all correct; blank (the stubs as released); one
with a wrong answer that also rewrites the locked test cell to hide it (graded like a plain wrong
answer once the test cell is restored); one whose solution cell never ends (handed in as a zip of
its folder, graded under a short per-cell time limit). Then the warning about answers still to
grade by hand, and the steps that refuse to run without a released assignment.
"""

from __future__ import annotations

import csv
import importlib.util
import re
import shutil
import sqlite3
import subprocess
import sys
import types
import zipfile
from contextlib import closing
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_tool(name: str) -> types.ModuleType:
    """A script of tools/ as a module, registered in sys.modules as the scripts import each other (second_look and
    hand_grading import restore_checks, whose dataclass also looks its module up there)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


restore_checks = load_tool("restore_checks")  # first: the tools below import it
tool = load_tool("grading_metadata")
hand_grading = load_tool("hand_grading")
submission_names = load_tool("submission_names")
second_look = load_tool("second_look")
strip_grading_codes = load_tool("strip_grading_codes")

ASSIGNMENT = "01_data_inspection"
INSTRUCTOR_NOTEBOOK = ROOT / "instructor" / f"{ASSIGNMENT}.ipynb"
LOOP_TIMEOUT = 10  # seconds per cell for the submission that never ends; notebook 01's slowest cell takes 2 s


# the metadata tool on its own


def lab_notebook() -> nbformat.NotebookNode:
    """A small notebook that follows the lab's conventions: a lesson, a checked exercise, a prediction."""
    new_code, new_markdown = nbformat.v4.new_code_cell, nbformat.v4.new_markdown_cell
    return nbformat.v4.new_notebook(
        cells=[
            new_markdown("# 09 · A lesson"),
            new_code("from fmnist_lab.exercises import nb09"),
            new_markdown("### 1 · Double it (check: `nb09.q1`)"),
            new_code("def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION"),
            new_code("# NBVAL_CHECK_OUTPUT\nnb09.q1.check(double, 21)"),
            new_markdown("### Exercise 2 · Predict, then run"),
            new_markdown("**My prediction:**\n\n### BEGIN SOLUTION\n42\n### END SOLUTION"),
            new_code("print(double(21))"),
            new_code("# YOURS TO CHANGE: try another number\nprint(double(4))"),
        ]
    )


def test_the_cells_get_their_roles_and_readable_ids():
    cells = tool.derive(lab_notebook(), "nb09").cells
    roles = [
        (
            c.metadata.nbgrader["grade_id"],
            c.metadata.nbgrader["grade"],
            c.metadata.nbgrader["solution"],
            c.metadata.nbgrader["locked"],
            c.metadata.nbgrader.get("points"),
        )
        for c in cells
    ]
    assert roles[3] == ("nb09-q1-answer", False, True, False, None)  # the student's code: a solution cell
    assert roles[4] == ("nb09-q1", True, False, True, tool.CHECK_POINTS)  # the check: an autograded test
    assert roles[6] == ("nb09-ex2-answer", True, True, False, tool.ANSWER_POINTS)  # graded by hand
    for index in (0, 1, 2, 5, 7):  # everything else: read-only
        grade_id, grade, solution, locked, _ = roles[index]
        assert re.fullmatch(r"nb09-cell-[0-9a-f]{8}", grade_id) and locked and not grade and not solution
    grade_id, grade, solution, locked, _ = roles[8]  # a cell to try things in: editable, graded by nobody
    assert re.fullmatch(r"nb09-cell-[0-9a-f]{8}", grade_id) and not locked and not grade and not solution


def test_the_check_gets_hidden_tests_once_with_a_seed_fixed_by_its_label():
    notebook = tool.derive(lab_notebook(), "nb09")
    check = notebook.cells[4].source
    assert check == (
        "# NBVAL_CHECK_OUTPUT\nnb09.q1.check(double, 21)\n### BEGIN HIDDEN TESTS\n"
        f"nb09.q1.check(double, 21, strict=True, seed={tool.seed_for('nb09.q1')})\n### END HIDDEN TESTS"
    )
    assert tool.seed_for("nb09.q1") != tool.seed_for("nb09.q2")
    again = tool.derive(nbformat.from_dict(notebook), "nb09")
    assert again == notebook  # idempotent: hidden tests are not appended twice, ids do not move


def test_hidden_tests_follow_a_renamed_check_and_an_instructors_own_are_kept():
    notebook = tool.derive(lab_notebook(), "nb09")
    notebook.cells[4].source = notebook.cells[4].source.replace("check(double, 21)", "check(twice, 21)")
    assert tool.hidden_tests("nb09.q1", "twice, 21") in tool.derive(notebook, "nb09").cells[4].source
    own = "nb09.q1.check(double, 21)\n### BEGIN HIDDEN TESTS\nassert double(2) == 4\n### END HIDDEN TESTS"
    notebook.cells[4].source = own
    assert tool.derive(notebook, "nb09").cells[4].source == own


def test_a_prediction_in_a_lesson_section_is_named_after_the_section():
    notebook = lab_notebook()
    notebook.cells[1:1] = [
        nbformat.v4.new_markdown_cell("## 8 · An experiment\n\n### Without dropout"),
        nbformat.v4.new_markdown_cell("**My prediction:**\n\n### BEGIN SOLUTION\nx\n### END SOLUTION"),
        nbformat.v4.new_markdown_cell("## What you have seen"),
    ]
    assert tool.derive(notebook, "nb09").cells[2].metadata.nbgrader["grade_id"] == "nb09-sec8-answer"
    notebook.cells[3].source += "\n\n**My answer:**\n\n### BEGIN SOLUTION\ny\n### END SOLUTION"
    with pytest.raises(tool.ConventionError, match="outside any exercise or section"):
        tool.derive(notebook, "nb09")


def test_an_instructors_points_are_kept():
    notebook = tool.derive(lab_notebook(), "nb09")
    notebook.cells[4].metadata.nbgrader["points"] = 5
    assert tool.derive(notebook, "nb09").cells[4].metadata.nbgrader["points"] == 5


def test_a_lesson_cell_inserted_above_does_not_move_the_other_ids():
    before = [c.metadata.nbgrader["grade_id"] for c in tool.derive(lab_notebook(), "nb09").cells]
    notebook = lab_notebook()
    notebook.cells.insert(1, nbformat.v4.new_markdown_cell("A new paragraph."))
    after = [c.metadata.nbgrader["grade_id"] for c in tool.derive(notebook, "nb09").cells]
    assert after[:1] + after[2:] == before


@pytest.mark.parametrize(
    "source, problem",
    [
        ("Solutions sit between `### BEGIN SOLUTION` and the end marker.", "on a line of its own"),
        ("### BEGIN SOLUTION\n42", "pair every"),
    ],
)
def test_a_marker_nbgrader_would_misread_is_refused_with_the_cell_named(source, problem):
    notebook = lab_notebook()
    notebook.cells[5].source += "\n\n" + source
    with pytest.raises(tool.ConventionError, match=rf"cell 5 \(markdown.*{problem}"):
        tool.derive(notebook, "nb09")


def test_the_command_names_the_notebook_and_changes_nothing_in_check_mode(tmp_path, capsys):
    path = tmp_path / "09_lesson.ipynb"
    nbformat.write(lab_notebook(), path)
    original = path.read_text()
    assert tool.main(["--check", str(path)]) == 1
    assert path.read_text() == original and "would change: 09_lesson.ipynb" in capsys.readouterr().out
    assert tool.main([str(path)]) == 0 and tool.main(["--check", str(path)]) == 0
    unnumbered = tmp_path / "lesson.ipynb"
    nbformat.write(lab_notebook(), unnumbered)
    assert tool.main([str(unnumbered)]) == 1
    assert "lesson.ipynb" in capsys.readouterr().err


def test_a_write_interrupted_halfway_leaves_the_instructor_notebook_whole(tmp_path, monkeypatch):
    """instructor/ holds the only copy of the solutions; nbformat.write truncated it first (helper 97)."""
    path = tmp_path / "09_lesson.ipynb"
    nbformat.write(lab_notebook(), path)
    original = path.read_text()

    def interrupted(notebook, f):
        f.write(nbformat.writes(notebook)[:100])
        raise KeyboardInterrupt

    monkeypatch.setattr(tool.nbformat, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tool.update(path)
    assert path.read_text() == original and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_the_instructor_notebooks_carry_the_metadata_the_tool_derives():
    """So the student edition and a release are built from up-to-date metadata (`make student` refreshes it)."""
    assert tool.main(["--check"]) == 0, "run `make student` (or tools/grading_metadata.py) and commit instructor/"


# a tiny course, graded through the documented commands


def make(target: str, course: Path, succeeds: bool = True, **variables: str) -> subprocess.CompletedProcess:
    """Run one instructor make target on ``course``, with this interpreter's nbgrader; it must succeed (or fail)."""
    settings = [f"{k}={v}" for k, v in {"COURSE": course, "BIN": Path(sys.executable).parent, **variables}.items()]
    result = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), target, *settings],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert (result.returncode == 0) == succeeds, (
        f"make {target} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )
    return result


def by_id(notebook: nbformat.NotebookNode) -> dict[str, nbformat.NotebookNode]:
    # a cell yours to change is neither graded nor locked: nbgrader's autograde keeps no grade id for it
    return {c.metadata.nbgrader["grade_id"]: c for c in notebook.cells if "grade_id" in c.metadata.get("nbgrader", {})}


def without_markers(source: str) -> str:
    markers = (tool.BEGIN_SOLUTION, tool.END_SOLUTION)
    return "\n".join(line for line in source.split("\n") if line.strip() not in markers)


def submission(
    released: nbformat.NotebookNode, source: nbformat.NotebookNode, edits: dict[str, str] | None = None
) -> nbformat.NotebookNode:
    """The released notebook with every solution cell written as in the source, then ``edits`` (grade id -> source)."""
    notebook = nbformat.from_dict(released)
    solutions = by_id(source)
    for grade_id, cell in by_id(notebook).items():
        if cell.metadata.nbgrader["solution"]:
            cell.source = without_markers(solutions[grade_id].source)
        if edits and grade_id in edits:
            cell.source = edits[grade_id]
    return notebook


def with_copies(notebook: nbformat.NotebookNode, *grade_ids: str) -> nbformat.NotebookNode:
    """``notebook`` with each cell of ``grade_ids`` copied just below itself, as JupyterLab's copy and paste does."""
    cells = []
    for cell in notebook.cells:
        cells.append(cell)
        if cell.metadata.get("nbgrader", {}).get("grade_id") in grade_ids:
            cells.append(nbformat.from_dict({**cell, "id": f"{cell.id}-copy"}))
    notebook.cells = cells
    return notebook


def without_cell(notebook: nbformat.NotebookNode, grade_id: str) -> nbformat.NotebookNode:
    """``notebook`` with the cell of ``grade_id`` deleted, as a student can in JupyterLab."""
    notebook.cells = [c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") != grade_id]
    return notebook


SOLUTION = "\n\nnb01.q1.solution()"

WRONG_PIXEL_STD = (
    'def pixel_std(images):\n    """The mean of the per-image stds, a wrong answer."""\n'
    "    return (images.double().flatten(1) / 255).std(dim=1).mean().item()"
)


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> dict:
    """The tiny course, released, collected, autograded, exported and with feedback; what each step left."""
    course = tmp_path_factory.mktemp("course")
    make("release", course, ASSIGNMENTS=ASSIGNMENT)
    released = nbformat.read(course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    source = nbformat.read(course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    submissions = {
        # solution() called in an answer cell: autograde shows nothing of it (nbgrader's NBGRADER_EXECUTION)
        "all_correct": submission(
            released, source, {"nb01-q1-answer": without_markers(by_id(source)["nb01-q1-answer"].source) + SOLUTION}
        ),
        "blank": nbformat.from_dict(released),
        "tampering": without_cell(
            submission(released, source, {"nb01-q1-answer": WRONG_PIXEL_STD, "nb01-q1": 'print("Correct: trust me.")'}),
            "nb01-q5",
        ),  # one locked test cell rewritten, another deleted
        # a check and an answer copied: nbgrader's autograde stopped at it, and at every student after it
        "copied_cells": with_copies(submission(released, source), "nb01-q1", "nb01-q3-answer"),
    }
    never_ends = submission(
        released,
        source,
        {
            # never ends: the per-cell time limit must stop it (sleeping, so as not to hold a core of the test machine)
            "nb01-q1-answer": "import time\n\nwhile True:\n    time.sleep(1)\n\n"
            + without_markers(by_id(source)["nb01-q1-answer"].source)
        },
    )

    folder = tmp_path_factory.mktemp("submissions")
    for student, notebook in submissions.items():
        (folder / student).mkdir()
        nbformat.write(notebook, folder / student / f"{ASSIGNMENT}.ipynb")
    collect = make("collect", course, ASSIGNMENT=ASSIGNMENT, SUBMISSIONS=folder)
    autograde = make("autograde", course, ASSIGNMENT=ASSIGNMENT)

    # a second batch, graded on its own with a short limit per cell: only one student's work, handed in as a
    # zip of the assignment folder, as "compress folder" makes it (the notebook's checkpoint inside)
    late = tmp_path_factory.mktemp("late")
    with zipfile.ZipFile(late / "never_ends.zip", "w") as archive:
        archive.writestr(f"{ASSIGNMENT}/{ASSIGNMENT}.ipynb", nbformat.writes(never_ends))
        archive.writestr(f"{ASSIGNMENT}/.ipynb_checkpoints/{ASSIGNMENT}-checkpoint.ipynb", nbformat.writes(released))
    late_collect = make("collect", course, ASSIGNMENT=ASSIGNMENT, SUBMISSIONS=late)
    archive = sorted(p.name for p in (course / "downloaded" / ASSIGNMENT / "archive").iterdir())
    make("autograde", course, ASSIGNMENT=ASSIGNMENT, STUDENT="never_ends", TIMEOUT=str(LOOP_TIMEOUT))

    feedback = make("feedback", course, ASSIGNMENT=ASSIGNMENT)
    grades_run = make("grades", course)
    with open(course / "grades.csv", newline="") as f:
        grades = {row["student_id"]: row for row in csv.DictReader(f)}
    return {
        "dir": course,
        "archive_after_the_second_collect": archive,
        "source": source,
        "released": released,
        "grades": grades,
        "collect_log": collect.stdout + collect.stderr,
        "late_collect_log": late_collect.stdout + late_collect.stderr,
        "autograde_log": autograde.stdout + autograde.stderr,
        "feedback_log": feedback.stdout + feedback.stderr,
        "grades_log": grades_run.stdout + grades_run.stderr,
    }


def points(source: nbformat.NotebookNode, *grade_ids: str) -> float:
    return sum(float(by_id(source)[g].metadata.nbgrader["points"]) for g in grade_ids)


def autograded_points(source: nbformat.NotebookNode) -> float:
    """The points the autograder can give: those of the test cells (answers in markdown are graded by hand)."""
    return sum(
        float(c.metadata.nbgrader["points"])
        for c in by_id(source).values()
        if c.metadata.nbgrader["grade"] and not c.metadata.nbgrader["solution"]
    )


def test_the_release_is_the_committed_student_edition(course):
    committed = nbformat.read(ROOT / "notebooks" / f"{ASSIGNMENT}.ipynb", as_version=4)
    assert [(c.cell_type, c.source, c.metadata) for c in course["released"].cells] == [
        (c.cell_type, c.source, c.metadata) for c in committed.cells
    ]


def test_each_submission_gets_its_total_score(course):
    source, grades = course["source"], course["grades"]
    full = autograded_points(source)
    q1 = points(source, "nb01-q1")
    assert full >= 3 * tool.CHECK_POINTS  # notebook 01 has three checked exercises
    expected = {
        "all_correct": full,
        "blank": 0.0,
        "copied_cells": full,
        "tampering": full - q1,
        "never_ends": full - q1,
    }
    scores = {student: float(row["score"]) for student, row in grades.items()}
    assert scores == expected
    written = points(
        source,
        *(g for g, c in by_id(source).items() if c.metadata.nbgrader["solution"] and c.metadata.nbgrader["grade"]),
    )
    assert {float(row["max_score"]) for row in grades.values()} == {full + written}


def test_grades_by_question_add_up_to_each_students_total(course):
    """nbgrader's export gives totals only; make grades writes each student's score on each graded cell too."""
    with open(course["dir"] / "grades_by_question.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    source = course["source"]
    graded = [g for g, c in by_id(source).items() if c.metadata.nbgrader["grade"]]
    assert sorted((row["student_id"], row["question"]) for row in rows) == sorted(
        (student, g) for student in course["grades"] for g in graded
    )
    for student, grade in course["grades"].items():
        scores = [float(row["score"] or 0) for row in rows if row["student_id"] == student]
        assert sum(scores) == pytest.approx(float(grade["raw_score"]))
    assert {row["kind"] for row in rows if row["question"] == "nb01-q1"} == {"check"}
    assert "01_data_inspection nb01-q1 (check): mean " in course["grades_log"]
    assert "full marks 2 of 5 students" in course["grades_log"]  # all_correct and copied_cells


def test_a_rewritten_test_cell_is_detected_and_restored(course):
    """nbgrader's own checksums show the edit; autograde grades with the original test cell."""
    from nbgrader.utils import compute_checksum

    submitted = course["dir"] / "submitted"
    changed = {}
    for student_dir in submitted.iterdir():
        notebook = nbformat.read(student_dir / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
        # what `nbgrader validate` reports as "THE CONTENTS OF n TEST CELL(S) HAVE CHANGED!"
        changed[student_dir.name] = [
            g
            for g, c in by_id(notebook).items()
            if c.metadata.nbgrader["locked"] and compute_checksum(c) != c.metadata.nbgrader["checksum"]
        ]
    assert changed == {"all_correct": [], "blank": [], "copied_cells": [], "tampering": ["nb01-q1"], "never_ends": []}
    # and collect names it, which autograde's checksum line alone had told (helper 109)
    assert (
        'NOTE: these students changed the text of locked cells: tampering (nb01-q1 ("nb01.q1.check(pixel_std, '
        'data.train_images)"))'
    ) in course["collect_log"]

    graded = nbformat.read(
        course["dir"] / "autograded" / "tampering" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4
    )
    test_cell = by_id(graded)["nb01-q1"]
    assert test_cell.source == by_id(course["source"])["nb01-q1"].source  # the original, hidden tests included
    errors = [o for o in test_cell.outputs if o.output_type == "error"]
    assert errors and errors[0].ename == "CheckFailed"  # an AssertionError, which nbgrader scores 0
    # the feedback shows the verdict alone, not a traceback through the lab's source and where it is installed
    assert errors[0].traceback == [f"CheckFailed: {errors[0].evalue}"] and errors[0].evalue.startswith("Not yet: ")


def collected_notebook(course: dict, student: str) -> nbformat.NotebookNode:
    return nbformat.read(course["dir"] / "submitted" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)


def grade_ids(notebook: nbformat.NotebookNode) -> list[str | None]:
    return [c.metadata.get("nbgrader", {}).get("grade_id") for c in notebook.cells]


def test_a_deleted_test_cell_is_put_back_at_collect_and_scores_the_answer_above_it(course):
    """nbgrader restores a changed locked cell but not a deleted one: that check would count 0 with nothing said.
    Collect puts it back from the release, below its answer, and says so; the score above counts it."""
    assert (
        "Put back the check cells missing from these students' notebooks (deleted, or stripped of their grading "
        "metadata), from the release, so that autograde scores the answers above them: tampering (nb01-q5)"
    ) in course["collect_log"]
    collected = collected_notebook(course, "tampering")
    ids = grade_ids(collected)
    position = ids.index("nb01-q5")
    assert [g for g in ids if g] == grade_ids(course["released"])  # where it was: right below its answer cell ...
    assert collected.cells[position - 1].source == restore_checks.CHECK_NOTE  # ... and a note that says why
    assert by_id(collected)["nb01-q5"].source == by_id(course["released"])["nb01-q5"].source
    graded = nbformat.read(course["dir"] / "autograded" / "tampering" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", 4)
    assert not [o for o in by_id(graded)["nb01-q5"].outputs if o.output_type == "error"]  # its answer is right
    # the student reads the note in the feedback (last session's instructor read: nothing told them)
    feedback = (course["dir"] / "feedback" / "tampering" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    assert "was put back from the release when the notebook was collected" in feedback


def test_copied_cells_keep_their_grading_metadata_once_and_autograde_grades_everyone(course):
    """A grade id twice stopped autograde for the whole class, with advice (`nbgrader update`) that fails too
    (helper-89). Collect keeps the metadata on the last copy and says so; the others run as plain cells."""
    assert (
        "Kept the grading metadata of these cells, which students had copied, on the last copy only (the others "
        "run as plain cells; autograde stops at a cell that is there twice): copied_cells (nb01-q1, nb01-q3-answer)"
    ) in course["collect_log"]
    collected = collected_notebook(course, "copied_cells")
    ids = grade_ids(collected)
    assert ids.count("nb01-q1") == ids.count("nb01-q3-answer") == 1
    assert len(collected.cells) == len(course["released"].cells) + 2  # the copies are kept, as plain cells
    assert (course["dir"] / "autograded" / "tampering" / ASSIGNMENT).is_dir()  # graded after it


def test_a_check_is_put_back_below_what_stands_in_place_of_its_deleted_answer_cell(course):
    """The answer cell and its check deleted, the function written in a new cell where they were: the check went
    above the new cell, before the function existed, and scored 0 (helper-89). It goes below it now, and the
    missing answer cell is named."""
    notebook = submission(course["released"], course["source"])
    answer = by_id(notebook)["nb01-q1-answer"].source
    without_cell(without_cell(notebook, "nb01-q1-answer"), "nb01-q1")
    after = next(i for i, c in enumerate(notebook.cells) if c.metadata.nbgrader["grade_id"] == "nb01-ex2-answer")
    notebook.cells.insert(after - 1, nbformat.v4.new_code_cell(answer))  # where the answer cell was
    assert restore_checks.restore(course["released"], notebook) == ["nb01-q1"]
    sources = [c.source for c in notebook.cells]
    below = sources.index(answer)
    assert sources[below + 1 : below + 3] == [restore_checks.CHECK_NOTE, by_id(course["released"])["nb01-q1"].source]
    assert restore_checks.missing_answers(course["released"], notebook) == ["nb01-q1-answer"]

    stripped = submission(course["released"], course["source"])  # rebuilt by copy and paste: no metadata at all
    for cell in stripped.cells:
        del cell.metadata["nbgrader"]
    count = len(stripped.cells)
    # the checks and, so that Formgrader has a box for each, the written answers' cells, after the student's cells
    put_back = ["nb01-q1", "nb01-ex2-answer", "nb01-q3", "nb01-ex4-answer", "nb01-q5"]
    assert restore_checks.restore(course["released"], stripped) == put_back
    added = grade_ids(stripped)[count:]
    assert [g for g in added if g] == put_back
    checks = [position for position, g in enumerate(added, start=count) if g in {"nb01-q1", "nb01-q3", "nb01-q5"}]
    notes = [stripped.cells[position - 1].source for position in checks]
    assert notes == [restore_checks.CHECK_NOTE] * 3  # each check below its note; the written answers without one
    written = by_id(stripped)["nb01-ex2-answer"].source
    assert written.startswith(by_id(course["released"])["nb01-ex2-answer"].source)  # the released cell ...
    assert written.endswith(restore_checks.WRITTEN_NOTE)  # ... changed: autograde leaves it for grading by hand


def test_a_check_put_back_gets_a_cell_id_of_its_own():
    """nbformat would change a repeated cell id itself, with a DuplicateCellId warning in collect's log (helper-94)."""
    released = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("nb09.q1.check(double)")])
    released.cells[0].metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": "nb09-q1", "locked": True}
    submitted = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)")])
    submitted.cells[0].id = released.cells[0].id  # the check, copied by hand without its metadata
    assert restore_checks.restore(released, submitted) == ["nb09-q1"]
    assert len({cell.id for cell in submitted.cells}) == len(submitted.cells) == 3  # the note, the check, print(1)
    nbformat.validate(submitted)


def test_a_notebook_of_nbformat_4_0_gets_its_check_back_without_cell_ids_and_null_metadata_is_dropped():
    """Cell ids came with nbformat 4.5: a check put back with one into Colab's 4.0 made an invalid notebook; and
    a cell's `"nbgrader": null` stopped collect's mending of every student (helper 105)."""
    released = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("nb09.q1.check(double)")])
    released.cells[0].metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": "nb09-q1", "locked": True}
    submitted = nbformat.from_dict(
        {
            "nbformat": 4,
            "nbformat_minor": 0,
            "metadata": {},
            "cells": [{"cell_type": "code", "metadata": {"nbgrader": None}, "source": "x = 1", "outputs": []}],
        }
    )
    for cell in submitted.cells:
        cell.pop("id", None)
        cell.execution_count = None
    assert restore_checks.make_single(submitted) == [] and restore_checks.reset_metadata(released, submitted) == []
    assert restore_checks.restore(released, submitted) == ["nb09-q1"]
    assert "nbgrader" not in submitted.cells[0].metadata and not any("id" in cell for cell in submitted.cells)
    nbformat.validate(submitted)


def test_a_notebook_saved_with_a_byte_order_mark_is_written_back_without_it(tmp_path, capsys):
    """Named unreadable at collect and never graded (helper 103); the mark is no part of the notebook."""
    released = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("nb09.q1.check(double)")])
    released.cells[0].metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": "nb09-q1", "locked": True}
    (tmp_path / "release" / "a").mkdir(parents=True)
    nbformat.write(released, tmp_path / "release" / "a" / "a.ipynb")
    path = tmp_path / "submitted" / "carol" / "a" / "a.ipynb"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\xef\xbb\xbf" + nbformat.writes(released).encode())
    assert restore_checks.main([str(tmp_path), "a"]) == 0
    out = capsys.readouterr().out
    assert "Removed the byte-order mark at the start of these students' notebooks" in out and "carol" in out
    assert not path.read_bytes().startswith(b"\xef\xbb\xbf")
    assert grade_ids(nbformat.read(path, as_version=4)) == ["nb09-q1"]


def test_a_file_that_is_not_a_notebook_is_named_and_the_others_are_still_mended(tmp_path, capsys):
    """A truncated upload ended collect's mending in a traceback, leaving the students after it unmended, and
    make grades failed on it too (helper 97)."""
    released = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("nb09.q1.check(double)")])
    released.cells[0].metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": "nb09-q1", "locked": True}
    (tmp_path / "release" / "a").mkdir(parents=True)
    nbformat.write(released, tmp_path / "release" / "a" / "a.ipynb")
    for student in ("alice", "bob"):
        (tmp_path / "submitted" / student / "a").mkdir(parents=True)
    (tmp_path / "submitted" / "alice" / "a" / "a.ipynb").write_text('{"cells": [')
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "submitted" / "bob" / "a" / "a.ipynb")  # check deleted
    assert restore_checks.main([str(tmp_path), "a"]) == 0
    out = capsys.readouterr().out
    assert "WARNING: alice's submission cannot be read as a notebook, so autograde will not grade it" in out
    assert "Ask alice for the notebook again" in out and "bob (nb09-q1)" in out
    assert grade_ids(nbformat.read(tmp_path / "submitted" / "bob" / "a" / "a.ipynb", 4)) == [None, "nb09-q1"]
    (tmp_path / "autograded" / "alice" / "a").mkdir(parents=True)  # graded before the broken copy replaced it
    nbformat.write(released, tmp_path / "autograded" / "alice" / "a" / "a.ipynb")
    assert hand_grading.collected_again(tmp_path) == [("alice", "a")]


def test_edited_grading_metadata_is_put_back_from_the_release(course):
    """A check made a solution cell, a check's grade id renamed, a written answer no longer graded: autograde failed
    each whole notebook, scoring right answers 0 (helper 103). Collect puts the release's metadata back."""
    released = course["released"]
    edited = nbformat.from_dict(released)
    cells = by_id(edited)
    cells["nb01-q3"].metadata.nbgrader.update(solution=True, grade=False, locked=False)
    cells["nb01-q3"].source = "pass"
    cells["nb01-q5"].metadata.nbgrader["grade_id"] = "nb01-q5-x"
    written = next(g for g, c in cells.items() if c.cell_type == "markdown" and c.metadata.nbgrader["grade"])
    cells[written].metadata.nbgrader["grade"] = False
    changed = restore_checks.reset_metadata(released, edited)
    assert sorted(changed) == sorted(["nb01-q3", "nb01-q5-x (not in the release)", written])
    assert restore_checks.reset_metadata(released, edited) == []  # nothing left to put back the second time
    assert restore_checks.restore(released, edited) == ["nb01-q5"]  # the renamed check, from the release
    assert {g: c.metadata.nbgrader for g, c in by_id(edited).items()} == {
        g: c.metadata.nbgrader for g, c in by_id(released).items()
    }
    plain = [c.source for c in edited.cells if not c.metadata.get("nbgrader")]
    assert any("nb01.q5.check(" in source for source in plain)  # the renamed check stays, as a plain cell


def locked(source: str, grade_id: str, cell_type: str = "code") -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source) if cell_type == "code" else nbformat.v4.new_markdown_cell(source)
    cell.metadata["nbgrader"] = {"grade": False, "solution": False, "grade_id": grade_id, "locked": True}
    return cell


def test_a_deleted_locked_cell_is_put_back_where_it_was_and_named_at_collect(tmp_path, capsys):
    """A right submission without its one-line import scored 0 on every check, with nothing said (helper 109)."""
    released = nbformat.v4.new_notebook(
        cells=[
            locked("# Notebook 09", "nb09-cell-1", "markdown"),
            locked("from fmnist_lab.exercises import nb09", "nb09-cell-2"),
            nbformat.v4.new_code_cell("def double(x):\n    return 2 * x"),
            locked("nb09.q1.check(double)", "nb09-q1"),
        ]
    )
    released.cells[2].metadata["nbgrader"] = {"grade": False, "solution": True, "grade_id": "nb09-q1-answer"}
    released.cells[3].metadata["nbgrader"].update(grade=True, points=1)
    (tmp_path / "release" / "a").mkdir(parents=True)
    nbformat.write(released, tmp_path / "release" / "a" / "a.ipynb")
    submitted = nbformat.from_dict(released)
    del submitted.cells[1]
    (tmp_path / "submitted" / "bob" / "a").mkdir(parents=True)
    nbformat.write(submitted, tmp_path / "submitted" / "bob" / "a" / "a.ipynb")
    assert restore_checks.main([str(tmp_path), "a"]) == 0
    assert (
        "Put back the locked cells missing from these students' notebooks (the release's own code and text, deleted, "
        "or edited in a notebook stripped of its grading metadata: without an import or a setup cell, every cell "
        'below it fails), as released: bob (nb09-cell-2 ("from fmnist_lab.exercises import nb09"))'
    ) in capsys.readouterr().out
    collected = nbformat.read(tmp_path / "submitted" / "bob" / "a" / "a.ipynb", 4)
    assert [c.source for c in collected.cells] == [c.source for c in released.cells]


def test_a_locked_cells_text_without_its_metadata_is_not_put_back_twice():
    """A notebook rebuilt by copy and paste holds the release's text without metadata: that cell runs as it is, and
    stands for one released cell only (helper 112: two identical seed cells, one deleted, did not come back)."""
    released = nbformat.v4.new_notebook(cells=[locked("import torch", "nb09-cell-1")])
    submitted = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import torch\n")])  # pasted back by hand
    assert restore_checks.restore(released, submitted) == [] and len(submitted.cells) == 1
    seeds = [locked("torch.manual_seed(0)", "c-1"), locked("a = torch.rand(2)", "c-2")]
    seeds += [locked("torch.manual_seed(0)", "c-3"), locked("b = torch.rand(2)", "c-4")]
    released = nbformat.v4.new_notebook(cells=seeds)
    submitted = nbformat.from_dict(released)
    del submitted.cells[2]  # one of two identical locked cells
    assert restore_checks.restore(released, submitted) == ["c-3"]
    assert [c.source for c in submitted.cells] == [c.source for c in released.cells]


def test_a_cell_is_put_back_above_every_later_cell_of_the_release_however_they_were_moved():
    """The cell defining `data` came back below its check, behind a heading the student had dragged to the end
    (helper 112)."""
    released = nbformat.v4.new_notebook(
        cells=[locked("data = 1", "c-data"), locked("## Exercise 1", "c-title", "markdown"), locked("check(data)", "q")]
    )
    submitted = nbformat.from_dict(released)
    submitted.cells = [submitted.cells[2], submitted.cells[1]]  # `data` deleted, the heading moved below the check
    assert restore_checks.restore(released, submitted) == ["c-data"]
    assert [c.source for c in submitted.cells] == ["data = 1", "check(data)", "## Exercise 1"]


def test_an_edited_copy_of_a_locked_cell_is_named():
    """make_single strips all copies but the last of their metadata: an edited first copy went unnamed (helper 112)."""
    released = nbformat.v4.new_notebook(cells=[locked("nb09.q1.check(double)", "nb09-q1")])
    submitted = nbformat.from_dict(released)
    submitted.cells.insert(0, nbformat.from_dict({**submitted.cells[0], "source": 'print("Correct")', "id": "x"}))
    assert restore_checks.edited_locked_cells(released, submitted) == ["nb09-q1"]


def test_edited_grading_metadata_is_named_at_collect(tmp_path, capsys):
    released = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("nb09.q1.check(double)")])
    released.cells[0].metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": "nb09-q1", "locked": True}
    (tmp_path / "release" / "a").mkdir(parents=True)
    nbformat.write(released, tmp_path / "release" / "a" / "a.ipynb")
    submitted = nbformat.from_dict(released)
    submitted.cells[0].metadata["nbgrader"].update(solution=True, locked=False)
    (tmp_path / "submitted" / "bob" / "a").mkdir(parents=True)
    nbformat.write(submitted, tmp_path / "submitted" / "bob" / "a" / "a.ipynb")
    assert restore_checks.main([str(tmp_path), "a"]) == 0
    assert "Put back the release's grading metadata of these cells, which had been edited" in capsys.readouterr().out
    collected = nbformat.read(tmp_path / "submitted" / "bob" / "a" / "a.ipynb", 4)
    assert collected.cells[0].metadata.nbgrader == released.cells[0].metadata.nbgrader


def test_an_answer_moved_below_its_check_is_named_at_collect(tmp_path, capsys):
    """Autograde runs top to bottom: the check ran before the answer existed and scored 0, though the student had
    seen it say Correct, with nothing said at collect (helper 103)."""
    answer = nbformat.v4.new_code_cell("def double(x):\n    return 2 * x")
    answer.metadata["nbgrader"] = {"grade": False, "solution": True, "grade_id": "nb09-q1-answer", "locked": False}
    check = nbformat.v4.new_code_cell("nb09.q1.check(double)")
    check.metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": "nb09-q1", "locked": True}
    (tmp_path / "release" / "a").mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(cells=[answer, check]), tmp_path / "release" / "a" / "a.ipynb")
    for student, cells in (("in_order", [answer, check]), ("moved", [check, answer])):
        (tmp_path / "submitted" / student / "a").mkdir(parents=True)
        nbformat.write(nbformat.v4.new_notebook(cells=cells), tmp_path / "submitted" / student / "a" / "a.ipynb")
    assert restore_checks.main([str(tmp_path), "a"]) == 0
    out = capsys.readouterr().out
    assert "WARNING: these answer cells stand below their own checks: moved (nb09-q1-answer)" in out
    assert "in_order" not in out


@pytest.mark.parametrize(
    "source, named",
    [
        ("nb01.q1.hint()\nnb01.q1.solution()", False),  # the notebooks' own advice (helper 104)
        ("# Exercise 1, as the instructor's hint says\nx = 1", False),  # a comment is no code
        ("os.environ['KMP_DUPLICATE_LIB_OK'] = 'TRUE'", False),  # torch's fix on a Mac sets a variable
        ("secret = os.environ['FMNIST_LAB_SECRET']", True),
        ("print(dict(os.environ))", True),
        ('exec("nb0" + "1 = Fake()")', True),  # bound nb01 past the name pattern, unseen (helper 104)
        ("source = (Path(lab.__file__).parents[1] / 'instructor' / 'a.ipynb').read_text()", True),
        ("%%time\nx = 1", False),
        # all five once named (helper 105)
        ("model.eval()\nnet = torch.compile(model)\npattern = re.compile('a')", False),
        ("plt.title('Exercise 3: weight norms')", False),
        ("verdict = 'fine'", False),
        ("rank = int(os.environ.get('LOCAL_RANK', 0))", False),
        ('"""As the instructor\'s example shows."""', False),
        # all four once passed unnamed (helper 105)
        ("vars(nb02.q1)['ver' + 'dict'] = lambda *a, **k: None", True),
        ("object.__setattr__(nb02.q1, 'checker', fake)", True),
        ("everything = {**os.environ}", True),
        ("settings = %env", True),
    ],
)
def test_what_a_students_cell_is_named_for(source, named):
    notebook = {"cells": [{"cell_type": "code", "metadata": {}, "source": source, "outputs": []}]}
    assert bool(second_look.suspicious_cells(notebook)) == named, second_look.suspicious_cells(notebook)


HIDDEN = "nb01.q1.check(pixel_std, strict=True, seed=2850)"


@pytest.mark.parametrize(
    "source, printed, trusted",
    [
        (HIDDEN, "Correct: fine.\nGraded: {code}\n", True),
        (HIDDEN, "Correct: fine.\n", False),  # the fake, or an autograde run without the secret
        (HIDDEN, "Correct: fine.\nGraded: {autumn}\n", False),  # another phrase
        (HIDDEN, "Correct: fine.\nGraded: {bob}\n", False),  # a classmate's code, read in their feedback (helper 105)
        # an answer's progress on the verdict's line, with end="" or "\r": once "0 verdict lines" (helper 105)
        (HIDDEN, "batch 1/3\rbatch 3/3\rCorrect: fine.\n...\rGraded: {code}\n", True),
        # the arguments in another order, or wrapped: once not found, and the code not asked for (helper 105)
        ("nb01.q1.check(\n    pixel_std,\n    seed=2850,\n    strict=True,\n)", "Correct: fine.\n", False),
        ("nb01.q1.check(pixel_std, seed=2850, strict=True)", "Correct: fine.\nGraded: {code}\n", True),
        (f"{HIDDEN}\nnb01.q1.check(pixel_std, strict=True, seed=7)", "Correct: fine.\nGraded: {code}\n", False),
        ("pass", "Correct: fine.\n", False),  # no hidden test left to ask a code of
    ],
)
def test_under_a_secret_a_check_is_trusted_only_with_its_students_grading_code(source, printed, trusted):
    """A fake nb01 that printed one "Correct:" line per visible call and nothing for the hidden one passed the
    verdict count (helper 104); under the course's secret the hidden call's grading code tells them apart."""
    cell = nbformat.v4.new_code_cell(f"nb01.q1.check(pixel_std)\n{source}")
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": "nb01-q1", "locked": True}
    codes = {
        "code": second_look.grading_code("spring term", "nb01.q1", 2850, "alice"),
        "autumn": second_look.grading_code("autumn", "nb01.q1", 2850, "alice"),
        "bob": second_look.grading_code("spring term", "nb01.q1", 2850, "bob"),
    }
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed.format(**codes))]
    notebook = {"cells": [cell]}
    assert (second_look.unverified_checks(notebook, "spring term", "alice") == []) == trusted, printed
    assert second_look.unverified_checks(notebook) == []  # without the secret only the verdicts are counted


def test_the_honest_submissions_need_no_second_look(course):
    """Every check cell of the course that scored printed its one "Correct:" line; no student cell does what no
    answer needs (the Colab cell's own `sys.modules` is the release's, not the student's)."""
    assert second_look.warnings(course["dir"], ASSIGNMENT) == []
    assert "WARNING: these check cells" not in course["grades_log"] + course["feedback_log"]


def test_a_check_scored_without_its_verdict_and_hooks_in_a_students_cells_are_named(course, tmp_path, capsys):
    """A cell yours to change that rewrote every hidden test into `pass` through an IPython hook scored a blank
    submission in full, and a class named nb01 of the student's own printed "Correct:" for anything (helper 103)."""
    copy = tmp_path / "course"
    shutil.copytree(course["dir"], copy)
    path = copy / "autograded" / "all_correct" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    graded = nbformat.read(path, as_version=4)
    cells = by_id(graded)
    cells["nb01-q1"].outputs = []  # what the hook left: the check never ran, and nothing raised
    cells["nb01-q3"].outputs = cells["nb01-q3"].outputs * 2  # a check of the student's own, printing for each call
    colab = next(c for c in graded.cells if c.source.startswith("# YOURS TO CHANGE: REPOSITORY"))
    colab.source += "\nget_ipython().input_transformers_cleanup.append(quiet)"
    graded.cells.append(nbformat.v4.new_code_cell("class nb01:\n    pass"))
    nbformat.write(graded, path)
    assert second_look.main([str(copy)]) == 0
    out = capsys.readouterr().out
    assert "all_correct (01_data_inspection): nb01-q1 scored with 0 verdicts; nb01-q3 scored with 2" in out
    assert f"cell {graded.cells.index(colab) + 1}: hooks into IPython" in out  # yours to change: no grade id left
    assert f"cell {len(graded.cells)}: binds an exercise's name (nb01, say) to something else" in out
    assert "rewrites modules" not in out  # the Colab cell's released lines are not the student's


def test_a_submission_in_an_older_notebook_format_is_not_taken_for_one_collected_again(course, tmp_path):
    """nbformat 3 keeps its cells in worksheets: make grades said such a submission was collected again with other
    answers, after every autograde (helper 103)."""
    copy = tmp_path / "course"
    shutil.copytree(course["dir"], copy)
    graded = nbformat.read(copy / "autograded" / "all_correct" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", 4)
    submitted = copy / "submitted" / "all_correct" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    nbformat.write(nbformat.convert(graded, 3), submitted)
    assert nbformat.reads(submitted.read_text(), as_version=nbformat.NO_CONVERT).nbformat == 3
    assert hand_grading.collected_again(copy, ASSIGNMENT) == []


def test_solution_shows_nothing_while_autograde_runs(course):
    """An answer that printed or ran the solution cell scored full (helper 103): under nbgrader's autograde
    (NBGRADER_EXECUTION) solution() prints only its refusal. A course secret reaches the checks through the
    environment, not the command line that make prints."""
    graded = nbformat.read(course["dir"] / "autograded" / "all_correct" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", 4)
    printed = "".join(o.get("text", "") for o in by_id(graded)["nb01-q1-answer"].outputs)
    assert printed == "The solutions are not shown while submissions are graded.\n", printed
    dry = subprocess.run(
        ["make", "-n", "--no-print-directory", "-C", str(ROOT), "autograde", f"ASSIGNMENT={ASSIGNMENT}"],
        capture_output=True,
        text=True,
    )
    line = next(line for line in dry.stdout.splitlines() if "nbgrader autograde" in line)
    assert "SECRET" not in line, line


def test_a_later_collect_names_only_its_own_students(course):
    # every collect repeated the earlier batches' students, as if the late batch had their problems (helper-94)
    assert "tampering" in course["collect_log"] and "tampering" not in course["late_collect_log"]


def test_a_cell_that_never_ends_fails_that_submission_only(course):
    graded = nbformat.read(
        course["dir"] / "autograded" / "never_ends" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4
    )
    stopped = by_id(graded)["nb01-q1-answer"]
    assert "CellTimeoutError" in [o.ename for o in stopped.outputs if o.output_type == "error"], stopped.outputs
    later = [c for c in graded.cells if c.cell_type == "code" and c.outputs][-1]
    assert "nb01.q5" in later.source  # the notebook ran on to its last check after the time-out


def test_every_submission_has_its_feedback_page_with_its_score(course):
    for student, row in course["grades"].items():
        page = course["dir"] / "feedback" / student / ASSIGNMENT / f"{ASSIGNMENT}.html"
        assert page.is_file(), f"no feedback for {student}"
        assert f"Score: {float(row['score'])} / {float(row['max_score'])}" in page.read_text()


def test_feedback_pages_lose_their_grading_codes_and_keep_the_rest(tmp_path, capsys):
    """A code beside its public label, seed and student id let a student test guesses of the secret (helper 109)."""
    page = tmp_path / "feedback" / "alice" / "a" / "a.html"
    page.parent.mkdir(parents=True)
    source = 'print(f"{GRADED}{grading_code(secret, self.label, seed, Path.cwd().parent.name)}")'
    page.write_text(f"<pre>Graded: 1697877fa6c1aeda\n</pre><pre>Correct: well done.</pre><pre>{source}</pre>")
    other = tmp_path / "feedback" / "alice" / "b" / "b.html"  # another assignment's page: left alone
    other.parent.mkdir(parents=True)
    other.write_text("<pre>Graded: 1697877fa6c1aeda\n</pre>")
    assert strip_grading_codes.main([str(tmp_path), "a"]) == 0
    assert page.read_text() == f"<pre></pre><pre>Correct: well done.</pre><pre>{source}</pre>"
    assert "Removed the grading codes from 1 feedback page." in capsys.readouterr().out
    assert "1697877fa6c1aeda" in other.read_text()


def test_feedback_folders_lose_the_runs_trained_while_graded(tmp_path, capsys):
    """nbgrader copies the autograded folder whole: 10-25 MB of fallback models a student (helper 113)."""
    for assignment in ("a", "b"):
        run = tmp_path / "feedback" / "alice" / assignment / "runs" / "notebook07-fallback" / "x"
        run.mkdir(parents=True)
        (run / "best.pt").write_bytes(b"weights")
        (tmp_path / "feedback" / "alice" / assignment / f"{assignment}.html").write_text("<p>Score</p>")
    assert strip_grading_codes.main([str(tmp_path), "a"]) == 0
    assert "Removed the training runs of grading from 1 feedback folder." in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "feedback" / "alice" / "a").iterdir()) == ["a.html"]
    assert (tmp_path / "feedback" / "alice" / "b" / "runs").is_dir()  # another assignment's: left alone


def test_grading_codes_left_unchecked_for_want_of_the_secret_are_named(tmp_path, monkeypatch):
    """Without FMNIST_LAB_SECRET, `make grades` ran clean on notebooks autograded under one (helper 113)."""
    check = nbformat.v4.new_code_cell("nb09.q1.check(double)")
    check.metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": "nb09-q1", "locked": True}
    check.outputs = [nbformat.v4.new_output("stream", name="stdout", text="Correct: fine.\nGraded: 0123456789abcdef\n")]
    (tmp_path / "autograded" / "alice" / "a").mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(cells=[check]), tmp_path / "autograded" / "alice" / "a" / "a.ipynb")
    monkeypatch.delenv("FMNIST_LAB_SECRET", raising=False)
    (note,) = second_look.warnings(tmp_path, "a")
    assert note.startswith("NOTE: these notebooks were autograded under a course secret, but FMNIST_LAB_SECRET")


def test_grades_and_feedback_warn_while_written_answers_wait_for_grading_by_hand(course, tmp_path):
    """Every submission but the blank one has predictions and written answers, which autograde leaves to the
    instructor: they count 0 until graded, and make grades and make feedback say so, student by student."""
    source = course["source"]
    by_hand = sum(1 for c in by_id(source).values() if c.metadata.nbgrader["solution"] and c.metadata.nbgrader["grade"])
    assert by_hand >= 1
    gradebook = course["dir"] / "gradebook.db"
    waiting = hand_grading.waiting_for_hand_grading(gradebook, ASSIGNMENT)
    students = ("all_correct", "copied_cells", "never_ends", "tampering")
    assert waiting == {(student, ASSIGNMENT): by_hand for student in students}
    assert hand_grading.warning(waiting, ASSIGNMENT) in course["feedback_log"]
    assert f"all_correct ({by_hand} answer" in course["feedback_log"]
    assert f"all_correct ({by_hand} answer{'s' * (by_hand > 1)} of {ASSIGNMENT})" in course["grades_log"]
    assert hand_grading.waiting_for_hand_grading(gradebook, "02_the_network") == {}

    # graded by hand, then autograded again: nbgrader flags the answers for review, but their scores count
    graded = tmp_path / "gradebook.db"
    shutil.copy(gradebook, graded)
    with closing(sqlite3.connect(graded)) as connection, connection:
        connection.execute(
            "UPDATE grade SET manual_score = 1, needs_manual_grade = 1 WHERE needs_manual_grade AND notebook_id IN "
            "(SELECT notebook.id FROM submitted_notebook AS notebook JOIN submitted_assignment AS submitted "
            "ON notebook.assignment_id = submitted.id WHERE submitted.student_id = 'all_correct')"
        )
    assert set(hand_grading.waiting_for_hand_grading(graded, ASSIGNMENT)) == {(s, ASSIGNMENT) for s in students[1:]}


def test_a_notebook_under_another_name_is_named_at_collect_and_its_unscored_checks_at_grades(course, tmp_path):
    """A browser's second download, `01_data_inspection (1).ipynb`: nbgrader collects it but autogrades only the
    released name, so every check would count 0 with nothing said. Collect names the student and fails; grades
    names the checks autograde never scored, not as answers to grade by hand. (In a copy of the course.)"""
    copy = tmp_path / "course"
    shutil.copytree(course["dir"], copy)
    (tmp_path / "submissions" / "renamed").mkdir(parents=True)
    renamed = f"{ASSIGNMENT} (1).ipynb"
    nbformat.write(submission(course["released"], course["source"]), tmp_path / "submissions" / "renamed" / renamed)
    collect = make("collect", copy, succeeds=False, ASSIGNMENT=ASSIGNMENT, SUBMISSIONS=tmp_path / "submissions")
    assert f"renamed (has '{renamed}')" in collect.stderr and f"Rename each notebook to {ASSIGNMENT}.ipynb" in (
        collect.stderr
    )
    assert submission_names.misnamed(copy, ASSIGNMENT) == {"renamed": [renamed]}
    assert submission_names.misnamed(course["dir"], ASSIGNMENT) == {}  # the four submissions under the right name

    subprocess.run(  # graded anyway: nbgrader skips the notebook ("Skipping unknown notebook") and fails
        ["make", "--no-print-directory", "-C", str(ROOT), "autograde", f"COURSE={copy}", f"ASSIGNMENT={ASSIGNMENT}"]
        + ["STUDENT=renamed", f"BIN={Path(sys.executable).parent}"],
        capture_output=True,
        timeout=900,
    )
    checks = sum(1 for c in by_id(course["source"]).values() if c.cell_type == "code" and c.metadata.nbgrader["grade"])
    unscored = hand_grading.checks_not_autograded(copy / "gradebook.db", ASSIGNMENT)
    assert unscored == {("renamed", ASSIGNMENT): checks}
    assert hand_grading.checks_not_autograded(course["dir"] / "gradebook.db") == {}
    assert hand_grading.never_autograded(copy / "gradebook.db", ASSIGNMENT) == {("renamed", ASSIGNMENT)}
    grades = make("grades", copy)
    assert f"renamed ({checks} checks of {ASSIGNMENT})" in grades.stdout and "not under its released name" in (
        grades.stdout
    )
    assert "1 with no check scored at all" in grades.stdout
    waiting_line = next((line for line in grades.stdout.splitlines() if "answers graded by hand" in line), "")
    assert "renamed (" not in waiting_line  # listed once: under the checks, not again as answers waiting


def test_two_notebooks_of_one_name_from_one_student_are_named_when_collect_stops(course, tmp_path):
    """nbgrader stopped the whole batch with "Duplicate submission file", naming no one (helper-89)."""
    copy = tmp_path / "course"
    shutil.copytree(course["dir"], copy)
    folder = tmp_path / "submissions" / "tom"
    (folder / "old").mkdir(parents=True)
    for path in (folder / f"{ASSIGNMENT}.ipynb", folder / "old" / f"{ASSIGNMENT}.ipynb"):
        nbformat.write(course["released"], path)
    collect = make("collect", copy, succeeds=False, ASSIGNMENT=ASSIGNMENT, SUBMISSIONS=tmp_path / "submissions")
    assert (
        f"stopped at two: tom ('{ASSIGNMENT}.ipynb', 'old/{ASSIGNMENT}.ipynb'). In your SUBMISSIONS folder keep the "
        f"one to grade as {ASSIGNMENT}.ipynb"
    ) in collect.stderr


def test_a_collected_submission_never_autograded_is_named_at_grades(course, tmp_path, capsys):
    """nbgrader learns of a student at autograde: one collected but not yet graded had no row in grades.csv, and
    nothing said so (helper-89)."""
    copy = tmp_path / "course"
    shutil.copytree(course["dir"], copy)
    shutil.copytree(copy / "submitted" / "blank", copy / "submitted" / "nina smith")
    assert hand_grading.collected_not_autograded(copy, ASSIGNMENT) == [("nina smith", ASSIGNMENT)]
    assert hand_grading.collected_not_autograded(course["dir"]) == []
    assert hand_grading.main([str(copy)]) == 0
    assert (
        "were never autograded and are not in the gradebook (nor in grades.csv): nina smith (01_data_inspection)"
        in (capsys.readouterr().out)
    )
    graded_before = {path: path.stat().st_mtime_ns for path in (copy / "autograded").glob(f"*/{ASSIGNMENT}/*.ipynb")}
    make("autograde", copy, ASSIGNMENT=ASSIGNMENT, ONLY_NEW="1")  # the new one only: no one else is run again
    assert hand_grading.collected_not_autograded(copy, ASSIGNMENT) == []
    assert {path: path.stat().st_mtime_ns for path in graded_before} == graded_before
    # a student id with a space was split by make's command line into two arguments (helper-89)
    dry_run = subprocess.run(
        [
            "make",
            "-n",
            "-C",
            str(ROOT),
            "autograde",
            f"COURSE={copy}",
            f"ASSIGNMENT={ASSIGNMENT}",
            "STUDENT=nina smith",
        ],
        capture_output=True,
        text=True,
    )
    assert '--student="nina smith"' in dry_run.stdout


def test_a_submission_collected_again_with_other_answers_is_named_at_grades(course, tmp_path, capsys):
    """Re-collected, a corrected notebook kept its earlier grade: autograde without --force (ONLY_NEW=1) skips it,
    since zip_collect records no time, and nothing said so (helper-94)."""
    copy = tmp_path / "course"
    shutil.copytree(course["dir"], copy)
    assert hand_grading.collected_again(copy) == []  # autograde changes no cell a student writes
    path = copy / "submitted" / "blank" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    nbformat.write(submission(course["released"], course["source"]), path)  # blank's corrected version
    assert hand_grading.collected_again(copy, ASSIGNMENT) == [("blank", ASSIGNMENT)]
    assert hand_grading.main([str(copy)]) == 0
    out = capsys.readouterr().out
    assert "collected again after autograde ran on them, with other answers" in out
    assert f'blank ({ASSIGNMENT}). Run make autograde ASSIGNMENT={ASSIGNMENT} STUDENT="blank"' in out


def test_a_student_id_given_as_a_folder_and_a_zip_is_refused_before_collect(course, tmp_path):
    """Both were unpacked into one folder and one copy silently replaced the other (helper-94)."""
    submissions = tmp_path / "submissions"
    (submissions / "alice").mkdir(parents=True)
    nbformat.write(course["released"], submissions / "alice" / f"{ASSIGNMENT}.ipynb")
    with zipfile.ZipFile(submissions / "alice.zip", "w") as archive:
        archive.writestr(f"{ASSIGNMENT}.ipynb", nbformat.writes(course["released"]))
    (submissions / "bob.zip").touch()
    assert submission_names.given_twice(submissions) == {"alice": ["alice/", "alice.zip"]}
    copy = tmp_path / "course"
    shutil.copytree(course["dir"], copy)
    collect = make("collect", copy, succeeds=False, ASSIGNMENT=ASSIGNMENT, SUBMISSIONS=submissions)
    assert not (copy / "submitted" / "alice").exists()  # refused before anything was collected
    assert "these student ids are each given twice" in collect.stderr and "alice (alice/, alice.zip)" in collect.stderr


def test_autograde_of_a_student_not_collected_lists_those_collected(tmp_path):
    (tmp_path / "release" / ASSIGNMENT).mkdir(parents=True)
    for student in ("alice", "kim lee"):
        (tmp_path / "submitted" / student / ASSIGNMENT).mkdir(parents=True)
    result = make("autograde", tmp_path, succeeds=False, ASSIGNMENT=ASSIGNMENT, STUDENT="alcie")
    assert f"STUDENT=alcie has no collected submission of {ASSIGNMENT}; those collected: alice, kim lee" in (
        result.stdout
    )


def test_a_second_collect_reads_its_own_folder_only_and_keeps_the_students_collected_before(course):
    # a folder collected earlier stayed in the archive: a file fixed or removed since was collected again
    assert course["archive_after_the_second_collect"] == ["never_ends.zip"]
    assert sorted(p.name for p in (course["dir"] / "submitted").iterdir()) == [
        "all_correct",
        "blank",
        "copied_cells",
        "never_ends",
        "tampering",
    ]


def test_formgrader_reads_the_course_folder_from_the_environment(monkeypatch):
    """`make formgrader COURSE=path` sets FMNIST_LAB_COURSE: JupyterLab's Formgrader reads only nbgrader_config.py."""
    from traitlets.config import Config

    def course_root(environment: str | None) -> str:
        if environment is None:
            monkeypatch.delenv("FMNIST_LAB_COURSE", raising=False)
        else:
            monkeypatch.setenv("FMNIST_LAB_COURSE", environment)
        config = Config()
        path = ROOT / "nbgrader_config.py"
        exec(compile(path.read_text(), str(path), "exec"), {"get_config": lambda: config, "__file__": str(path)})
        return config.CourseDirectory.root

    assert course_root(None) == str(ROOT / "course")
    assert course_root("/srv/fall-term") == "/srv/fall-term"


def test_formgrader_without_a_gradebook_is_refused(tmp_path):
    result = make("formgrader", tmp_path, succeeds=False)
    assert f"no gradebook in {tmp_path}/: run make release first (with the same COURSE=)" in result.stdout


@pytest.mark.parametrize(
    "target, variables, sentence",
    [
        ("autograde", {}, "run make collect ASSIGNMENT=01_data_inspection SUBMISSIONS=<folder> first"),
        ("autograde", {"ASSIGNMENT": f"{ASSIGNMENT}.ipynb"}, f"no submission of {ASSIGNMENT} in"),  # the file's name
        ("feedback", {}, "no autograded submission of 01_data_inspection in"),
    ],
)
def test_a_step_before_the_one_it_needs_is_refused_with_that_step_named(tmp_path, target, variables, sentence):
    (tmp_path / "release" / ASSIGNMENT).mkdir(parents=True)
    result = make(target, tmp_path, succeeds=False, **{"ASSIGNMENT": ASSIGNMENT, **variables})
    assert sentence in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize("target", ["release", "collect", "autograde", "grades", "feedback"])
def test_a_step_without_nbgrader_says_how_to_get_it(tmp_path, target):
    result = make(target, tmp_path, succeeds=False, BIN=tmp_path / "bin", ASSIGNMENT=ASSIGNMENT)
    assert f"no nbgrader in {tmp_path}/bin/: run make setup, or pass BIN=" in result.stdout, result.stdout
    assert not any(tmp_path.iterdir())  # nothing copied or created before the refusal


def test_a_release_of_a_notebook_that_does_not_exist_lists_the_ones_that_do(tmp_path):
    # the names were not given, so a typo had to be looked up (helper-89)
    result = make("release", tmp_path, succeeds=False, ASSIGNMENT="01_data")
    names = " ".join(path.stem for path in sorted((ROOT / "instructor").glob("*.ipynb")))
    assert f"no instructor/01_data.ipynb: ASSIGNMENT(S) names notebooks of instructor/, without .ipynb: {names}" in (
        result.stdout
    )
    assert not (tmp_path / "release").exists()


def test_a_source_folder_without_its_release_does_not_count_as_released(tmp_path):
    """make release copies the source before nbgrader runs: a release that failed leaves only that."""
    (tmp_path / "source" / ASSIGNMENT).mkdir(parents=True)
    result = make("autograde", tmp_path, succeeds=False, ASSIGNMENT=ASSIGNMENT)
    assert f"ASSIGNMENT={ASSIGNMENT} was not released" in result.stdout


@pytest.mark.parametrize(
    "target, variables, sentence",
    [
        ("autograde", {}, "make autograde needs ASSIGNMENT=<name>"),
        ("collect", {"ASSIGNMENT": "01_data_inspection"}, "was not released into"),
        ("feedback", {"ASSIGNMENT": "01_data_inspectoin"}, "ASSIGNMENT=01_data_inspectoin was not released"),
    ],
)
def test_a_step_without_a_released_assignment_is_refused_before_nbgrader_runs(tmp_path, target, variables, sentence):
    result = make(target, tmp_path, succeeds=False, **variables)
    assert sentence in result.stdout, result.stdout + result.stderr
    assert not (tmp_path / "gradebook.db").exists() and not any(tmp_path.iterdir())


def test_a_second_notebook_beside_the_released_one_is_named_in_a_warning_and_does_not_fail_collect(tmp_path, capsys):
    (tmp_path / "release" / "01_data_inspection").mkdir(parents=True)
    (tmp_path / "release" / "01_data_inspection" / "01_data_inspection.ipynb").touch()
    for student, names in {
        "alice": ["01_data_inspection.ipynb"],
        "bob": ["01_data_inspection.ipynb", "01_data_inspection (1).ipynb"],
    }.items():
        (tmp_path / "submitted" / student / "01_data_inspection").mkdir(parents=True)
        for name in names:
            (tmp_path / "submitted" / student / "01_data_inspection" / name).touch()
    assert submission_names.extras(tmp_path, "01_data_inspection") == {"bob": ["01_data_inspection (1).ipynb"]}
    assert submission_names.misnamed(tmp_path, "01_data_inspection") == {}
    assert submission_names.main([str(tmp_path), "01_data_inspection"]) == 0
    out = capsys.readouterr().out
    assert "bob ('01_data_inspection (1).ipynb')" in out and "alice" not in out
