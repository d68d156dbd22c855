"""Class palettes and mask colouring: how a label map ``(H, W)`` becomes a picture ``(H, W, 3)``.

Taught in ``notebooks/00_task_and_data.ipynb`` (masks, palettes, overlays) and used again in
``07_real_data.ipynb`` for the PASCAL VOC colour map.

- :func:`shapes_palette` — the colours of the synthetic classes (background, circle, rectangle, …): the
  Okabe–Ito colour-blind-safe set, background black.
- :func:`voc_palette` — the official PASCAL VOC colour map (256 entries; 255, the void label, is cream).
- :func:`colorize` — labels ``(H, W)`` or ``(N, H, W)`` to ``uint8`` RGB ``(H, W, 3)`` / ``(N, H, W, 3)``.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from .._validation import check_labels

__all__ = ["SHAPES_PALETTE", "IGNORE_COLOR", "shapes_palette", "voc_palette", "colorize"]

#: Okabe & Ito (2008) colour-blind-safe colours, one per synthetic class, as ``uint8`` RGB rows ``(8, 3)``:
#: background black, then orange, sky blue, bluish green, yellow, blue, vermillion, reddish purple.
SHAPES_PALETTE = np.array(
    [
        (0, 0, 0),        # background
        (230, 159, 0),    # circle: orange
        (86, 180, 233),   # rectangle: sky blue
        (0, 158, 115),    # triangle: bluish green
        (240, 228, 66),   # ellipse: yellow
        (0, 114, 178),    # ring: blue
        (213, 94, 0),     # cross: vermillion
        (204, 121, 167),  # star: reddish purple
    ],
    dtype=np.uint8,
)
SHAPES_PALETTE.setflags(write=False)

#: The colour :func:`colorize` paints ignored pixels (``ignore_index``) with: white.
IGNORE_COLOR = (255, 255, 255)

_CHECKED_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def shapes_palette(num_classes: int | None = None) -> np.ndarray:
    """Colours of the synthetic classes: ``uint8`` array ``(K, 3)``, ``K = num_classes`` (all 8 if ``None``)."""
    if num_classes is None:
        return SHAPES_PALETTE.copy()
    if not isinstance(num_classes, (int, np.integer)) or isinstance(num_classes, bool) \
            or not 1 <= num_classes <= len(SHAPES_PALETTE):
        raise ValueError(f"num_classes must be an int in 1..{len(SHAPES_PALETTE)} for the shapes palette, "
                         f"got {num_classes!r}")
    return SHAPES_PALETTE[:num_classes].copy()


def voc_palette(num_entries: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map: ``uint8`` array ``(num_entries, 3)``.

    Label ``i`` gets its colour by spreading the bits of ``i`` over the channels, most significant first:
    bit 0 of ``i`` goes to red, bit 1 to green, bit 2 to blue, then the next three bits one place lower, and
    so on. So 1 (aeroplane) is ``(128, 0, 0)``, 15 (person) ``(192, 128, 128)``, 255 (void) ``(224, 224, 192)``.
    """
    if not isinstance(num_entries, (int, np.integer)) or isinstance(num_entries, bool) or not 1 <= num_entries <= 256:
        raise ValueError(f"num_entries must be an int in 1..256, got {num_entries!r}")
    labels = np.arange(num_entries)
    palette = np.zeros((num_entries, 3), dtype=np.int64)
    for shift in range(8):  # bits 3*shift .. 3*shift+2 of the label fill bit (7 - shift) of R, G, B
        for channel in range(3):
            bit = (labels >> (3 * shift + channel)) & 1
            palette[:, channel] |= bit << (7 - shift)
    return palette.astype(np.uint8)


def _as_palette(palette: Any) -> np.ndarray:
    if palette is None:
        return SHAPES_PALETTE
    if isinstance(palette, torch.Tensor):
        palette = palette.detach().cpu().numpy()
    array = np.asarray(palette)
    if array.ndim != 2 or array.shape[1] != 3 or array.shape[0] == 0:
        raise ValueError(f"palette must have shape (K, 3), one RGB row per class, got shape {array.shape}")
    if array.dtype.kind == "f":
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise ValueError("a floating-point palette must hold RGB values in [0, 1] "
                             "(or pass integers in 0..255)")
        return np.round(array * 255).astype(np.uint8)
    if array.dtype.kind not in "iub":
        raise TypeError(f"palette must hold integers in 0..255 or floats in [0, 1], got dtype {array.dtype}")
    if array.min() < 0 or array.max() > 255:
        raise ValueError(f"palette values must lie in 0..255, got {int(array.min())}..{int(array.max())}")
    return array.astype(np.uint8)


def colorize(mask: torch.Tensor | np.ndarray, palette: Any = None, ignore_index: int | None = 255,
             ignore_color: Sequence[int] | None = IGNORE_COLOR) -> np.ndarray:
    """Paint a label map with one colour per class.

    Args:
        mask: integer labels ``(H, W)`` or ``(N, H, W)``, a torch tensor (any device) or a NumPy array.
        palette: ``(K, 3)`` RGB rows (``uint8``/ints in 0..255 or floats in [0, 1]); ``None`` means
            :func:`shapes_palette`. Every label must be ``< K`` (or equal ``ignore_index``).
        ignore_index: the label that marks pixels to ignore (255 in VOC and Cityscapes); ``None`` for none.
        ignore_color: RGB colour of ignored pixels (white by default); ``None`` uses the palette's own row
            for ``ignore_index`` (e.g. VOC's cream ``(224, 224, 192)`` with ``voc_palette()``).

    Returns:
        ``uint8`` NumPy array ``(H, W, 3)`` or ``(N, H, W, 3)``, ready for ``plt.imshow``.
    """
    colors = _as_palette(palette)
    if isinstance(mask, np.ndarray):
        labels = torch.from_numpy(np.ascontiguousarray(mask))
    elif isinstance(mask, torch.Tensor):
        labels = mask.detach().cpu()
    else:
        raise TypeError(f"mask must be a torch.Tensor or numpy array of integer labels (H, W) or (N, H, W), "
                        f"got {type(mask).__name__}")
    if labels.dtype == torch.bool:
        labels = labels.to(torch.uint8)
    if labels.ndim not in (2, 3):
        raise ValueError(f"mask must have shape (H, W) or (N, H, W), got {tuple(labels.shape)}; "
                         "for scores (N, K, H, W) take .argmax(1) first")
    if not (labels.is_floating_point() or labels.is_complex()) and labels.dtype not in _CHECKED_INT_DTYPES:
        labels = labels.to(torch.int64)  # uint16/uint32 label images: widen so the label check accepts them
    num_colors = len(colors)
    if ignore_index is not None and ignore_color is None and not 0 <= ignore_index < num_colors:
        raise ValueError(f"ignore_color=None asks for the palette's colour of ignore_index={ignore_index}, "
                         f"but the palette has only {num_colors} colours")
    try:
        check_labels(labels, num_colors, ignore_index, name="mask")
    except ValueError as exc:
        raise ValueError(f"{exc}; the palette has {num_colors} colours, one per class "
                         "(pass a palette with a row for every label)") from None
    labels = labels.to(torch.int64).numpy()
    if ignore_index is None or ignore_color is None:
        return colors[labels]
    ignored = labels == ignore_index
    out = colors[np.where(ignored, 0, labels)]
    out[ignored] = np.asarray(ignore_color, dtype=np.uint8)
    return out
