"""Rules of the package's layout that issue 11 set (one home per thing): checked on the source, so they hold."""
import ast
from pathlib import Path

import segtutor

PACKAGE = Path(segtutor.__file__).parent
MAX_PARAMETERS = 8
# Public entry points whose arguments are the documented contract (COURSE.md §4), all options keyword-only:
EXEMPT = {("train.py", "fit"), ("data/synthetic.py", "__init__")}


def _functions():
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args
                names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
                count = len([n for n in names if n not in ("self", "cls")])
                yield path.relative_to(PACKAGE).as_posix(), node.name, node.lineno, count


def test_no_function_but_fit_takes_more_than_eight_parameters():
    too_many = [f"{path}:{line} {name} ({count})" for path, name, line, count in _functions()
                if count > MAX_PARAMETERS and (path, name) not in EXEMPT]
    assert not too_many, f"functions with more than {MAX_PARAMETERS} parameters: {too_many}"


def test_the_rule_sees_fit():
    counts = {(path, name): count for path, name, _, count in _functions()}
    assert counts[("train.py", "fit")] > MAX_PARAMETERS  # so the scan reads real signatures


def test_the_checkpoint_module_does_not_import_train():
    tree = ast.parse((PACKAGE / "checkpoint.py").read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)} | {
        alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not any(name and name.split(".")[-1] == "train" for name in imported), imported
