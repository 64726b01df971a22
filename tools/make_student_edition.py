"""Build the student edition of the notebooks: every solution replaced by a stub, every output cleared.

Usage: python tools/make_student_edition.py [--out build/student] [NOTEBOOK ...]
(`make student` runs it on all of instructor/*.ipynb.)

It follows nbgrader's ClearSolutions convention, with the same markers and stubs, but is not
nbgrader: nbgrader 0.9 brings a database and server stack (SQLAlchemy, alembic, notebook<8,
jupyter-client<9, ...) and wants every solution cell flagged in its metadata, which the lab's
output policy (tools/clean_notebooks.py) strips. What it does:

- a marker is a line of its own (indentation aside), so prose that mentions one is left alone;
- in a code cell, the lines from ``### BEGIN SOLUTION`` to ``### END SOLUTION`` become
  ``# YOUR CODE HERE`` and ``raise NotImplementedError()``, indented like the BEGIN line, so a
  solution written inside a function body leaves a function that still runs until called;
- in a markdown cell they become ``YOUR ANSWER HERE``;
- every output and execution count is cleared.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

import nbformat

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
CODE_STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]
TEXT_STUB = ["YOUR ANSWER HERE"]
ROOT = Path(__file__).resolve().parent.parent


class MarkerError(ValueError):
    """The solution markers of a cell do not pair up."""


def clear_solutions(source: str, cell_type: str) -> str:
    """The cell's source with each marked solution region replaced by the stub."""
    stub = CODE_STUB if cell_type == "code" else TEXT_STUB
    lines, in_solution = [], False
    for number, line in enumerate(source.split("\n"), start=1):
        if line.strip() == BEGIN:
            if in_solution:
                raise MarkerError(f"line {number}: {BEGIN} inside another solution region")
            in_solution = True
            indent = re.match(r"\s*", line).group(0)
            lines += [indent + stub_line for stub_line in stub]
        elif line.strip() == END:
            if not in_solution:
                raise MarkerError(f"line {number}: {END} without a {BEGIN} before it")
            in_solution = False
        elif not in_solution:
            lines.append(line)
    if in_solution:
        raise MarkerError(f"{BEGIN} without an {END} after it")
    return "\n".join(lines)


def student_notebook(path: Path) -> nbformat.NotebookNode:
    notebook = nbformat.read(path, as_version=4)
    for index, cell in enumerate(notebook.cells):
        try:
            cell.source = clear_solutions(cell.source, cell.cell_type)
        except MarkerError as err:
            raise MarkerError(f"{path}, cell {index}: {err}. Pair every {BEGIN} with an {END}.") from None
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return notebook


def write_atomically(notebook: nbformat.NotebookNode, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            nbformat.write(notebook, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build(notebooks: list[Path], out_dir: Path) -> list[Path]:
    """Write the student edition of each notebook into ``out_dir``; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        target = out_dir / path.name
        write_atomically(student_notebook(path), target)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "student", help="folder for the student edition")
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to convert (default: instructor/*.ipynb)")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or sorted((ROOT / "instructor").glob("*.ipynb"))
    try:
        written = build(notebooks, args.out)
    except (MarkerError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"Student edition of {len(written)} notebooks written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
