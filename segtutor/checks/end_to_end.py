"""Checks for the exercises of ``notebooks/06_end_to_end.ipynb`` (the whole pipeline, done right).

- :func:`check_evaluate_by_hand` — ``evaluate_by_hand(model, data, num_classes, batch_size=8)``: the evaluation
  loop written out (eval mode, no gradients, one confusion matrix over the whole dataset). The oracle is
  :func:`segtutor.train.evaluate`; the check runs the student's loop on a small network whose BatchNorm
  statistics make a forgotten ``model.eval()`` visible, and on batches whose per-batch mIoUs differ from the
  dataset-level mIoU, so averaging per batch is caught too.
- :func:`check_worst_images` — ``worst_images(per_image_scores, k)``: the indices of the ``k`` lowest per-image
  scores, NaN (an image with every pixel ignored) left out. The oracle is :func:`worst_images_reference`
  plus property checks (distinct indices, ascending scores, nothing outside the set lower), so any valid
  order among tied scores is accepted.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Callable

import torch
from torch import nn

from .._validation import check_int
from ..runtime import model_mode
from . import call_student, check_close, fail, passed

__all__ = [
    "check_evaluate_by_hand",
    "evaluate_by_hand_reference",
    "check_worst_images",
    "worst_images_reference",
]


# ------------------------------------------------------------------------------------- evaluate_by_hand

def evaluate_by_hand_reference(model: nn.Module, data: Any, num_classes: int, batch_size: int = 8):
    """segtutor's answer: :func:`segtutor.train.evaluate` (returns :class:`segtutor.metrics.SegmentationMetrics`)."""
    from ..train import evaluate

    return evaluate(model, data, num_classes, batch_size=batch_size)


class _TinyNet(nn.Module):
    """conv → BatchNorm → ReLU → 1×1 conv: ``(N, 3, H, W)`` → logits ``(N, K, H, W)``.

    Its BatchNorm running statistics are set far from the statistics of any batch, so a forward pass in
    training mode (batch statistics) predicts visibly different labels from one in eval mode (running ones).
    """

    def __init__(self, num_classes: int, seed: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Conv2d(8, num_classes, 1)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            self.bn.running_mean.copy_(torch.randn(8, generator=g))
            self.bn.running_var.copy_(torch.rand(8, generator=g) * 3 + 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.bn(self.conv(x))))


def _read_scores(exercise: str, got: Any) -> tuple[float, float]:
    """(mIoU, pixel accuracy) from what the student returned: an object or a dict with both."""
    if got is None:
        fail(exercise, expected="the metrics of the whole dataset (ConfusionMatrix(...).compute())", got="None",
             hint="did you forget to `return` the result?")
    values = []
    for key in ("miou", "pixel_accuracy"):
        value = got.get(key) if isinstance(got, Mapping) else getattr(got, key, None)
        if value is None:
            what = type(got).__name__
            fail(exercise, expected="an object with .miou and .pixel_accuracy (what ConfusionMatrix.compute() returns)",
                 got=f"{what} without {key!r}" if not isinstance(got, (int, float)) else f"the number {got!r}",
                 hint="return confusion.compute(), not a single number")
        try:
            values.append(float(value))
        except (TypeError, ValueError):
            fail(exercise, expected=f"{key} as a number", got=f"{type(value).__name__}", hint="")
    return values[0], values[1]


def _per_batch_mean(model: nn.Module, data: Any, num_classes: int, batch_size: int, source_style: bool) -> float:
    """The mean of per-batch mIoUs (a common mistake), computed in eval mode; for hints only."""
    from ..metrics import mean_iou, source_style_miou

    images = torch.stack([data[i][0] for i in range(len(data))])
    masks = torch.stack([data[i][1] for i in range(len(data))])
    scores = []
    with model_mode(model), torch.no_grad():
        for x, y in zip(images.split(batch_size), masks.split(batch_size)):
            pred = model(x).argmax(1)
            scores.append(source_style_miou(pred, y, num_classes) if source_style else mean_iou(pred, y, num_classes))
    return sum(scores) / len(scores)


