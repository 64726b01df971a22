"""Give the instructor notebooks nbgrader's cell metadata, derived from the lab's conventions.

Usage: python tools/grading_metadata.py [--check] [NOTEBOOK ...]   (default: instructor/*.ipynb)
(`make student` runs it before building the student edition.)

Rerunning it changes nothing, so it can follow any edit of a notebook. From the cells:

- a code cell with ``### BEGIN SOLUTION`` is a **solution cell**, ``nbNN-qK-answer`` when it
  defines the function that check ``nbNN.qK`` is given, else ``nbNN-exE-code`` (in exercise E,
  a "### E · ..." heading) or ``nbNN-secS-code`` (in section S, a "## S · ..." heading);
- a code cell calling ``nbNN.qK.check(fn, ...)`` is an **autograded test cell** ``nbNN-qK``
  (locked, CHECK_POINTS points); it gets a hidden-tests region, if it has none (or the one this
  tool wrote calls the check otherwise), that runs the same check, with the same values, strictly, and
  on cases drawn from a seed fixed per label::

      ### BEGIN HIDDEN TESTS
      nb01.q1.check(pixel_std, data.train_images, strict=True, seed=2850)
      ### END HIDDEN TESTS

  The visible check only prints, so a test cell scores what the hidden call decides: given the
  notebook's values too, it also grades the answer on the notebook's own data.

- a markdown cell with ``### BEGIN SOLUTION`` (a prediction or a written answer) is a
  **manually graded answer** ``nbNN-exE-answer`` (or ``nbNN-secS-answer``; ANSWER_POINTS points);
- a code cell whose first line starts with ``# YOURS TO CHANGE`` (settings of an experiment, the
  path of a photo, a cell to try things in) is left **editable** and graded by nobody;
- every other cell is **locked** (read-only), with an id made from its text.

Points an instructor has already set on a graded cell are kept; everything else is derived
afresh each run. ``--check`` changes nothing and exits 1 if a notebook would change.
"""

from __future__ import annotations

import argparse
import copy
import functools
import hashlib
import re
import sys
import zlib
from pathlib import Path

import nbformat

from fmnist_lab.files import atomic_write

ROOT = Path(__file__).resolve().parent.parent
BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
CHECK_POINTS = 2  # a checked exercise: the check's cases and the hidden ones
ANSWER_POINTS = 1  # a prediction or a written answer, graded by hand
SCHEMA_VERSION = 3  # nbgrader 0.9's cell metadata schema

CHECK_CALL = re.compile(r"\b(nb\d\d)\.q(\d+)\.check\(\s*([A-Za-z_]\w*)")
# "### 2 · ..." or "### Exercise 2 · ..." starts exercise 2; "## 8 · ..." starts section 8 (a prediction
# may sit in a lesson's section), and any other "## ..." heading ends both.
HEADING = re.compile(r"^(##|###)\s+(?:Exercise\s+)?(\d+)?\s*(·)?", re.M)
GENERATED_HIDDEN = re.compile(  # a hidden-tests region as hidden_tests() writes it
    rf"{BEGIN_HIDDEN}\nnb\d\d\.q\d+\.check\([^\n]*, strict=True, seed=\d+\)\n{END_HIDDEN}"
)
VISIBLE_CALL = re.compile(r"\bnb\d\d\.q\d+\.check\(([^\n]*)\)[ \t]*$", re.M)  # its arguments, on one line
DEFINITION = re.compile(r"^def\s+([A-Za-z_]\w*)\s*\(", re.M)
NOTEBOOK_NUMBER = re.compile(r"^(\d\d)_")
YOURS_TO_CHANGE = "# YOURS TO CHANGE"  # the first line of a code cell the student may edit and run again


NUMBERED = "put it under a numbered heading, '### N · ...' (an exercise) or '## N · ...' (a section)"


class ConventionError(ValueError):
    """A notebook breaks one of the conventions the metadata is derived from."""


