"""Feedback pages without the grading codes, and feedback folders without the training runs.

Usage: python tools/strip_grading_codes.py COURSE_DIR ASSIGNMENT
(`make feedback` runs it after `nbgrader generate_feedback`, with the Python that has the lab.)

While autograde runs under the course's secret, each passing strict check prints a grading code (`Graded: <code>`)
for tools/second_look.py to verify in the autograded notebooks. The student's feedback page has no use for it, and a
code beside its public label, seed and student id lets anyone test guesses of the secret offline (helper 109): each
page of ASSIGNMENT in COURSE_DIR/feedback/ is written again (atomically) without them. nbgrader's feedback copies
the autograded folder whole, with the `runs/` the notebooks trained while graded (fallback models, 10-25 MB a
student, not the student's work: helper 113): those are removed from the feedback folders (the autograded ones
keep them). It prints what it changed, nothing when there was nothing.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

from fmnist_lab.exercises import GRADED
from fmnist_lab.files import atomic_write_text

CODE = re.compile(rf"{re.escape(GRADED)}[0-9a-f]{{16}}\n?")  # as Exercise.check prints it, one line


def strip_codes(course: Path, assignment: str) -> int:
    """Remove the grading codes from every feedback page of ``assignment``; the number of pages changed."""
    changed = 0
    for page in sorted((course / "feedback").glob(f"*/{assignment}/*.html")):
        html = page.read_text(encoding="utf-8")
        stripped, found = CODE.subn("", html)
        if found:
            atomic_write_text(page, stripped)
            changed += 1
    return changed


def drop_runs(course: Path, assignment: str) -> int:
    """Remove the training runs nbgrader copied into the feedback folders of ``assignment``; how many folders."""
    runs = sorted(path for path in (course / "feedback").glob(f"*/{assignment}/runs") if path.is_dir())
    for path in runs:
        shutil.rmtree(path)
    return len(runs)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    course, assignment = Path(argv[0]), argv[1]
    changed = strip_codes(course, assignment)
    if changed:
        print(f"Removed the grading codes from {changed} feedback page{'s' * (changed > 1)}.")
    dropped = drop_runs(course, assignment)
    if dropped:
        print(f"Removed the training runs of grading from {dropped} feedback folder{'s' * (dropped > 1)}.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
