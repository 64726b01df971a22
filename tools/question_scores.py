"""Every student's score on every graded cell, and how the class did on each: which exercise to go over again.

Usage: python tools/question_scores.py COURSE_DIR
(`make grades` runs it after `nbgrader export`, with the Python that has the lab.)

nbgrader's export gives one total per student and assignment. This reads the gradebook (SQLite,
nbgrader 0.9's tables) and writes COURSE_DIR/grades_by_question.csv (atomically): one row per
student and graded cell, with its kind (an autograded check, or an answer graded by hand), its score
(the hand score where there is one, else autograde's, plus any extra credit; empty while it has
neither) and its points. It prints one line per graded cell: the class's mean score, how many
students have full marks, and how many scores are still missing.
"""

from __future__ import annotations

import csv
import io
import sqlite3
import sys
from pathlib import Path

from hand_grading import read_gradebook  # this script's folder, tools/, is on the path

from fmnist_lab.files import atomic_write_text

SCORES = """
    SELECT assignment.name, submitted.student_id, cell.name, grade_cell.cell_type, grade.auto_score,
           grade.manual_score, grade.extra_credit, grade_cell.max_score
    FROM grade
    JOIN grade_cells AS grade_cell ON grade.cell_id = grade_cell.id
    JOIN base_cell AS cell ON grade_cell.id = cell.id
    JOIN submitted_notebook AS notebook ON grade.notebook_id = notebook.id
    JOIN submitted_assignment AS submitted ON notebook.assignment_id = submitted.id
    JOIN assignment ON submitted.assignment_id = assignment.id
    ORDER BY assignment.name, cell.name, submitted.student_id
"""

COLUMNS = ("assignment", "student_id", "question", "kind", "score", "max_score")


def question_scores(gradebook: Path) -> list[dict[str, object]]:
    """One row per student and graded cell (COLUMNS); ``score`` is None while the cell has no score."""
    scores = []
    for assignment, student, question, cell_type, auto, manual, extra, points in read_gradebook(gradebook, SCORES):
        score = manual if manual is not None else auto
        scores.append(
            {
                "assignment": assignment,
                "student_id": student,
                "question": question,
                "kind": "check" if cell_type == "code" else "answer",
                "score": None if score is None else score + (extra or 0.0),
                "max_score": points,
            }
        )
    return scores


def summary(scores: list[dict[str, object]]) -> list[str]:
    """One line per graded cell: mean score, full marks, missing scores."""
    lines = []
    questions = dict.fromkeys((row["assignment"], row["question"]) for row in scores)
    for assignment, question in questions:
        rows = [row for row in scores if (row["assignment"], row["question"]) == (assignment, question)]
        given = [float(row["score"]) for row in rows if row["score"] is not None]
        points = float(rows[0]["max_score"])
        mean = f"mean {sum(given) / len(given):.2f} of {points:g}" if given else f"no score yet, of {points:g}"
        full = sum(score >= points for score in given)
        missing = f", {len(rows) - len(given)} without a score" if len(given) < len(rows) else ""
        lines.append(
            f"{assignment} {question} ({rows[0]['kind']}): {mean}; full marks {full} of {len(rows)} students{missing}"
        )
    return lines


def to_csv(scores: list[dict[str, object]]) -> str:
    text = io.StringIO()
    writer = csv.DictWriter(text, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({**row, "score": "" if row["score"] is None else row["score"]} for row in scores)
    return text.getvalue()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    course = Path(argv[0])
    try:
        scores = question_scores(course / "gradebook.db")
    except (FileNotFoundError, sqlite3.Error) as err:
        print(f"cannot read {course / 'gradebook.db'} as nbgrader 0.9's gradebook: {err}", file=sys.stderr)
        return 1
    atomic_write_text(course / "grades_by_question.csv", to_csv(scores))
    print("\n".join(summary(scores)))
    print(f"Each student's score on each question: {course / 'grades_by_question.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
