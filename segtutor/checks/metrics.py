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


# ------------------------------------------------------------------------- streaming confusion matrix

__all__ += ["check_streaming_confusion_matrix"]


def _student_matrix(exercise: str, cm: object, k: int) -> torch.Tensor:
    """``cm.matrix`` as a CPU tensor, after checking that it exists, is ``(k, k)`` and holds whole counts."""
    if not hasattr(cm, "matrix"):
        fail(exercise, expected="an attribute `matrix` (the (K, K) counts)", got=f"{type(cm).__name__} without `matrix`",
             hint="store the counts in self.matrix, created in __init__ (or reset) as torch.zeros(K, K, dtype=torch.int64)")
    got = cm.matrix
    check_shape(exercise, got, (k, k), hint=f"the matrix is (num_classes, num_classes) = ({k}, {k})")
    got_t = torch.as_tensor(got).detach().cpu()
    if got_t.is_floating_point() and not bool((got_t == got_t.round()).all()):
        fail(exercise, expected="whole pixel counts", got=got_t, hint="count pixels; do not normalise the matrix")
    return got_t.long()


def check_streaming_confusion_matrix(cls: Callable[..., object]) -> None:
    """Check a class ``cls(num_classes, ignore_index=None)`` with ``update(pred (N, H, W), target (N, H, W))``,
    ``reset()`` and an attribute ``matrix`` ``(K, K)``: counts accumulated over every batch since the last reset,
    rows = truth, columns = prediction, pixels whose truth is ``ignore_index`` not counted."""
    from ..metrics import confusion_matrix

    exercise = "streaming confusion matrix"
    k = 4
    batches = [_labels(10 + i, (n, 5, 6), k) for i, n in enumerate((2, 3, 1))]
    cm = call_student(exercise, cls, k)
    zeros = torch.zeros(k, k, dtype=torch.int64)
    got = _student_matrix(exercise, cm, k)
    check_equal(exercise, got, zeros, hint="before the first update nothing has been counted: start from "
                                           "torch.zeros(K, K, dtype=torch.int64)")

    expected = torch.zeros(k, k, dtype=torch.int64)
    for step, (pred, target) in enumerate(batches, start=1):
        call_student(exercise, cm.update, pred.clone(), target.clone())
        expected += confusion_matrix(pred, target, k)
        got = _student_matrix(exercise, cm, k)
        if torch.equal(got, expected):
            continue
        last = confusion_matrix(pred, target, k)
        if step > 1 and torch.equal(got, last):
            hint = "update replaced the matrix with the last batch's counts: add them (self.matrix += ...)"
        elif torch.equal(got, expected.T):
            hint = "rows are the TRUE class and columns the PREDICTED class: your matrix is transposed"
        else:
            hint = "each update adds the batch's counts M[t, p] (truth t, prediction p) to the matrix"
        check_equal(exercise, got, expected, hint=f"{hint} (after {step} of {len(batches)} batches)")

    other = call_student(exercise, cls, k)
    if not torch.equal(_student_matrix(exercise, other, k), zeros):
        fail(exercise, expected="a new matrix starts at zero", got=_student_matrix(exercise, other, k),
             hint="two instances share their counts: create the tensor in __init__ or reset (self.matrix = "
                  "torch.zeros(...)), not as a class attribute, and never add in place into a shared tensor")

    call_student(exercise, cm.reset)
    check_equal(exercise, _student_matrix(exercise, cm, k), zeros,
                hint="reset() must forget every counted pixel: set the matrix back to zeros")
    pred, target = batches[0]
    call_student(exercise, cm.update, pred.clone(), target.clone())
    check_equal(exercise, _student_matrix(exercise, cm, k), confusion_matrix(pred, target, k),
                hint="after reset() and one update, the matrix holds that batch only")

    # the ignore label: the outer ring of each target is void
    void_cm = call_student(exercise, cls, k, ignore_index=255)
    expected = torch.zeros(k, k, dtype=torch.int64)
    counted = 0
    for pred, target in batches:
        target = target.clone()
        target[:, 0, :] = target[:, -1, :] = target[:, :, 0] = target[:, :, -1] = 255
        try:
            void_cm.update(pred.clone(), target.clone())
        except NotImplementedError:
            call_student(exercise, void_cm.update, pred.clone(), target.clone())
        except Exception as exc:
            fail(exercise, expected="the ignored pixels dropped, the others counted",
                 got=f"{type(exc).__name__}: {exc}",
                 hint="with ignore_index=255, drop the pixels whose TRUTH is 255 before counting (keep = target != "
                      "ignore_index); otherwise t·K + p falls outside 0..K²−1")
        expected += confusion_matrix(pred, target, k, ignore_index=255)
        counted += int((target != 255).sum())
    got = _student_matrix(exercise, void_cm, k)
    if not torch.equal(got, expected):
        total = int(got.sum())
        if total > counted:
            hint = (f"ignored pixels were counted: the matrix holds {total} pixels but only {counted} have a truth "
                    "other than 255 (drop them: keep = target != ignore_index)")
        elif total < counted:
            hint = (f"the matrix holds {total} pixels, fewer than the {counted} non-ignored ones: drop only the pixels "
                    "whose TRUTH is ignore_index, whatever was predicted there")
        elif torch.equal(got, expected.T):
            hint = "rows are the TRUE class and columns the PREDICTED class: your matrix is transposed"
        else:
            hint = "keep the pred and target of the same pixels: index both with the same mask"
        check_equal(exercise, got, expected, hint=hint + " (case: ignore_index=255, a void ring around each image)")
    passed(exercise, f"{len(batches)} batches accumulated, reset, a second instance, ignore_index=255")
