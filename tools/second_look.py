"""Which autograded submissions deserve a second look before their scores are trusted.

Usage: python tools/second_look.py COURSE_DIR [ASSIGNMENT]
(`make grades` and `make feedback` run it, beside tools/hand_grading.py, with the Python that has the lab.)

Autograde puts back every locked cell a student changed, but the checks run in the same Python process
as the cells a student writes (the answers, the cells yours to change, cells of their own), and code
there can make a check score without the answer being right: an IPython hook that rewrites the hidden
tests before they run, a name `nb01` bound to an object of the student's own, an answer that reads the
solutions from the instructor's notebooks. No in-notebook grader can rule that out. Two things it can
see after the fact:
- a check cell that scored (it raised no error) but did not print exactly one verdict starting with
  "Correct:": an honest check cell prints its visible verdict once, and its strict hidden call
  prints nothing when it passes, so a scored cell with no verdict, or with two, was not run as released.
  With the course's secret in FMNIST_LAB_SECRET (as autograde had it), a passing strict call also prints
  a grading code for that student only the secret's holder can compute (`exercises.grading_code`): a
  scored cell without the right one did not reach a pass in the lab's check, however well its output
  imitates one (the code proves that the check passed in that process, not how the answer got there);
- code in the cells a student writes that no answer needs: IPython's hooks, the checks' or the
  solutions' internals, rebinding of the exercises' names (`nb01 = ...`), modules or code objects
  rewritten, the process or its alarms stopped.
Both are printed as one warning each, naming the student and the cell, or nothing when there is none.
A name in the list is a reason to read those cells, not proof: a student may print "Correct:" in a
helper of their own, or import a module for an honest reason.
"""

from __future__ import annotations

import ast
import io
import json
import os
import re
import sys
import tokenize
from pathlib import Path
from token import COMMENT

from restore_checks import grading, is_check, is_locked  # this script's folder, tools/, is on the path

from fmnist_lab.exercises import CORRECT, GRADED, PREFIXES, grading_code

# what a cell a student writes has no honest need of, each with what it can do to the checks
SUSPICIOUS = {
    "hooks into IPython": re.compile(
        r"get_ipython|input_transformers|ast_transformers|events\s*\.\s*register|register_magic|\bInteractiveShell\b"
    ),
    # solution() and hint() are the notebooks' own advice, and solution() shows nothing while autograde runs
    # the words alone named plt.title("Exercise 3"), a variable `verdict` and "the instructor's" (helper 105)
    "reaches into the checks or the solutions": re.compile(
        r"fmnist_lab\s*\.\s*exercises|\bexercises\s*\.|\bExercise\s*[.(]|\.\s*checker\b|\.\s*verdict\b|"
        r"solution_code|instructor\s*/|/\s*instructor\b|['\"]instructor['\"]|\bINSTRUCTOR_DIR\b|grading_code|\bhmac\b|"
        r"hashlib"
    ),
    "binds an exercise's name (nb01, say) to something else": re.compile(
        r"^\s*(?:class|def)\s+nb\d\d\b|\bnb\d\d\s*(?:\.\s*q\d+\s*)?(?:\.\s*\w+\s*)?=(?!=)|\bas\s+nb\d\d\b|"
        r"\bglobals\s*\(\s*\)\s*\[",
        re.MULTILINE,
    ),
    # exec of a built string once bound nb01 past the pattern above (helper 104); vars() and __setattr__ wrote
    # into the frozen Exercise (helper 105); model.eval(), re.compile() and torch.compile() are no such thing
    "runs code built from text, or rewrites objects, modules or code": re.compile(
        r"(?<![\w.])(?:exec|eval|compile)\s*\(|\bvars\s*\(|\blocals\s*\(\s*\)\s*\[|sys\s*\.\s*modules|\bbuiltins\b|"
        r"__builtins__|__globals__|__code__|__dict__|__class__|setattr\s*\(|__(?:set|del)attr__|dataclasses\s*\.\s*replace|"
        r"import_module|spec_from"
    ),
    # the lab's variables by name, or the whole environment: one variable set or read (LOCAL_RANK) is no threat
    "reads the environment, where the grading secret is": re.compile(
        r"FMNIST|/proc/|environ\s*\.\s*(?:items|values|keys|copy)\s*\(|\bin\s+(?:os\s*\.\s*)?environ\b|"
        r"\(\s*(?:os\s*\.\s*)?environ\s*[,)]|\*\*\s*(?:os\s*\.\s*)?environ\b|%\s*env\b|!\s*(?:env|printenv|set)\b"
    ),
    "can stop the kernel or the checks' time limit": re.compile(
        r"os\s*\.\s*_exit|os\s*\.\s*kill|\bsignal\s*\.|sys\s*\.\s*settrace|setitimer"
    ),
}


def _without_comments(source: str) -> str:
    """``source`` without its comments ("# as the instructor's hint says" is no code), where it can be tokenised."""
    try:
        tokens = [token for token in tokenize.generate_tokens(io.StringIO(source).readline) if token.type != COMMENT]
        return tokenize.untokenize(tokens)
    except (tokenize.TokenError, SyntaxError, IndentationError):  # not Python (a cell magic, say): read it all
        return source


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _stdout(cell: dict) -> str:
    return "".join(
        "".join(output.get("text", ""))
        for output in cell.get("outputs", [])
        if output.get("output_type") == "stream" and output.get("name") == "stdout"
    )


