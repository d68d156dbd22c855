"""segtutor — the small library under the semantic-segmentation course.

Each module names the notebook that teaches it. Submodules are imported on first use, so
``import segtutor`` stays fast and ``segtutor.metrics`` works without an explicit import.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = (
    "checks",
    "data",
    "losses",
    "metrics",
    "models",
    "receptive_field",
    "runtime",
    "train",
    "viz",
    "widgets",
)

__all__ = ["__version__", *_SUBMODULES]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'segtutor' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SUBMODULES))
