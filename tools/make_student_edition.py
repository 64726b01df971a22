"""Build the student edition (notebooks/) from the instructor's edition (instructor/) with nbgrader.

Usage: python tools/make_student_edition.py [--out notebooks] [NOTEBOOK ...]
(`make student` runs tools/grading_metadata.py on instructor/, then this.)

A thin wrapper over ``nbgrader generate_assignment``: each notebook becomes an assignment of its
own (named like the notebook) in a scratch course, build/edition/, whose gradebook is thrown
away; nbgrader replaces every solution region with its stub (``# YOUR CODE HERE`` +
``raise NotImplementedError()`` in code, ``YOUR ANSWER HERE`` in markdown), removes the hidden
tests, clears every output and locks the read-only cells (solution cells and ``# YOURS TO CHANGE``
cells stay editable); the released notebooks are copied to ``--out``
unchanged. nbgrader reads the repository's nbgrader_config.py, as `make release` does, so this
edition is the one an instructor releases.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from fmnist_lab.files import atomic_write

ROOT = Path(__file__).resolve().parent.parent
SCRATCH_COURSE = ROOT / "build" / "edition"


def nbgrader_env() -> dict[str, str]:
    """The environment for nbgrader: it runs `alembic` (its database migrations) from PATH."""
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")])}


def build(notebooks: list[Path], out_dir: Path, course: Path = SCRATCH_COURSE) -> list[Path]:
    """Generate the student edition of ``notebooks`` into ``out_dir``; returns the files written.

    Raises RuntimeError with nbgrader's log when nbgrader refuses a notebook.
    """
    shutil.rmtree(course, ignore_errors=True)  # a scratch course: nothing in it outlives the build
    for path in notebooks:
        assignment = course / "source" / path.stem
        assignment.mkdir(parents=True)
        shutil.copy2(path, assignment / path.name)
    result = subprocess.run(
        [sys.executable, "-m", "nbgrader", "generate_assignment", "*", "--force", f"--CourseDirectory.root={course}"],
        cwd=ROOT,
        env=nbgrader_env(),
        capture_output=True,
        text=True,
    )
    released = [course / "release" / path.stem / path.name for path in notebooks]
    missing = [path.name for path in released if not path.exists()]
    if result.returncode != 0 or missing:
        raise RuntimeError(
            f"nbgrader generate_assignment failed (for {', '.join(missing) or 'the course'}):\n"
            f"{result.stdout}{result.stderr}"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in released:
        atomic_write(out_dir / path.name, "wb", lambda f, path=path: f.write(path.read_bytes()))
        written.append(out_dir / path.name)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "notebooks", help="folder for the student edition")
    parser.add_argument("notebooks", nargs="*", type=Path, help="instructor notebooks (default: instructor/*.ipynb)")
    args = parser.parse_args(argv)
    notebooks = [path.resolve() for path in args.notebooks] or sorted((ROOT / "instructor").glob("*.ipynb"))
    if not notebooks:
        print("error: no notebooks given and none in instructor/", file=sys.stderr)
        return 1
    try:
        written = build(notebooks, args.out)
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"Student edition of {len(written)} notebooks written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
