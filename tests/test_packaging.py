"""What pyproject.toml, constraints.txt and the environment files promise is true (README, "Installing")."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]

# Packages that only the lab or the test suite needs; none may be a requirement of the package itself.
JUPYTER_AND_TEST = ("jupyterlab", "ipywidgets", "nbval", "notebook", "ipykernel", "pytest", "playwright", "nbconvert")


def _name(requirement: str) -> str:
    from packaging.requirements import Requirement
    return Requirement(requirement).name.lower()


def test_jupyter_and_test_packages_are_extras_not_requirements():
    required = {_name(r) for r in PROJECT["dependencies"]}
    assert not required & set(JUPYTER_AND_TEST), f"move {sorted(required & set(JUPYTER_AND_TEST))} into an extra"
    extras = PROJECT["optional-dependencies"]
    assert {_name(r) for r in extras["lab"]} >= {"jupyterlab", "ipywidgets"}
    assert "segtutor[lab]" in extras["dev"] and {_name(r) for r in extras["dev"]} >= {"pytest", "nbval"}


def test_make_installs_the_extras_it_needs():
    makefile = (ROOT / "Makefile").read_text()
    assert '-e ".[lab,dev,classroom]"' in makefile


BLOCKED = ("ipywidgets", "jupyterlab", "jupyter_server", "nbval", "IPython", "ipykernel", "notebook", "pytest")

WITHOUT_JUPYTER = textwrap.dedent(f"""
    import sys
    for name in {BLOCKED!r}:
        sys.modules[name] = None  # `import name` now raises ImportError, as if it were not installed
    import segtutor
    from segtutor import checks, losses, metrics, runtime, train, viz
    from segtutor.data import SyntheticShapes
    from segtutor.models import build_model
    data = SyntheticShapes(8, image_size=32, num_classes=4, seed=0)
    history = train.fit(build_model("fcn8s", num_classes=4, width=4), data, data, epochs=1, batch_size=4,
                        device="cpu", progress=True)
    print("trained", len(history), "epoch")
    loaded = sorted(m for m in {BLOCKED!r} if sys.modules.get(m) is not None)
    print("loaded", loaded)
""")


@pytest.mark.slow
def test_package_imports_and_trains_without_jupyter():
    run = subprocess.run([sys.executable, "-c", WITHOUT_JUPYTER], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "trained 1 epoch" in run.stdout and "loaded []" in run.stdout, run.stdout
