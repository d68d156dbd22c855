"""Input checks shared by metrics, losses and training: one home for "what is a valid label map".

Every message names the argument, the problem and the expected form, so a student never meets a silent
wrong number or a device-side assert.
"""
from __future__ import annotations

import math

import torch

__all__ = ["check_labels", "check_scores", "check_pair"]

_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def check_labels(target: torch.Tensor, num_classes: int | None, ignore_index: int | None = None, *,
                 name: str = "target", ndim: int | None = None) -> None:
    """Raise unless ``target`` is an integer label tensor with values in ``[0, num_classes)`` or ``ignore_index``.

    ``num_classes=None`` checks only that the labels are non-negative (when the class count is unknown).
    """
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of integer class labels, got {type(target).__name__}")
    if target.dtype not in _INT_DTYPES:
        raise TypeError(f"{name} must hold integer class labels (int64, shape (N, H, W)), got dtype {target.dtype}; "
                        "if these are scores, pass them as (N, K, H, W) floats; if labels were stored as floats, use .long()")
    if ndim is not None and target.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(target.shape)}")
    if target.numel() == 0:
        return
    # Fast path: one pass (min and max together) and one host sync decide the common case.
    if _within(target, num_classes):
        return
    if ignore_index is not None and _within(target.masked_fill(target == ignore_index, 0), num_classes):
        return
    bad = target < 0 if num_classes is None else (target < 0) | (target >= num_classes)
    if ignore_index is not None:
        bad &= target != ignore_index
    value = int(target[bad].flatten()[0])
    allowed = ("non-negative integers" if num_classes is None else f"0..{num_classes - 1}") + (
        f" or ignore_index={ignore_index}" if ignore_index is not None else "")
    hint = " (255 is the VOC/Cityscapes void label: pass ignore_index=255)" if value == 255 and ignore_index is None else ""
    raise ValueError(f"{name} has label {value} outside the valid range {allowed} for num_classes={num_classes}{hint}")


def _extremes(values: torch.Tensor) -> tuple[float, float]:
    """``(min, max)`` of a non-empty tensor in one pass and one host sync (NaN propagates to both)."""
    low, high = torch.aminmax(values.detach())
    return tuple(torch.stack((low, high)).tolist())


def _within(labels: torch.Tensor, num_classes: int | None) -> bool:
    low, high = _extremes(labels)
    return low >= 0 and (num_classes is None or high < num_classes)


def check_scores(scores: torch.Tensor, num_classes: int | None = None, *, name: str = "logits") -> None:
    """Raise unless ``scores`` is a finite floating tensor of shape ``(N, K, H, W)`` (K = ``num_classes`` if given)."""
    if not isinstance(scores, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, K, H, W), got {type(scores).__name__}")
    if not scores.is_floating_point():
        raise TypeError(f"{name} must be floating point scores of shape (N, K, H, W), got dtype {scores.dtype}")
    if scores.ndim != 4:
        raise ValueError(f"{name} must have shape (N, K, H, W), got {tuple(scores.shape)}")
    if num_classes is not None and scores.shape[1] != num_classes:
        raise ValueError(f"{name} has {scores.shape[1]} class channels (dim 1) but num_classes={num_classes}; "
                         f"expected shape (N, {num_classes}, H, W), got {tuple(scores.shape)}")
    if scores.numel() == 0:
        return
    low, high = _extremes(scores)  # NaN or ±inf anywhere shows in the extremes: one pass, exact
    if not (math.isfinite(low) and math.isfinite(high)):
        kind = "NaN" if math.isnan(low) or math.isnan(high) else "infinite"
        raise ValueError(f"{name} contain {kind} values; check the learning rate, the loss and the input data")


def check_pair(scores_or_pred: torch.Tensor, target: torch.Tensor, *, name: str = "pred") -> None:
    """Raise unless the spatial shape ``(N, H, W)`` of a prediction (labels or scores) matches the target's."""
    spatial = tuple(scores_or_pred.shape[:1]) + tuple(scores_or_pred.shape[2:]) if scores_or_pred.ndim == target.ndim + 1 \
        else tuple(scores_or_pred.shape)
    if spatial != tuple(target.shape):
        raise ValueError(f"{name} of shape {tuple(scores_or_pred.shape)} does not match target of shape {tuple(target.shape)}; "
                         "expected labels (N, H, W) or scores (N, K, H, W) with the target's N, H, W")
