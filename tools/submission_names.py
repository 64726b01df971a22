"""Submissions whose notebook is not under its released name: nbgrader would skip it and score 0.

Usage: python tools/submission_names.py COURSE_DIR ASSIGNMENT
(`make collect` runs it after `nbgrader zip_collect`.)

zip_collect files a notebook of any name, but autograde grades only the released names and skips
the others ("Skipping unknown notebook"), so a browser's second download, `01_data_inspection
(1).ipynb`, would score 0 for every check. This names each collected student whose folder lacks a
released notebook, with what it holds instead, and fails; it prints nothing when all are there.
"""

from __future__ import annotations

import sys
from pathlib import Path


def misnamed(course: Path, assignment: str) -> dict[str, list[str]]:
    """Student id -> the notebooks in their folder of ``assignment``, for each folder that lacks a released one."""
    released = {path.name for path in (course / "release" / assignment).glob("*.ipynb")}
    problems = {}
    for folder in sorted((course / "submitted").glob(f"*/{assignment}")):
        found = {path.name for path in folder.glob("*.ipynb")}
        if released - found:
            problems[folder.parent.name] = sorted(found - released)
    return problems


def message(problems: dict[str, list[str]], assignment: str, course: Path) -> str:
    """The error for ``problems``: who, what each has instead, and the fix."""

    def holds(names: list[str]) -> str:
        return "has " + ", ".join(f"'{name}'" for name in names) if names else "has no notebook"

    listed = ", ".join(f"{student} ({holds(names)})" for student, names in problems.items())
    return (
        f"autograde grades {assignment}.ipynb under that name only, and would score these submissions 0: "
        f"{listed}, in {course / 'submitted'}/<student>/{assignment}/. Rename each notebook to {assignment}.ipynb "
        f"in your SUBMISSIONS folder and run make collect again (it keeps the students collected before)."
    )


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    course, assignment = Path(argv[0]), argv[1]
    problems = misnamed(course, assignment)
    if problems:
        print(message(problems, assignment, course), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
