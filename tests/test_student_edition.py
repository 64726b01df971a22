"""The student edition (`make student`): no solution text left, every cell runs, every check says "not done yet".

The student notebooks are executed here in quick mode, one after another in one folder (so
notebook 06 finds the checkpoint that notebook 03 wrote, as on a student's machine).
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "instructor").glob("*.ipynb"))
SPEC = importlib.util.spec_from_file_location("make_student_edition", ROOT / "tools" / "make_student_edition.py")
tool = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(tool)


def solution_regions(source: str) -> list[list[str]]:
    """The lines of each marked solution region of a cell."""
    return [region.strip("\n").split("\n") for region in
            re.findall(rf"{re.escape(tool.BEGIN)}\n(.*?)\n[ \t]*{re.escape(tool.END)}", source, re.DOTALL)]


def is_check(cell) -> bool:
    return cell.cell_type == "code" and re.search(r"\bnb\d\d\.q\d+\.check\(", cell.source) is not None


# the tool on its own

def test_a_solution_inside_a_function_becomes_the_nbgrader_stub_at_its_indentation():
    source = 'def f(x):\n    """Doc."""\n    ### BEGIN SOLUTION\n    y = x + 1\n    return y\n    ### END SOLUTION\n'
    assert tool.clear_solutions(source, "code") == (
        'def f(x):\n    """Doc."""\n    # YOUR CODE HERE\n    raise NotImplementedError()\n')


def test_prose_that_mentions_a_marker_is_not_a_marker():
    source = "The solution sits between `### BEGIN SOLUTION` and\n`### END SOLUTION` in the instructor's copy."
    assert tool.clear_solutions(source, "markdown") == source


def test_a_markdown_answer_becomes_your_answer_here():
    source = "**My prediction:**\n\n### BEGIN SOLUTION\nIt is 0.5.\n### END SOLUTION"
    assert tool.clear_solutions(source, "markdown") == "**My prediction:**\n\nYOUR ANSWER HERE"


@pytest.mark.parametrize("source, problem", [
    ("### BEGIN SOLUTION\nx = 1\n", "without an ### END SOLUTION"),
    ("x = 1\n### END SOLUTION\n", "without a ### BEGIN SOLUTION"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n", "inside another solution region"),
])
def test_unpaired_markers_are_refused(source, problem):
    with pytest.raises(tool.MarkerError, match=problem):
        tool.clear_solutions(source, "code")


def test_the_command_names_the_notebook_and_cell_of_a_broken_marker(tmp_path, capsys):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1"),
                                               nbformat.v4.new_code_cell("### BEGIN SOLUTION\nx = 2")])
    nbformat.write(notebook, tmp_path / "broken.ipynb")
    assert tool.main(["--out", str(tmp_path / "out"), str(tmp_path / "broken.ipynb")]) == 1
    assert "broken.ipynb, cell 1" in capsys.readouterr().err
    assert not (tmp_path / "out" / "broken.ipynb").exists()


# the student edition of the lab's notebooks

@pytest.fixture(scope="module")
def student_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("student")
    assert tool.main(["--out", str(out)]) == 0
    return out


def test_every_notebook_has_exercises_with_checks_and_a_prediction():
    for path in NOTEBOOKS:
        cells = nbformat.read(path, as_version=4).cells
        headings = [c.source for c in cells if c.cell_type == "markdown"]
        assert any(re.search(r"^## Exercises", s, re.M) for s in headings), f"{path.name}: no Exercises section"
        assert sum(map(is_check, cells)) >= 2, f"{path.name}: fewer than two checked exercises"
        assert any(re.search(r"predict, then run", s, re.I) for s in headings), f"{path.name}: no predict-then-run task"


def test_no_solution_text_is_left(student_dir):
    for path in NOTEBOOKS:
        original = nbformat.read(path, as_version=4).cells
        student = nbformat.read(student_dir / path.name, as_version=4).cells
        assert len(student) == len(original)
        regions = 0
        for before, after in zip(original, student):
            assert tool.BEGIN not in after.source and tool.END not in after.source
            for region in solution_regions(before.source):
                regions += 1
                kept = [line for line in region if line.strip() and line in after.source.split("\n")]
                assert kept == [], f"{path.name}: solution lines left in the student edition: {kept}"
                stub = tool.CODE_STUB if before.cell_type == "code" else tool.TEXT_STUB
                assert all(line in after.source for line in stub)
            if after.cell_type == "code":
                assert after.outputs == [] and after.execution_count is None
        checks = sum(map(is_check, original))
        assert regions >= checks, f"{path.name}: {checks} checked exercises but only {regions} solution regions"


@pytest.fixture(scope="module")
def executed(student_dir) -> dict[str, nbformat.NotebookNode]:
    """Each student notebook run top to bottom in quick mode, errors recorded instead of raised."""
    from jupyter_client import KernelManager
    from nbclient import NotebookClient

    env = {**os.environ, "FMNIST_LAB_QUICK": "1", "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    results = {}
    for path in NOTEBOOKS:
        notebook = nbformat.read(student_dir / path.name, as_version=4)
        kernel = KernelManager(kernel_name="python3")
        kernel.kernel_spec.argv[0] = sys.executable  # this environment's Python, like nbval's --nbval-current-env
        NotebookClient(notebook, km=kernel, timeout=900, allow_errors=True,
                       resources={"metadata": {"path": str(student_dir)}}).execute(env=env)
        results[path.name] = notebook
    return results


def text_of(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def test_every_cell_of_the_student_edition_runs(executed):
    errors = [f"{name}, cell {i}: {o.ename}: {o.evalue}" for name, notebook in executed.items()
              for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"
              for o in cell.outputs if o.output_type == "error"]
    assert errors == []


def test_every_check_on_a_stub_says_not_done_yet(executed):
    for name, notebook in executed.items():
        for cell in filter(is_check, notebook.cells):  # that each notebook has checks is tested above
            output = text_of(cell)
            assert output.startswith("Not done yet: ") and "still raises NotImplementedError" in output, (
                f"{name}: {cell.source!r} printed {output!r}")
