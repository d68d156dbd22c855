"""Datasets, palettes and joint transforms of the course.

- :class:`SyntheticShapes`, :class:`Scene` — the synthetic dataset (``00_task_and_data.ipynb``, used by 01–06).
- :func:`colorize`, :func:`shapes_palette`, :func:`voc_palette` — class palettes (``00``, ``07``).
- :class:`VOCSegmentation`, :class:`CityscapesSegmentation`, :func:`download`, :func:`make_fake_voc`,
  :func:`make_fake_cityscapes` and the submodule :mod:`segtutor.data.transforms` — real data
  (``07_real_data.ipynb``); these are imported on first use, so ``import segtutor.data`` stays light.
- :class:`CamVid`, :data:`CAMVID_CLASSES`, :func:`download_camvid`, :func:`make_fake_camvid`,
  :func:`camvid_or_standin` — real road-scene photographs (module :mod:`segtutor.data.camvid`), also lazy.
"""
from __future__ import annotations

import importlib
from typing import Any

from .palette import IGNORE_COLOR, SHAPES_PALETTE, colorize, shapes_palette, voc_palette
from .synthetic import CLASS_NAMES, SHAPE_TYPES, Scene, SyntheticShapes

# name -> submodule that defines it (relative to this package), imported on first access
_LAZY = {
    "VOCSegmentation": "voc",
    "VOC_CLASSES": "voc",
    "CityscapesSegmentation": "cityscapes",
    "CITYSCAPES_CLASSES": "cityscapes",
    "download": "fetch",
    "make_fake_voc": "fake",
    "make_fake_cityscapes": "fake",
    "CamVid": "camvid",
    "CAMVID_CLASSES": "camvid",
    "download_camvid": "camvid",
    "make_fake_camvid": "camvid",
    "camvid_or_standin": "camvid",
}
_LAZY_SUBMODULES = ("transforms",)

__all__ = [
    "SyntheticShapes", "Scene", "SHAPE_TYPES", "CLASS_NAMES",
    "colorize", "shapes_palette", "voc_palette", "SHAPES_PALETTE", "IGNORE_COLOR",
    *_LAZY, *_LAZY_SUBMODULES,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        value = getattr(module, name)
        globals()[name] = value
        return value
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