def where(markdown: str, place: str | None) -> str | None:
    """Where the cells after this markdown cell are: ``exN``, ``secN`` or None (unnumbered)."""
    for level, number, dot in HEADING.findall(markdown):
        if level == "###" and number and dot:
            place = f"ex{number}"
        elif level == "##":
            place = f"sec{number}" if number and dot else None
    return place


def seed_for(label: str) -> int:
    """The hidden tests' seed of a check label: fixed, so the grade of a submission is reproducible."""
    return zlib.crc32(label.encode()) % 10_000


def hidden_tests(label: str, arguments: str) -> str:
    """The hidden-tests region appended to the test cell of check ``label``, called with the visible call's
    ``arguments`` (the student's function and the notebook's values)."""
    return f"{BEGIN_HIDDEN}\n{label}.check({arguments}, strict=True, seed={seed_for(label)})\n{END_HIDDEN}"


def marker_lines(source: str, marker: str) -> list[str]:
    """The lines mentioning ``marker``; nbgrader treats each as a marker, so each must be one."""
    words = marker.removeprefix("### ")
    lines = [line for line in source.split("\n") if words in line]
    for line in lines:
        if line.strip() != marker:
            raise ConventionError(
                f"the line {line.strip()!r} mentions {words!r}, which nbgrader reads as a marker wherever it "
                f"appears; write the marker {marker!r} on a line of its own, or reword the text"
            )
    return lines


def metadata(grade_id: str, *, grade: bool, solution: bool, locked: bool, points: float | None = None) -> dict:
    """One cell's nbgrader metadata (schema 3)."""
    fields = {
        "grade": grade,
        "grade_id": grade_id,
        "locked": locked,
        "schema_version": SCHEMA_VERSION,
        "solution": solution,
        "task": False,
    }
    if grade:
        fields["points"] = points
    return fields


def kept_points(cell, default: int) -> float:
    """The points an instructor set on this graded cell (0 included), or the default."""
    points = cell.metadata.get("nbgrader", {}).get("points")
    return default if points is None else points


