"""Collected notebooks made gradable: duplicated cells made single, edited grading metadata put back, deleted
graded and locked cells put back, edited locked cells named.

Usage: python tools/restore_checks.py COURSE_DIR ASSIGNMENT
(`make collect` runs it after `nbgrader zip_collect`, with the Python that has nbgrader and the lab.)

Four things a student can do in JupyterLab or VS Code that nbgrader does not mend:
- copy a cell (a check, or an answer kept as a "first try"): the copy carries the cell's grade id, and
  nbgrader's autograde stops at the first notebook with a grade id twice, leaving every student after
  it ungraded. The last copy keeps the grading metadata (it is the one graded, and the one that runs
  last); the others stay in place as plain cells, so the notebook runs as the student ran it.
- edit a cell's grading metadata (JupyterLab's property inspector, an nbgrader extension, the JSON): a check
  made a solution cell, a grade id renamed, a written answer no longer graded. Autograde then fails the whole
  notebook ("Inconsistent checksums", "does not have a grade_id"), scoring every answer 0 (helper 103). Each
  cell of a grade id the release has gets the release's metadata back (autograde then puts back a locked
  cell's source too); a cell of a grade id the release lacks becomes a plain cell, and if it was a check,
  the check is put back from the release (below).
- delete a check cell, or a written answer's cell: autograde puts back the source of a locked cell a
  student changed, but not a cell they deleted, and that check would count 0 with nothing said, and
  Formgrader would have no box for that answer. Each is inserted from the release before the nearest
  cell below it in the release that the notebook still has (so after the student's own cells that
  stand in its place), or at the end. A written answer's cell comes back as released with a note
  that the student's answer is in the cells around it, and waits for grading by hand. A check comes back
  as released (autograde would undo any change to it) below a note saying why it is there, which the
  student reads in the feedback.
- delete any other locked cell, code or text (an import, a setup cell run once and deleted): the cells below it
  fail, a NameError in every check (helper 109's all-right submission scored 0 without its one-line import).
  Put back as released, where the release has it, unless the notebook holds its text in a cell without
  metadata (a notebook rebuilt by copy and paste: that cell runs as it is).
- edit a locked cell: autograde puts back the release's text, so the edit counts for nothing, but an edited
  check (one rewritten to print "Correct") is worth a look: each is named.
- delete a code answer cell (or rebuild the notebook without the cells' metadata): named in a
  warning, since its check then runs on whatever the cells above define; and so is an answer cell moved
  below its own check, which then runs first.
A file that is not a notebook (a truncated upload, say) is named in a warning and left as it is; the
others are mended all the same. A notebook saved with a byte-order mark is written back without it.
Each changed notebook is written in place (atomically). The students of this collect (those in
downloaded/<assignment>/extracted/) are named with their cells; those of earlier collects, mended then,
are not named again. It prints nothing when there is nothing to mend.
"""

from __future__ import annotations

import codecs
import collections
import copy
import functools
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from fmnist_lab.files import atomic_write

# added to a written answer's cell put back: it tells the grader (and, in the feedback, the student) why it is empty
WRITTEN_NOTE = (
    "*(This answer's cell was missing from the submitted notebook and was put back when it was collected: the "
    "answer is in the cells around it.)*"
)

# a markdown cell put above a check put back: the feedback tells the student why a check they deleted is there
CHECK_NOTE = (
    "*(The check below was missing from the submitted notebook, deleted or stripped of its grading metadata, and "
    "was put back from the release when the notebook was collected, so that the answer above it is scored.)*"
)


def grading(cell: dict) -> dict:
    """The cell's nbgrader metadata ({} where there is none, or only a null: helper 105's `"nbgrader": null`).
    A cell read as JSON or by nbformat alike (tools/second_look.py reads JSON)."""
    metadata = cell.get("metadata", {}).get("nbgrader")
    return metadata if isinstance(metadata, dict) else {}


def _grade_id(cell: nbformat.NotebookNode) -> str | None:
    return grading(cell).get("grade_id")


def is_check(cell: dict) -> bool:
    """An autograded test cell: code, graded, not a solution (a written answer is graded by hand)."""
    metadata = grading(cell)
    return cell.get("cell_type") == "code" and bool(metadata.get("grade")) and not metadata.get("solution")


def _is_answer(cell: nbformat.NotebookNode) -> bool:
    return bool(grading(cell).get("solution"))


