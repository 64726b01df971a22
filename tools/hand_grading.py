"""Which submissions still wait for grading by hand (predictions and written answers), and which checks lack a score.

Usage: python tools/hand_grading.py COURSE_DIR [ASSIGNMENT]
(`make grades` and `make feedback` run it first, so that no one exports or sends a score whose
written answers or checks still count 0 without knowing it.)

Autograde scores the checks; each answer in markdown waits for the instructor in nbgrader's
Formgrader and counts 0 until it has a manual score. A check with no score at all is one autograde
did not score: most often the submission had no notebook under the released name (`make collect`
names those); also a deleted check cell or an autograde that failed. A submission none of whose
checks has a score is listed under that warning only: its answers were never collected either. A
submission collected but never autograded is not in the gradebook at all, so it would have no row in
the export: those are named from the course's submitted/ folder. So is a submission collected again
after autograde ran on it, with other answers: autograde without --force (ONLY_NEW=1) skips it, and
its grade would stay the earlier version's.
This reads the gradebook (SQLite, nbgrader 0.9's tables) and prints one warning for each kind,
naming the submissions, or nothing when everything has its score. It fails only where it cannot
read the gradebook (none yet, or not nbgrader 0.9's): feedback on the checks alone may be what an
instructor wants to send first.
"""

from __future__ import annotations

import sqlite3
import sys
from contextlib import closing
from pathlib import Path

import nbformat
from restore_checks import is_locked  # this script's folder, tools/, is on the path

# The graded cells of one kind (markdown: answers; code: checks) that still count 0 for want of a
# score, per submission. An answer autograde leaves to the instructor counts 0 while it has no manual
# score (an answer left as released is scored 0 by autograde and not left; nbgrader also flags for
# review an answer that has a manual score, when autograde runs again: that one counts, so it is not
# listed); a check counts 0 while it has neither an automatic score nor one given by hand.
UNSCORED = """
    SELECT submitted.student_id, assignment.name, COUNT(*)
    FROM grade
    JOIN grade_cells AS cell ON grade.cell_id = cell.id
    JOIN submitted_notebook AS notebook ON grade.notebook_id = notebook.id
    JOIN submitted_assignment AS submitted ON notebook.assignment_id = submitted.id
    JOIN assignment ON submitted.assignment_id = assignment.id
    WHERE cell.cell_type = ? AND grade.manual_score IS NULL
      AND (cell.cell_type = 'markdown' AND grade.needs_manual_grade
           OR cell.cell_type = 'code' AND grade.auto_score IS NULL)
      AND (? IS NULL OR assignment.name = ?)
    GROUP BY submitted.student_id, assignment.name
    ORDER BY submitted.student_id, assignment.name
"""

# The submissions none of whose checks autograde scored (its notebook was never graded at all).
NEVER_AUTOGRADED = """
    SELECT submitted.student_id, assignment.name
    FROM grade
    JOIN grade_cells AS cell ON grade.cell_id = cell.id
    JOIN submitted_notebook AS notebook ON grade.notebook_id = notebook.id
    JOIN submitted_assignment AS submitted ON notebook.assignment_id = submitted.id
    JOIN assignment ON submitted.assignment_id = assignment.id
    WHERE cell.cell_type = 'code' AND (? IS NULL OR assignment.name = ?)
    GROUP BY submitted.student_id, assignment.name
    HAVING COUNT(grade.auto_score) = 0 AND COUNT(grade.manual_score) = 0
"""


# Every submission the gradebook knows: autograde adds one when it first runs on it.
GRADED = """
    SELECT submitted.student_id, assignment.name
    FROM submitted_assignment AS submitted
    JOIN assignment ON submitted.assignment_id = assignment.id
"""


def read_gradebook(gradebook: Path, query: str, parameters: tuple = ()) -> list[tuple]:
    """The rows of ``query`` on the gradebook, opened read-only (FileNotFoundError when there is none yet)."""
    if not gradebook.is_file():
        raise FileNotFoundError(f"no gradebook at {gradebook}: run `make release` first (it creates the course)")
    with closing(sqlite3.connect(f"{gradebook.resolve().as_uri()}?mode=ro", uri=True)) as connection:
        return connection.execute(query, parameters).fetchall()


def _unscored(gradebook: Path, cell_type: str, assignment: str | None) -> dict[tuple[str, str], int]:
    rows = read_gradebook(gradebook, UNSCORED, (cell_type, assignment, assignment))
    return {(student, name): count for student, name, count in rows}


def never_autograded(gradebook: Path, assignment: str | None = None) -> set[tuple[str, str]]:
    """(student id, assignment) of each submission (of ``assignment``, or of all) none of whose checks has a score."""
    return set(read_gradebook(gradebook, NEVER_AUTOGRADED, (assignment, assignment)))


def collected_not_autograded(course: Path, assignment: str | None = None) -> list[tuple[str, str]]:
    """(student id, assignment) of each submission (of ``assignment``, or of all) in ``course``'s submitted/
    folder that autograde never ran on: the gradebook, and so the export, has no row for it."""
    collected = {
        (folder.parent.name, folder.name)
        for folder in (course / "submitted").glob(f"*/{assignment or '*'}")
        if folder.is_dir()
    }
    return sorted(collected - set(read_gradebook(course / "gradebook.db", GRADED)))


def _student_sources(path: Path) -> list[str] | None:
    """The sources of the cells a student writes (those not locked), in order: autograde changes none of them.
    Read as nbformat 4, as autograde reads it (an older notebook's cells are converted, helper 103). None for a
    file that is not a notebook (a truncated upload, which collect has warned about)."""
    try:
        notebook = nbformat.read(path, as_version=4)
        return [cell.source for cell in notebook.cells if not is_locked(cell)]
    except (OSError, ValueError, KeyError, TypeError, AttributeError, nbformat.ValidationError):
        return None