def check_evaluate_by_hand(fn: Callable[..., Any]) -> None:
    """Check ``fn(model, data, num_classes, batch_size=8)`` against :func:`segtutor.train.evaluate`.

    ``data`` is a dataset of ``(image (3, H, W), mask (H, W))``; the result must carry ``miou`` and
    ``pixel_accuracy`` over the whole dataset. Also checked: the forward passes run without gradients, the
    model's BatchNorm statistics are left alone, and the model's train/eval mode is restored afterwards.
    """
    from ..data import SyntheticShapes
    from ..train import evaluate

    exercise = "evaluate_by_hand"
    cases = [(4, 10, 4, 0), (3, 7, 3, 1)]   # (num_classes, images, batch_size, seed): uneven last batch
    for num_classes, n, batch_size, seed in cases:
        data = SyntheticShapes(n, 32, num_classes=num_classes, seed=100 + seed)
        model = _TinyNet(num_classes, seed)
        expected = evaluate(model, data, num_classes, batch_size=batch_size)
        model.train()                               # as it would be right after fit
        before = {k: v.clone() for k, v in model.state_dict().items()}
        grad_modes: list[bool] = []
        hook = model.register_forward_hook(lambda m, i, o: grad_modes.append(torch.is_grad_enabled()))
        try:
            got = call_student(exercise, fn, model, data, num_classes, batch_size=batch_size)
        finally:
            hook.remove()
        stats_changed = any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
        if stats_changed:
            fail(exercise, expected="the model's weights and BatchNorm statistics unchanged by evaluation",
                 got="BatchNorm running statistics were updated",
                 hint="call model.eval() before the loop: in training mode BatchNorm normalises each batch with its "
                      "own statistics and updates its running averages with the test data")
        if not grad_modes:
            fail(exercise, expected="the model called on the batches", got="no forward pass of the model",
                 hint="loop over a DataLoader(data, batch_size=batch_size) and call model(images)")
        if any(grad_modes):
            fail(exercise, expected="forward passes without gradient tracking", got="autograd was recording",
                 hint="wrap the loop in `with torch.no_grad():` (evaluation needs no gradients, and they cost memory)")
        if not model.training:
            fail(exercise, expected="the model back in training mode afterwards (it was training when passed in)",
                 got="the model left in eval mode",
                 hint="remember `was_training = model.training` and call model.train(was_training) at the end")
        miou, accuracy = _read_scores(exercise, got)
        hint = "Accumulate ONE ConfusionMatrix over every batch and call compute() once, at the end"
        if not math.isclose(miou, expected.miou, rel_tol=1e-6, abs_tol=1e-9):
            if math.isclose(miou, _per_batch_mean(model, data, num_classes, batch_size, False), abs_tol=1e-9):
                hint = ("that is the mean of per-batch mIoUs: a batch's score weighs the same however many pixels of "
                        "each class it holds. " + hint)
            elif math.isclose(miou, _per_batch_mean(model, data, num_classes, batch_size, True), abs_tol=1e-9):
                hint = "classes absent from a batch were scored 0 (the source's mistake) and batches averaged. " + hint
        check_close(exercise, miou, expected.miou, atol=1e-9, rtol=1e-6,
                    hint=f"{hint} (case: {n} images, batch_size={batch_size}, K={num_classes})")
        check_close(exercise, accuracy, expected.pixel_accuracy, atol=1e-9, rtol=1e-6,
                    hint=f"pixel accuracy = correct pixels / counted pixels over the whole dataset "
                         f"(case: {n} images, batch_size={batch_size})")
    passed(exercise, f"{len(cases)} datasets match segtutor.train.evaluate; eval mode, no_grad, mode restored")


# ------------------------------------------------------------------------------------------ worst_images

