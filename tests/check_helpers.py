"""Shared by the tests of ``segtutor.checks``: what every exercise check must say when an answer is wrong."""
from __future__ import annotations

from typing import Any, Callable

import pytest

from segtutor import checks


def failure_message(exercise: str, check: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    """Run ``check(*args, **kwargs)`` on a wrong answer; it must raise ``CheckFailed`` whose message starts with
    ``"<exercise>: not right yet"`` and says what was expected and what came back. Returns the message, for the
    test's own assertions (the hint it should carry)."""
    with pytest.raises(checks.CheckFailed) as info:
        check(*args, **kwargs)
    text = str(info.value)
    assert text.startswith(f"{exercise}: not right yet") and "expected" in text and "got" in text, text
    return text
