"""Which submissions still wait for grading by hand (predictions and written answers).

Usage: python tools/hand_grading.py COURSE_DIR [ASSIGNMENT]
(`make grades` and `make feedback` run it first, so that no one exports or sends a score whose
written answers still count 0 without knowing it.)

Autograde scores the checks; each answer in markdown waits for the instructor in nbgrader's
Formgrader and counts 0 until it has a manual score. This reads the gradebook (SQLite, nbgrader
0.9's tables) and prints one warning naming the submissions, or nothing when every answer has its
grade. It fails only where it cannot read the gradebook (none yet, or not nbgrader 0.9's): feedback
on the checks alone may be what an instructor wants to send first.
"""

from __future__ import annotations

import sqlite3
import sys
from contextlib import closing
from pathlib import Path

# An answer counts 0 while it has no manual score. (nbgrader also flags for review an answer that
# has one, when autograde runs again: that one counts, so it is not listed.)
WAITING = """
    SELECT submitted.student_id, assignment.name, COUNT(*)
    FROM grade
    JOIN submitted_notebook AS notebook ON grade.notebook_id = notebook.id
    JOIN submitted_assignment AS submitted ON notebook.assignment_id = submitted.id
    JOIN assignment ON submitted.assignment_id = assignment.id
    WHERE grade.needs_manual_grade AND grade.manual_score IS NULL AND (? IS NULL OR assignment.name = ?)
    GROUP BY submitted.student_id, assignment.name
    ORDER BY submitted.student_id, assignment.name
"""


def waiting_for_hand_grading(gradebook: Path, assignment: str | None = None) -> dict[tuple[str, str], int]:
    """(student id, assignment) -> the number of answers (of ``assignment``, or of all) that count 0 until graded."""
    if not gradebook.is_file():
        raise FileNotFoundError(f"no gradebook at {gradebook}: run `make release` first (it creates the course)")
    with closing(sqlite3.connect(f"{gradebook.resolve().as_uri()}?mode=ro", uri=True)) as connection:
        rows = connection.execute(WAITING, (assignment, assignment)).fetchall()
    return {(student, name): count for student, name, count in rows}


def warning(waiting: dict[tuple[str, str], int], assignment: str | None) -> str:
    """The warning for ``waiting`` (empty when no answer waits); with ``assignment``, its name is said once."""
    if not waiting:
        return ""

    def submission(student: str, name: str, count: int) -> str:
        answers = f"{count} answer{'s' * (count > 1)}"
        return f"{student} ({answers})" if assignment else f"{student} ({answers} of {name})"

    listed = ", ".join(submission(student, name, count) for (student, name), count in waiting.items())
    of = f" of {assignment}" if assignment else ""
    return (
        f"WARNING: answers graded by hand count 0 until you grade them; {len(waiting)} submission(s){of} still "
        f"wait: {listed}. Grade them in Formgrader (`make formgrader`, with the same COURSE=, "
        f"then Nbgrader > Formgrader > Manual Grading), then run this make target again."
    )


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    gradebook, assignment = Path(argv[0]) / "gradebook.db", argv[1] if len(argv) == 2 else None
    try:
        waiting = waiting_for_hand_grading(gradebook, assignment)
    except FileNotFoundError as err:
        print(err, file=sys.stderr)
        return 1
    except sqlite3.Error as err:
        print(f"cannot read {gradebook} as nbgrader 0.9's gradebook: {err}", file=sys.stderr)
        return 1
    if waiting:
        print(warning(waiting, assignment))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
