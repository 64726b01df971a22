"""environment.yml (conda) must list what pyproject.toml (pip) asks for; the wheel pip builds holds the
package and its licence."""

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
CONDA_NAMES = {"torch": "pytorch"}  # pip name -> conda-forge name where they differ


def split(requirement: str) -> tuple[str, str]:
    name, spec = re.match(r"([A-Za-z0-9_.-]+)\s*(.*)", requirement).groups()
    return name.lower(), spec.replace(" ", "")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [r for group in project["optional-dependencies"].values() for r in group]
    wanted = dict(split(r) for r in project["dependencies"] + extras)
    conda = {}
    for line in (ROOT / "environment.yml").read_text().split("dependencies:")[1].splitlines():
        m = re.match(r"\s*-\s+([A-Za-z0-9_.-]+)\s*([<>=!~][^#\s]*)?\s*$", line)
        if m and m.group(1) not in {"pip", "python"}:
            conda[m.group(1).lower()] = m.group(2) or ""
    expected = {CONDA_NAMES.get(name, name): spec for name, spec in wanted.items()}
    assert conda == expected


def test_python_version_matches():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert f"python{project['requires-python']}" in (ROOT / "environment.yml").read_text()


def test_the_wheel_holds_every_module_the_kernel_source_and_the_licence(tmp_path):
    """The wheel pip builds (on Colab, from the repository): a module or subpackage missing from it works in the
    editable checkout but not there. Built from a copy of what it needs, so the checkout gets no build files."""
    source = tmp_path / "source"
    shutil.copytree(ROOT / "fmnist_lab", source / "fmnist_lab", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation", "-w", tmp_path, source],
        capture_output=True,
        text=True,
        timeout=300,
    )
    said = build.stdout + build.stderr
    assert build.returncode == 0, said
    assert "SetuptoolsDeprecationWarning" not in said, said  # builds that setuptools will stop supporting
    (wheel,) = tmp_path.glob("fmnist_lab-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        info = metadata.rsplit("/", 1)[0]
        assert "License-Expression: MIT" in archive.read(metadata).decode().splitlines()
        assert archive.read(f"{info}/licenses/LICENSE").decode() == (ROOT / "LICENSE").read_text()
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "fmnist_lab").rglob("*.py")}
    assert modules <= names, f"not in the wheel: {sorted(modules - names)}"
    assert "fmnist_lab/fused_block.cpp" in names  # the fused kernel's source: built on the student's machine


def test_jupyterlab_is_an_extra_that_the_dev_install_still_gets():
    """Colab installs the core dependencies only, so JupyterLab must not be one of them."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = lambda requirements: {split(r)[0] for r in requirements}  # noqa: E731
    assert "jupyterlab" not in names(project["dependencies"])
    assert "jupyterlab" in names(project["optional-dependencies"]["lab"])
    assert "jupyterlab" in names(project["optional-dependencies"]["dev"])  # `make setup` installs .[dev]
