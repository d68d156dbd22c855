"""Interactive explorers for the course (ipywidgets 8).

``dilation_explorer()`` is used in ``03_deeplab.ipynb`` and ``loss_explorer()`` in ``04_losses.ipynb``.
What each draws is a plain function in its submodule (``widgets/dilation.py``, ``widgets/loss.py``),
tested without a kernel; the widget only wires sliders to it.
"""
from __future__ import annotations

import importlib
from typing import Any

__all__ = ["dilation_explorer", "loss_explorer"]

_HOMES = {"dilation_explorer": "dilation", "loss_explorer": "loss"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'segtutor.widgets' has no attribute {name!r}")