def _errored(cell: dict) -> bool:
    return any(output.get("output_type") == "error" for output in cell.get("outputs", []))


def _cell_name(cell: dict, position: int) -> str:
    return grading(cell).get("grade_id") or f"cell {position + 1}"


def hidden_calls(source: str) -> list[tuple[str, int]] | None:
    """(label, seed) of each strict check call in a check cell's ``source`` (``nb01.q1.check(..., strict=True,
    seed=2850)``), however its arguments are ordered or its lines wrapped; None where it is not Python."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    calls = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "check":
            named = {keyword.arg: keyword.value for keyword in node.keywords}
            strict, seed = named.get("strict"), named.get("seed")
            if isinstance(strict, ast.Constant) and strict.value is True and isinstance(seed, ast.Constant):
                calls.append((ast.unparse(node.func.value), seed.value))
    return calls


def unverified_checks(notebook: dict, secret: str = "", student: str = "") -> list[str]:
    """The check cells that scored (no error) without exactly one "Correct:" verdict, or, with the course's
    ``secret``, without the grading code of each of their hidden calls for ``student``; each with what it lacked."""
    found = []
    for position, cell in enumerate(notebook.get("cells", [])):
        if not is_check(cell) or _errored(cell):
            continue
        printed, name = _stdout(cell), _cell_name(cell, position)
        # counted anywhere in the text: an answer's progress printed with end="" or "\r" shares the verdict's line
        verdicts = printed.count(PREFIXES[CORRECT])
        if verdicts != 1:
            found.append(f"{name} scored with {verdicts} verdicts")
        elif secret:
            calls = hidden_calls(_source(cell))
            if not calls:
                found.append(f"{name} scored, but its hidden test cannot be found in it")
            elif any(f"{GRADED}{grading_code(secret, label, seed, student)}" not in printed for label, seed in calls):
                found.append(f"{name} scored without the grading code of its hidden test")
    return found


def suspicious_cells(notebook: dict, released: dict | None = None) -> list[str]:
    """The cells a student writes (not locked) whose code matches SUSPICIOUS, each with what it matched. Lines of
    the ``released`` notebook (the Colab cell's own `sys.modules`, say) are not the student's and are not read:
    autograde keeps no grade id for a cell yours to change, so they are matched by their text."""
    given = {line for cell in (released or {}).get("cells", []) for line in _source(cell).splitlines()}
    found = []
    for position, cell in enumerate(notebook.get("cells", [])):
        if cell.get("cell_type") != "code" or is_locked(cell):
            continue
        source = _without_comments("\n".join(line for line in _source(cell).splitlines() if line not in given))
        reasons = [reason for reason, pattern in SUSPICIOUS.items() if pattern.search(source)]
        if reasons:
            found.append(f"{_cell_name(cell, position)}: {', '.join(reasons)}")
    return found


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # nbgrader wrote it: unreadable only if something else broke it
        return None


def autograded(course: Path, assignment: str | None = None) -> list[tuple[str, str, dict, dict | None]]:
    """(student id, assignment, notebook, its release) of each autograded notebook that can be read."""
    notebooks = []
    for path in sorted((course / "autograded").glob(f"*/{assignment or '*'}/*.ipynb")):
        notebook = _read(path)
        if notebook is not None:
            released = _read(course / "release" / path.parent.name / path.name)
            notebooks.append((path.parent.parent.name, path.parent.name, notebook, released))
    return notebooks


def warnings(course: Path, assignment: str | None = None) -> list[str]:
    """The two warnings (see the module's docstring), each only when it names someone."""
    unverified, suspicious, coded = [], [], False
    secret = os.environ.get("FMNIST_LAB_SECRET", "")
    for student, name, notebook, released in autograded(course, assignment):
        coded = coded or any(GRADED in _stdout(cell) for cell in notebook.get("cells", []) if is_check(cell))
        where = student if assignment else f"{student} ({name})"
        if found := unverified_checks(notebook, secret, student):
            unverified.append(f"{where}: {'; '.join(found)}")
        if found := suspicious_cells(notebook, released):
            suspicious.append(f"{where}: {'; '.join(found)}")
    texts = []
    if coded and not secret:  # a clean run would look like codes checked (helper 113)
        texts.append(
            "NOTE: these notebooks were autograded under a course secret, but FMNIST_LAB_SECRET is not set now, so "
            "their grading codes were not checked: export the phrase autograde had and run this again."
        )
    if unverified:
        texts.append(
            "WARNING: these check cells were scored without printing what an honest check prints (its visible "
            'verdict once, starting with "Correct:", and under the course\'s secret the grading code of its hidden '
            "call), so they may not have run as released: "
            f"{' | '.join(unverified)}. Read those students' own cells (the cells yours to change included) in "
            f"{course / 'autograded'}/, and score the checks by hand in Formgrader if they were tampered with. "
            "(A cell without its grading code also shows an autograde run without FMNIST_LAB_SECRET set, or with "
            "another phrase: grade it again with the phrase.)"
        )
    if suspicious:
        texts.append(
            "WARNING: code in these students' own cells does what no answer needs, and could make a check score "
            f"an answer that is not right: {' | '.join(suspicious)}. Read those cells before you trust the scores "
            "(a reason to look, not proof)."
        )
    return texts


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    for text in warnings(Path(argv[0]), argv[1] if len(argv) == 2 else None):
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
