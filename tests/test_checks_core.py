"""segtutor.checks core: messages a student can act on, and the fall-back to the reference."""
import math

import numpy as np
import pytest
import torch

from check_helpers import failure_message
from segtutor import checks


def test_check_close_passes_and_fails_with_expected_got_hint():
    checks.check_close("ex", torch.tensor([1.0, 2.0]), [1.0, 2.0 + 1e-7])
    text = failure_message("ex", checks.check_close, "ex", torch.tensor([1.0, 2.5]), [1.0, 2.0],
                           hint="look at the second value")
    assert "2.5" in text and "look at the second value" in text


def test_check_close_shape_and_none():
    with pytest.raises(checks.CheckFailed, match=r"shape \(2,\)"):
        checks.check_close("ex", np.zeros(3), np.zeros(2))
    with pytest.raises(checks.CheckFailed, match="return"):
        checks.check_close("ex", None, 1.0)
    checks.check_close("ex", [math.nan, 1.0], [math.nan, 1.0])  # NaNs in the same places match


def test_check_equal_and_shape():
    checks.check_equal("ex", torch.tensor([1, 2]), torch.tensor([1, 2]))
    with pytest.raises(checks.CheckFailed):
        checks.check_equal("ex", torch.tensor([1, 3]), torch.tensor([1, 2]))
    with pytest.raises(checks.CheckFailed):
        checks.check_equal("ex", 3, 4)
    checks.check_shape("ex", torch.zeros(2, 3), (2, 3))
    with pytest.raises(checks.CheckFailed, match=r"shape \(3, 2\)"):
        checks.check_shape("ex", torch.zeros(2, 3), (3, 2))


def test_call_student_turns_stub_and_crash_into_clear_failures():
    def stub():
        raise NotImplementedError()

    def crash():
        return 1 / 0

    with pytest.raises(checks.CheckFailed, match="not done yet"):
        checks.call_student("ex", stub)
    with pytest.raises(checks.CheckFailed, match="ZeroDivisionError"):
        checks.call_student("ex", crash)
    with pytest.raises(checks.CheckFailed, match="a function"):
        checks.call_student("ex", 3)
    assert checks.call_student("ex", lambda x: x + 1, 1) == 2


def test_solution_or_reference(capsys):
    def reference(x):
        return 2 * x

    def good(x):
        return x + x

    def bad(x):
        raise NotImplementedError()

    def check(fn):
        checks.check_close("double", checks.call_student("double", fn, 3.0), 6.0)

    assert checks.solution_or_reference(good, reference, check, name="double") is good
    assert capsys.readouterr().out == ""
    assert checks.solution_or_reference(bad, reference, check, name="double") is reference
    assert "reference `double`" in capsys.readouterr().out


def _check_submodules():
    import importlib
    import pkgutil

    return {info.name: importlib.import_module(f"segtutor.checks.{info.name}")
            for info in pkgutil.iter_modules(checks.__path__) if not info.name.startswith("_")}


def test_every_submodule_check_is_re_exported_by_name_and_none_collides():
    owners: dict[str, str] = {}
    for name, module in _check_submodules().items():
        for public in module.__all__:
            assert public not in owners, f"{public} is defined by checks.{owners[public]} and checks.{name}"
            owners[public] = name
            assert public in checks.__all__, f"checks.{name}.{public} is not re-exported in segtutor/checks/__init__.py"
            assert getattr(checks, public) is getattr(module, public), f"checks.{public} is not checks.{name}.{public}"
    assert len(checks.__all__) == len(set(checks.__all__)), "a name is listed twice in checks.__all__"
    assert set(checks.__all__) - set(owners) == {"CheckFailed", "fail", "passed", "call_student", "check_close",
                                                  "check_equal", "check_shape", "solution_or_reference",
                                                  "DEFAULT_TIME_LIMIT"}


def test_solution_or_reference_does_not_repeat_the_passed_line(capsys):
    """The check cell printed "passed" already; the cell that picks the function must not print it again."""
    def check(fn):
        checks.check_close("double", checks.call_student("double", fn, 3.0), 6.0)
        checks.passed("double")

    assert checks.solution_or_reference(lambda x: 2 * x, lambda x: 2 * x, check, name="double")(1) == 2
    assert capsys.readouterr().out == ""