def _is_written_answer(cell: nbformat.NotebookNode) -> bool:
    """A prediction or written answer: markdown, graded by hand."""
    return cell.cell_type == "markdown" and _is_answer(cell) and bool(grading(cell).get("grade"))


def is_locked(cell: dict) -> bool:
    """A cell nbgrader locks (read-only, put back as released at autograde): a cell read as JSON or by nbformat."""
    return bool(grading(cell).get("locked"))


def make_single(submitted: nbformat.NotebookNode) -> list[str]:
    """Leave the grading metadata of each grade id on its last cell only; the grade ids that had copies."""
    last = {_grade_id(cell): position for position, cell in enumerate(submitted.cells) if _grade_id(cell)}
    copied = []
    for position, cell in enumerate(submitted.cells):
        grade_id = _grade_id(cell)
        if grade_id and last[grade_id] != position:
            del cell.metadata["nbgrader"]  # a plain cell now: it still runs where the student put it
            copied.append(grade_id)
    return list(dict.fromkeys(copied))


def reset_metadata(released: nbformat.NotebookNode, submitted: nbformat.NotebookNode) -> list[str]:
    """Give each cell of a grade id the release has the release's grading metadata, and make each cell of a grade
    id it lacks a plain cell; the grade ids changed, in notebook order."""
    known = {_grade_id(cell): cell.metadata["nbgrader"] for cell in released.cells if _grade_id(cell)}
    changed = []
    for cell in submitted.cells:
        metadata = cell.metadata.get("nbgrader")
        if not isinstance(metadata, dict):
            cell.metadata.pop("nbgrader", None)  # a null where nbgrader expects its metadata
            continue
        grade_id = metadata.get("grade_id")
        if grade_id not in known:
            del cell.metadata["nbgrader"]  # a plain cell: it still runs where the student put it
            changed.append(f"{grade_id or 'a cell without a grade id'} (not in the release)")
        elif metadata != known[grade_id]:
            cell.metadata["nbgrader"] = copy.deepcopy(known[grade_id])
            changed.append(grade_id)
    return changed


def restore(released: nbformat.NotebookNode, submitted: nbformat.NotebookNode) -> list[str]:
    """Insert into ``submitted`` the release's check cells (each below a note), written answers' cells and other
    locked cells it lacks (a locked cell's text held by a cell without metadata counts as there); their grade ids,
    in release order."""
    restored = []
    ids = {cell.get("id") for cell in submitted.cells}
    # the texts of the student's plain cells, each standing for one released cell at most (helper 112)
    plain = collections.Counter(c.source.strip() for c in submitted.cells if not _grade_id(c))
    for index, cell in enumerate(released.cells):
        present = {_grade_id(c): position for position, c in enumerate(submitted.cells) if _grade_id(c)}
        graded = is_check(cell) or _is_written_answer(cell)
        if not (graded or is_locked(cell)) or _grade_id(cell) in present:
            continue
        if not graded and plain[cell.source.strip()] > 0:
            plain[cell.source.strip()] -= 1  # there, without its grading metadata: it runs where the student has it
            continue
        # above every later cell of the release the notebook has, wherever the student moved them (helper 112)
        below = [present[c_id] for c_id in map(_grade_id, released.cells[index + 1 :]) if c_id in present]
        anchor = min(below, default=len(submitted.cells))
        put_back = nbformat.from_dict(cell)
        if _is_written_answer(cell):  # changed from the release, so that autograde leaves it for grading by hand
            put_back.source += f"\n\n{WRITTEN_NOTE}"
        if put_back.get("id") in ids:  # a cell id must be unique in a notebook (nbformat would change it, loudly)
            put_back.id = f"{put_back.id}-released"
        added = [nbformat.v4.new_markdown_cell(CHECK_NOTE), put_back] if is_check(cell) else [put_back]
        if submitted.nbformat_minor < 5:  # cell ids came with nbformat 4.5: an older notebook (Colab's) has none
            for new in added:
                new.pop("id", None)
        submitted.cells[anchor:anchor] = added
        restored.append(_grade_id(cell))
    return restored


