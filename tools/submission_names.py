"""Submissions whose notebook is not under its released name: nbgrader would skip it and score 0.

Usage: python tools/submission_names.py [--same-names] COURSE_DIR ASSIGNMENT
       python tools/submission_names.py --twice SUBMISSIONS_DIR
(`make collect` runs it after `nbgrader zip_collect`; with --same-names, after zip_collect failed; with
--twice, before it.)

zip_collect files a notebook of any name, but autograde grades only the released names and skips
the others ("Skipping unknown notebook"), so a browser's second download, `01_data_inspection
(1).ipynb`, would score 0 for every check. This names each collected student whose folder lacks a
released notebook, with what it holds instead, and fails. A folder that has the released notebook
and another beside it (an older original and a newer `(1)` copy) is graded on the released name
only: this warns, naming both, and does not fail (the extra may be a scratch copy). It prints
nothing when every folder holds exactly the released notebooks.

zip_collect also stops, naming no one ("Duplicate submission file"), at a student who hands in two
notebooks of one name (``old/01_data_inspection.ipynb`` beside ``01_data_inspection.ipynb``), and
collects no one of that batch; --same-names names each such student and file, and the fix. A student
id given twice in one folder of submissions (``alice/`` and ``alice.zip``) is unpacked into one
folder, where one copy silently replaces the other; --twice names each such id and fails.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path


def _collected(course: Path, assignment: str) -> list[tuple[str, set[str], set[str]]]:
    """(student id, the released notebook names, the names in their folder) for each collected folder."""
    released = {path.name for path in (course / "release" / assignment).glob("*.ipynb")}
    folders = sorted((course / "submitted").glob(f"*/{assignment}"))
    return [(folder.parent.name, released, {path.name for path in folder.glob("*.ipynb")}) for folder in folders]


def misnamed(course: Path, assignment: str) -> dict[str, list[str]]:
    """Student id -> the notebooks in their folder of ``assignment``, for each folder that lacks a released one."""
    return {
        student: sorted(found - released)
        for student, released, found in _collected(course, assignment)
        if released - found
    }


def extras(course: Path, assignment: str) -> dict[str, list[str]]:
    """Student id -> the other notebooks in their folder, for each folder that has the released ones too."""
    collected = _collected(course, assignment)
    return {student: sorted(found - released) for student, released, found in collected if released < found}


def same_names(course: Path, assignment: str) -> dict[str, list[str]]:
    """Student id -> their notebooks that share a file name (paths in their unpacked submission), for each
    student with such notebooks; hidden folders and __MACOSX are skipped, as the collect pattern skips them."""
    extracted = course / "downloaded" / assignment / "extracted"
    found = {}
    for folder in sorted(path for path in extracted.glob("*") if path.is_dir()):
        by_name = defaultdict(list)
        for path in folder.rglob("*.ipynb"):
            relative = path.relative_to(folder)
            if not any(part.startswith(".") or part == "__MACOSX" for part in relative.parts):
                by_name[path.name].append(relative.as_posix())
        shared = sorted(path for paths in by_name.values() if len(paths) > 1 for path in paths)
        if shared:
            found[folder.name] = shared
    return found


ARCHIVES = (".tar.gz", ".tar.bz2", ".tgz", ".zip", ".tar", ".gz", ".bz2")  # what zip_collect unpacks


def given_twice(submissions: Path) -> dict[str, list[str]]:
    """Student id -> the folder and archives of ``submissions`` that all stand for it, for each id given twice."""
    by_id = defaultdict(list)
    for entry in sorted(submissions.iterdir()):
        if entry.name.startswith("."):
            continue
        suffix = next((s for s in ARCHIVES if entry.is_file() and entry.name.lower().endswith(s)), "")
        by_id[entry.name[: len(entry.name) - len(suffix)]].append(entry.name + ("/" if entry.is_dir() else ""))
    return {student: entries for student, entries in by_id.items() if len(entries) > 1}


def same_names_message(found: dict[str, list[str]], assignment: str) -> str:
    """The error for ``found``: who hands in which notebooks of one name, and the fix."""
    listed = ", ".join(f"{student} ({', '.join(repr(path) for path in paths)})" for student, paths in found.items())
    return (
        f"nbgrader collects one notebook of a name per student, and stopped at two: {listed}. In your SUBMISSIONS "
        f"folder keep the one to grade as {assignment}.ipynb, delete or rename the other (not to a released "
        f"name; inside a zip file, pack it again without the other), and run make collect again."
    )


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
    if argv[:1] == ["--twice"] and len(argv) == 2:
        twice = given_twice(Path(argv[1]))
        if twice:
            listed = ", ".join(f"{student} ({', '.join(entries)})" for student, entries in twice.items())
            print(
                f"these student ids are each given twice in {argv[1]}, and one copy would silently replace the "
                f"other: {listed}. Keep one folder or archive per student and run make collect again.",
                file=sys.stderr,
            )
        return 1 if twice else 0
    after_failure = argv[:1] == ["--same-names"]
    argv = argv[1:] if after_failure else argv
    if len(argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    course, assignment = Path(argv[0]), argv[1]
    if after_failure:
        found = same_names(course, assignment)
        if found:
            print(same_names_message(found, assignment), file=sys.stderr)
        return 1 if found else 0
    problems = misnamed(course, assignment)
    beside = extras(course, assignment)
    if beside:
        listed = ", ".join(
            f"{student} ({', '.join(repr(name) for name in names)})" for student, names in beside.items()
        )
        print(
            f"WARNING: autograde grades {assignment}.ipynb and ignores the other notebooks beside it: {listed}. "
            f"If one of those is the student's final version, rename it to {assignment}.ipynb in your "
            f"SUBMISSIONS folder (replacing the older one) and run make collect again."
        )
    if problems:
        print(message(problems, assignment, course), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
