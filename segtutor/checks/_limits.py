"""A time limit for the student code that a check runs (used by :func:`segtutor.checks.call_student`).

The limit is ``SEGTUTOR_CHECK_TIME_LIMIT`` seconds (``0`` turns it off), else :data:`DEFAULT_TIME_LIMIT`.
In the main thread on POSIX (a notebook kernel, a plain Python grader) a ``SIGALRM`` timer interrupts the code;
elsewhere (Windows, another thread, or while someone else's ``SIGALRM`` timer runs) a watchdog thread raises
the same exception in the calling thread. Either way, the exception can only interrupt Python code: a single
long call into C (one huge torch operation, a blocking read) is stopped when it returns.

:class:`TimeLimitExceeded` derives from ``BaseException`` so that a student's ``except Exception:`` cannot
swallow it. It is raised again every second, so code that swallows it once with a bare ``except:`` and goes on
is interrupted again; a loop that swallows it on every turn cannot be stopped from inside the process.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
from typing import Any, Iterator

__all__ = ["DEFAULT_TIME_LIMIT", "TimeLimitExceeded", "time_limit", "time_limit_seconds"]

DEFAULT_TIME_LIMIT = 60.0  # seconds
_ENV = "SEGTUTOR_CHECK_TIME_LIMIT"


class TimeLimitExceeded(BaseException):
    """The student's code was still running when its time limit ran out."""


def time_limit_seconds() -> float | None:
    """The limit for the next check: ``SEGTUTOR_CHECK_TIME_LIMIT`` seconds if set (``0``: none), else 60."""
    text = os.environ.get(_ENV, "").strip()
    if not text:
        return DEFAULT_TIME_LIMIT
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not seconds >= 0 or seconds == float("inf"):
        raise ValueError(f"{_ENV} must be a number of seconds (0 turns the limit off), got {text!r}")
    return seconds or None


def _alarm_usable() -> bool:
    return (hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
            and signal.getitimer(signal.ITIMER_REAL)[0] == 0)  # never override someone else's timer


def _until_done(disarm: Any) -> None:
    """Run ``disarm()`` to the end even if the limit strikes while it runs (it is retried; the block itself
    already ended, and an exception it raised goes on once this returns)."""
    while True:
        try:
            disarm()
            return
        except TimeLimitExceeded:
            continue


@contextlib.contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    state = {"active": True}

    def on_alarm(signum: int, frame: Any) -> None:
        if state["active"]:
            raise TimeLimitExceeded(seconds)

    def disarm() -> None:
        state["active"] = False  # an alarm arriving from here on is a no-op
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)  # and again every second if the first one is swallowed
        yield
    finally:
        _until_done(disarm)


@contextlib.contextmanager
def _watchdog(seconds: float) -> Iterator[None]:
    set_async_exc = getattr(getattr(ctypes, "pythonapi", None), "PyThreadState_SetAsyncExc", None)
    if set_async_exc is None:  # pragma: no cover - not CPython: no way to interrupt, run without a limit
        yield
        return
    target = ctypes.c_ulong(threading.get_ident())
    lock = threading.Lock()
    state = {"active": True, "fired": False}
    stop = threading.Event()

    def watch() -> None:
        if stop.wait(seconds):
            return
        while True:
            with lock:
                if not state["active"]:
                    return
                state["fired"] = True
                set_async_exc(target, ctypes.py_object(TimeLimitExceeded))
            if stop.wait(1.0):  # again every second in case the first one is swallowed
                return

    def disarm() -> None:
        with lock:
            state["active"] = False
            if state["fired"]:
                set_async_exc(target, None)  # drop an exception not delivered yet
        stop.set()

    try:
        threading.Thread(target=watch, name="segtutor-check-time-limit", daemon=True).start()
        yield
    finally:
        _until_done(disarm)


def time_limit(seconds: float | None) -> contextlib.AbstractContextManager[None]:
    """Raise :class:`TimeLimitExceeded` in the calling thread if the block runs longer than ``seconds``."""
    if seconds is None:
        return contextlib.nullcontext()
    return _alarm(seconds) if _alarm_usable() else _watchdog(seconds)
