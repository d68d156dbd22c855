"""Input checks shared by metrics, losses, models and training: one home for each input rule.

Label maps and scores (:func:`check_labels`, :func:`check_scores`, :func:`check_prediction`) are taught with
the metrics in ``05_metrics.ipynb``; the dataset and model checks that :mod:`segtutor.train` runs before a step
(:func:`first_pair`, :func:`check_channels`, :func:`check_batch`, :func:`forward_checked`) with the training loop
in ``06_end_to_end.ipynb``.

Every message names the argument, the problem and the expected form, so a student never meets a silent
wrong number or a device-side assert.

The value checks read only the minimum and maximum of a tensor (one pass, NaN and ±inf show there), and
:func:`check_prediction` asks the device for all of them at once: one host sync per batch on a GPU, no data
copied. The precise message is worked out only once something is known to be wrong.
"""
from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

__all__ = ["IntegerTypeError", "is_int", "check_int", "check_ignore_index", "check_labels", "check_scores", "check_pair", "check_prediction", "model_config", "model_name",
           "model_in_channels", "model_device", "first_pair", "check_channels", "check_batch", "forward_checked"]

_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
_INT_FORMS = "a Python int or a NumPy/torch integer scalar"


# ------------------------------------------------------------------------------------------- integers

class IntegerTypeError(TypeError, ValueError):
    """A value that is not an integer where one is expected (a bool, a float, a string, ...).

    A :class:`TypeError`; also a :class:`ValueError`, because some of the checkers this rule replaced raised
    ``ValueError`` for a float and callers may catch that (NumPy's ``AxisError`` is likewise two errors in one).
    """


def _as_int(value: object) -> int | None:
    """``value`` as a Python int if it is an integer scalar (Python, NumPy or a 0-d integer tensor), else None."""
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, torch.Tensor)
                                               and (value.ndim != 0 or value.dtype == torch.bool)):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def is_int(value: object) -> bool:
    """True for an integer scalar: a Python int, a NumPy integer or a 0-d integer tensor; never a bool or a float."""
    return _as_int(value) is not None


def check_int(value: object, name: str, *, minimum: int | None = 1) -> int:
    """``value`` as a Python int, or a clear error: the one rule for integer arguments (counts, sizes, seeds).

    Accepted: Python ints, NumPy integer scalars and 0-d integer tensors (anything ``operator.index`` takes),
    so ``np.int64(4)`` is treated like ``4`` everywhere. Refused: bools and floats (even ``4.0``), with an
    :class:`IntegerTypeError`, and values below ``minimum`` (``1``: a positive integer, ``0``: non-negative;
    ``None``: no bound) with a :class:`ValueError`. Both messages read
    ``"<name> must be <expected form> (a Python int or a NumPy/torch integer scalar), got <value>"``.
    """
    form = {None: "an integer", 0: "a non-negative integer", 1: "a positive integer"}.get(minimum, f"an integer >= {minimum}")
    number = _as_int(value)
    if number is None:
        raise IntegerTypeError(f"{name} must be {form} ({_INT_FORMS}), got {value!r} of type {type(value).__name__}")
    if minimum is not None and number < minimum:
        raise ValueError(f"{name} must be {form} ({_INT_FORMS}), got {number}")
    return number


def check_ignore_index(ignore_index: object, num_classes: int | None = None) -> int | None:
    """``ignore_index`` as a Python int (or ``None``): the one rule for the ignored label.

    Any integer scalar (see :func:`check_int`) or ``None``; with ``num_classes`` it must also lie outside the
    classes ``0..num_classes-1`` (255, the VOC/Cityscapes void label, or -100, torch's default). Refused with an
    :class:`IntegerTypeError` (not an integer) or a :class:`ValueError` (a class index).
    """
    if ignore_index is None:
        return None
    value = _as_int(ignore_index)
    if value is None:
        raise IntegerTypeError(f"ignore_index must be an int or None ({_INT_FORMS}, e.g. 255, the VOC/Cityscapes "
                               f"void label), got {ignore_index!r} of type {type(ignore_index).__name__}")
    if num_classes is not None and 0 <= value < num_classes:
        raise ValueError(f"ignore_index must be an int outside the classes 0..{num_classes - 1}: ignore_index={value} "
                         "is also a class index; the ignored label must lie outside the classes, e.g. 255 "
                         "(the VOC/Cityscapes void label) or -100")
    return value


# ---------------------------------------------------------------------------------------- label maps


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


# ------------------------------------------------------------------------------------- models and datasets

