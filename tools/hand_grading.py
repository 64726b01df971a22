"""Which submissions still wait for grading by hand (predictions and written answers).

Usage: python tools/hand_grading.py COURSE_DIR [ASSIGNMENT]
(`make grades` and `make feedback` run it first, so that no one exports or sends a score whose
written answers still count 0 without knowing it.)

Autograde scores the checks; each answer in markdown waits for the instructor in nbgrader's
Formgrader and counts 0 until then. This reads the gradebook (SQLite, nbgrader 0.9's tables) and
prints one warning naming the students, or nothing when every answer has its grade. It never fails
the make target: feedback on the checks alone may be what an instructor wants to send first.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

WAITING = """
    SELECT submitted.student_id, COUNT(*)
    FROM grade
    JOIN submitted_notebook AS notebook ON grade.notebook_id = notebook.id
    JOIN submitted_assignment AS submitted ON notebook.assignment_id = submitted.id
    JOIN assignment ON submitted.assignment_id = assignment.id
    WHERE grade.needs_manual_grade AND (? IS NULL OR assignment.name = ?)
    GROUP BY submitted.student_id
    ORDER BY submitted.student_id
"""


def waiting_for_hand_grading(gradebook: Path, assignment: str | None = None) -> dict[str, int]:
    """Student id -> the number of their answers (of ``assignment``, or of all) not yet graded by hand."""
    if not gradebook.is_file():
        raise FileNotFoundError(f"no gradebook at {gradebook}: run `make release` first (it creates the course)")
    with sqlite3.connect(f"file:{gradebook}?mode=ro", uri=True) as connection:
        return dict(connection.execute(WAITING, (assignment, assignment)).fetchall())


def warning(waiting: dict[str, int], assignment: str | None) -> str:
    """The warning for ``waiting`` (empty when no answer waits)."""
    if not waiting:
        return ""
    students = ", ".join(f"{student} ({count} answer{'s' * (count > 1)})" for student, count in waiting.items())
    of = f" of {assignment}" if assignment else ""
    return (
        f"WARNING: answers graded by hand count 0 until you grade them; {len(waiting)} submission(s){of} still "
        f"wait: {students}. Grade them in Formgrader (start `.venv/bin/jupyter lab` in the repository folder, "
        f"then Nbgrader > Formgrader > Manual Grading), then run this make target again."
    )


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    assignment = argv[1] if len(argv) == 2 else None
    try:
        waiting = waiting_for_hand_grading(Path(argv[0]) / "gradebook.db", assignment)
    except FileNotFoundError as err:
        print(err, file=sys.stderr)
        return 1
    if waiting:
        print(warning(waiting, assignment))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
