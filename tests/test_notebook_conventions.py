"""COURSE.md §6: committed notebooks keep outputs only in cells tagged nbval-check-output."""
import copy
import itertools
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("nbtool", ROOT / "tools" / "notebooks.py")
nbtool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(nbtool)

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


_CELL_IDS = itertools.count()


def _cell(source, outputs=(), count=None, tags=()):
    # nbformat 4.5 cells carry a unique id, as the course's notebooks do
    return {"id": f"cell-{next(_CELL_IDS)}", "cell_type": "code", "source": source,
            "metadata": {"tags": list(tags)} if tags else {}, "outputs": list(outputs), "execution_count": count}


STREAM = {"output_type": "stream", "name": "stdout", "text": "42\n"}


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no notebooks"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_notebook_follows_convention(path):
    assert nbtool.problems(nbtool.load(path), path.name) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_notebook_is_clean(path):
    nb = nbtool.load(path)
    assert nbtool.clean(copy.deepcopy(nb)) == nb, "run `make clean-notebooks`"


def test_clean_strips_untagged_and_keeps_tagged():
    nb = {"cells": [_cell("print(42)", [STREAM], 3),
                    _cell("print(42)", [STREAM], 4, tags=["nbval-check-output"]),
                    {"cell_type": "markdown", "source": "# hi", "metadata": {}}],
          "metadata": {"widgets": {"state": {}}}, "nbformat": 4, "nbformat_minor": 5}
    cleaned = nbtool.clean(copy.deepcopy(nb))
    assert cleaned["cells"][0]["outputs"] == [] and cleaned["cells"][0]["execution_count"] is None
    assert cleaned["cells"][1]["outputs"] == [STREAM] and cleaned["cells"][1]["execution_count"] == 4
    assert "widgets" not in cleaned["metadata"]
    assert nbtool.problems(cleaned, "nb") == []


def test_problems_are_reported():
    nb = {"cells": [_cell("print(42)", [STREAM], 1),
                    _cell("x = 1", tags=["nbval-check-output"]),
                    _cell("DataLoader(ds, num_workers=2)"),
                    _cell("plot()", [{"output_type": "display_data", "data": {"image/png": "AAA"}, "metadata": {}}], 2,
                          tags=["nbval-check-output"])],
          "metadata": {}}
    found = "\n".join(nbtool.problems(nb, "nb"))
    assert "cell 0: stored output" in found
    assert "cell 1: tagged nbval-check-output but has no stored output" in found
    assert "cell 2: num_workers" in found
    assert "cell 3: stores a figure" in found


def test_check_command_exit_code(tmp_path, capsys):
    bad = tmp_path / "bad.ipynb"
    bad.write_text(json.dumps({"cells": [_cell("1", [STREAM], 1)], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    assert nbtool.main(["check", str(tmp_path)]) == 1
    assert nbtool.main(["clean", str(bad)]) == 0
    assert nbtool.main(["check", str(bad)]) == 0


def test_execute_course_writes_executed_notebook_and_html(tmp_path):
    """`make course`: every notebook under SRC executed into DEST as .ipynb (with outputs) and .html."""
    src = tmp_path / "src"
    src.mkdir()
    nb = {"cells": [_cell("import os\nprint('budget', os.environ.get('SEGTUTOR_BUDGET'))"), _cell("print(6 * 7)")],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    (src / "tiny.ipynb").write_text(json.dumps(nb))
    broken = copy.deepcopy(nb)
    broken["cells"][1]["source"] = "raise RuntimeError('boom')"
    (src / "broken.ipynb").write_text(json.dumps(broken))
    dest = tmp_path / "course"
    assert nbtool.execute_course(src, dest) == 1          # one notebook failed: reported, the other still built
    executed = json.loads((dest / "tiny.ipynb").read_text())
    assert "".join(executed["cells"][1]["outputs"][0]["text"]) == "42\n"
    assert "42" in (dest / "tiny.html").read_text()
    assert not (dest / "broken.ipynb").exists()


def test_one_problems_report_covers_outputs_and_exercise_metadata():
    """tools/notebooks.py and tools/assignments.py share ONE problems(): each rule set is reported by both."""
    from tools import assignments  # importable: loading tools/notebooks.py put the repository root on sys.path

    nb = nbtool.load(ROOT / "tests" / "fixtures" / "assignment_demo.ipynb")
    assert nbtool.problems(nb, "demo.ipynb") == []
    check = next(c for c in nb["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("grade"))
    check["metadata"]["nbgrader"]["locked"] = False            # an exercise-metadata rule
    nb["cells"].append(_cell("print(42)", [STREAM], 7))         # an output-convention rule
    for report in (nbtool.problems, assignments.problems):
        found = "\n".join(report(nb, "demo.ipynb"))
        assert "must be locked" in found and "stored output or execution_count without" in found, found