def answers_below_checks(submitted: nbformat.NotebookNode) -> list[str]:
    """The grade ids of code answer cells that stand below their own check (``nb01-q1-answer`` below ``nb01-q1``):
    autograde runs the cells top to bottom, so that check runs before the answer is defined, though the student,
    who ran the cells out of order, saw it say Correct (helper 103)."""
    position = {_grade_id(cell): index for index, cell in enumerate(submitted.cells) if _grade_id(cell)}
    return [
        grade_id
        for grade_id, index in position.items()
        if grade_id.endswith("-answer") and index > position.get(grade_id.removesuffix("-answer"), index)
    ]


def edited_locked_cells(released: nbformat.NotebookNode, submitted: nbformat.NotebookNode) -> list[str]:
    """The grade ids of the locked cells whose text ``submitted`` changed (autograde puts the release's back)."""
    locked = {_grade_id(cell): cell.source for cell in released.cells if is_locked(cell)}
    edited = (
        _grade_id(cell)
        for cell in submitted.cells
        if _grade_id(cell) in locked and cell.source.strip() != locked[_grade_id(cell)].strip()
    )
    return list(dict.fromkeys(edited))  # a cell copied and both copies edited: named once


def first_line(cell: nbformat.NotebookNode) -> str:
    """A cell's first line of text, shortened, to name a cell whose grade id says nothing (nb06-cell-5f028945); of
    code, its first line that is no comment (# NBVAL_CHECK_OUTPUT), where it has one."""
    lines = [line.strip() for line in cell.source.splitlines() if line.strip()]
    code = [line for line in lines if not line.startswith("#")] if cell.cell_type == "code" else []
    line = (code or lines or [""])[0]
    return line if len(line) <= 50 else line[:47] + "..."


def missing_answers(released: nbformat.NotebookNode, submitted: nbformat.NotebookNode) -> list[str]:
    """The grade ids of the release's answer cells that ``submitted`` lacks."""
    present = {_grade_id(cell) for cell in submitted.cells}
    return [_grade_id(cell) for cell in released.cells if _is_answer(cell) and _grade_id(cell) not in present]


@dataclass
class Mended:
    """Per student: the grade ids made single, those whose grading metadata was put back, a byte-order mark
    removed, the check cells and written answers' cells put back, the code answer cells missing and those below
    their checks, the other locked cells put back and the locked cells edited; the notebooks that could not be
    read, with why."""

    copied: dict[str, list[str]] = field(default_factory=dict)
    metadata: dict[str, list[str]] = field(default_factory=dict)
    marked: dict[str, list[str]] = field(default_factory=dict)
    checks: dict[str, list[str]] = field(default_factory=dict)
    written: dict[str, list[str]] = field(default_factory=dict)
    missing: dict[str, list[str]] = field(default_factory=dict)
    below: dict[str, list[str]] = field(default_factory=dict)
    cells: dict[str, list[str]] = field(default_factory=dict)
    edited: dict[str, list[str]] = field(default_factory=dict)
    unreadable: dict[str, list[str]] = field(default_factory=dict)


def restore_course(course: Path, assignment: str, students: set[str] | None = None) -> Mended:
    """Mend every collected submission of ``assignment`` (see the module's docstring); what was found, for
    ``students`` only when they are given."""
    mended = Mended()
    for release in sorted((course / "release" / assignment).glob("*.ipynb")):
        released = nbformat.read(release, as_version=4)
        cells = {_grade_id(cell): cell for cell in released.cells}
        named = {grade_id: f'{grade_id} ("{first_line(cell)}")' for grade_id, cell in cells.items()}
        for path in sorted((course / "submitted").glob(f"*/{assignment}/{release.name}")):
            student = path.parent.parent.name
            try:
                raw = path.read_bytes()
                # a byte-order mark (an editor's "UTF-8 with BOM") is no part of a notebook: nbgrader refused the
                # file (helper 103); read without it, and written back without it
                marked = raw.startswith(codecs.BOM_UTF8)
                submitted = nbformat.reads(raw.decode("utf-8-sig"), as_version=4)
            except (OSError, ValueError, KeyError, TypeError, AttributeError, nbformat.ValidationError) as err:
                if students is None or student in students:
                    mended.unreadable.setdefault(student, []).append(f"{path}: {type(err).__name__}: {err}")
                continue
            edited = edited_locked_cells(released, submitted)  # before make_single: an edited copy counts (helper 112)
            copied = make_single(submitted)
            metadata = reset_metadata(released, submitted)
            restored = restore(released, submitted)
            if copied or metadata or restored or marked:
                atomic_write(path, "w", functools.partial(nbformat.write, submitted))
            if students is not None and student not in students:
                continue
            found = {
                "copied": copied,
                "metadata": metadata,
                "checks": [grade_id for grade_id in restored if is_check(cells[grade_id])],
                "written": [grade_id for grade_id in restored if _is_written_answer(cells[grade_id])],
                "cells": [named[g] for g in restored if not (is_check(cells[g]) or _is_written_answer(cells[g]))],
                "edited": [named[grade_id] for grade_id in edited],
                "marked": ["the byte-order mark"] if marked else [],
                "missing": missing_answers(released, submitted),
                "below": answers_below_checks(submitted),
            }
            for kind, ids in found.items():
                if ids:
                    getattr(mended, kind).setdefault(student, []).extend(ids)
    return mended


