#!/usr/bin/env python3
"""Keep the course notebooks honest (COURSE.md §6).

    python tools/notebooks.py check   [PATH ...]   report cells that break the convention (exit 1 if any)
    python tools/notebooks.py clean   [PATH ...]   strip outputs/execution counts of every untagged cell
    python tools/notebooks.py refresh [PATH ...]   execute (at the ci budget), then store outputs of `nbval-check-output` cells only
    python tools/notebooks.py execute SRC DEST     execute every notebook under SRC at this machine's budget
                                                   into DEST as .ipynb and .html (`make course`)

Convention: notebooks are committed unexecuted, except cells tagged `nbval-check-output` whose output is a
deterministic part of the lesson; `pytest --nbval` compares those and only runs the others.

`problems()` is the one report of what is wrong with a notebook: the output convention above
(`output_problems`) and the exercise metadata of COURSE.md §5 (`tools.assignments.exercise_problems`);
`check` and `tools/assignments.py validate` both use it.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Iterable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TAG = "nbval-check-output"
VOLATILE_CELL_METADATA = ("execution", "scrolled", "collapsed", "ExecuteTime")
NUM_WORKERS = re.compile(r"num_workers\s*=\s*(?!0\b)")


def notebook_paths(paths: Iterable[str]) -> list[Path]:
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(p for p in sorted(path.rglob("*.ipynb")) if ".ipynb_checkpoints" not in p.parts)
        elif path.suffix == ".ipynb":
            found.append(path)
        else:
            raise SystemExit(f"not a notebook or folder: {raw}")
    return found


def load(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def dump(nb: dict[str, Any], path: Path) -> None:
    text = json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def tags(cell: dict[str, Any]) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def source(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def problems(nb: dict[str, Any], name: str) -> list[str]:
    """Every way ``nb`` breaks the course's notebook rules, one line each: the output convention
    (:func:`output_problems`), then the exercise metadata (``tools.assignments.exercise_problems``)."""
    from tools.assignments import exercise_problems  # imported here: tools.assignments imports this module

    return output_problems(nb, name) + exercise_problems(nb, name)


def output_problems(nb: dict[str, Any], name: str) -> list[str]:
    """Every way ``nb`` breaks the output convention (COURSE.md §6), one line each."""
    found = []
    if "widgets" in nb.get("metadata", {}):
        found.append(f"{name}: notebook metadata stores widget state; run `tools/notebooks.py clean`")
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        tagged = TAG in tags(cell)
        kept = bool(cell.get("outputs")) or cell.get("execution_count") is not None
        if kept and not tagged:
            found.append(f"{name} cell {i}: stored output or execution_count without the {TAG} tag")
        if tagged and not cell.get("outputs"):
            found.append(f"{name} cell {i}: tagged {TAG} but has no stored output to compare")
        if tagged and cell.get("execution_count") is None:
            found.append(f"{name} cell {i}: tagged {TAG} but its execution_count is null, so nbval ignores it")
        for out in cell.get("outputs", []):
            if "application/vnd.jupyter.widget-view+json" in out.get("data", {}) or "image/png" in out.get("data", {}):
                found.append(f"{name} cell {i}: stores a figure or widget view; such cells stay without output")
        if NUM_WORKERS.search(source(cell)):
            found.append(f"{name} cell {i}: num_workers must be 0 inside notebooks")
    return found


def clean(nb: dict[str, Any]) -> dict[str, Any]:
    """Strip what the convention does not keep; tagged cells keep their outputs."""
    nb.get("metadata", {}).pop("widgets", None)
    for cell in nb.get("cells", []):
        meta = cell.setdefault("metadata", {})
        for key in VOLATILE_CELL_METADATA:
            meta.pop(key, None)
        if cell.get("cell_type") != "code":
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
            continue
        if TAG not in tags(cell):
            cell["outputs"] = []
            cell["execution_count"] = None
    return nb


def _execute(nb: dict[str, Any], cwd: Path, timeout: int = 1800):
    """The executed notebook as an ``nbformat.NotebookNode`` (sources joined into strings, as nbclient and
    nbconvert expect; ``json.loads(nbformat.writes(node))`` gives the on-disk dict form)."""
    import nbformat
    from nbclient import NotebookClient

    node = nbformat.reads(json.dumps(nb), as_version=4)
    NotebookClient(node, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    return node


def refresh(path: Path) -> None:
    """Execute ``path`` and store fresh outputs for its tagged cells only.

    Runs at the ``ci`` budget unless SEGTUTOR_BUDGET says otherwise: tagged outputs must not depend on the
    budget anyway, and nothing is gained by training longer here.
    """
    os.environ.setdefault("SEGTUTOR_BUDGET", "ci")
    import nbformat

    original = load(path)
    executed = json.loads(nbformat.writes(_execute(load(path), path.parent)))
    for cell, ran in zip(original["cells"], executed["cells"]):
        if cell.get("cell_type") == "code" and TAG in tags(cell):
            cell["outputs"] = ran.get("outputs", [])
            cell["execution_count"] = ran.get("execution_count")
    # execution counts of tagged cells follow the order they ran in; renumber them 1..n for stable diffs
    n = 0
    for cell in original["cells"]:
        if cell.get("cell_type") == "code" and TAG in tags(cell):
            n += 1
            cell["execution_count"] = n
            for out in cell["outputs"]:
                if "execution_count" in out:
                    out["execution_count"] = n
    dump(clean(original), path)


def execute_course(src: Path, dest: Path) -> int:
    import nbformat
    from nbconvert import HTMLExporter

    dest.mkdir(parents=True, exist_ok=True)
    failures = 0
    for path in notebook_paths([str(src)]):
        start = time.perf_counter()
        try:
            executed = _execute(load(path), path.parent)
        except Exception as exc:  # keep going: one broken notebook should not hide the others
            failures += 1
            print(f"FAILED {path.name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            continue
        seconds = time.perf_counter() - start
        out = dest / path.name
        nbformat.write(executed, str(out))
        html, _ = HTMLExporter().from_notebook_node(executed)
        out.with_suffix(".html").write_text(html, encoding="utf-8")
        print(f"{path.name}: {seconds:.1f} s -> {out} (+ .html)")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["check", "clean", "refresh", "execute"])
    parser.add_argument("paths", nargs="*", default=["notebooks"])
    args = parser.parse_args(argv)
    if args.command == "execute":
        if len(args.paths) != 2:
            parser.error("execute takes SRC DEST")
        return execute_course(Path(args.paths[0]), Path(args.paths[1]))
    paths = notebook_paths(args.paths)
    if args.command == "check":
        found = [line for p in paths for line in problems(load(p), str(p))]
        print("\n".join(found) if found else f"{len(paths)} notebooks follow the convention")
        return 1 if found else 0
    for path in paths:
        if args.command == "clean":
            dump(clean(load(path)), path)
        else:
            refresh(path)
        print(f"{args.command}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
