"""Small look-alikes of PASCAL VOC 2012 and Cityscapes, written in the exact on-disk formats.

Used by ``notebooks/07_real_data.ipynb`` (so it always runs, with or without the real datasets) and by
the tests of :mod:`segtutor.data.voc`, :mod:`segtutor.data.cityscapes` and :mod:`segtutor.data.fetch`.
The pictures come from :class:`segtutor.data.SyntheticShapes` (a pixel's class is the type of the shape
covering it); the files follow the real conventions:

- VOC: ``VOCdevkit/VOC2012/JPEGImages/<id>.jpg`` (quality 95, no chroma subsampling, so colours survive),
  ``SegmentationClass/<id>.png`` as PALETTE PNGs with the VOC colour map, a void (255) band along every
  object outline as in the real masks, and ``ImageSets/Segmentation/<split>.txt``;
- Cityscapes: ``leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png`` and
  ``gtFine/<split>/<city>/..._gtFine_labelIds.png`` (8-bit label ids, including ids that are not evaluated).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from PIL import Image

from .._validation import check_int, is_int
from ..metrics import boundary_band
from .palette import voc_palette
from .synthetic import SyntheticShapes

__all__ = ["make_fake_voc", "make_fake_cityscapes", "void_border"]


def _split_counts(n: int, splits: Mapping[str, float]) -> dict[str, int]:
    """Divide ``n`` images among ``splits`` (relative sizes) by cumulative rounding; each split gets one or more."""
    n = check_int(n, "n")
    if not isinstance(splits, Mapping) or not splits:
        raise TypeError(f"splits must be a mapping split name -> relative size, e.g. {{'train': 3, 'val': 1}}, got {splits!r}")
    weights = np.asarray([float(v) for v in splits.values()])
    if not np.isfinite(weights).all() or (weights <= 0).any():
        raise ValueError(f"split sizes must be positive numbers, got {dict(splits)}")
    edges = np.round(np.cumsum(weights) / weights.sum() * n).astype(int)
    counts = np.diff(np.concatenate([[0], edges]))
    if (counts < 1).any():
        raise ValueError(f"n={n} images cannot give every split of {dict(splits)} at least one image; raise n")
    return dict(zip(splits, (int(c) for c in counts)))


def void_border(labels: torch.Tensor, width: int = 1, ignore_index: int = 255) -> torch.Tensor:
    """Mark as ``ignore_index`` every pixel within ``width`` pixels (a square window) of a different label.

    ``labels``: integer ``(H, W)``. This draws the void band VOC annotators left along object outlines,
    ``2 * width`` pixels wide, centred on each boundary: the band of :func:`segtutor.metrics.boundary_band`.
    ``width=0`` leaves the labels as they are.
    """
    if width < 1:
        return labels.clone()
    out = labels.clone()
    out[boundary_band(labels[None], width)[0]] = ignore_index
    return out


def _size(image_size: int | Sequence[int]) -> tuple[int, int]:
    if is_int(image_size):
        return int(image_size), int(image_size)
    h, w = image_size
    return int(h), int(w)


def make_fake_voc(root: str | os.PathLike, n: int = 12, image_size: int | Sequence[int] = 64, seed: int = 0,
                  splits: Mapping[str, float] | None = None, classes: Sequence[int] = (1, 7, 15),
                  border: int = 1) -> Path:
    """Write ``n`` images in the PASCAL VOC 2012 layout under ``root``; return ``root``.

    Args:
        root: the folder that will hold ``VOCdevkit/VOC2012``.
        n: number of images, divided among ``splits``.
        image_size: side (square) or ``(H, W)``, at least 16.
        seed: the images are ``SyntheticShapes(n, image_size, len(classes) + 1, seed)``.
        splits: split name -> relative size; default ``{"train": 3, "val": 1}``. When both ``train`` and
            ``val`` are given, ``trainval.txt`` lists both, as in VOC.
        classes: the VOC labels given to circle, rectangle, triangle, … (default aeroplane, car, person).
        border: half-width of the void (255) band drawn along every object outline.
    """
    splits = {"train": 3, "val": 1} if splits is None else splits
    counts = _split_counts(n, splits)
    classes = [int(c) for c in classes]
    if not classes or any(not 1 <= c <= 20 for c in classes) or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be distinct VOC labels in 1..20 (one per shape type), got {classes}")
    h, w = _size(image_size)
    data = SyntheticShapes(n, (h, w), num_classes=len(classes) + 1, seed=seed)
    images, masks = data.tensors()
    to_voc = torch.tensor([0, *classes], dtype=torch.int64)

    voc = Path(root) / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", os.path.join("ImageSets", "Segmentation")):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    palette = voc_palette().flatten().tolist()
    ids = [f"2099_{i:06d}" for i in range(n)]
    for i, image_id in enumerate(ids):
        rgb = (images[i].permute(1, 2, 0) * 255).round().clamp(0, 255).to(torch.uint8).numpy()
        Image.fromarray(rgb).save(voc / "JPEGImages" / f"{image_id}.jpg", quality=95, subsampling=0)
        labels = void_border(to_voc[masks[i]], border).to(torch.uint8).numpy()
        mask = Image.frombytes("P", (w, h), labels.tobytes())  # pixels are the indices; the palette colours them
        mask.putpalette(palette)
        mask.save(voc / "SegmentationClass" / f"{image_id}.png")

    start = 0
    written: dict[str, list[str]] = {}
    for split, count in counts.items():
        written[split] = ids[start:start + count]
        start += count
    if "train" in written and "val" in written and "trainval" not in written:
        written["trainval"] = written["train"] + written["val"]
    for split, split_ids in written.items():
        (voc / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{i}\n" for i in split_ids))
    return Path(root)


# Cityscapes label ids used by the look-alike (see segtutor.data.cityscapes for the train-id table).
_UNLABELED, _EGO_VEHICLE, _STATIC = 0, 1, 4
_ROAD, _SIDEWALK, _BUILDING, _SKY = 7, 8, 11, 23
_SHAPE_IDS = (26, 24, 20)      # circle -> car, rectangle -> person, triangle -> traffic sign
_STUFF_COLORS = {_UNLABELED: (0, 0, 0), _EGO_VEHICLE: (20, 20, 30), _STATIC: (110, 90, 60),
                 _ROAD: (128, 64, 128), _SIDEWALK: (230, 60, 220), _BUILDING: (75, 75, 75), _SKY: (80, 140, 190)}
_CITIES = {"train": ("aachen", "bochum"), "val": ("frankfurt",), "test": ("berlin",)}


def make_fake_cityscapes(root: str | os.PathLike, n: int = 6, image_size: int | Sequence[int] = (64, 128),
                         seed: int = 0, splits: Mapping[str, float] | None = None) -> Path:
    """Write ``n`` street-like scenes in the Cityscapes layout under ``root``; return ``root``.

    Each scene has sky, buildings, sidewalk and road bands, objects from :class:`SyntheticShapes` labelled
    car / person / traffic sign, and label ids that are not evaluated (ego vehicle along the bottom, a
    static patch, unlabeled corners), which :class:`~segtutor.data.CityscapesSegmentation` maps to 255.
    ``splits`` defaults to ``{"train": 2, "val": 1}``; cities are named as in the real dataset.
    """
    splits = {"train": 2, "val": 1} if splits is None else splits
    counts = _split_counts(n, splits)
    h, w = _size(image_size)
    shapes = SyntheticShapes(n, (h, w), num_classes=len(_SHAPE_IDS) + 1, seed=seed, size_range=(0.15, 0.35))
    images, masks = shapes.tensors()
    to_ids = torch.tensor([0, *_SHAPE_IDS], dtype=torch.int64)
    rows = torch.arange(h)[:, None].expand(h, w)

    root = Path(root)
    index = 0
    for split, count in counts.items():
        cities = _CITIES.get(split, ("aachen",))
        for k in range(count):
            rng = np.random.default_rng([seed, index])
            sky_end = int(h * rng.uniform(0.2, 0.35))
            road_start = int(h * rng.uniform(0.6, 0.7))
            sidewalk_end = road_start + max(1, h // 16)
            ids = torch.full((h, w), _BUILDING, dtype=torch.int64)
            ids[rows < sky_end] = _SKY
            ids[rows >= road_start] = _SIDEWALK
            ids[rows >= sidewalk_end] = _ROAD
            ids[rows >= h - max(1, h // 10)] = _EGO_VEHICLE
            y0, x0 = int(rng.integers(sky_end, max(sky_end + 1, road_start - 4))), int(rng.integers(0, w - w // 8))
            ids[y0:y0 + max(2, h // 10), x0:x0 + max(2, w // 8)] = _STATIC
            ids[:2, :2] = _UNLABELED
            ids[:2, -2:] = _UNLABELED
            rgb = torch.zeros(3, h, w)
            for label_id, color in _STUFF_COLORS.items():
                rgb[:, ids == label_id] = torch.tensor(color, dtype=torch.float32)[:, None] / 255
            rgb = (rgb + 0.04 * torch.from_numpy(rng.standard_normal((3, h, w))).float()).clamp(0, 1)
            objects = masks[index] > 0
            objects &= rows < h - max(1, h // 10)      # nothing drawn over the ego vehicle
            ids[objects] = to_ids[masks[index]][objects]
            rgb[:, objects] = images[index][:, objects]

            city = cities[k % len(cities)]
            stem = f"{city}_{k:06d}_{19 + index:06d}"
            image_dir = root / "leftImg8bit" / split / city
            label_dir = root / "gtFine" / split / city
            image_dir.mkdir(parents=True, exist_ok=True)
            label_dir.mkdir(parents=True, exist_ok=True)
            pixels = (rgb.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
            Image.fromarray(pixels).save(image_dir / f"{stem}_leftImg8bit.png")
            Image.fromarray(ids.to(torch.uint8).numpy()).save(label_dir / f"{stem}_gtFine_labelIds.png")
            index += 1
    return root