def model_config(model: nn.Module) -> dict | None:
    """A copy of ``model.config`` (how the model was built), or ``None`` for a model without one."""
    config = getattr(model, "config", None)
    return dict(config) if isinstance(config, Mapping) else None


def model_name(model: nn.Module) -> str:
    """``model.config["name"]``, else the class name: how messages and checkpoints name the model."""
    config = model_config(model) or {}
    return str(config.get("name") or type(model).__name__)


def model_in_channels(model: nn.Module) -> int | None:
    """The input channels the model expects: ``model.config["in_channels"]``, else its first Conv2d's."""
    config = model_config(model) or {}
    if isinstance(config.get("in_channels"), int):
        return int(config["in_channels"])
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module.in_channels
    return None


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); the CPU for a model with neither."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def first_pair(name: str, data: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Check that ``data`` is a non-empty dataset of ``(image (C, H, W) float, mask (H, W) int)`` pairs."""
    if isinstance(data, DataLoader):
        raise TypeError(f"{name} must be a Dataset of (image, mask) pairs, not a DataLoader: fit and evaluate build "
                        "their own loader (pass batch_size=...)")
    if not hasattr(data, "__len__") or not hasattr(data, "__getitem__"):
        raise TypeError(f"{name} must be a map-style Dataset of (image, mask) pairs (with __len__ and __getitem__), "
                        f"got {type(data).__name__}")
    if len(data) == 0:
        raise ValueError(f"{name} is empty (0 samples); expected a dataset of (image, mask) pairs")
    item = data[0]
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise TypeError(f"{name}[0] must be an (image, mask) pair, got {type(item).__name__}"
                        + (f" of length {len(item)}" if isinstance(item, (tuple, list)) else ""))
    image, mask = item
    if not isinstance(image, torch.Tensor) or not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name}[0] must be a pair of tensors (image float (C, H, W), mask int64 (H, W)), "
                        f"got ({type(image).__name__}, {type(mask).__name__})")
    if image.ndim != 3 or not image.is_floating_point():
        raise ValueError(f"{name}[0] image must be a float tensor of shape (C, H, W), got {image.dtype} "
                         f"{tuple(image.shape)}" + ("; convert uint8 images with .float() / 255" if image.dtype == torch.uint8 else ""))
    if mask.ndim != 2 or tuple(mask.shape) != tuple(image.shape[1:]):
        raise ValueError(f"{name}[0] mask must have shape (H, W) = {tuple(image.shape[1:])} to match the image "
                         f"{tuple(image.shape)}, got {tuple(mask.shape)}")
    return image, mask


def check_channels(name: str, channels: int, model: nn.Module) -> None:
    """Raise unless images of ``channels`` channels fit the model's ``in_channels`` (when it can be told)."""
    expected = model_in_channels(model)
    if expected is not None and channels != expected:
        raise ValueError(f"{name} images have {channels} channel(s) but the model ({model_name(model)}) expects "
                         f"in_channels={expected}: images must be (C, H, W) with C={expected}")


def check_batch(name: str, index: int, images: torch.Tensor, masks: torch.Tensor, num_classes: int,
                ignore_index: int | None) -> None:
    """Cheap per-batch checks on the CPU copy, before anything reaches the device (no device-side asserts)."""
    if masks.ndim != 3 or masks.shape[0] != images.shape[0] or tuple(masks.shape[1:]) != tuple(images.shape[2:]):
        raise ValueError(f"{name} batch {index}: masks {tuple(masks.shape)} do not match images {tuple(images.shape)}; "
                         "expected images (N, C, H, W) and masks (N, H, W)")
    check_labels(masks, num_classes, ignore_index, name=f"{name} batch {index} masks")


def forward_checked(model: nn.Module, images: torch.Tensor, name: str) -> torch.Tensor:
    """Run ``model`` and turn a channel mismatch or a wrongly shaped output into a clear error."""
    try:
        logits = model(images)
    except RuntimeError as exc:
        if "channels" in str(exc) or "size mismatch" in str(exc):
            raise ValueError(f"{name}: the model ({model_name(model)}) could not take images of shape "
                             f"{tuple(images.shape)} ({exc}); check the channel count C of (N, C, H, W)") from exc
        raise
    if not isinstance(logits, torch.Tensor) or logits.ndim != 4 or logits.shape[0] != images.shape[0] \
            or tuple(logits.shape[2:]) != tuple(images.shape[2:]):
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"{name}: the model returned {got} for images {tuple(images.shape)}; a segmentation model "
                         f"must return logits (N, K, H, W) = ({images.shape[0]}, K, {images.shape[2]}, {images.shape[3]}) "
                         "at the input's resolution")
    return logits