def this_collect(course: Path, assignment: str) -> set[str] | None:
    """The students whose submissions this collect unpacked (None when there is no such folder)."""
    extracted = course / "downloaded" / assignment / "extracted"
    return {path.name for path in extracted.iterdir() if path.is_dir()} if extracted.is_dir() else None


def _listed(found: dict[str, list[str]]) -> str:
    return ", ".join(f"{student} ({', '.join(ids)})" for student, ids in found.items())


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    course, assignment = Path(argv[0]), argv[1]
    mended = restore_course(course, assignment, this_collect(course, assignment))
    where = f"in {course / 'submitted'}/<student>/{assignment}/"
    if mended.copied:
        print(
            f"Kept the grading metadata of these cells, which students had copied, on the last copy only (the "
            f"others run as plain cells; autograde stops at a cell that is there twice): {_listed(mended.copied)}, "
            f"{where}. The last copy is the one graded: check that it is the student's final version."
        )
    if mended.metadata:
        print(
            f"Put back the release's grading metadata of these cells, which had been edited (autograde would fail "
            f"the whole notebook on them), and made plain cells of those with grade ids the release does not have: "
            f"{_listed(mended.metadata)}, {where}. Autograde puts back a locked cell's source as released."
        )
    if mended.marked:
        print(
            f'Removed the byte-order mark at the start of these students\' notebooks (saved as "UTF-8 with BOM"), '
            f"which nbgrader cannot read: {', '.join(mended.marked)}, {where}."
        )
    if mended.checks:
        print(
            f"Put back the check cells missing from these students' notebooks (deleted, or stripped of their grading "
            f"metadata), from the release, so that autograde scores the answers above them: "
            f"{_listed(mended.checks)}, {where}."
        )
    if mended.written:
        print(
            f"Put back the written answers' cells missing from these students' notebooks, as released with a note "
            f"that the answer is in the cells around it, so that Formgrader has a box for each (they wait for "
            f"grading by hand): {_listed(mended.written)}, {where}."
        )
    if mended.cells:
        print(
            f"Put back the locked cells missing from these students' notebooks (the release's own code and text, "
            f"deleted, or edited in a notebook stripped of its grading metadata: without an import or a setup cell, "
            f"every cell below it fails), as released: "
            f"{_listed(mended.cells)}, {where}."
        )
    if mended.edited:
        print(
            f"NOTE: these students changed the text of locked cells: {_listed(mended.edited)}, {where}. Autograde "
            f"runs the release's text in their place, so the changes count for nothing; a changed check (one "
            f"rewritten to print what a check prints) is worth a look."
        )
    if mended.missing:
        print(
            f"WARNING: these code answer cells are missing (deleted, or the notebook rebuilt without their grading "
            f"metadata): {_listed(mended.missing)}, {where}. Their checks run on whatever the cells above them "
            f"define: read those notebooks."
        )
    if mended.below:
        print(
            f"WARNING: these answer cells stand below their own checks: {_listed(mended.below)}, {where}. Autograde "
            f"runs the cells top to bottom, so each of those checks runs before its answer is defined and scores 0, "
            f"though the student, running cells out of order, may have seen it say Correct. Move the answer above "
            f"its check in those notebooks if you accept that, then autograde them."
        )
    for student, reasons in mended.unreadable.items():
        print(
            f"WARNING: {student}'s submission cannot be read as a notebook, so autograde will not grade it "
            f"({'; '.join(reasons)}). Ask {student} for the notebook again, saved from Jupyter, and collect it."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
