"""The classroom flow of tools/assignments.py (docs/INSTRUCTORS.md): exercise metadata lint, student versions,
and a real nbgrader course — generate_assignment, submissions, autograde, feedback — on a fixture notebook and,
once the course has exercises, on one real course notebook."""
from __future__ import annotations

import copy
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import nbformat
import pytest

from tools import assignments
from tools.notebooks import source

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "assignment_demo.ipynb"
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").glob("*.ipynb"))
STUB = re.compile(r"^( *)# YOUR CODE HERE\n\1raise NotImplementedError\(\)$", re.MULTILINE)  # nbgrader's, indented
MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION", "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def meta(cell: dict[str, Any]) -> dict[str, Any]:
    return cell.get("metadata", {}).get("nbgrader", {})


def region(text: str, begin: str, end: str) -> list[str]:
    """The non-blank lines strictly between ``begin`` and ``end`` marker lines."""
    lines, inside = [], False
    for line in text.splitlines():
        if begin in line:
            inside = True
        elif end in line:
            inside = False
        elif inside and line.strip():
            lines.append(line.strip())
    return lines


def points(nb: dict[str, Any]) -> dict[str, float]:
    """grade_id -> points of every check cell, read straight from the notebook metadata (the oracle)."""
    return {meta(c)["grade_id"]: float(meta(c)["points"]) for c in nb["cells"] if meta(c).get("grade")}


def has_exercises(path: Path) -> bool:
    return any(meta(c).get("solution") for c in load(path)["cells"])


# ------------------------------------------------------------------------------------------ validate


@pytest.mark.parametrize("path", NOTEBOOKS + [FIXTURE], ids=lambda p: p.name)
def test_notebook_exercise_metadata_is_valid(path: Path) -> None:
    assert assignments.problems(load(path), str(path)) == []


def test_grade_ids_are_unique_across_the_course() -> None:
    assert assignments.validate([ROOT / "notebooks"]) == []


def _cell(nb: dict[str, Any], grade_id: str) -> dict[str, Any]:
    return next(c for c in nb["cells"] if meta(c).get("grade_id") == grade_id)


def _drop_cell(nb: dict[str, Any], grade_id: str) -> None:
    nb["cells"].remove(_cell(nb, grade_id))


BREAKAGES: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "schema version": (lambda nb: meta(_cell(nb, "ex99-one-hot")).update(schema_version=2), "schema_version is 2"),
    "missing points": (lambda nb: meta(_cell(nb, "check99-one-hot")).pop("points"), "does not have points"),
    "zero points": (lambda nb: meta(_cell(nb, "check99-one-hot")).update(points=0), "needs positive 'points'"),
    "unlocked check": (lambda nb: meta(_cell(nb, "check99-binary-iou")).update(locked=False), "must be locked"),
    "duplicate id": (lambda nb: meta(_cell(nb, "check99-binary-iou")).update(grade_id="check99-one-hot"),
                     "'check99-one-hot' is also used by cell"),
    "no check after exercise": (lambda nb: _drop_cell(nb, "check99-pixel-accuracy"), "must be followed by a check cell"),
    "solution marker outside exercise": (
        lambda nb: _cell(nb, "check99-one-hot").update(source="### BEGIN SOLUTION\nx = 1\n### END SOLUTION"),
        "is not a solution cell"),
    "unclosed hidden tests": (
        lambda nb: _cell(nb, "check99-one-hot").update(source="check_one_hot(one_hot)\n### BEGIN HIDDEN TESTS\nx = 1"),
        "'BEGIN HIDDEN TESTS' without 'END HIDDEN TESTS'"),
    "exercise without solution region": (lambda nb: _cell(nb, "ex99-one-hot").update(source="one_hot = None"),
                                         "has no '### BEGIN SOLUTION'"),
    "grade id off convention": (lambda nb: meta(_cell(nb, "ex99-one-hot")).update(grade_id="ex2-one-hot"),
                                "should read 'exNN-<name>'"),
    "grade id nbgrader rejects": (lambda nb: meta(_cell(nb, "ex99-one-hot")).update(grade_id="Exercise 2"),
                                  "'Exercise 2' does not match"),
    "tag without metadata": (lambda nb: nb["cells"][1]["metadata"].update(tags=["exercise"]),
                             "tagged 'exercise' but its nbgrader metadata is not a solution cell"),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_validate_names_each_broken_rule(breakage: str) -> None:
    nb = load(FIXTURE)
    mutate, message = BREAKAGES[breakage]
    mutate(nb)
    found = assignments.problems(nb, "demo.ipynb")
    assert any(message in line for line in found), found


