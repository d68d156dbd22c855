"""A student's function can neither hang a check nor end the program (issue 12 item 6).

Every check runs student code through ``checks.call_student``. A function that never returns is stopped after
a time limit (``SEGTUTOR_CHECK_TIME_LIMIT`` seconds, default 60) and fails its check with a clear message; a
``sys.exit()`` inside it fails the check instead of ending the notebook or the autograder with status 0.

The "endless" functions below give up by themselves after ``_BACKSTOP`` seconds, so that without a time limit
the tests fail (the function returns normally) instead of hanging the suite.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from segtutor import checks

_BACKSTOP = 8.0  # seconds an "endless" loop runs at most; the limit under test is far shorter
LIMIT = "0.3"


def _spin(seconds: float = _BACKSTOP) -> str:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return "returned after the backstop: nothing stopped it"


def _spin_swallowing() -> str:
    """A loop that catches every Exception (as student code often does) and keeps going."""
    end = time.monotonic() + _BACKSTOP
    while time.monotonic() < end:
        try:
            while time.monotonic() < end:
                pass
        except Exception:
            pass
    return "returned after the backstop: nothing stopped it"


@pytest.fixture
def short_limit(monkeypatch):
    monkeypatch.setenv("SEGTUTOR_CHECK_TIME_LIMIT", LIMIT)


@pytest.mark.parametrize("fn", [_spin, _spin_swallowing, lambda: time.sleep(_BACKSTOP)],
                         ids=["busy loop", "loop catching Exception", "sleep"])
def test_an_endless_function_fails_its_check_in_time(fn, short_limit) -> None:
    start = time.monotonic()
    with pytest.raises(checks.CheckFailed) as info:
        checks.call_student("endless", fn)
    elapsed = time.monotonic() - start
    assert elapsed < 3.0, f"the check took {elapsed:.1f} s with a {LIMIT} s limit"
    message = str(info.value)
    assert message.startswith("endless: not right yet.") and f"still running after {LIMIT} s" in message, message
    assert "SEGTUTOR_CHECK_TIME_LIMIT" in message and "loop" in message, message


def test_the_alarm_is_restored(short_limit) -> None:
    if not hasattr(signal, "setitimer"):
        pytest.skip("no SIGALRM on this platform")
    before = signal.getsignal(signal.SIGALRM)
    with pytest.raises(checks.CheckFailed):
        checks.call_student("endless", _spin)
    assert checks.call_student("quick", lambda x: x + 1, 1) == 2
    assert signal.getsignal(signal.SIGALRM) is before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0), "no timer is left running"
    _spin(1.0)  # a late alarm would interrupt this


def test_an_outer_alarm_is_left_alone(short_limit) -> None:
    """Under someone else's SIGALRM timer (a test runner's timeout, say) the fallback watchdog thread is used,
    and the outer timer and handler are untouched."""
    if not hasattr(signal, "setitimer"):
        pytest.skip("no SIGALRM on this platform")
    fired = []
    previous = signal.signal(signal.SIGALRM, lambda *a: fired.append(1))
    try:
        signal.setitimer(signal.ITIMER_REAL, 30.0)
        with pytest.raises(checks.CheckFailed, match="still running"):
            checks.call_student("endless", _spin)
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 25.0 < remaining <= 30.0 and not fired
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_outside_the_main_thread_the_fallback_stops_it(short_limit) -> None:
    result: list[BaseException | str] = []

    def run() -> None:
        try:
            result.append(checks.call_student("endless", _spin))
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion below
            result.append(exc)

    thread = threading.Thread(target=run)
    start = time.monotonic()
    thread.start()
    thread.join(_BACKSTOP + 5)
    assert len(result) == 1 and isinstance(result[0], checks.CheckFailed), result
    assert time.monotonic() - start < 3.0


def test_the_limit_is_configurable_and_checked(monkeypatch) -> None:
    monkeypatch.setenv("SEGTUTOR_CHECK_TIME_LIMIT", "0")  # 0: no limit
    assert checks.call_student("slow", _spin, 0.5) == "returned after the backstop: nothing stopped it"
    monkeypatch.setenv("SEGTUTOR_CHECK_TIME_LIMIT", "soon")
    with pytest.raises(ValueError, match="SEGTUTOR_CHECK_TIME_LIMIT.*seconds"):
        checks.call_student("ex", lambda: 1)
    monkeypatch.delenv("SEGTUTOR_CHECK_TIME_LIMIT")
    assert checks.DEFAULT_TIME_LIMIT == 60.0
    assert checks.call_student("quick", lambda: 3) == 3


def test_a_fast_function_is_not_affected(short_limit) -> None:
    for i in range(200):  # many short calls: no timer fires late, none leaks
        assert checks.call_student("quick", lambda x: x * 2, i) == 2 * i
    _spin(0.6)  # longer than the limit, outside any check: nothing may interrupt it


@pytest.mark.parametrize("code", [0, 1, None, "bye"])
def test_sys_exit_fails_the_check(code) -> None:
    def leaves():
        sys.exit(code)

    with pytest.raises(checks.CheckFailed) as info:
        checks.call_student("exits", leaves)
    message = str(info.value)
    assert "SystemExit" in message and "sys.exit" in message and repr(code) in message, message


def test_sys_exit_cannot_end_an_autograder_with_status_0(tmp_path) -> None:
    """In a plain Python grader, a student's sys.exit(0) used to end grading with status 0 (a pass)."""
    script = tmp_path / "grader.py"
    script.write_text(textwrap.dedent("""
        import sys
        from segtutor import checks

        def student(x):
            sys.exit(0)

        try:
            checks.call_student("graded", student, 1)
        except checks.CheckFailed:
            print("FAILED AS IT SHOULD")
            sys.exit(3)
        print("GRADING CONTINUED")
    """))
    env = dict(os.environ, PYTHONPATH=str(Path(checks.__file__).parents[2]))  # this checkout's segtutor
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 3 and "FAILED AS IT SHOULD" in done.stdout, (done.returncode, done.stdout, done.stderr)


def test_keyboard_interrupt_still_stops_the_check() -> None:
    """Only SystemExit is turned into a failure: Ctrl-C (KeyboardInterrupt) must still interrupt."""
    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        checks.call_student("ctrl-c", interrupted)
