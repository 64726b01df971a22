"""Apply the notebooks' output policy: keep outputs only in cells marked # NBVAL_CHECK_OUTPUT.

Usage: python tools/clean_notebooks.py instructor/*.ipynb
(`make notebook-outputs` executes the notebooks in quick mode first, then runs this.)

Cell metadata is stripped (execution timings, collapsed/scrolled state) except nbgrader's,
which marks the solution, test, answer and locked cells (tools/grading_metadata.py).
"""

import functools
import sys

import nbformat

from fmnist_lab.files import atomic_write

CHECK_MARKER = "# NBVAL_CHECK_OUTPUT"
KEPT_CELL_METADATA = ("nbgrader",)


def clean(path: str) -> None:
    """Rewrite the notebook at ``path`` under the output policy."""
    notebook = nbformat.read(path, as_version=4)
    counter = 0
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        if CHECK_MARKER in cell.source:
            counter += 1
            cell.execution_count = counter
            for output in cell.outputs:
                if "execution_count" in output:
                    output["execution_count"] = counter
        else:
            cell.outputs, cell.execution_count = [], None
        cell.metadata = {key: value for key, value in cell.metadata.items() if key in KEPT_CELL_METADATA}
    notebook.metadata.pop("widgets", None)  # saved widget state: bulky, and outputs by another name
    atomic_write(path, "w", functools.partial(nbformat.write, notebook))  # an interrupt leaves the old notebook


if __name__ == "__main__":
    for path in sys.argv[1:]:
        clean(path)
