"""Cityscapes (fine annotations), read from the folder layout of the official archives.

Taught in ``notebooks/07_real_data.ipynb``. The layout (``leftImg8bit_trainvaltest.zip`` and
``gtFine_trainvaltest.zip`` unpacked side by side)::

    leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png      the photos (2048 × 1024)
    gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png       8-bit label ids ("L" mode)

The masks store the 34 *label ids* of the full annotation protocol; benchmarks train and score the 19
*train ids* below. Every other id (unlabeled, ego vehicle, static, parking, guard rail, caravan, …) maps
to 255 and is ignored. The mapping is one table lookup for the whole image: ``LABEL_TO_TRAIN[label_ids]``.

Cityscapes cannot be downloaded without an account: register at https://www.cityscapes-dataset.com and
unpack the two archives into one folder. Files are read, and items built, by :mod:`segtutor.data.io`
(:class:`~segtutor.data.io.ImageMaskFiles`), shared with VOC.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .._validation import is_int
from .io import ImageMaskFiles, Transform, read_label_png

__all__ = [
    "CITYSCAPES_CLASSES",
    "CITYSCAPES_PALETTE",
    "LABEL_TO_TRAIN",
    "CityscapesSegmentation",
    "cityscapes_palette",
    "find_cityscapes_root",
    "label_ids_to_train_ids",
]

# (train id, label id, name, colour) of the 19 evaluated classes, from the official cityscapesScripts labels.py.
_TRAIN_CLASSES: tuple[tuple[int, int, str, tuple[int, int, int]], ...] = (
    (0, 7, "road", (128, 64, 128)),
    (1, 8, "sidewalk", (244, 35, 232)),
    (2, 11, "building", (70, 70, 70)),
    (3, 12, "wall", (102, 102, 156)),
    (4, 13, "fence", (190, 153, 153)),
    (5, 17, "pole", (153, 153, 153)),
    (6, 19, "traffic light", (250, 170, 30)),
    (7, 20, "traffic sign", (220, 220, 0)),
    (8, 21, "vegetation", (107, 142, 35)),
    (9, 22, "terrain", (152, 251, 152)),
    (10, 23, "sky", (70, 130, 180)),
    (11, 24, "person", (220, 20, 60)),
    (12, 25, "rider", (255, 0, 0)),
    (13, 26, "car", (0, 0, 142)),
    (14, 27, "truck", (0, 0, 70)),
    (15, 28, "bus", (0, 60, 100)),
    (16, 31, "train", (0, 80, 100)),
    (17, 32, "motorcycle", (0, 0, 230)),
    (18, 33, "bicycle", (119, 11, 32)),
)

#: The 19 Cityscapes train-id classes; the index is the label in the masks this module returns.
CITYSCAPES_CLASSES: tuple[str, ...] = tuple(name for _, _, name, _ in _TRAIN_CLASSES)

#: ``LABEL_TO_TRAIN[label_id] = train_id``: int64 ``(256,)``, 255 for every id that is not evaluated.
LABEL_TO_TRAIN = torch.full((256,), 255, dtype=torch.int64)
for _train_id, _label_id, _, _ in _TRAIN_CLASSES:
    LABEL_TO_TRAIN[_label_id] = _train_id

#: The official train-id colours, ``uint8 (19, 3)``.
CITYSCAPES_PALETTE = np.array([color for _, _, _, color in _TRAIN_CLASSES], dtype=np.uint8)
CITYSCAPES_PALETTE.setflags(write=False)


def cityscapes_palette(num_entries: int = 256) -> np.ndarray:
    """The official train-id colours as ``uint8 (num_entries, 3)``; rows past 18 (incl. 255, ignored) are black."""
    if not is_int(num_entries) or not len(CITYSCAPES_PALETTE) <= num_entries <= 256:
        raise ValueError(f"num_entries must be an int in {len(CITYSCAPES_PALETTE)}..256, got {num_entries!r}")
    palette = np.zeros((num_entries, 3), dtype=np.uint8)
    palette[: len(CITYSCAPES_PALETTE)] = CITYSCAPES_PALETTE
    return palette


def label_ids_to_train_ids(label_ids: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Map Cityscapes label ids ``(..., H, W)`` (integers 0..255) to train ids ``int64`` (0..18, 255 ignored)."""
    ids = torch.as_tensor(label_ids)
    if ids.is_floating_point() or ids.dtype == torch.bool:
        raise TypeError(f"label ids must be integers, got dtype {ids.dtype}")
    ids = ids.to(torch.int64)
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) > 255):
        raise ValueError(f"label ids must lie in 0..255, got {int(ids.min())}..{int(ids.max())}")
    return LABEL_TO_TRAIN.to(ids.device)[ids]