def collected_again(course: Path, assignment: str | None = None) -> list[tuple[str, str]]:
    """(student id, assignment) of each submission whose collected notebook differs, in the cells the student
    writes, from the one autograde ran: collected again since, with other answers."""
    changed = set()
    for graded in (course / "autograded").glob(f"*/{assignment or '*'}/*.ipynb"):
        student, name = graded.parent.parent.name, graded.parent.name
        submitted = course / "submitted" / student / name / graded.name
        if submitted.is_file() and _student_sources(submitted) != _student_sources(graded):
            changed.add((student, name))
    return sorted(changed)


def waiting_for_hand_grading(gradebook: Path, assignment: str | None = None) -> dict[tuple[str, str], int]:
    """(student id, assignment) -> the number of answers (of ``assignment``, or of all) that count 0 until graded."""
    return _unscored(gradebook, "markdown", assignment)


def checks_not_autograded(gradebook: Path, assignment: str | None = None) -> dict[tuple[str, str], int]:
    """(student id, assignment) -> the number of checks (of ``assignment``, or of all) that autograde never scored."""
    return _unscored(gradebook, "code", assignment)


def _listed(counts: dict[tuple[str, str], int], what: str, assignment: str | None) -> str:
    """``student (n whats)``, or ``student (n whats of name)`` when no single ``assignment`` is named."""

    def submission(student: str, name: str, count: int) -> str:
        things = f"{count} {what}{'s' * (count > 1)}"
        return f"{student} ({things})" if assignment else f"{student} ({things} of {name})"

    return ", ".join(submission(student, name, count) for (student, name), count in counts.items())


def warning(waiting: dict[tuple[str, str], int], assignment: str | None) -> str:
    """The warning for ``waiting`` (empty when no answer waits); with ``assignment``, its name is said once."""
    if not waiting:
        return ""
    of = f" of {assignment}" if assignment else ""
    return (
        f"WARNING: answers graded by hand count 0 until you grade them; {len(waiting)} submission(s){of} still "
        f"wait: {_listed(waiting, 'answer', assignment)}. Grade them in Formgrader (`make formgrader`, with the "
        f"same COURSE=, then Nbgrader > Formgrader > Manual Grading), then run this make target again."
    )


def not_autograded_warning(
    unscored: dict[tuple[str, str], int], never: set[tuple[str, str]], assignment: str | None
) -> str:
    """The warning for checks autograde never scored (empty when there are none); ``never``: those with none scored."""
    if not unscored:
        return ""
    of = f" of {assignment}" if assignment else ""
    whole = f" ({len(never)} with no check scored at all)" if never else ""
    return (
        f"WARNING: checks autograde never scored count 0, in {len(unscored)} submission(s){of}{whole}: "
        f"{_listed(unscored, 'check', assignment)}. Most often the notebook was not under its released name "
        f"when autograde ran (rename it in your SUBMISSIONS folder and run make collect), or its check cells "
        f"were deleted and it was collected before make collect put them back (collect it again); otherwise "
        f"autograde failed (read its log). Then run make autograde STUDENT=<student> and this make target again."
    )


def not_in_gradebook_warning(missing: list[tuple[str, str]], assignment: str | None) -> str:
    """The warning for submissions collected but never autograded (empty when there are none)."""
    if not missing:
        return ""
    listed = ", ".join(student if assignment else f"{student} ({name})" for student, name in missing)
    of = f" of {assignment}" if assignment else ""
    names = sorted({name for _, name in missing})
    commands = " and ".join(f"make autograde ASSIGNMENT={name} ONLY_NEW=1" for name in names)
    return (
        f"WARNING: {len(missing)} collected submission(s){of} were never autograded and are not in the gradebook "
        f"(nor in grades.csv): {listed}. Run {commands} (it grades only those not graded yet), then this make "
        f"target again."
    )


def collected_again_warning(changed: list[tuple[str, str]]) -> str:
    """The warning for submissions collected again after autograde, with other answers (empty when none)."""
    if not changed:
        return ""
    commands = " and ".join(f'make autograde ASSIGNMENT={name} STUDENT="{student}"' for student, name in changed)
    return (
        f"WARNING: {len(changed)} submission(s) were collected again after autograde ran on them, with other "
        f"answers; their grades are still the earlier version's: "
        f"{', '.join(f'{student} ({name})' for student, name in changed)}. Run {commands} (ONLY_NEW=1 skips them), "
        f"then check their written answers in Formgrader again: nbgrader keeps the hand scores of the earlier "
        f"version."
    )


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    course, assignment = Path(argv[0]), argv[1] if len(argv) == 2 else None
    gradebook = course / "gradebook.db"
    try:
        missing = collected_not_autograded(course, assignment)
        changed = collected_again(course, assignment)
        waiting = waiting_for_hand_grading(gradebook, assignment)
        unscored = checks_not_autograded(gradebook, assignment)
        never = never_autograded(gradebook, assignment)
    except FileNotFoundError as err:
        print(err, file=sys.stderr)
        return 1
    except sqlite3.Error as err:
        print(f"cannot read {gradebook} as nbgrader 0.9's gradebook: {err}", file=sys.stderr)
        return 1
    waiting = {submission: count for submission, count in waiting.items() if submission not in never}
    for text in (
        not_in_gradebook_warning(missing, assignment),
        collected_again_warning(changed),
        not_autograded_warning(unscored, never, assignment),
        warning(waiting, assignment),
    ):
        if text:
            print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
