"""Reading dataset files: photos as float tensors, label PNGs as class indices, with errors that name the file;
and :class:`ImageMaskFiles`, the item logic every real dataset shares (one image file and one mask file per item).

Taught with the real datasets in ``notebooks/07_real_data.ipynb``. Shared by every dataset reader
(:mod:`segtutor.data.voc`, :mod:`segtutor.data.cityscapes`): a new reader imports them from here, not from
another dataset's module.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

__all__ = ["read_image", "read_label_png", "ImageMaskFiles"]

Transform = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def read_image(path: str | os.PathLike) -> torch.Tensor:
    """Read an RGB image file as ``float32 (3, H, W)`` in ``[0, 1]``; a clear error names a bad file."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except FileNotFoundError:
        raise FileNotFoundError(f"image file not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise OSError(f"cannot read image {path}: {exc} (the file is corrupt, truncated or not an image; "
                      "re-extract or re-download the dataset)") from exc
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1).float().div_(255.0)


def read_label_png(path: str | os.PathLike, mode: str, *, what: str) -> np.ndarray:
    """Read a label PNG whose pixels are indices, as ``uint8 (H, W)``, without any colour conversion.

    ``mode`` is the PIL mode the dataset stores (``"P"`` for VOC palette masks, ``"L"`` for Cityscapes
    labelIds); any other mode is an error naming the file, never a silent conversion.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            if im.mode != mode:
                raise ValueError(f"{what} {path} has PIL mode {im.mode!r}, expected {mode!r}"
                                 + (" (a palette PNG whose pixels are class indices); an RGB rendering of a mask "
                                    "is not a label map" if mode == "P" else ""))
            labels = np.array(im, dtype=np.uint8)
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found: {path}") from None
    except ValueError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise OSError(f"cannot read {what} {path}: {exc} (the file is corrupt, truncated or not a PNG)") from exc
    return labels


class ImageMaskFiles(Dataset):
    """Base of the real datasets: item ``i`` is ``(read_image(image_path(i)), load_mask(i))``, checked and transformed.

    Items: image ``float32 (3, H, W)`` in ``[0, 1]``, mask ``int64 (H, W)``; an image and mask of different sizes
    raise an error naming both files, and ``transforms(image, mask)`` (if set) is applied last. A subclass sets
    ``root``, ``split``, ``transforms`` and ``ids`` (one per item) and defines :meth:`image_path`,
    :meth:`mask_path` and :meth:`load_mask`; :attr:`dataset_name` names it in messages.
    """

    dataset_name: ClassVar[str] = "dataset"
    root: Path
    split: str
    ids: list[str]
    transforms: Transform | None

    def image_path(self, index: int) -> Path:
        raise NotImplementedError

    def mask_path(self, index: int) -> Path:
        raise NotImplementedError

    def load_mask(self, index: int) -> torch.Tensor:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} {self.split} images")
        index %= len(self)
        image = read_image(self.image_path(index))
        mask = self.load_mask(index)
        if tuple(image.shape[1:]) != tuple(mask.shape):
            raise ValueError(f"{self.dataset_name} id {self.ids[index]!r}: image {self.image_path(index).name} is "
                             f"{tuple(image.shape[1:])} (H, W) but mask {self.mask_path(index).name} is {tuple(mask.shape)}")
        if self.transforms is not None:
            image, mask = self.transforms(image, mask)
        return image, mask

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, {len(self)} images)"
