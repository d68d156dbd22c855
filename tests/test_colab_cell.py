"""Every notebook opens on Colab: an "Open in Colab" badge and a first code cell that installs the course.

The cell (README, "Colab") is the same in every notebook, does nothing where segtutor is importable (a
`make lab` or `make test` install, the test suite's PYTHONPATH), and elsewhere installs segtutor from its
repository with pip and imports it — also when a clone of the repository in the working directory has put a
namespace package named ``segtutor`` in the way, which is what broke README's old Colab recipe.

``test_setup_cell_in_a_colab_like_kernel`` runs it in a real kernel that imitates Colab: a new virtual
environment that sees this environment's packages (torch, Jupyter, ...) but not segtutor, the repository
copied into the working directory as ``segtutor/``, and ``SEGTUTOR_INSTALL_URL`` pointing pip at that copy
instead of GitHub.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import tomllib
import venv
from pathlib import Path

import pytest

from registry import require_pypi

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.ipynb"))
REPOSITORY = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def setup_cell(path: Path) -> dict:
    return next(c for c in _cells(path) if c["cell_type"] == "code")


SETUP = _source(setup_cell(NOTEBOOKS[0]))


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 8


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_first_code_cell_is_the_setup_cell(path):
    cell = setup_cell(path)
    assert _source(cell) == SETUP, (
        f"{path.name}: the first code cell differs from {NOTEBOOKS[0].name}'s; every notebook starts with the same "
        "Colab setup cell (copy it from there)")
    assert not cell.get("outputs") and cell.get("execution_count") is None and not cell.get("metadata", {}).get("tags")


def test_setup_cell_names_the_repository_of_pyproject():
    assert f'SEGTUTOR_REPOSITORY = "{REPOSITORY}"' in SETUP
    assert 'os.environ.get("SEGTUTOR_INSTALL_URL")' in SETUP
    assert REPOSITORY in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_first_markdown_cell_has_the_colab_badge(path):
    first = _cells(path)[0]
    assert first["cell_type"] == "markdown"
    slug = REPOSITORY.removeprefix("https://github.com/")
    link = f"https://colab.research.google.com/github/{slug}/blob/main/notebooks/{path.name}"
    assert re.search(r"\[!\[Open In Colab\]\([^)]*colab-badge\.svg\)\]\(" + re.escape(link) + r"\)", _source(first)), \
        f"{path.name}: its first markdown cell needs the badge [![Open In Colab](...colab-badge.svg)]({link})"


def test_setup_cell_does_nothing_where_segtutor_is_installed(monkeypatch):
    """Here (pytest, make lab) segtutor is importable: no output, no pip, the same module afterwards."""
    import segtutor

    def no_pip(*args, **kwargs):
        raise AssertionError(f"the setup cell ran {args} although segtutor is importable")

    monkeypatch.setattr(subprocess, "run", no_pip)
    out = io.StringIO()
    namespace: dict = {}
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        exec(SETUP, namespace)
    assert out.getvalue() == ""
    assert namespace["segtutor"] is segtutor


def _colab_like_venv(where: Path) -> Path:
    """A new venv that sees this environment's site-packages (torch, Jupyter, pip, ...) except segtutor.

    Colab's Python has torch and Jupyter preinstalled; linking them in instead of installing them keeps this
    test fast. Packages pip installs go into the new venv only (pip never removes what lies outside it).
    """
    env_dir = where / "venv"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(env_dir)
    python = env_dir / "bin" / "python"
    purelib = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                  check=True, capture_output=True, text=True).stdout.strip())
    farm = where / "preinstalled"
    farm.mkdir()
    here = Path(sysconfig.get_path("purelib"))
    for entry in here.iterdir():
        name = entry.name.lower()
        if name.startswith(("segtutor", "__editable__", "__editable___")) or name.endswith(".pth"):
            continue
        (farm / entry.name).symlink_to(entry)
    (purelib / "preinstalled.pth").write_text(f"{farm}\n")
    return python


def _copy_repository(dest: Path) -> None:
    """The working tree (tracked and untracked-but-not-ignored files), as `git clone` of it would give."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                                check=True, capture_output=True, text=True).stdout.split("\0")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("needs a git checkout of the repository to copy")
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


KERNEL_SCRIPT = textwrap.dedent("""
    import json, sys
    import nbformat
    from nbclient import NotebookClient
    cells = json.load(open(sys.argv[1]))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": sys.argv[2]}}).execute()
    print(json.dumps([[o.get("text", "") for o in c.outputs if o.get("output_type") == "stream"] for c in nb.cells]))
""")

BEFORE = """
import segtutor  # what README's old recipe ran into: the clone, a folder without __init__.py, imported as a namespace
print("namespace package:", getattr(segtutor, "__file__", None) is None)
"""

AFTER = """
import importlib.metadata, json
import segtutor
from segtutor import checks, runtime, viz
from segtutor.data import SyntheticShapes
print("imported:", segtutor.__file__)
print("budget:", runtime.budget().name)
print("dists:", json.dumps(sorted({(d.metadata["Name"].lower(), d.version) for d in importlib.metadata.distributions()})))
"""

DISTS = "import importlib.metadata, json; print(json.dumps(sorted({(d.metadata['Name'].lower(), d.version) " \
        "for d in importlib.metadata.distributions()})))"


@pytest.mark.slow
def test_setup_cell_in_a_colab_like_kernel(tmp_path):
    pytest.importorskip("nbclient")
    require_pypi()  # pip builds the course in an isolated build environment: setuptools comes from PyPI
    python = _colab_like_venv(tmp_path)
    workdir = tmp_path / "content"  # Colab's working directory, with the repository cloned into it
    (workdir / "segtutor").mkdir(parents=True)
    _copy_repository(workdir / "segtutor")
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    env.update(SEGTUTOR_INSTALL_URL=str(workdir / "segtutor"), SEGTUTOR_BUDGET="ci", PIP_DISABLE_PIP_VERSION_CHECK="1")

    before = json.loads(subprocess.run([str(python), "-c", DISTS], cwd=tmp_path, env=env, check=True,
                                       capture_output=True, text=True).stdout)
    assert "segtutor" not in {name for name, _ in before}

    cells_file = tmp_path / "cells.json"
    cells_file.write_text(json.dumps([BEFORE, SETUP, AFTER]))
    (tmp_path / "kernel.py").write_text(KERNEL_SCRIPT)
    run = subprocess.run([str(python), str(tmp_path / "kernel.py"), str(cells_file), str(workdir)], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    outputs = ["".join(texts) for texts in json.loads(run.stdout.strip().splitlines()[-1])]

    assert outputs[0].strip() == "namespace package: True"
    assert outputs[1].strip() == f"installing segtutor from {workdir / 'segtutor'}"
    lines = dict(line.split(": ", 1) for line in outputs[2].strip().splitlines())
    installed = Path(lines["imported"])
    assert installed.parent.name == "segtutor" and (tmp_path / "venv") in installed.parents, \
        f"segtutor came from {installed}, not from the install into the new environment"
    assert lines["budget"] == "ci"
    after = {tuple(d) for d in json.loads(lines["dists"])}
    added_or_changed = after - {tuple(d) for d in before}
    assert {name for name, _ in added_or_changed} == {"segtutor"}, \
        f"installing the course changed preinstalled packages: {sorted(added_or_changed)}"
    assert {tuple(d) for d in before} <= after