def worst_images_reference(per_image_scores: Any, k: int) -> torch.Tensor:
    """Indices ``int64 (min(k, M),)`` of the ``k`` lowest scores, lowest first (ties: lower index first).

    ``per_image_scores``: ``(N,)`` numbers (tensor, array or list), e.g. from
    :func:`segtutor.metrics.per_image_miou`; NaN entries (images with every pixel ignored) are left out, and
    ``M`` counts the others.
    """
    scores = torch.as_tensor(per_image_scores).detach().cpu()
    if scores.ndim != 1:
        raise ValueError(f"per_image_scores must be one score per image, shape (N,), got {tuple(scores.shape)}")
    k = check_int(k, "k", minimum=0)
    scores = scores.double()
    valid = torch.nonzero(~scores.isnan()).flatten()
    order = torch.argsort(scores[valid], stable=True)
    return valid[order[:k]]


def _as_indices(exercise: str, got: Any) -> list[int]:
    if got is None:
        fail(exercise, expected="a 1-D tensor (or list) of image indices", got="None", hint="did you forget to `return`?")
    try:
        t = torch.as_tensor(got).detach().cpu()
    except (TypeError, ValueError, RuntimeError):
        fail(exercise, expected="a 1-D tensor (or list) of image indices", got=type(got).__name__, hint="")
    if t.ndim != 1:
        fail(exercise, expected="a 1-D tensor of indices (k,)", got=f"shape {tuple(t.shape)}", hint="")
    if t.is_floating_point() and not bool((t == t.round()).all()):
        fail(exercise, expected="integer indices (positions in per_image_scores)", got=t,
             hint="return WHERE the worst scores are (torch.argsort gives positions), not the scores themselves")
    return [int(v) for v in t.tolist()]


def check_worst_images(fn: Callable[[Any, int], Any]) -> None:
    """Check ``fn(per_image_scores (N,), k) -> indices (min(k, M),)`` of the lowest scores, lowest first, NaN left out."""
    exercise = "worst_images"
    nan = float("nan")
    cases = [
        (torch.tensor([0.9, 0.2, 0.75, 0.4, 0.95, 0.1], dtype=torch.float64), 3),
        (torch.tensor([0.5, nan, 0.3, 0.8, nan, 0.6], dtype=torch.float64), 2),     # NaN: all pixels ignored
        (torch.tensor([0.5, nan, 0.3, 0.8], dtype=torch.float64), 5),                # k larger than the valid ones
        (torch.tensor([0.4, 0.7, 0.4, 0.2, 0.7], dtype=torch.float64), 3),           # ties
    ]
    for scores, k in cases:
        got = _as_indices(exercise, call_student(exercise, fn, scores.clone(), k))
        expected = worst_images_reference(scores, k).tolist()
        case = f"(case: scores {[round(s, 2) for s in scores.tolist()]}, k={k})"
        valid = [i for i, s in enumerate(scores.tolist()) if not math.isnan(s)]
        if sorted(got) == sorted(i for i in torch.argsort(scores.nan_to_num(-1.0), descending=True)[:k].tolist()) \
                and got != expected and len(got) == len(expected):
            fail(exercise, expected=expected, got=got, hint=f"the WORST images have the LOWEST scores {case}")
        bad = [i for i in got if not 0 <= i < len(scores)]
        if bad:
            fail(exercise, expected=expected, got=got, hint=f"indices must lie in 0..{len(scores) - 1} {case}")
        if any(i not in valid for i in got):
            fail(exercise, expected=expected, got=got,
                 hint=f"leave out NaN scores: an image with every pixel ignored has no mIoU, it is not a failure {case}")
        if len(got) != len(expected):
            fail(exercise, expected=f"{len(expected)} indices {expected}", got=f"{len(got)} indices {got}",
                 hint=f"return min(k, number of non-NaN scores) indices {case}")
        if len(set(got)) != len(got):
            fail(exercise, expected=expected, got=got, hint=f"each image at most once {case}")
        values = [float(scores[i]) for i in got]
        rest = [float(scores[i]) for i in valid if i not in got]
        if values != sorted(values):
            fail(exercise, expected=expected, got=got, hint=f"lowest score first (ascending order) {case}")
        if rest and values and max(values) > min(rest):
            fail(exercise, expected=expected, got=got,
                 hint=f"an image outside your answer has a lower score than one inside it {case}")
    passed(exercise, f"{len(cases)} cases, NaN left out, ties accepted in any order")
