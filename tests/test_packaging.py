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


# --- requires-python is true: constraints.txt resolves on every Python version the project claims -------------

def _claimed_versions() -> list[str]:
    """The `Programming Language :: Python :: 3.X` classifiers; each must satisfy requires-python."""
    from packaging.specifiers import SpecifierSet
    versions = [c.rsplit(" :: ", 1)[1] for c in PROJECT.get("classifiers", [])
                if c.startswith("Programming Language :: Python :: 3.")]
    spec = SpecifierSet(PROJECT["requires-python"])
    assert versions and all(v in spec for v in versions), (versions, PROJECT["requires-python"])
    return versions


def _constraints_for(full_version: str, dest: Path) -> Path:
    """constraints.txt with its environment markers evaluated for Python ``full_version``.

    pip evaluates markers against the interpreter that runs it, even under ``--python-version``; doing it here
    tests the line a user on that version would get.
    """
    from packaging.markers import Marker
    env = {"python_version": ".".join(full_version.split(".")[:2]), "python_full_version": full_version}
    kept = []
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        requirement, _, marker = line.partition(";")
        if not requirement.strip() or requirement.lstrip().startswith("#"):
            continue
        if not marker.strip() or Marker(marker.strip()).evaluate(env):
            kept.append(requirement.strip())
    dest.write_text("\n".join(kept) + "\n")
    return dest


def test_claimed_versions_start_at_requires_python():
    lowest = PROJECT["requires-python"].removeprefix(">=")
    assert _claimed_versions()[0] == lowest, "the lowest version requires-python admits must be tested too"


def _all_requirements() -> list[str]:
    reqs = list(PROJECT["dependencies"])
    for extra in PROJECT["optional-dependencies"].values():
        reqs += [r for r in extra if _name(r) != "segtutor"]
    return reqs


def _torch_stub(where: Path) -> tuple[str, Path]:
    """A wheel named torch with the CPU build's own requirements and none of the CUDA build's.

    tools/install_torch.sh installs torch apart from constraints.txt (the CPU or the CUDA build); resolving
    PyPI's CUDA build here would only send pip backtracking through CUDA packages. Whether a real torch wheel
    exists for each version is checked on its own, below.
    """
    import importlib.metadata
    import zipfile
    version = importlib.metadata.version("torch").split("+")[0] + "+stub"
    meta = importlib.metadata.metadata("torch")
    lines = ["Metadata-Version: 2.1", "Name: torch", f"Version: {version}",
             f"Requires-Python: {meta['Requires-Python']}"]
    lines += [f"Requires-Dist: {r}" for r in importlib.metadata.requires("torch") or []
              if not _name(r).startswith(("nvidia", "cuda", "triton"))]
    dist = f"torch-{version}.dist-info"
    wheel = where / f"torch-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(f"{dist}/METADATA", "\n".join(lines) + "\n")
        z.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: segtutor-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{dist}/RECORD", "")
    return version, where


