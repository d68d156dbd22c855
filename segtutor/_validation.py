"""Input checks shared by metrics, losses and training: one home for "what is a valid label map".

Every message names the argument, the problem and the expected form, so a student never meets a silent
wrong number or a device-side assert.

The value checks read only the minimum and maximum of a tensor (one pass, NaN and ±inf show there), and
:func:`check_prediction` asks the device for all of them at once: one host sync per batch on a GPU, no data
copied. The precise message is worked out only once something is known to be wrong.
"""
from __future__ import annotations

import math

import torch

__all__ = ["check_labels", "check_scores", "check_pair", "check_prediction"]

_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _check_label_form(target: torch.Tensor, name: str, ndim: int | None) -> None:
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of integer class labels, got {type(target).__name__}")
    if target.dtype not in _INT_DTYPES:
        raise TypeError(f"{name} must hold integer class labels (int64, shape (N, H, W)), got dtype {target.dtype}; "
                        "if these are scores, pass them as (N, K, H, W) floats; if labels were stored as floats, use .long()")
    if ndim is not None and target.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(target.shape)}")


def _check_scores_form(scores: torch.Tensor, num_classes: int | None, name: str) -> None:
    if not isinstance(scores, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, K, H, W), got {type(scores).__name__}")
    if not scores.is_floating_point():
        raise TypeError(f"{name} must be floating point scores of shape (N, K, H, W), got dtype {scores.dtype}")
    if scores.ndim != 4:
        raise ValueError(f"{name} must have shape (N, K, H, W), got {tuple(scores.shape)}")
    if num_classes is not None and scores.shape[1] != num_classes:
        raise ValueError(f"{name} has {scores.shape[1]} class channels (dim 1) but num_classes={num_classes}; "
                         f"expected shape (N, {num_classes}, H, W), got {tuple(scores.shape)}")


def _label_extremes(target: torch.Tensor, ignore_index: int | None) -> torch.Tensor:
    """``[min, max]`` (float64, on the tensor's device, no sync) of the labels that are not ``ignore_index``."""
    if ignore_index is not None:
        target = target.masked_fill(target == ignore_index, 0)
    return torch.stack(torch.aminmax(target.detach())).double()


def _labels_ok(low: float, high: float, num_classes: int | None) -> bool:
    return low >= 0 and (num_classes is None or high < num_classes)


def _raise_bad_label(target: torch.Tensor, num_classes: int | None, ignore_index: int | None, name: str) -> None:
    bad = target < 0 if num_classes is None else (target < 0) | (target >= num_classes)
    if ignore_index is not None:
        bad &= target != ignore_index
    value = int(target[bad].flatten()[0])
    allowed = ("non-negative integers" if num_classes is None else f"0..{num_classes - 1}") + (
        f" or ignore_index={ignore_index}" if ignore_index is not None else "")
    hint = " (255 is the VOC/Cityscapes void label: pass ignore_index=255)" if value == 255 and ignore_index is None else ""
    raise ValueError(f"{name} has label {value} outside the valid range {allowed} for num_classes={num_classes}{hint}")


def _raise_not_finite(low: float, high: float, name: str) -> None:
    kind = "NaN" if math.isnan(low) or math.isnan(high) else "infinite"
    raise ValueError(f"{name} contain {kind} values; check the learning rate, the loss and the input data")


def check_labels(target: torch.Tensor, num_classes: int | None, ignore_index: int | None = None, *,
                 name: str = "target", ndim: int | None = None) -> None:
    """Raise unless ``target`` is an integer label tensor with values in ``[0, num_classes)`` or ``ignore_index``.

    ``num_classes=None`` checks only that the labels are non-negative (when the class count is unknown).
    """
    _check_label_form(target, name, ndim)
    if target.numel() == 0:
        return
    # Fast path: one pass (min and max together) and one host sync decide the common case.
    if _labels_ok(*torch.stack(torch.aminmax(target.detach())).tolist(), num_classes):
        return
    if ignore_index is None or not _labels_ok(*_label_extremes(target, ignore_index).tolist(), num_classes):
        _raise_bad_label(target, num_classes, ignore_index, name)


def check_scores(scores: torch.Tensor, num_classes: int | None = None, *, name: str = "logits") -> None:
    """Raise unless ``scores`` is a finite floating tensor of shape ``(N, K, H, W)`` (K = ``num_classes`` if given)."""
    _check_scores_form(scores, num_classes, name)
    if scores.numel() == 0:
        return
    low, high = torch.stack(torch.aminmax(scores.detach())).tolist()  # NaN or ±inf anywhere shows here: exact
    if not (math.isfinite(low) and math.isfinite(high)):
        _raise_not_finite(low, high, name)


def check_pair(scores_or_pred: torch.Tensor, target: torch.Tensor, *, name: str = "pred") -> None:
    """Raise unless the spatial shape ``(N, H, W)`` of a prediction (labels or scores) matches the target's."""
    spatial = tuple(scores_or_pred.shape[:1]) + tuple(scores_or_pred.shape[2:]) if scores_or_pred.ndim == target.ndim + 1 \
        else tuple(scores_or_pred.shape)
    if spatial != tuple(target.shape):
        raise ValueError(f"{name} of shape {tuple(scores_or_pred.shape)} does not match target of shape {tuple(target.shape)}; "
                         "expected labels (N, H, W) or scores (N, K, H, W) with the target's N, H, W")


def check_prediction(pred: torch.Tensor, target: torch.Tensor, num_classes: int | None,
                     ignore_index: int | None = None, *, name: str = "pred") -> bool:
    """Check a prediction and its target together, with one host sync; return True if ``pred`` holds scores.

    ``pred``: integer labels ``(N, H, W)`` in ``[0, num_classes)`` or finite float scores ``(N, K, H, W)`` with
    ``K = num_classes``; ``target``: integer labels ``(N, H, W)`` in ``[0, num_classes)`` or ``ignore_index``;
    both on one device. ``num_classes=None``: taken from the scores, or (labels) only signs are checked.
    Messages are those of :func:`check_labels`, :func:`check_scores` and :func:`check_pair`.
    """
    if not isinstance(pred, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor: labels (N, H, W) or scores (N, K, H, W), got {type(pred).__name__}")
    _check_label_form(target, "target", 3)
    if pred.device != target.device:
        raise ValueError(f"{name} is on {pred.device} but target is on {target.device}; put both on the same device")
    scores = pred.is_floating_point()
    if scores and pred.ndim == target.ndim:
        raise TypeError(f"{name} has floating dtype {pred.dtype} and the target's shape {tuple(pred.shape)}: labels must be "
                        "integers (use .long()), scores must have shape (N, K, H, W)")
    if scores:
        _check_scores_form(pred, num_classes, name)
        num_classes = pred.shape[1] if num_classes is None else num_classes
    else:
        _check_label_form(pred, name, 3)
    check_pair(pred, target, name=name)
    if target.numel() == 0:
        return scores
    # pred extremes (scores or labels) and target extremes, fetched together
    pred_low, pred_high, low, high = torch.cat((torch.stack(torch.aminmax(pred.detach())).double(),
                                               _label_extremes(target, ignore_index))).tolist()
    if scores and not (math.isfinite(pred_low) and math.isfinite(pred_high)):
        _raise_not_finite(pred_low, pred_high, name)
    if not _labels_ok(low, high, num_classes):
        _raise_bad_label(target, num_classes, ignore_index, "target")
    if not scores and not _labels_ok(pred_low, pred_high, num_classes):
        _raise_bad_label(pred, num_classes, None, name)
    return scores
