"""Feedback pages without the grading codes.

Usage: python tools/strip_grading_codes.py COURSE_DIR ASSIGNMENT
(`make feedback` runs it after `nbgrader generate_feedback`, with the Python that has the lab.)

While autograde runs under the course's secret, each passing strict check prints a grading code (`Graded: <code>`)
for tools/second_look.py to verify in the autograded notebooks. The student's feedback page has no use for it, and a
code beside its public label, seed and student id lets anyone test guesses of the secret offline (helper 109): each
page of ASSIGNMENT in COURSE_DIR/feedback/ is written again (atomically) without them. It prints how many pages it
changed, nothing when there were none.
"""

from __future__ import annotations

import re
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


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    changed = strip_codes(Path(argv[0]), argv[1])
    if changed:
        print(f"Removed the grading codes from {changed} feedback page{'s' * (changed > 1)}.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
