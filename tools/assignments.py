#!/usr/bin/env python3
"""Hand the course out as nbgrader assignments (COURSE.md §5; the instructor's guide is docs/INSTRUCTORS.md).

    python tools/assignments.py validate [PATH ...]      lint the exercise metadata of notebooks (exit 1 on problems)
    python tools/assignments.py student  SRC DEST        student versions of every notebook under SRC, same file names
                                                         (`make assignments`: notebooks -> build/student)
    python tools/assignments.py course   SRC COURSE_DIR  an nbgrader course directory, one assignment per notebook,
                                                         released versions generated (`make nbgrader-course`)
    python tools/assignments.py scores   COURSE_DIR      every autograded score in the course's gradebook

The notebooks in `notebooks/` are nbgrader sources as they stand: an exercise cell holds its solution between
`### BEGIN SOLUTION` / `### END SOLUTION`, the locked check cell after it carries the points and may hide extra
asserts between `### BEGIN HIDDEN TESTS` / `### END HIDDEN TESTS`. Student versions come from nbgrader's own
preprocessors (ClearSolutions, ClearHiddenTests, ClearOutput, LockCells); nothing here rewrites cells by hand.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.notebooks import load, notebook_paths, problems, source, tags  # noqa: E402  (problems: the one report)

SCHEMA_VERSION = 3
#: Per-cell time limit of autograding, in seconds. The grading kernels train at the `ci` budget, where the
#: slowest training cell measured (01_fcn, two models) took 115 s, and over 120 s in a second run, on 2 cores
#: shared with other jobs (load 8). A limit a cell can hit silently breaks the cells after it, so the margin is
#: wide. A cell running longer (a student's infinite loop) is interrupted, scores zero, and grading goes on.
DEFAULT_TIMEOUT = 300
#: The training budget of the grading kernels (segtutor.runtime.budget).
DEFAULT_BUDGET = "ci"
COURSE_ID = "segtutor"

BEGIN_SOLUTION, END_SOLUTION = "BEGIN SOLUTION", "END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"
GRADE_ID = re.compile(r"^(ex|check)(\d{2})-[a-z0-9][a-z0-9-]*$")
NOTEBOOK_NUMBER = re.compile(r"^(\d{2})_")


# --------------------------------------------------------------------------------------------- validate


def _nbgrader(cell: dict[str, Any]) -> dict[str, Any] | None:
    meta = cell.get("metadata", {}).get("nbgrader")
    return meta if isinstance(meta, dict) else None


def _is_solution(cell: dict[str, Any]) -> bool:
    return bool((_nbgrader(cell) or {}).get("solution"))


def _is_check(cell: dict[str, Any]) -> bool:
    meta = _nbgrader(cell) or {}
    return bool(meta.get("grade")) and not meta.get("solution")


def _region_problems(text: str, begin: str, end: str) -> str | None:
    """Why the ``begin``/``end`` marker lines of ``text`` do not pair up, or None when they do."""
    inside = False
    for line in text.splitlines():
        if begin in line:
            if inside:
                return f"nested '{begin}'"
            inside = True
        elif end in line:
            if not inside:
                return f"'{end}' without '{begin}'"
            inside = False
    return f"'{begin}' without '{end}'" if inside else None


def exercise_problems(nb: dict[str, Any], name: str) -> list[str]:
    """Every way the exercise metadata of one notebook breaks COURSE.md §5, one line each.

    Part of ``tools.notebooks.problems`` (re-exported here as :func:`problems`), the one report of a
    notebook's problems. Cross-notebook uniqueness of grade ids is checked by :func:`validate`.
    """
    from nbformat import from_dict
    from nbgrader.nbgraderformat import MetadataValidator, ValidationError

    found: list[str] = []
    language = nb.get("metadata", {}).get("kernelspec", {}).get("language", "python")
    if language != "python":
        found.append(f"{name}: kernelspec language is {language!r}; nbgrader's stub is the Python one")
    number = NOTEBOOK_NUMBER.match(Path(name).name)
    cells = nb.get("cells", [])
    seen: dict[str, int] = {}
    for i, cell in enumerate(cells):
        where = f"{name} cell {i}"
        text = source(cell)
        meta = _nbgrader(cell)
        cell_tags = tags(cell)
        for begin, end, allowed, kind in ((BEGIN_SOLUTION, END_SOLUTION, _is_solution(cell), "solution"),
                                          (BEGIN_HIDDEN, END_HIDDEN, _is_check(cell), "check")):
            if begin not in text and end not in text:
                continue
            if not allowed:
                found.append(f"{where}: has '### {begin}' markers but is not a {kind} cell in its nbgrader metadata")
            broken = _region_problems(text, begin, end)
            if broken:
                found.append(f"{where}: {broken}")
        if "exercise" in cell_tags and not _is_solution(cell):
            found.append(f"{where}: tagged 'exercise' but its nbgrader metadata is not a solution cell")
        if "check" in cell_tags and not _is_check(cell):
            found.append(f"{where}: tagged 'check' but its nbgrader metadata is not a graded (grade: true) cell")
        if meta is None:
            continue
        if meta.get("schema_version") != SCHEMA_VERSION:
            found.append(f"{where}: nbgrader schema_version is {meta.get('schema_version')!r}, expected {SCHEMA_VERSION}")
            continue
        try:
            MetadataValidator().validate_cell(from_dict(cell))
        except ValidationError as exc:  # nbgrader's own rules; its message is the first line
            found.append(f"{where}: {str(exc).strip().splitlines()[0]}")
            continue
        if not (meta.get("grade") or meta.get("solution") or meta.get("locked")):
            continue
        grade_id = str(meta.get("grade_id", ""))
        if grade_id in seen:
            found.append(f"{where}: grade_id {grade_id!r} is also used by cell {seen[grade_id]}")
        seen.setdefault(grade_id, i)
        if meta.get("task"):
            found.append(f"{where}: task cells (manually graded) are not used by this course")
        if meta.get("grade"):
            points = meta.get("points")
            if isinstance(points, bool) or not isinstance(points, (int, float)) or not points > 0:
                found.append(f"{where}: graded cell {grade_id!r} needs positive 'points', got {points!r}")
        if meta.get("solution") and meta.get("grade"):
            found.append(f"{where}: {grade_id!r} is both solution and graded; put the answer and its check in two cells")
        if _is_solution(cell) or _is_check(cell):
            kind = "ex" if _is_solution(cell) else "check"
            match = GRADE_ID.match(grade_id)
            expected = f"{kind}{number.group(1) if number else 'NN'}-<name>"
            if match is None or match.group(1) != kind or (number and match.group(2) != number.group(1)):
                found.append(f"{where}: grade_id {grade_id!r} should read {expected!r} (lower case, digits, dashes)")
        if cell.get("cell_type") != "code":
            continue
        if _is_check(cell) and not meta.get("locked"):
            found.append(f"{where}: check cell {grade_id!r} must be locked (nbgrader 'locked': true)")
        if _is_solution(cell):
            if BEGIN_SOLUTION not in text:
                found.append(f"{where}: exercise {grade_id!r} has no '### {BEGIN_SOLUTION}' / '### {END_SOLUTION}' region")
            following = next((c for c in cells[i + 1:] if c.get("cell_type") == "code"), None)
            if following is None or not _is_check(following):
                found.append(f"{where}: exercise {grade_id!r} must be followed by a check cell (the next code cell, "
                             "nbgrader grade: true, locked)")
    return found


def validate(paths: Iterable[str | Path]) -> list[str]:
    """:func:`problems` of every notebook under ``paths`` (output convention and exercise metadata), plus grade
    ids used by more than one notebook."""
    found: list[str] = []
    owner: dict[str, str] = {}
    for path in notebook_paths([str(p) for p in paths]):
        nb = load(path)
        found.extend(problems(nb, str(path)))
        for cell in nb.get("cells", []):
            meta = _nbgrader(cell)
            if not meta or not (meta.get("grade") or meta.get("solution") or meta.get("locked")):
                continue
            grade_id = str(meta.get("grade_id", ""))
            if grade_id in owner and owner[grade_id] != str(path):
                found.append(f"{path}: grade_id {grade_id!r} is also used in {owner[grade_id]}; grade ids are course-wide")
            owner.setdefault(grade_id, str(path))
    return found


def _require_valid(paths: Iterable[str | Path]) -> list[Path]:
    paths = [Path(p) for p in paths]
    found = validate(paths)
    if found:
        raise SystemExit("exercise metadata problems (fix them first):\n  " + "\n  ".join(found))
    return notebook_paths([str(p) for p in paths])


# --------------------------------------------------------------------------------------------- student


def student_version(nb: dict[str, Any]) -> dict[str, Any]:
    """The student version of an instructor notebook, made by nbgrader's preprocessors.

    Solutions become nbgrader's stub (``# YOUR CODE HERE`` / ``raise NotImplementedError()``), hidden tests
    are removed, outputs and execution counts cleared, and check cells made read-only in JupyterLab.
    """
    import nbformat
    from nbgrader.preprocessors import ClearHiddenTests, ClearOutput, ClearSolutions, LockCells

    import json

    node = nbformat.reads(json.dumps(nb), as_version=4)  # joins list-of-lines sources, as nbgrader expects
    resources: dict[str, Any] = {}
    for preprocessor in (ClearSolutions(), ClearHiddenTests(), ClearOutput(), LockCells()):
        node, resources = preprocessor.preprocess(node, resources)
    return node


def write_notebook(nb: dict[str, Any], path: Path) -> None:
    import nbformat

    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.from_dict(nb), str(path))


def make_student(src: Path, dest: Path) -> list[Path]:
    """Write the student version of every notebook under ``src`` to ``dest`` under the same file name."""
    written = []
    for path in _require_valid([src]):
        out = dest / (path.relative_to(src) if src.is_dir() else path.name)
        write_notebook(student_version(load(path)), out)
        written.append(out)
    return written


# --------------------------------------------------------------------------------------------- course

CONFIG_TEMPLATE = '''\
"""nbgrader configuration of the {course_id} course, written by `tools/assignments.py course`
(`make nbgrader-course`), which keeps an existing file: edit it freely. Guide: docs/INSTRUCTORS.md."""
import os
import sys

c = get_config()  # noqa: F821 (nbgrader provides get_config)

c.CourseDirectory.course_id = "{course_id}"
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))

# Autograding runs every cell with this time limit in seconds. A cell that takes longer (a student's infinite
# loop) is interrupted and recorded as an error, so its check scores zero, and grading continues with the next
# cell. Training cells take seconds at the budget below; raise both together.
c.Execute.timeout = {timeout}
c.Execute.interrupt_on_timeout = True

# The grading kernels train at this segtutor budget (`ci`: small images, few epochs). Checks grade the
# exercises, not how well a model trained, so grading needs no more.
os.environ["SEGTUTOR_BUDGET"] = "{budget}"

# The grading kernels import segtutor from the checkout this course was made from, unless it is installed.
_SEGTUTOR_CHECKOUT = {root!r}
if os.path.isdir(os.path.join(_SEGTUTOR_CHECKOUT, "segtutor")):
    _paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if _SEGTUTOR_CHECKOUT not in _paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([_SEGTUTOR_CHECKOUT, *_paths])

# nbgrader runs the `alembic` command of its own environment for the gradebook: find it without an activated venv.
_BIN = os.path.dirname(sys.executable)
if _BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = os.pathsep.join([_BIN, os.environ.get("PATH", "")])

# JupyterHub with nbgrader's exchange (release_assignment / collect): set the shared exchange folder.
# c.Exchange.root = "/srv/nbgrader/exchange"
'''


def config_text(timeout: int = DEFAULT_TIMEOUT, budget: str = DEFAULT_BUDGET) -> str:
    """The ``nbgrader_config.py`` a new course directory gets."""
    from segtutor.runtime import BUDGETS

    if budget not in BUDGETS:
        raise ValueError(f"unknown budget {budget!r}; expected one of {', '.join(BUDGETS)}")
    if not isinstance(timeout, int) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return CONFIG_TEMPLATE.format(course_id=COURSE_ID, timeout=timeout, budget=budget, root=str(ROOT))


def nbgrader_env() -> dict[str, str]:
    """The environment for nbgrader subprocesses: this checkout importable by the grading kernels."""
    env = dict(os.environ)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(ROOT) not in paths:
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *paths])
    return env


def run_nbgrader(course_dir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run this environment's ``nbgrader`` with ``args`` inside ``course_dir`` (where its config lives)."""
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course_dir, env=nbgrader_env(),
                            capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed (exit {result.returncode}):\n{result.stdout}{result.stderr}")
    return result


