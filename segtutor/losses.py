"""Segmentation losses: Dice, Focal and weighted combinations. Taught in ``04_losses.ipynb``.

Cross-entropy is torch's own ``F.cross_entropy`` / ``nn.CrossEntropyLoss``; this module adds the two losses it
is usually paired with on imbalanced data. All of them take

- ``logits``: float ``(N, K, H, W)``, raw scores before softmax, ``K >= 2``;
- ``target``: int64 ``(N, H, W)``, labels in ``0..K-1`` or ``ignore_index``.

Ignored pixels are removed before anything is computed: they move neither the loss nor any gradient. If every
pixel of a batch is ignored, the loss is a zero that is still connected to ``logits`` (gradient zero), not NaN.
``ignore_index`` is an integer or ``None`` by the package's one rule
(:func:`segtutor._validation.check_ignore_index`); unlike in the metrics it may name a class, which a loss
may legitimately leave out.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._validation import check_ignore_index, check_labels, check_pair, check_scores

__all__ = ["dice_loss", "focal_loss", "DiceLoss", "FocalLoss", "CombinedLoss"]

PerClass = Sequence[float] | torch.Tensor


def dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0,
              ignore_index: int | None = None, weight: PerClass | None = None) -> torch.Tensor:
    """Soft Dice loss ``1 − mean_c D_c`` over the whole batch; a scalar tensor.

    ``p = softmax(logits)`` and ``y = one_hot(target)``, both ``(N, K, H, W)``; with the sums running over the
    batch and all non-ignored pixels,

        D_c = (2 Σ p_c·y_c + s) / (Σ p_c + Σ y_c + s),   s = ``smooth``.

    ``s`` keeps ``D_c`` defined for a class absent from the batch (an absent class that is also not predicted
    scores ``D_c ≈ 1``; with ``s = 0`` it would be 0/0). ``weight`` (length ``K``, non-negative) turns the mean
    into ``Σ w_c D_c / Σ w_c``. Equals MONAI's ``DiceLoss(softmax=True, to_onehot_y=True, batch=True,
    smooth_nr=s, smooth_dr=s)`` without weights (MONAI's ``weight`` divides by ``K``, not by ``Σ w_c``).
    """
    _check_smooth(smooth)
    scores, labels = _valid_pixels(logits, target, ignore_index)                # (M, K), (M,)
    w = _per_class(weight, "weight", logits.shape[1])
    if labels.numel() == 0:
        return _zero_loss(logits)
    p = scores.softmax(dim=1)
    y = F.one_hot(labels, p.shape[1]).to(p.dtype)
    dice = (2 * (p * y).sum(0) + smooth) / (p.sum(0) + y.sum(0) + smooth)     # (K,)
    if w is None:
        return 1 - dice.mean()
    w = w.to(dice)
    return 1 - (w * dice).sum() / w.sum()


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0,
               alpha: PerClass | None = None, ignore_index: int | None = None) -> torch.Tensor:
    """Focal loss ``−α_t (1 − p_t)^γ log p_t`` averaged over the non-ignored pixels; a scalar tensor.

    ``p_t`` is the softmax probability of the true class of a pixel. ``(1 − p_t)^γ`` shrinks the loss of pixels
    the model already gets right (easy background) so the hard ones dominate; ``γ = 0`` gives cross-entropy.

    ``alpha`` (length ``K``) weights a pixel by its true class, ``α_t = alpha[target]``. The result is the PLAIN
    mean over the ``M`` non-ignored pixels, ``Σ_i α_t(i)·ℓ_i / M`` with ``ℓ_i = −(1 − p_t)^γ log p_t``. This
    differs from ``F.cross_entropy(weight=alpha)``, which divides by ``Σ_i α_t(i)`` instead of ``M``; with
    ``alpha=None`` the two conventions coincide.
    """
    gamma = _check_nonnegative(gamma, "gamma", "the focusing exponent γ (2 is the usual value, 0 gives cross-entropy)")
    scores, labels = _valid_pixels(logits, target, ignore_index)
    a = _per_class(alpha, "alpha", logits.shape[1])
    if labels.numel() == 0:
        return _zero_loss(logits)
    log_pt = F.log_softmax(scores, dim=1).gather(1, labels[:, None]).squeeze(1)  # (M,), never log of a softmax
    # The clamp keeps the gradient of x^γ finite when a saturated pixel has p_t == 1 exactly and γ < 1.
    one_minus_pt = (1 - log_pt.exp()).clamp_min(torch.finfo(log_pt.dtype).tiny)
    loss = -one_minus_pt.pow(gamma) * log_pt
    if a is not None:
        loss = a.to(loss)[labels] * loss
    return loss.mean()


class DiceLoss(nn.Module):
    """Module form of :func:`dice_loss`: ``DiceLoss(smooth, ignore_index, weight)(logits, target)``."""

    def __init__(self, smooth: float = 1.0, ignore_index: int | None = None, weight: PerClass | None = None):
        super().__init__()
        _check_smooth(smooth)
        self.smooth, self.ignore_index = smooth, check_ignore_index(ignore_index)
        self.register_buffer("weight", _per_class(weight, "weight"), persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return dice_loss(logits, target, self.smooth, self.ignore_index, self.weight)

    def extra_repr(self) -> str:
        return f"smooth={self.smooth}, ignore_index={self.ignore_index}"


class FocalLoss(nn.Module):
    """Module form of :func:`focal_loss`: ``FocalLoss(gamma, alpha, ignore_index)(logits, target)``."""

    def __init__(self, gamma: float = 2.0, alpha: PerClass | None = None, ignore_index: int | None = None):
        super().__init__()
        self.gamma = _check_nonnegative(gamma, "gamma", "the focusing exponent γ")
        self.ignore_index = check_ignore_index(ignore_index)
        self.register_buffer("alpha", _per_class(alpha, "alpha"), persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return focal_loss(logits, target, self.gamma, self.alpha, self.ignore_index)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, ignore_index={self.ignore_index}"


class CombinedLoss(nn.Module):
    """Weighted sum ``Σ_j weights[j] · losses[j](logits, target)`` of loss modules.

    ``CombinedLoss([nn.CrossEntropyLoss(), DiceLoss()], [1.0, 1.0])``; :meth:`ce_dice` builds the usual mix.
    """

    def __init__(self, losses: Sequence[nn.Module], weights: Sequence[float] | None = None):
        super().__init__()
        losses = list(losses)
        weights = [1.0] * len(losses) if weights is None else [float(w) for w in weights]
        if not losses or len(weights) != len(losses):
            raise ValueError(f"CombinedLoss needs a non-empty list of losses and one weight per loss, "
                             f"got {len(losses)} losses and {len(weights)} weights")
        for w in weights:
            _check_nonnegative(w, "each weight", "a finite number ≥ 0")
        self.losses = nn.ModuleList(losses)
        self.weights = weights

    @classmethod
    def ce_dice(cls, mix: float = 0.5, *, smooth: float = 1.0, ignore_index: int | None = None) -> CombinedLoss:
        """``(1 − mix) · cross-entropy + mix · Dice``; ``mix`` in ``[0, 1]`` (0 = pure CE, 1 = pure Dice).

        Note: torch's cross-entropy is NaN on a batch where every pixel is ignored; Dice is 0 there.
        """
        if not 0.0 <= mix <= 1.0:
            raise ValueError(f"mix must be in [0, 1] (0 = cross-entropy only, 1 = Dice only), got {mix}")
        ce = nn.CrossEntropyLoss(ignore_index=-100 if ignore_index is None else ignore_index)
        return cls([ce, DiceLoss(smooth, ignore_index)], [1.0 - mix, mix])

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum(w * loss(logits, target) for w, loss in zip(self.weights, self.losses))

    def extra_repr(self) -> str:
        return f"weights={self.weights}"


# ---------------------------------------------------------------------------------------------------- helpers

def _valid_pixels(logits: torch.Tensor, target: torch.Tensor,
                  ignore_index: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Check the inputs; return the non-ignored pixels as scores ``(M, K)`` and labels ``(M,)``."""
    check_scores(logits, name="logits")
    ignore_index = check_ignore_index(ignore_index)
    num_classes = logits.shape[1]
    if num_classes < 2:
        raise ValueError(f"logits must have K ≥ 2 class channels (N, K, H, W), got {tuple(logits.shape)}; "
                         "for a binary task use 2 channels (background, foreground)")
    check_labels(target, num_classes, ignore_index, ndim=3)
    check_pair(logits, target, name="logits")
    scores = logits.movedim(1, -1).reshape(-1, num_classes)
    labels = target.reshape(-1).long()
    if ignore_index is not None:
        keep = labels != ignore_index
        scores, labels = scores[keep], labels[keep]
    return scores, labels


def _zero_loss(logits: torch.Tensor) -> torch.Tensor:
    """A zero loss still connected to ``logits`` (``backward()`` works, the gradient is zero)."""
    return logits.sum() * 0.0


def _per_class(values: PerClass | None, name: str, num_classes: int | None = None) -> torch.Tensor | None:
    """``None`` or a float tensor ``(K,)`` of finite, non-negative per-class weights."""
    if values is None:
        return None
    t = torch.as_tensor(values)
    t = t if t.is_floating_point() else t.float()
    if t.ndim != 1 or not bool(torch.isfinite(t).all()) or bool((t < 0).any()) or not bool(t.sum() > 0):
        raise ValueError(f"{name} must be a 1-D sequence of K finite, non-negative per-class weights "
                         f"(not all zero), got {values!r}")
    if num_classes is not None and t.numel() != num_classes:
        raise ValueError(f"{name} has {t.numel()} entries but logits have K={num_classes} classes; "
                         f"expected one weight per class, shape ({num_classes},)")
    return t


def _check_nonnegative(value: float, name: str, expected: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number ({expected}), got {type(value).__name__}")
    if not (value >= 0 and value != float("inf")):
        raise ValueError(f"{name} must be finite and ≥ 0 ({expected}), got {value}")
    return float(value)


def _check_smooth(smooth: float) -> None:
    _check_nonnegative(smooth, "smooth", "the Dice smoothing term s, e.g. 1.0")
