"""Check cells a student deleted, put back from the release, so that autograde scores the answers above them.

Usage: python tools/restore_checks.py COURSE_DIR ASSIGNMENT
(`make collect` runs it after `nbgrader zip_collect`, with the Python that has nbgrader and the lab.)

nbgrader's autograde puts back the source of a locked cell a student changed, but not a cell they
deleted: that check then counts 0, and the feedback page does not list it. For each collected notebook
under a released name, this inserts every autograded check cell of the release that the notebook lacks,
after the nearest cell above it in the release that the notebook still has (the answer cell it checks),
writes the notebook in place (atomically), and names the student and the cells. It prints nothing when
no check cell is missing.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import nbformat

from fmnist_lab.files import atomic_write


def _grade_id(cell: nbformat.NotebookNode) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def _is_check(cell: nbformat.NotebookNode) -> bool:
    """An autograded test cell: graded, not a solution (a written answer is graded by hand)."""
    grading = cell.metadata.get("nbgrader", {})
    return cell.cell_type == "code" and bool(grading.get("grade")) and not grading.get("solution")


def restore(released: nbformat.NotebookNode, submitted: nbformat.NotebookNode) -> list[str]:
    """Insert into ``submitted`` the release's check cells it lacks; their grade ids, in release order."""
    restored = []
    for index, cell in enumerate(released.cells):
        present = {_grade_id(c): position for position, c in enumerate(submitted.cells) if _grade_id(c)}
        if not _is_check(cell) or _grade_id(cell) in present:
            continue
        above = (_grade_id(c) for c in reversed(released.cells[:index]))
        anchor = next((present[grade_id] for grade_id in above if grade_id in present), -1)
        submitted.cells.insert(anchor + 1, nbformat.from_dict(cell))
        restored.append(_grade_id(cell))
    return restored


def restore_course(course: Path, assignment: str) -> dict[str, list[str]]:
    """Restore the deleted check cells of every collected submission of ``assignment``: student -> grade ids."""
    found: dict[str, list[str]] = {}
    for release in sorted((course / "release" / assignment).glob("*.ipynb")):
        released = nbformat.read(release, as_version=4)
        for path in sorted((course / "submitted").glob(f"*/{assignment}/{release.name}")):
            submitted = nbformat.read(path, as_version=4)
            restored = restore(released, submitted)
            if restored:
                atomic_write(path, "w", functools.partial(nbformat.write, submitted))
                found.setdefault(path.parent.parent.name, []).extend(restored)
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    course, assignment = Path(argv[0]), argv[1]
    restored = restore_course(course, assignment)
    if restored:
        listed = ", ".join(f"{student} ({', '.join(ids)})" for student, ids in restored.items())
        print(
            f"Put back the check cells these students deleted, from the release, so that autograde scores the "
            f"answers above them: {listed}, in {course / 'submitted'}/<student>/{assignment}/."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