def make_course(src: Path, course_dir: Path, *, timeout: int = DEFAULT_TIMEOUT, budget: str = DEFAULT_BUDGET,
                generate: bool = True) -> list[str]:
    """Turn every notebook under ``src`` into an nbgrader assignment of the course in ``course_dir``.

    Writes ``nbgrader_config.py`` (unless one exists), copies each notebook to
    ``source/<stem>/<stem>.ipynb`` and, with ``generate``, runs ``nbgrader generate_assignment`` for each,
    which records the assignment in ``gradebook.db`` and writes ``release/<stem>/<stem>.ipynb``.
    Returns the assignment names.
    """
    config = config_text(timeout, budget)
    paths = _require_valid([src])
    course_dir.mkdir(parents=True, exist_ok=True)
    config_path = course_dir / "nbgrader_config.py"
    if config_path.exists():
        print(f"kept existing {config_path}")
    else:
        config_path.write_text(config, encoding="utf-8")
    names = []
    for path in paths:
        name = path.stem
        if name in names:
            raise SystemExit(f"two notebooks named {path.name} under {src}; assignment names must be unique")
        target = course_dir / "source" / name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        names.append(name)
        if generate:
            run_nbgrader(course_dir, "generate_assignment", name, "--force")
            print(f"{name}: source/{name}/{path.name} -> release/{name}/{path.name}")
        else:
            print(f"{name}: source/{name}/{path.name}")
    return names


