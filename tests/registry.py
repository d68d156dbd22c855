"""For tests that need the package registry (PyPI): skip with one clear line offline, fail in CI.

CI (``CI=true``, as ``.ci/run`` is run) reaches PyPI, so there a missing registry is a broken machine, not a
reason to skip the packaging checks silently.
"""
from __future__ import annotations

import os
import urllib.error
import urllib.request

import pytest

PYPI = "https://pypi.org/simple/pip/"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def require_pypi() -> None:
    """Skip the calling test when PyPI cannot be reached (fail instead when running in CI)."""
    try:
        with urllib.request.urlopen(PYPI, timeout=10) as response:
            response.read(1)
    except (OSError, urllib.error.URLError) as exc:
        reason = f"needs the package registry and {PYPI} is unreachable ({exc})"
        if in_ci():
            pytest.fail(f"CI=true: {reason}")
        pytest.skip(reason)