def _dry_run(python_version: str, args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
         "--python-version", python_version, "--only-binary=:all:", "--disable-pip-version-check", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_constraints_resolve_on_every_claimed_python(tmp_path):
    """`pip install -c constraints.txt` of every requirement and extra resolves on each claimed 3.X.

    Needs PyPI (skipped offline, fails in CI); about a minute on 2 busy cores, mostly pip's network round trips.
    """
    from concurrent.futures import ThreadPoolExecutor
    from registry import require_pypi
    pytest.importorskip("torch")
    require_pypi()
    stub_version, stub_dir = _torch_stub(tmp_path)
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("\n".join([*_all_requirements(), f"torch=={stub_version}"]) + "\n")
    torch_release = stub_version.split("+")[0]

    def check(version: str) -> list[str]:
        problems = []
        constraints = _constraints_for(version, tmp_path / f"constraints-{version}.txt")
        run = _dry_run(version, ["--find-links", str(stub_dir), "-c", str(constraints), "-r", str(reqs),
                                 "--report", str(tmp_path / f"report-{version}.json")])
        if run.returncode != 0:
            problems.append(f"Python {version}: constraints.txt does not resolve:\n{run.stderr[-1500:]}")
        wheel = _dry_run(version, ["--no-deps", f"torch=={torch_release}"])
        if wheel.returncode != 0:
            problems.append(f"Python {version}: no torch {torch_release} wheel:\n{wheel.stderr[-800:]}")
        return problems

    with ThreadPoolExecutor(max_workers=4) as pool:  # mostly waiting on the network
        # the oldest release of each claimed 3.X, and 3.11.5, where constraints.txt switches soupsieve release
        targets = sorted({f"{v}.0" for v in _claimed_versions()} | {"3.11.5"}, key=lambda v: tuple(map(int, v.split("."))))
        problems = [p for found in pool.map(check, targets) for p in found]
    assert not problems, "\n".join(problems)
    import json
    report = json.loads((tmp_path / f"report-{_claimed_versions()[0]}.0.json").read_text())
    pinned = {line.split("==")[0].lower().replace("_", "-") for line in (ROOT / "constraints.txt").read_text().splitlines()
              if "==" in line and not line.startswith("#")}
    resolved = {item["metadata"]["name"].lower().replace("_", "-") for item in report["install"]}
    assert "numpy" in resolved and len(resolved & pinned) > 50, sorted(resolved)


# --- license: an SPDX expression and the LICENSE file, as setuptools >= 77 wants them ---------------------------

def test_license_is_an_spdx_expression_with_its_file():
    assert PROJECT["license"] == "MIT" and PROJECT["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Copyright (c)" in text and "the segtutor authors" in text
    assert any(r.replace(" ", "").startswith("setuptools>=77") for r in PYPROJECT["build-system"]["requires"])


def test_built_metadata_carries_the_license_without_deprecation_warnings(tmp_path):
    """setuptools builds the wheel metadata from a copy of the project: License-Expression, License-File."""
    import shutil
    setuptools = pytest.importorskip("setuptools")
    from packaging.version import Version
    if Version(setuptools.__version__) < Version("77"):
        pytest.skip(f"needs setuptools >= 77 here, found {setuptools.__version__}")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "segtutor", tmp_path / "segtutor", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "meta"
    out.mkdir()
    run = subprocess.run([sys.executable, "-W", "always", "-c",
                          f"from setuptools import build_meta; print(build_meta.prepare_metadata_for_build_wheel({str(out)!r}))"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "deprecat" not in run.stderr.lower(), run.stderr[-2000:]
    metadata = (out / run.stdout.strip().splitlines()[-1] / "METADATA").read_text()
    assert "License-Expression: MIT" in metadata and "License-File: LICENSE" in metadata
    assert "Requires-Python: >=3.11" in metadata


# --- conda: environment.yml (CUDA / macOS) and environment-cpu.yml (no CUDA) agree with the rest --------------

ENV_FILES = {"default": ROOT / "environment.yml", "cpu": ROOT / "environment-cpu.yml"}


def _environment(path: Path) -> tuple[str, list[str], list[str]]:
    yaml = pytest.importorskip("yaml")
    env = yaml.safe_load(path.read_text())
    assert env["name"] == "segtutor" and "conda-forge" in env["channels"]
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    header = "".join(line for line in path.read_text().splitlines(keepends=True) if line.startswith("#"))
    return header, conda, pip


def _makefile_var(name: str) -> str:
    import re
    return re.search(rf"^{name}\s*\?=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M).group(1)


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        req = line.split(";")[0].strip()
        if "==" in req and not req.startswith("#"):
            name, version = req.split("==")
            pins.setdefault(name.lower().replace("_", "-"), version)
    return pins


@pytest.mark.parametrize("kind", ENV_FILES)
def test_environment_file_is_consistent(kind):
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet
    header, conda, pip = _environment(ENV_FILES[kind])
    python = next(d for d in conda if d.startswith("python="))
    assert python.removeprefix("python=") + ".99" in SpecifierSet(PROJECT["requires-python"]), python
    assert "pip" in conda and len(conda) == 2, f"conda installs only Python and pip, pip the rest: {conda}"
    assert "-c constraints.txt" in pip and "-e .[lab,dev,classroom]" in pip  # what `make install` installs
    torch = [Requirement(line) for line in pip if line.startswith("torch")]
    assert len(torch) == 1 and str(torch[0].specifier).startswith("==")
    version = str(torch[0].specifier).removeprefix("==")
    assert version.split("+")[0] == _makefile_var("TORCH_VERSION")
    pins = _pins()
    for line in pip:
        if line.startswith(("-", "torch")):
            continue
        req = Requirement(line)
        assert req.name.lower() in pins and pins[req.name.lower()] in req.specifier, (line, pins.get(req.name.lower()))
    assert "environment-cpu.yml" in header and "CPU" in header
    if kind == "cpu":
        assert version.endswith("+cpu"), "the CPU file must ask for the +cpu build, which no CUDA wheel can satisfy"
        assert "--extra-index-url https://download.pytorch.org/whl/cpu" in pip
    else:
        assert "+" not in version and not any("download.pytorch.org" in line for line in pip)


def test_readme_names_the_cpu_environment():
    assert "environment-cpu.yml" in (ROOT / "README.md").read_text()


# --- the browser test: skipped with one line on a machine without Chromium, failed in CI -----------------------

@pytest.mark.parametrize("ci", ["", "true"])
def test_browser_test_skips_here_and_fails_in_ci_without_chromium(ci, tmp_path):
    import os
    env = {**os.environ, "SEGTUTOR_CHROMIUM": str(tmp_path / "no-chromium"), "CI": ci}
    run = subprocess.run([sys.executable, "-m", "pytest", "tests/test_browser.py", "-q", "-p", "no:cacheprovider"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    out = run.stdout
    if ci:
        assert run.returncode == 1 and "CI=true: browser test needs" in out and " passed" not in out, out[-2000:]
    else:
        # 5: pytest collected nothing else; in `make test` the rest of the suite runs beside the skipped file
        assert run.returncode in (0, 5) and "1 skipped" in out and "failed" not in out, out[-2000:]
        reasons = [line for line in out.splitlines() if line.startswith("SKIPPED")]
        assert len(reasons) == 1 and "browser test needs" in reasons[0] and "no-chromium" in reasons[0], reasons


def test_ci_installs_chromium_when_missing():
    script = (ROOT / ".ci" / "run").read_text()
    assert "dpkg -s chromium fonts-dejavu-core" in script and "apt-get install -y -qq chromium fonts-dejavu-core" in script
    assert script.index("apt-get install") < script.index("make test")
