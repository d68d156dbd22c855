"""Metrics refuse garbage instead of scoring it (issue 12 item 5).

``SegmentationMetrics.from_confusion`` takes counts: a normalised (float) matrix used to be truncated to zeros
(mIoU NaN), negative counts were scored. ``boundary_miou`` used -1 as its internal "not in the band" label, so
a -1 in the target was silently ignored and a 255 produced a message about an ``ignore_index=-1`` nobody passed.
"""
from __future__ import annotations

import math

import pytest
import torch

from segtutor import metrics as M

COUNTS = torch.tensor([[5, 1, 0], [2, 3, 1], [0, 0, 4]])


def _hand_miou(matrix: torch.Tensor) -> float:
    m = matrix.double()
    tp, truth, pred = m.diagonal(), m.sum(1), m.sum(0)
    iou = [float(t / (a + b - t)) for t, a, b in zip(tp, truth, pred) if a + b > 0]
    return sum(iou) / len(iou)


@pytest.mark.parametrize("matrix, phrase", [
    (COUNTS.double() / COUNTS.sum(1, keepdim=True), "normalised"),     # rows sum to 1: fractions, not counts
    (COUNTS.float() / COUNTS.sum(), "normalised"),
    (COUNTS.float() + 0.5, "non-integral"),
    (COUNTS - 2, "negative"),
    (torch.tensor([[1.0, float("nan")], [0.0, 1.0]]), "NaN"),
    (torch.tensor([[1.0, float("inf")], [0.0, 1.0]]), "infinite"),
])
def test_from_confusion_refuses_what_is_not_counts(matrix, phrase) -> None:
    with pytest.raises(ValueError, match=phrase) as info:
        M.SegmentationMetrics.from_confusion(matrix)
    assert "non-negative integer counts" in str(info.value) and "(K, K)" in str(info.value)


@pytest.mark.parametrize("matrix", [COUNTS.bool(), COUNTS.to(torch.complex64)])
def test_from_confusion_refuses_non_numeric_dtypes(matrix) -> None:
    with pytest.raises(TypeError, match="non-negative integer counts"):
        M.SegmentationMetrics.from_confusion(matrix)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.float64, torch.float32])
def test_from_confusion_accepts_counts_in_any_exact_dtype(dtype) -> None:
    """Whole-number counts are scored the same whatever their dtype (floats holding whole numbers included)."""
    result = M.SegmentationMetrics.from_confusion(COUNTS.to(dtype))
    assert result.confusion.dtype == torch.int64 and torch.equal(result.confusion, COUNTS)
    assert result.miou == pytest.approx(_hand_miou(COUNTS))


def _square() -> torch.Tensor:
    square = torch.zeros(1, 6, 6, dtype=torch.long)
    square[0, 2:4, 2:4] = 1
    return square


def test_boundary_miou_refuses_a_negative_label() -> None:
    target = _square()
    target[0, 2, 2] = -1  # a broken mask, not an ignored pixel
    with pytest.raises(ValueError, match=r"label -1 outside the valid range 0\.\.1"):
        M.boundary_miou(_square(), target, 2, width=1)


def test_boundary_miou_255_names_the_users_own_arguments() -> None:
    target = _square()
    target[0, 1, 1] = 255
    with pytest.raises(ValueError, match="label 255") as info:
        M.boundary_miou(_square(), target, 2, width=1)
    message = str(info.value)
    assert "ignore_index=-1" not in message and "pass ignore_index=255" in message, message


def test_boundary_miou_checks_pred_labels_too() -> None:
    pred = _square()
    pred[0, 0, 0] = 7
    with pytest.raises(ValueError, match="pred has label 7"):
        M.boundary_miou(pred, _square(), 2, width=1)


def _oracle(pred: torch.Tensor, target: torch.Tensor, k: int, width: int, ignore_index: int | None) -> float:
    """mIoU over the band's pixels counted by hand, from flat lists (no masks inside segtutor involved)."""
    band = M.boundary_band(target, width)
    keep = band if ignore_index is None else band & (target != ignore_index)
    p, t = pred[keep].tolist(), target[keep].tolist()
    matrix = torch.zeros(k, k, dtype=torch.int64)
    for a, b in zip(t, p):
        matrix[a, b] += 1
    return _hand_miou(matrix)


@pytest.mark.parametrize("ignore_index", [None, -1, 255, -100])
def test_boundary_miou_matches_a_hand_count(ignore_index) -> None:
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 3, (2, 12, 12), generator=g)
    target[:, :4] = 0  # some interior, away from every boundary
    pred = torch.randint(0, 3, (2, 12, 12), generator=g)
    if ignore_index is not None:
        target[0, 5, 2:9] = ignore_index  # ignored pixels inside the band are left out, whatever their value
    got = M.boundary_miou(pred, target, 3, width=1, ignore_index=ignore_index)
    assert got == pytest.approx(_oracle(pred, target, 3, 1, ignore_index))
    scores = torch.nn.functional.one_hot(pred, 3).permute(0, 3, 1, 2).float()  # scores give the same result
    assert M.boundary_miou(scores, target, 3, width=1, ignore_index=ignore_index) == pytest.approx(got)


def test_boundary_miou_without_a_band_is_nan() -> None:
    flat = torch.zeros(1, 5, 5, dtype=torch.long)
    assert math.isnan(M.boundary_miou(flat, flat, 2, width=1))