def test_validate_checks_the_notebook_number_in_grade_ids() -> None:
    found = assignments.problems(load(FIXTURE), "03_deeplab.ipynb")
    assert len(found) == 6 and all("should read 'ex03-<name>'" in line or "should read 'check03-<name>'" in line
                                   for line in found), found


def test_validate_finds_grade_ids_shared_between_notebooks(tmp_path: Path) -> None:
    shutil.copy(FIXTURE, tmp_path / "a.ipynb")
    shutil.copy(FIXTURE, tmp_path / "b.ipynb")
    found = assignments.validate([tmp_path])
    assert len(found) == 7 and all("grade ids are course-wide" in line for line in found), found


def test_student_and_course_refuse_broken_metadata(tmp_path: Path) -> None:
    nb = load(FIXTURE)
    meta(_cell(nb, "check99-one-hot")).update(locked=False)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "demo.ipynb").write_text(json.dumps(nb))
    with pytest.raises(SystemExit, match="must be locked"):
        assignments.make_student(tmp_path / "src", tmp_path / "student")
    with pytest.raises(SystemExit, match="must be locked"):
        assignments.make_course(tmp_path / "src", tmp_path / "course", generate=False)
    assert not (tmp_path / "student").exists() and not (tmp_path / "course").exists()


# ------------------------------------------------------------------------------------------ student versions


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for path in NOTEBOOKS + [FIXTURE]:
        shutil.copy(path, src / path.name)
    dest = tmp_path_factory.mktemp("student")
    assert assignments.main(["student", str(src), str(dest)]) == 0
    return dest


def test_student_versions_keep_the_file_names(student_dir: Path) -> None:
    assert sorted(p.name for p in student_dir.iterdir()) == sorted(p.name for p in NOTEBOOKS + [FIXTURE])


@pytest.mark.parametrize("path", NOTEBOOKS + [FIXTURE], ids=lambda p: p.name)
def test_student_version_hides_solutions_and_hidden_tests(path: Path, student_dir: Path) -> None:
    original, student = load(path), load(student_dir / path.name)
    nbformat.validate(nbformat.from_dict(student))
    assert len(student["cells"]) == len(original["cells"])
    for before, after in zip(original["cells"], student["cells"]):
        text, out = source(before), source(after)
        assert after["cell_type"] == before["cell_type"]
        assert meta(after).get("grade_id") == meta(before).get("grade_id")
        assert not any(marker in out for marker in MARKERS)
        if after["cell_type"] == "code":
            assert after["outputs"] == [] and after["execution_count"] is None
        secret = region(text, "BEGIN SOLUTION", "END SOLUTION") + region(text, "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
        if secret:
            kept = {line.strip() for line in out.splitlines()}
            assert not kept & set(secret), f"{path.name}: {sorted(kept & set(secret))} leaked"
        if meta(before).get("solution"):
            assert STUB.search(out), out
            # everything outside the solution region (signature, docstring) is kept, in order
            assert STUB.sub("", out).split() == _outside_solution(text).split()
        elif meta(before).get("grade"):
            assert after["metadata"].get("editable") is False and after["metadata"].get("deletable") is False
            assert out.split() == _outside_hidden(text).split()
        else:
            assert out == text


def _outside_solution(text: str) -> str:
    keep, inside = [], False
    for line in text.splitlines():
        if "BEGIN SOLUTION" in line:
            inside = True
        elif "END SOLUTION" in line:
            inside = False
        elif not inside:
            keep.append(line)
    return "\n".join(keep)


def _outside_hidden(text: str) -> str:
    return _outside_solution(text.replace("BEGIN HIDDEN TESTS", "BEGIN SOLUTION").replace("END HIDDEN TESTS", "END SOLUTION"))


def test_student_version_of_the_fixture_really_changed(student_dir: Path) -> None:
    """The structural checks above are vacuous without exercises: the fixture must exercise every rule."""
    original, student = load(FIXTURE), load(student_dir / FIXTURE.name)
    exercises = [source(c) for c in student["cells"] if meta(c).get("solution")]
    assert len(exercises) == 3 and all(STUB.search(text) for text in exercises)
    hidden = source(_cell(original, "check99-one-hot"))
    assert "BEGIN HIDDEN TESTS" in hidden
    assert source(_cell(student, "check99-one-hot")).strip() == "check_one_hot(one_hot)"


def _run(nb: dict[str, Any], cwd: Path) -> dict[str, Any]:
    from nbclient import NotebookClient

    node = nbformat.reads(json.dumps(nb), as_version=4)
    NotebookClient(node, timeout=120, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(cwd)}}).execute()
    return node


