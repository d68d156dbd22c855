"""PASCAL VOC 2012 segmentation, read from the folder layout the official archive unpacks to.

Taught in ``notebooks/07_real_data.ipynb``. The layout::

    VOCdevkit/VOC2012/
        JPEGImages/<id>.jpg                  the photos
        SegmentationClass/<id>.png           class masks, PALETTE ("P" mode) PNGs
        ImageSets/Segmentation/<split>.txt   one id per line: train (1464), val (1449), trainval

A VOC mask looks like a colour picture, but it is a palette image: every pixel stores an index (the
class, 0..20, or 255 for the cream "void" border drawn around every object and over ambiguous
regions) and the file carries a colour table for display. Reading the indices directly gives the
labels; converting to RGB first and matching colours back is slow and breaks on any colour the table
doesn't list. 255 is kept as the ignore label: losses and metrics must skip it (``ignore_index=255``);
mapping it to background teaches the model to draw a halo of background around every object.

Files are read by :func:`segtutor.data.io.read_image` and :func:`segtutor.data.io.read_label_png` (re-exported
here), and items built by :class:`segtutor.data.io.ImageMaskFiles`, which every real dataset shares.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from .io import ImageMaskFiles, Transform, read_image, read_label_png
from .palette import voc_palette

__all__ = ["VOC_CLASSES", "VOCSegmentation", "find_voc_root", "read_image", "read_label_png"]

#: The 21 VOC classes; the index in this tuple is the label stored in the masks.
VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)

#: Where a VOC 2012 tree is looked for below the ``root`` a user passes, in this order.
VOC_NESTINGS: tuple[str, ...] = (
    ".", "VOC2012", os.path.join("VOCdevkit", "VOC2012"),
    os.path.join("VOCtrainval_11-May-2012", "VOCdevkit", "VOC2012"),
)

def find_voc_root(root: str | os.PathLike) -> Path:
    """The ``VOC2012`` folder at or below ``root`` (see :data:`VOC_NESTINGS`); FileNotFoundError lists where it looked."""
    root = Path(root).expanduser()
    tried = []
    for nesting in VOC_NESTINGS:
        candidate = (root / nesting) if nesting != "." else root
        if (candidate / "JPEGImages").is_dir() and (candidate / "SegmentationClass").is_dir():
            return candidate
        tried.append(str(candidate))
    raise FileNotFoundError(
        "no PASCAL VOC 2012 folder (with JPEGImages/ and SegmentationClass/) found; looked in: "
        + ", ".join(tried)
        + ". Unpack VOCtrainval_11-May-2012.tar there, or call segtutor.data.download('voc2012', root)")


def _missing(paths: Iterable[Path]) -> list[Path]:
    return [p for p in paths if not p.is_file()]


class VOCSegmentation(ImageMaskFiles):
    """PASCAL VOC 2012 segmentation split as a ``Dataset`` of ``(image, mask)``.

    Args:
        root: the ``VOC2012`` folder, or a folder above it (``VOCdevkit/VOC2012`` etc. are searched).
        split: a file name in ``ImageSets/Segmentation`` without ``.txt``: ``train``, ``val``, ``trainval``.
        transforms: optional joint transform ``t(image, mask) -> (image, mask)``
            (see :mod:`segtutor.data.transforms`).

    Items: image ``float32 (3, H, W)`` in ``[0, 1]``, mask ``int64 (H, W)`` with labels ``0..20`` and
    ``255`` (void, to be ignored). VOC images differ in size (up to 500 × 500): resize or crop them with a
    transform before batching.
    """

    dataset_name = "VOC"
    classes: tuple[str, ...] = VOC_CLASSES
    num_classes: int = len(VOC_CLASSES)
    ignore_index: int = 255

    def __init__(self, root: str | os.PathLike, split: str = "train", transforms: Transform | None = None) -> None:
        self.root = find_voc_root(root)
        self.split = split
        self.transforms = transforms
        self.palette: np.ndarray = voc_palette()
        split_dir = self.root / "ImageSets" / "Segmentation"
        split_file = split_dir / f"{split}.txt"
        if not split_file.is_file():
            available = sorted(p.stem for p in split_dir.glob("*.txt")) if split_dir.is_dir() else []
            raise FileNotFoundError(f"split file not found: {split_file}; available splits: "
                                    f"{', '.join(available) if available else 'none (no ImageSets/Segmentation folder)'}")
        self.ids: list[str] = [line.strip() for line in split_file.read_text().splitlines() if line.strip()]
        if not self.ids:
            raise ValueError(f"split file {split_file} lists no image ids")
        missing = _missing([self.image_path(i) for i in range(len(self.ids))]
                           + [self.mask_path(i) for i in range(len(self.ids))])
        if missing:
            shown = ", ".join(str(p) for p in missing[:5])
            raise FileNotFoundError(f"{len(missing)} file(s) listed by {split_file} are missing, e.g. {shown}")

    def image_path(self, index: int) -> Path:
        return self.root / "JPEGImages" / f"{self.ids[index]}.jpg"

    def mask_path(self, index: int) -> Path:
        return self.root / "SegmentationClass" / f"{self.ids[index]}.png"

    def load_mask(self, index: int) -> torch.Tensor:
        """The mask of item ``index`` as ``int64 (H, W)``: labels 0..20 and 255 (void); no transforms applied."""
        path = self.mask_path(index)
        labels = read_label_png(path, "P", what="VOC mask")
        bad = (labels >= self.num_classes) & (labels != self.ignore_index)
        if bad.any():
            raise ValueError(f"VOC mask {path} holds label {int(labels[bad][0])}, outside 0..{self.num_classes - 1} "
                             f"and the void label {self.ignore_index}")
        return torch.from_numpy(labels.astype(np.int64))
