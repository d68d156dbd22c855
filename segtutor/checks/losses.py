"""Checks for the exercises of ``notebooks/04_losses.ipynb``: Dice and Focal losses written from scratch.

Each check calls the student's function on fixed random logits and compares it with :mod:`segtutor.losses`
(and, for focal with ``γ = 0``, with torch's ``F.cross_entropy``). When the answer matches a typical
mistake (no softmax, per-image Dice, a sum instead of a mean, ``log`` of a softmax) the hint names it.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from . import call_student, check_close, fail, passed

__all__ = ["check_dice_loss", "check_focal_loss"]


def _case(seed: int, shape: tuple[int, int, int, int], scale: float = 2.0,
          absent: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed logits ``(N, K, H, W)`` and target ``(N, H, W)``; class ``absent`` never occurs in the target."""
    g = torch.Generator().manual_seed(seed)
    n, k, h, w = shape
    logits = torch.randn(shape, generator=g) * scale
    high = k - 1 if absent is not None else k
    target = torch.randint(0, high, (n, h, w), generator=g)
    if absent is not None:
        target[target >= absent] += 1
    return logits, target


def _scalar(exercise: str, value: object) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        fail(exercise, expected="a scalar torch.Tensor (so that loss.backward() works)", got=type(value).__name__,
             hint="return a tensor, not a Python float: avoid .item() and numpy")
    if value.shape != ():
        fail(exercise, expected="a scalar tensor of shape ()", got=f"shape {tuple(value.shape)}",
             hint="reduce over classes, pixels and the batch to a single number")
    return value


def _differentiable(exercise: str, fn: Callable, logits: torch.Tensor, target: torch.Tensor, **kwargs) -> None:
    z = logits.clone().requires_grad_(True)
    value = _scalar(exercise, call_student(exercise, fn, z, target, **kwargs))
    if not value.requires_grad:
        fail(exercise, expected="a loss connected to the logits (requires_grad=True)", got="a tensor with no gradient",
             hint="use softmax probabilities, not argmax labels, and no .detach() / .item() / numpy")


def _dice_without_softmax(logits: torch.Tensor, target: torch.Tensor, smooth: float) -> torch.Tensor:
    p = logits.clamp(0, 1)
    y = F.one_hot(target, logits.shape[1]).movedim(-1, 1).float()
    dims = (0, 2, 3)
    return 1 - ((2 * (p * y).sum(dims) + smooth) / (p.sum(dims) + y.sum(dims) + smooth)).mean()


def _dice_per_image(logits: torch.Tensor, target: torch.Tensor, smooth: float) -> torch.Tensor:
    p = logits.softmax(1)
    y = F.one_hot(target, logits.shape[1]).movedim(-1, 1).float()
    dims = (2, 3)
    return 1 - ((2 * (p * y).sum(dims) + smooth) / (p.sum(dims) + y.sum(dims) + smooth)).mean()