def _errors(cell: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]


def _seconds(cell: dict[str, Any]) -> float:
    """How long nbclient took to run ``cell`` (from the timing it records in the cell metadata), else 0."""
    from datetime import datetime

    timing = cell.get("metadata", {}).get("execution", {})
    if "iopub.execute_input" not in timing or "shell.execute_reply" not in timing:
        return 0.0
    start, end = (datetime.fromisoformat(timing[k].replace("Z", "+00:00"))
                  for k in ("iopub.execute_input", "shell.execute_reply"))
    return (end - start).total_seconds()


def _stdout(cell: dict[str, Any]) -> str:
    texts = [o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream"]
    return "".join("".join(t) if isinstance(t, list) else t for t in texts)


def test_student_notebook_runs_until_the_first_unfinished_exercise(student_dir: Path) -> None:
    ran = _run(load(student_dir / FIXTURE.name), student_dir)
    cells = ran["cells"]
    failing = [i for i, c in enumerate(cells) if _errors(c)]
    checks_at = [i for i, c in enumerate(cells) if meta(c).get("grade")]
    # only the three check cells fail — the first one is the first thing that fails, with a clear message
    assert failing == checks_at
    first = _errors(cells[failing[0]])[0]
    assert first["ename"] == "CheckFailed"
    assert "pixel_accuracy: not right yet" in first["evalue"]
    assert "NotImplementedError" in first["evalue"] and "hint:" in first["evalue"]
    # the cells after exercise 2 fall back to the reference, say so, and the training cell runs on it
    fallback = next(c for c in cells if "solution_or_reference" in source(c))
    note = _stdout(fallback)
    assert "one_hot: not right yet" in note and "reference `one_hot`" in note, note
    training = next(c for c in cells if "budget()" in source(c))
    assert "steps: loss" in _stdout(training) and not _errors(training)


# ------------------------------------------------------------------------------------------ nbgrader course flow

ASSIGNMENT = FIXTURE.stem
#: A small per-cell timeout keeps the infinite-loop submission quick; the slowest fixture cell (import torch,
#: the training cell) takes about 1-2 s on 2 busy cores.
FIXTURE_TIMEOUT = 10


def submission(release: dict[str, Any], answers: dict[str, str], replace: dict[str, str] | None = None) -> dict[str, Any]:
    """A student's copy of the released notebook with ``answers`` typed into the exercise cells (by grade_id);
    ``replace`` edits any other cell by grade_id (a student tampering with locked cells)."""
    nb = copy.deepcopy(release)
    edits = {**answers, **(replace or {})}
    for cell in nb["cells"]:
        grade_id = meta(cell).get("grade_id")
        if grade_id in edits:
            cell["source"] = edits[grade_id]
    assert set(edits) <= {meta(c).get("grade_id") for c in nb["cells"]}
    return nb


def solutions(nb: dict[str, Any]) -> dict[str, str]:
    """The instructor's exercise cells by grade_id, markers removed (as a student would type them)."""
    return {meta(c)["grade_id"]: "\n".join(line for line in source(c).splitlines() if "SOLUTION" not in line)
            for c in nb["cells"] if meta(c).get("solution")}


def submit(course: Path, student: str, assignment: str, nb: dict[str, Any], name: str) -> None:
    folder = course / "submitted" / student / assignment
    folder.mkdir(parents=True)
    nbformat.write(nbformat.from_dict(nb), str(folder / name))
    (folder / "timestamp.txt").write_text("2026-11-24 12:00:00.000000 UTC")


WRONG_IOU = "def binary_iou(a, b):\n    return ((a & b).sum() / (a.sum() + b.sum())).item()\n"
HIDDEN_ONLY_ONE_HOT = ("def one_hot(mask, num_classes):\n"
                       "    return F.one_hot(mask).permute(0, 3, 1, 2).float()  # ignores num_classes\n")
LOOP_ACCURACY = "def pixel_accuracy(pred, target):\n    while True:\n        pass\n"
TAMPERED_CHECKS = source(_cell(load(FIXTURE), "demo-checks")) + "\n\ncheck_binary_iou = print\n"
RAISE_ONE_HOT = "def one_hot(mask, num_classes):\n    raise ValueError('student bug')\n"


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One course, five submissions, one `nbgrader autograde` and one `generate_feedback` run."""
    src = tmp_path_factory.mktemp("src")
    shutil.copy(FIXTURE, src / FIXTURE.name)
    course = tmp_path_factory.mktemp("course")
    start = time.perf_counter()
    assert assignments.main(["course", str(src), str(course), "--timeout", str(FIXTURE_TIMEOUT)]) == 0
    release = load(course / "release" / ASSIGNMENT / FIXTURE.name)
    answers = solutions(load(FIXTURE))
    students = {
        "instructor": submission(release, answers),
        "unmodified": release,
        # exercise 3 wrong, and its check cell and check function blanked: autograde restores locked cells
        "wrong_iou": submission(release, {**answers, "ex99-binary-iou": WRONG_IOU},
                                {"check99-binary-iou": "pass", "demo-checks": TAMPERED_CHECKS}),
        "hidden_only": submission(release, {**answers, "ex99-one-hot": HIDDEN_ONLY_ONE_HOT}),
        "loop_and_raise": submission(release, {**answers, "ex99-pixel-accuracy": LOOP_ACCURACY,
                                               "ex99-one-hot": RAISE_ONE_HOT}),
    }
    for student, nb in students.items():
        submit(course, student, ASSIGNMENT, nb, FIXTURE.name)
    autograde = assignments.run_nbgrader(course, "autograde", ASSIGNMENT, "--force")
    feedback = assignments.run_nbgrader(course, "generate_feedback", ASSIGNMENT, "--force")
    seconds = time.perf_counter() - start
    print(f"\nfixture course flow: generate + autograde of {len(students)} submissions + feedback in {seconds:.1f} s")
    return {"course": course, "release": release, "scores": assignments.scores(course), "log": autograde.stderr,
            "feedback": feedback, "students": students}


def autograded(graded: dict[str, Any], student: str) -> dict[str, Any]:
    return load(graded["course"] / "autograded" / student / ASSIGNMENT / FIXTURE.name)


def test_release_is_the_student_version(graded: dict[str, Any], student_dir: Path) -> None:
    release, student = graded["release"], load(student_dir / FIXTURE.name)
    assert [source(c) for c in release["cells"]] == [source(c) for c in student["cells"]]
    assert (graded["course"] / "source" / ASSIGNMENT / FIXTURE.name).read_bytes() == FIXTURE.read_bytes()
    config = (graded["course"] / "nbgrader_config.py").read_text()
    assert f"c.Execute.timeout = {FIXTURE_TIMEOUT}" in config and 'SEGTUTOR_BUDGET"] = "ci"' in config


def test_instructor_solutions_score_full_marks(graded: dict[str, Any]) -> None:
    expected = points(load(FIXTURE))
    assert expected == {"check99-pixel-accuracy": 1, "check99-one-hot": 2, "check99-binary-iou": 3}
    assert graded["scores"]["instructor"][ASSIGNMENT] == {**expected, "total": 6}, graded["log"][-3000:]


def test_unmodified_student_version_scores_zero(graded: dict[str, Any]) -> None:
    assert graded["scores"]["unmodified"][ASSIGNMENT] == {gid: 0 for gid in [*points(load(FIXTURE)), "total"]}


def test_one_wrong_exercise_loses_exactly_its_points(graded: dict[str, Any]) -> None:
    assert graded["scores"]["wrong_iou"][ASSIGNMENT] == {
        "check99-pixel-accuracy": 1, "check99-one-hot": 2, "check99-binary-iou": 0, "total": 3}


def test_hidden_tests_are_graded_though_students_never_see_them(graded: dict[str, Any]) -> None:
    assert graded["scores"]["hidden_only"][ASSIGNMENT] == {
        "check99-pixel-accuracy": 1, "check99-one-hot": 0, "check99-binary-iou": 3, "total": 4}
    check = _cell(autograded(graded, "hidden_only"), "check99-one-hot")
    assert "one_hot: passed" in _stdout(check)  # the visible part passed ...
    assert "expected: shape (2, 4, 3, 3)" in _errors(check)[0]["evalue"]  # ... the hidden asserts did not


def test_infinite_loop_and_crash_do_not_stop_grading(graded: dict[str, Any]) -> None:
    assert graded["scores"]["loop_and_raise"][ASSIGNMENT] == {
        "check99-pixel-accuracy": 0, "check99-one-hot": 0, "check99-binary-iou": 3, "total": 3}
    nb = autograded(graded, "loop_and_raise")
    assert "CellTimeoutError" in {e["ename"] for e in _errors(_cell(nb, "check99-pixel-accuracy"))}
    assert "ValueError: student bug" in _errors(_cell(nb, "check99-one-hot"))[0]["evalue"]


def test_locked_cells_are_restored_before_grading(graded: dict[str, Any]) -> None:
    """`wrong_iou` blanked its check cell and redefined the check as `print`; the score above proves the
    restore, and the graded notebook shows the instructor's cells."""
    nb = autograded(graded, "wrong_iou")
    assert source(_cell(nb, "check99-binary-iou")) == source(_cell(load(FIXTURE), "check99-binary-iou"))
    assert source(_cell(nb, "demo-checks")) == source(_cell(load(FIXTURE), "demo-checks"))
    assert "binary_iou: not right yet" in _errors(_cell(nb, "check99-binary-iou"))[0]["evalue"]
    assert "BEGIN HIDDEN TESTS" in source(_cell(autograded(graded, "unmodified"), "check99-one-hot"))


def test_feedback_reports_the_score(graded: dict[str, Any]) -> None:
    html = (graded["course"] / "feedback" / "wrong_iou" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    assert "Score: 3.0 / 6.0" in html and "Score: 0.0 / 3.0" in html


# ------------------------------------------------------------------------------------------ one real notebook

#: The first course notebook with exercises, or the one named by SEGTUTOR_AUTOGRADE_NOTEBOOK (e.g. 03_deeplab.ipynb).
_CHOSEN = os.environ.get("SEGTUTOR_AUTOGRADE_NOTEBOOK")
REAL = (ROOT / "notebooks" / _CHOSEN) if _CHOSEN else next((p for p in NOTEBOOKS if has_exercises(p)), None)


@pytest.mark.slow
@pytest.mark.skipif(REAL is None, reason="notebooks/ has no exercises yet (no cell with nbgrader solution metadata)")
def test_real_course_notebook_autogrades(tmp_path: Path) -> None:
    """The course's first notebook with exercises, at the course's default per-cell timeout and `ci` budget:
    the instructor version scores full marks and the unmodified release scores zero on every check."""
    assert REAL is not None
    src, course = tmp_path / "src", tmp_path / "course"
    src.mkdir()
    shutil.copy(REAL, src / REAL.name)
    start = time.perf_counter()
    assert assignments.main(["course", str(src), str(course)]) == 0
    release = load(course / "release" / REAL.stem / REAL.name)
    submit(course, "instructor", REAL.stem, submission(release, solutions(load(REAL))), REAL.name)
    submit(course, "unmodified", REAL.stem, release, REAL.name)
    log = assignments.run_nbgrader(course, "autograde", REAL.stem, "--force").stderr
    table = assignments.scores(course)
    graded = [load(course / "autograded" / student / REAL.stem / REAL.name) for student in ("instructor", "unmodified")]
    slowest = max(_seconds(c) for nb in graded for c in nb["cells"])
    print(f"\n{REAL.name}: generate + autograde of 2 submissions in {time.perf_counter() - start:.1f} s, "
          f"slowest cell {slowest:.1f} s (per-cell timeout {assignments.DEFAULT_TIMEOUT} s)")
    # no cell of either run may hit the timeout: a training cell cut short breaks every cell that uses its result
    timed_out = [i for nb in graded for i, c in enumerate(nb["cells"])
                 if any(e.get("ename") == "CellTimeoutError" for e in _errors(c))]
    assert timed_out == [], f"cells {timed_out} hit the {assignments.DEFAULT_TIMEOUT} s autograde timeout"
    expected = points(load(REAL))
    assert table["instructor"][REAL.stem] == {**expected, "total": sum(expected.values())}, log[-3000:]
    assert table["unmodified"][REAL.stem] == {gid: 0 for gid in [*expected, "total"]}, log[-3000:]


def test_course_config_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="unknown budget 'laptop'"):
        assignments.config_text(budget="laptop")
    with pytest.raises(ValueError, match="positive number of seconds"):
        assignments.config_text(timeout=0)
    text = assignments.config_text()
    assert f"c.Execute.timeout = {assignments.DEFAULT_TIMEOUT}\n" in text and 'SEGTUTOR_BUDGET"] = "ci"' in text
