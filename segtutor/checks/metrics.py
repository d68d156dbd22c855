"""Checks for the exercises of ``notebooks/05_metrics.ipynb``: a confusion matrix and per-class IoU by hand.

The references are :func:`segtutor.metrics.confusion_matrix` and
:meth:`segtutor.metrics.SegmentationMetrics.from_confusion`; hints name the usual mistakes (rows and
columns swapped, a union that counts the intersection twice, and the source document's 0 for an absent class).
"""
from __future__ import annotations

from typing import Callable

import torch

from . import call_student, check_close, check_equal, check_shape, fail, passed

__all__ = ["check_confusion_matrix", "check_iou_from_confusion"]


def _labels(seed: int, shape: tuple[int, int, int], num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed ``pred`` and ``target`` int64 ``(N, H, W)``: prediction right on about 60 % of the pixels."""
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, num_classes, shape, generator=g)
    noise = torch.randint(0, num_classes, shape, generator=g)
    keep = torch.rand(shape, generator=g) < 0.6
    return torch.where(keep, target, noise), target


def check_confusion_matrix(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``fn(pred (N, H, W), target (N, H, W), num_classes) -> (K, K)`` counts, rows = truth, columns = prediction."""
    from ..metrics import confusion_matrix

    exercise = "confusion matrix"
    pred, target = _labels(0, (2, 5, 7), 3)
    cases = [(pred, target, 3)]
    pred, target = _labels(1, (3, 4, 4), 4)
    cases.append((pred.clamp_max(2), target, 4))            # class 3 is never predicted: an all-zero column
    cases.append((torch.tensor([[[0, 0, 1]]]), torch.tensor([[[0, 1, 1]]]), 2))   # small enough to do by hand
    pred, target = _labels(2, (2, 4, 5), 3)
    cases.append((pred, target, 5))                         # classes 3 and 4 absent from both: zero rows, columns
    for pred, target, k in cases:
        got = call_student(exercise, fn, pred.clone(), target.clone(), k)
        expected = confusion_matrix(pred, target, k)
        check_shape(exercise, got, (k, k), hint=f"the matrix is (num_classes, num_classes) = ({k}, {k}), "
                                                "whatever the image size")
        got_t = torch.as_tensor(got).detach().cpu()
        if got_t.is_floating_point() and not bool((got_t == got_t.round()).all()):
            fail(exercise, expected="whole pixel counts", got=got_t, hint="count pixels; do not normalise the matrix")
        hint = "M[t, p] counts the pixels whose truth is t and prediction is p, e.g. bincount(target * K + pred)"
        if not torch.equal(got_t.long(), expected) and torch.equal(got_t.long(), expected.T):
            hint = "rows are the TRUE class and columns the PREDICTED class: your matrix is transposed"
        check_equal(exercise, got_t.long(), expected, hint=f"{hint} (case: num_classes={k}, shape {tuple(pred.shape)})")
    passed(exercise, f"{len(cases)} cases match segtutor.metrics.confusion_matrix")


def check_iou_from_confusion(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``fn(matrix (K, K)) -> (K,)`` IoU per class; ``NaN`` for a class absent from truth and prediction."""
    from ..metrics import SegmentationMetrics

    exercise = "IoU from the confusion matrix"
    matrices = [
        torch.tensor([[5, 1, 0], [2, 3, 1], [0, 0, 4]]),
        torch.tensor([[50, 3, 0, 2], [4, 7, 0, 0], [0, 0, 0, 0], [1, 0, 0, 3]]),   # class 2: absent everywhere
        torch.tensor([[9, 0], [3, 0]]),                                            # class 1: never predicted right
    ]
    for matrix in matrices:
        got = call_student(exercise, fn, matrix.clone())
        expected = SegmentationMetrics.from_confusion(matrix).iou
        check_shape(exercise, got, (matrix.shape[0],), hint="one IoU per class: shape (K,)")
        got_t = torch.as_tensor(got).detach().double().cpu()
        m = matrix.double()
        tp, truth, pred = m.diagonal(), m.sum(1), m.sum(0)
        absent = (truth + pred) == 0
        hint = "IoU_c = TP_c / (truth_c + pred_c − TP_c) with truth_c = row sum and pred_c = column sum"
        if bool(absent.any()) and bool((got_t[absent] == 0).all()) and \
                torch.allclose(got_t[~absent], expected[~absent], equal_nan=True):
            hint = ("a class absent from both truth and prediction has no IoU (0/0): return NaN so that the mean "
                    "leaves it out. Scoring it 0, as the source document does, drags mIoU down")
        elif torch.allclose(got_t, tp / (truth + pred), equal_nan=True):
            hint = "the union is truth_c + pred_c − TP_c: the intersection is counted in both sums"
        elif torch.allclose(got_t, 2 * tp / (truth + pred), equal_nan=True):
            hint = "that is Dice (2·TP / (truth + pred)); IoU is TP / (truth + pred − TP)"
        check_close(exercise, got_t, expected, atol=1e-6, rtol=1e-6, hint=hint)
    passed(exercise, f"{len(matrices)} matrices, absent classes NaN; matches segtutor.metrics")