def find_cityscapes_root(root: str | os.PathLike) -> Path:
    """The folder at or below ``root`` holding ``leftImg8bit/`` and ``gtFine/``; FileNotFoundError lists where it looked."""
    root = Path(root).expanduser()
    tried = []
    for candidate in (root, root / "cityscapes", root / "Cityscapes"):
        if (candidate / "leftImg8bit").is_dir() and (candidate / "gtFine").is_dir():
            return candidate
        tried.append(str(candidate))
    raise FileNotFoundError(
        "no Cityscapes folder (with leftImg8bit/ and gtFine/) found; looked in: " + ", ".join(tried)
        + ". Cityscapes needs a free account: download leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip "
        "from https://www.cityscapes-dataset.com and unpack both into one folder")


class CityscapesSegmentation(ImageMaskFiles):
    """A Cityscapes split (fine annotations) as a ``Dataset`` of ``(image, mask)`` with the 19 train ids.

    Args:
        root: the folder holding ``leftImg8bit/`` and ``gtFine/`` (or its parent, as ``cityscapes/``).
        split: ``train``, ``val`` or ``test`` (a folder name under ``leftImg8bit/``).
        transforms: optional joint transform ``t(image, mask) -> (image, mask)``.

    Items: image ``float32 (3, H, W)`` in ``[0, 1]``, mask ``int64 (H, W)`` with labels 0..18 and 255
    (ignored). The official ``test`` masks are empty (all ignored): evaluate on ``val``.
    """

    dataset_name = "Cityscapes"
    classes: tuple[str, ...] = CITYSCAPES_CLASSES
    num_classes: int = len(CITYSCAPES_CLASSES)
    ignore_index: int = 255

    def __init__(self, root: str | os.PathLike, split: str = "train", transforms: Transform | None = None) -> None:
        self.root = find_cityscapes_root(root)
        self.split = split
        self.transforms = transforms
        self.palette: np.ndarray = cityscapes_palette()
        image_dir = self.root / "leftImg8bit" / split
        if not image_dir.is_dir():
            available = sorted(p.name for p in (self.root / "leftImg8bit").iterdir() if p.is_dir())
            raise FileNotFoundError(f"split folder not found: {image_dir}; available splits: "
                                    f"{', '.join(available) if available else 'none'}")
        self.images: list[Path] = sorted(image_dir.glob("*/*_leftImg8bit.png"))
        if not self.images:
            raise FileNotFoundError(f"no images matching {image_dir}/<city>/*_leftImg8bit.png")
        self.masks: list[Path] = [self._mask_for(p) for p in self.images]
        missing = [(img, m) for img, m in zip(self.images, self.masks) if not m.is_file()]
        if missing:
            shown = ", ".join(str(m) for _, m in missing[:5])
            raise FileNotFoundError(f"{len(missing)} image(s) in {image_dir} have no labelIds mask, "
                                    f"e.g. {shown} (for {missing[0][0].name})")
        self.ids: list[str] = [p.name[: -len("_leftImg8bit.png")] for p in self.images]

    def _mask_for(self, image: Path) -> Path:
        stem = image.name[: -len("_leftImg8bit.png")]
        return self.root / "gtFine" / self.split / image.parent.name / f"{stem}_gtFine_labelIds.png"

    def image_path(self, index: int) -> Path:
        return self.images[index]

    def mask_path(self, index: int) -> Path:
        return self.masks[index]

    def load_mask(self, index: int) -> torch.Tensor:
        """The mask of item ``index`` in train ids, ``int64 (H, W)``; no transforms applied."""
        label_ids = read_label_png(self.masks[index], "L", what="Cityscapes labelIds mask")
        return label_ids_to_train_ids(torch.from_numpy(label_ids))