def scores(course_dir: Path) -> dict[str, dict[str, dict[str, float]]]:
    """Autograded points per student, assignment and check cell, read from the course's gradebook.

    ``scores(d)[student][assignment][grade_id]`` is the score of that check cell; ``[...]["total"]`` the
    assignment's total.
    """
    from nbgrader.api import Gradebook

    table: dict[str, dict[str, dict[str, float]]] = {}
    path = os.environ.get("PATH", "")
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), path])  # nbgrader runs `alembic`
    try:
        gradebook = Gradebook(f"sqlite:///{course_dir / 'gradebook.db'}", course_id=COURSE_ID)
    finally:
        os.environ["PATH"] = path
    with gradebook as gb:
        for assignment in gb.assignments:
            for submission in assignment.submissions:
                cells: dict[str, float] = {}
                for notebook in submission.notebooks:
                    for grade in notebook.grades:
                        cells[grade.name] = float(grade.score)
                cells["total"] = float(submission.score)
                table.setdefault(submission.student.id, {})[assignment.name] = cells
    return table


# --------------------------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_validate = sub.add_parser("validate", help="lint exercise metadata")
    p_validate.add_argument("paths", nargs="*", default=["notebooks"])
    p_student = sub.add_parser("student", help="write student versions")
    p_student.add_argument("src", type=Path)
    p_student.add_argument("dest", type=Path)
    p_course = sub.add_parser("course", help="create an nbgrader course directory")
    p_course.add_argument("src", type=Path)
    p_course.add_argument("course_dir", type=Path)
    p_course.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT, help="autograde seconds per cell")
    p_course.add_argument("--budget", default=DEFAULT_BUDGET, help="segtutor budget of the grading kernels")
    p_course.add_argument("--no-generate", action="store_true", help="only lay out source/, do not run nbgrader")
    p_scores = sub.add_parser("scores", help="print autograded scores")
    p_scores.add_argument("course_dir", type=Path)
    args = parser.parse_args(argv)

    if args.command == "validate":
        found = validate(args.paths)
        count = len(notebook_paths(args.paths))
        print("\n".join(found) if found else f"{count} notebooks: exercise metadata is consistent")
        return 1 if found else 0
    if args.command == "student":
        written = make_student(args.src, args.dest)
        print(f"{len(written)} student notebooks -> {args.dest}")
        return 0
    if args.command == "course":
        names = make_course(args.src, args.course_dir, timeout=args.timeout, budget=args.budget,
                            generate=not args.no_generate)
        print(f"{len(names)} assignments in {args.course_dir}")
        return 0
    table = scores(args.course_dir)
    for student_id in sorted(table):
        for assignment, cells in sorted(table[student_id].items()):
            detail = ", ".join(f"{k} {v:g}" for k, v in sorted(cells.items()) if k != "total")
            print(f"{student_id:>16}  {assignment:<24} {cells['total']:g}  ({detail})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
