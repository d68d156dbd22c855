"""Reading dataset files: photos as float tensors, label PNGs as class indices, with errors that name the file.

Taught with the real datasets in ``notebooks/07_real_data.ipynb``. Shared by every dataset reader
(:mod:`segtutor.data.voc`, :mod:`segtutor.data.cityscapes`): a new reader imports them from here, not from
another dataset's module.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

__all__ = ["read_image", "read_label_png"]


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
