"""environment.yml (conda) must list what pyproject.toml (pip) asks for."""

import re
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


def test_every_subpackage_is_packaged():
    """A subpackage missing from [tool.setuptools] packages works in the editable checkout but not on Colab."""
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    found = sorted(".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "fmnist_lab").rglob("__init__.py"))
    assert sorted(packages) == found


def test_jupyterlab_is_an_extra_that_the_dev_install_still_gets():
    """Colab installs the core dependencies only, so JupyterLab must not be one of them."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = lambda requirements: {split(r)[0] for r in requirements}  # noqa: E731
    assert "jupyterlab" not in names(project["dependencies"])
    assert "jupyterlab" in names(project["optional-dependencies"]["lab"])
    assert "jupyterlab" in names(project["optional-dependencies"]["dev"])  # `make setup` installs .[dev]