def check_dice_loss(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``fn(logits (N, K, H, W), target (N, H, W), smooth=1.0) -> scalar`` against ``segtutor.losses.dice_loss``.

    Soft Dice over the whole batch: ``p = softmax(logits)``, one-hot ``y``, per class
    ``D_c = (2 Σ p·y + s) / (Σ p + Σ y + s)`` summed over batch and pixels, loss ``1 − mean_c D_c``.
    """
    from ..losses import dice_loss

    exercise = "dice loss"
    cases = [(_case(0, (2, 3, 5, 6)), 1.0), (_case(1, (3, 4, 4, 4), absent=2), 1.0), (_case(2, (1, 2, 7, 3)), 0.5),
             (_case(3, (2, 3, 4, 5), scale=6.0), 0.0)]
    for (logits, target), smooth in cases:
        got = _scalar(exercise, call_student(exercise, fn, logits, target, smooth=smooth))
        expected = dice_loss(logits, target, smooth=smooth)
        hint = "p = softmax(logits, dim=1); y = one_hot(target) moved to (N, K, H, W); sum over dims (0, 2, 3)"
        if torch.allclose(got.detach().double(), _dice_without_softmax(logits, target, smooth).double(), atol=1e-5):
            hint = "turn the logits into probabilities with torch.softmax(logits, dim=1) first"
        elif torch.allclose(got.detach().double(), _dice_per_image(logits, target, smooth).double(), atol=1e-5):
            hint = "sum over the batch as well (dims 0, 2, 3), not per image: the course's Dice is one score per class"
        check_close(exercise, got, expected, atol=1e-5, rtol=1e-4,
                    hint=f"{hint} (case: logits {tuple(logits.shape)}, smooth={smooth})")
    _differentiable(exercise, fn, *cases[0][0], smooth=1.0)
    passed(exercise, f"{len(cases)} cases match segtutor.losses.dice_loss; the loss is differentiable")


def check_focal_loss(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``fn(logits (N, K, H, W), target (N, H, W), gamma=2.0) -> scalar`` against ``segtutor.losses.focal_loss``.

    Focal loss ``−(1 − p_t)^γ log p_t`` averaged over pixels; with ``γ = 0`` it must equal ``F.cross_entropy``.
    Includes a case with large logits, where ``torch.log(torch.softmax(...))`` gives ``inf``.
    """
    from ..losses import focal_loss

    exercise = "focal loss"
    logits, target = _case(10, (2, 3, 4, 5))
    got = _scalar(exercise, call_student(exercise, fn, logits, target, gamma=0.0))
    check_close(exercise, got, F.cross_entropy(logits, target), atol=1e-5, rtol=1e-4,
                hint="with gamma=0 the focal loss is cross-entropy: the MEAN over pixels of −log p_t "
                     "(compare with F.cross_entropy(logits, target))")
    cases = [(_case(11, (2, 4, 3, 5)), 2.0), (_case(12, (1, 3, 6, 6), absent=1), 0.5), (_case(13, (3, 2, 4, 4)), 3.0)]
    for (logits, target), gamma in cases:
        got = _scalar(exercise, call_student(exercise, fn, logits, target, gamma=gamma))
        expected = focal_loss(logits, target, gamma=gamma)
        hint = "p_t = softmax(logits)[true class]; loss = mean of −(1 − p_t)**gamma * log p_t"
        if torch.allclose(got.detach().double(), expected.double() * target.numel(), rtol=1e-4):
            hint = "average over the pixels (mean), do not sum them"
        elif torch.allclose(got.detach().double(), F.cross_entropy(logits, target).double(), rtol=1e-4):
            hint = "the modulating factor (1 − p_t)**gamma is missing"
        check_close(exercise, got, expected, atol=1e-5, rtol=1e-4, hint=f"{hint} (case: gamma={gamma})")

    # saturated logits: p_t underflows to 0 in float32 for the wrong pixels
    logits = torch.tensor([[0.0, 120.0], [120.0, 0.0], [5.0, -5.0]]).T.reshape(1, 2, 1, 3)
    target = torch.tensor([[[0, 0, 0]]])
    got = _scalar(exercise, call_student(exercise, fn, logits, target, gamma=2.0))
    if not bool(torch.isfinite(got)):
        fail(exercise, expected=f"{float(focal_loss(logits, target, gamma=2.0)):.4f} (finite)", got=got,
             hint="torch.log(torch.softmax(z)) is log(0) = -inf when a probability underflows; "
                  "compute log p_t with F.log_softmax(logits, dim=1) and p_t as its exp()")
    check_close(exercise, got, focal_loss(logits, target, gamma=2.0), atol=1e-4, rtol=1e-4,
                hint="large logits: compute log p_t with F.log_softmax(logits, dim=1)")
    _differentiable(exercise, fn, *cases[0][0], gamma=2.0)
    passed(exercise, f"γ=0 equals F.cross_entropy; {len(cases) + 1} more cases match segtutor.losses.focal_loss")


# ------------------------------------------------------------------------------ Dice with ignore_index

__all__ += ["check_dice_loss_ignore_index"]


def _dice_parts(logits: torch.Tensor, target: torch.Tensor, smooth: float, p_mask: torch.Tensor | None,
                y_mask: torch.Tensor | None, fill: int) -> torch.Tensor:
    """Soft Dice with ignored labels replaced by ``fill`` and ``p`` / ``y`` multiplied by the given masks: the
    right answer (both masks) and the usual wrong ones (one mask, or none) in one formula."""
    k = logits.shape[1]
    p = logits.double().softmax(1)
    y = F.one_hot(target.clamp(0, k - 1).where(target < k, torch.full_like(target, fill)), k).movedim(-1, 1).double()
    if p_mask is not None:
        p = p * p_mask[:, None]
    if y_mask is not None:
        y = y * y_mask[:, None]
    dims = (0, 2, 3)
    return 1 - ((2 * (p * y).sum(dims) + smooth) / (p.sum(dims) + y.sum(dims) + smooth)).mean()


def check_dice_loss_ignore_index(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``fn(logits (N, K, H, W), target (N, H, W), smooth=1.0, ignore_index=None) -> scalar``.

    As :func:`check_dice_loss`, and with ``ignore_index`` set the pixels whose target is ``ignore_index`` leave
    every sum (Σ p·y, Σ p and Σ y): they are neither right nor wrong. Compared with
    ``segtutor.losses.dice_loss(..., ignore_index=...)``; the hints name the usual mistakes (ignored pixels left in
    Σ p, ignored pixels scored as a real class, ``F.one_hot`` on 255).
    """
    from ..losses import dice_loss

    exercise = "dice loss with ignore_index"
    cases = []
    for seed, shape, smooth in ((20, (2, 3, 6, 6), 1.0), (21, (3, 4, 5, 4), 0.5), (22, (1, 2, 6, 5), 0.0)):
        logits, target = _case(seed, shape)
        target[:, 0, :] = target[:, :, -1] = 255                     # a void border, as in PASCAL VOC
        cases.append((logits, target, smooth))
    logits, target = _case(23, (2, 3, 4, 4))
    target[1] = 255                                                  # one image entirely void
    cases.append((logits, target, 1.0))
    for logits, target, smooth in cases:
        try:
            got = fn(logits.clone(), target.clone(), smooth=smooth, ignore_index=255)
        except NotImplementedError:
            got = call_student(exercise, fn, logits, target, smooth=smooth, ignore_index=255)
        except TypeError as exc:
            fail(exercise, expected="a function taking (logits, target, smooth=..., ignore_index=...)",
                 got=f"TypeError: {exc}", hint="add the parameter: def my_dice_loss(logits, target, smooth=1.0, "
                                                "ignore_index=None)")
        except Exception as exc:
            fail(exercise, expected="a finite loss over the non-ignored pixels", got=f"{type(exc).__name__}: {exc}",
                 hint="F.one_hot cannot encode 255: replace the ignored labels by any valid class first "
                      "(target.masked_fill(~valid, 0)), then multiply both p and y by the valid mask")
        got = _scalar(exercise, got)
        expected = dice_loss(logits, target, smooth=smooth, ignore_index=255)
        valid = (target != 255).double()
        k = logits.shape[1]
        hint = ("with valid = (target != ignore_index), multiply both p and y by valid[:, None] before the sums "
                "(or select the valid pixels), so that ignored pixels leave Σ p·y, Σ p and Σ y")
        g = got.detach().double()
        if bool(torch.isfinite(g)):
            if torch.allclose(g, _dice_parts(logits, target, smooth, None, valid, 0), atol=1e-5):
                hint = ("ignored pixels were counted in the denominator: their probabilities are still in Σ p; "
                        "multiply p by the valid mask too")
            elif any(torch.allclose(g, _dice_parts(logits, target, smooth, None, None, c), atol=1e-5)
                     for c in range(k)):
                hint = ("ignored pixels were scored as a real class (their label replaced, but the pixels kept): "
                        "drop them from every sum with the valid mask")
            elif torch.allclose(g, _dice_parts(logits, target, smooth, valid, None, 0), atol=1e-5):
                hint = ("the ignored pixels' one-hot truth is still counted (as class 0) in Σ y: multiply y by the "
                        "valid mask too")
        check_close(exercise, got, expected, atol=1e-5, rtol=1e-4,
                    hint=f"{hint} (case: logits {tuple(logits.shape)}, smooth={smooth}, ignore_index=255, "
                         f"{int((target == 255).sum())} of {target.numel()} pixels ignored)")
    logits, target = _case(24, (2, 3, 4, 5))
    got = _scalar(exercise, call_student(exercise, fn, logits, target, smooth=1.0, ignore_index=None))
    check_close(exercise, got, dice_loss(logits, target, smooth=1.0), atol=1e-5, rtol=1e-4,
                hint="with ignore_index=None every pixel counts: the plain soft Dice")
    _differentiable(exercise, fn, *cases[0][:2], smooth=1.0, ignore_index=255)
    passed(exercise, f"{len(cases)} cases with void pixels match segtutor.losses.dice_loss(ignore_index=255)")