def derive(notebook: nbformat.NotebookNode, prefix: str) -> nbformat.NotebookNode:
    """Set the nbgrader metadata of every cell of ``notebook`` (in place) and return it.

    ``prefix`` (e.g. ``nb01``) starts every grade id. Raises ConventionError, naming the cell.
    """
    checked_functions = {}  # function name -> check label, e.g. "pixel_std" -> "nb01.q1"
    for cell in notebook.cells:
        if cell.cell_type == "code":
            for nb, number, function in CHECK_CALL.findall(cell.source):
                checked_functions.setdefault(function, f"{nb}.q{number}")

    place, ids, lesson_ids = None, set(), {}  # place: "ex2" in exercise 2, "sec8" in section 8
    for index, cell in enumerate(notebook.cells):
        try:
            if cell.cell_type == "markdown":
                place = where(cell.source, place)
            solution = bool(marker_lines(cell.source, BEGIN_SOLUTION))
            if solution != bool(marker_lines(cell.source, END_SOLUTION)):
                raise ConventionError(f"pair every {BEGIN_SOLUTION} with an {END_SOLUTION}")
            hidden = marker_lines(cell.source, BEGIN_HIDDEN) + marker_lines(cell.source, END_HIDDEN)
            checks = CHECK_CALL.findall(cell.source) if cell.cell_type == "code" else []
            if hidden and not checks:
                raise ConventionError("hidden tests belong in the cell of the check they extend")

            if checks:
                if solution:
                    raise ConventionError("a check and a solution share a cell: put the solution in the cell above")
                labels = {f"{nb}.q{number}" for nb, number, _ in checks}
                if len(labels) > 1:
                    raise ConventionError(f"one check per cell, found {sorted(labels)}")
                nb, number, function = checks[0]
                label = f"{nb}.q{number}"
                ours = GENERATED_HIDDEN.search(cell.source)
                visible = VISIBLE_CALL.search(cell.source.replace(ours.group(0), "") if ours else cell.source)
                arguments = visible.group(1) if visible else function  # a call over several lines: the function
                if ours and ours.group(0) != hidden_tests(label, arguments):  # the check was changed since
                    cell.source = cell.source.replace(ours.group(0), hidden_tests(label, arguments))
                elif not hidden:  # an instructor's own hidden tests are left as they are
                    cell.source = cell.source.rstrip("\n") + "\n" + hidden_tests(label, arguments)
                grade_id = label.replace(".", "-")
                fields = metadata(
                    grade_id, grade=True, solution=False, locked=True, points=kept_points(cell, CHECK_POINTS)
                )
            elif solution and cell.cell_type == "code":
                defined = [checked_functions[f] for f in DEFINITION.findall(cell.source) if f in checked_functions]
                if defined:
                    grade_id = defined[0].replace(".", "-") + "-answer"
                elif place:
                    grade_id = f"{prefix}-{place}-code"
                else:
                    raise ConventionError(f"a solution outside any exercise or section: {NUMBERED}")
                fields = metadata(grade_id, grade=False, solution=True, locked=False)
            elif solution:
                if not place:
                    raise ConventionError(f"an answer cell outside any exercise or section: {NUMBERED}")
                grade_id = f"{prefix}-{place}-answer"
                fields = metadata(
                    grade_id, grade=True, solution=True, locked=False, points=kept_points(cell, ANSWER_POINTS)
                )
            else:
                digest = hashlib.sha1(f"{cell.cell_type}\n{cell.source}".encode()).hexdigest()[:8]
                lesson_ids[digest] = lesson_ids.get(digest, 0) + 1  # identical cells stay apart
                grade_id = f"{prefix}-cell-{digest}" + (f"-{lesson_ids[digest]}" if lesson_ids[digest] > 1 else "")
                yours = cell.cell_type == "code" and cell.source.startswith(YOURS_TO_CHANGE)
                fields = metadata(grade_id, grade=False, solution=False, locked=not yours)
            if grade_id in ids:
                raise ConventionError(f"a second cell with grade id {grade_id!r}: give each exercise one such cell")
        except ConventionError as err:
            raise ConventionError(f"cell {index} ({cell.cell_type}, {cell.source[:40]!r}...): {err}") from None
        ids.add(grade_id)
        cell.metadata["nbgrader"] = fields
    return notebook


def prefix_of(path: Path) -> str:
    """``nb01`` for ``01_data_inspection.ipynb``."""
    match = NOTEBOOK_NUMBER.match(path.name)
    if not match:
        raise ConventionError("a notebook's name must start with its two-digit number, as 01_name.ipynb")
    return f"nb{match.group(1)}"


def update(path: Path, check_only: bool = False) -> bool:
    """Derive the metadata of the notebook at ``path``; write it unless ``check_only``. True if it changed."""
    before = nbformat.read(path, as_version=4)
    try:
        after = derive(copy.deepcopy(before), prefix_of(path))
    except ConventionError as err:
        raise ConventionError(f"{path.name}, {err}") from None
    if after == before:  # compared as notebooks, so how the file was formatted does not matter
        return False
    if not check_only:
        atomic_write(path, "w", functools.partial(nbformat.write, after))  # an interrupt leaves the old notebook
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a notebook would change")
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks (default: instructor/*.ipynb)")
    args = parser.parse_args(argv)
    changed = []
    try:
        for path in args.notebooks or sorted((ROOT / "instructor").glob("*.ipynb")):
            if update(path, check_only=args.check):
                changed.append(path.name)
    except ConventionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    verb = "would change" if args.check else "updated"
    print(f"grading metadata {verb}: {', '.join(changed)}" if changed else "grading metadata up to date")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
