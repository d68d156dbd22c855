"""Tests for segtutor.losses: hand-written formulas, torch's cross-entropy, MONAI, gradcheck and properties."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from segtutor.losses import CombinedLoss, DiceLoss, FocalLoss, dice_loss, focal_loss

VOID = 255


def make(n=2, k=3, h=4, w=5, seed=0, dtype=torch.float32, void=0.0):
    """Random logits (N, K, H, W) and labels (N, H, W); a fraction ``void`` of the labels set to VOID."""
    g = torch.Generator().manual_seed(seed)
    logits = (2 * torch.randn(n, k, h, w, generator=g)).to(dtype)
    target = torch.randint(0, k, (n, h, w), generator=g)
    target[torch.rand(n, h, w, generator=g) < void] = VOID
    return logits, target


# ------------------------------------------------------------------------------------------ independent oracles

def dice_by_loops(logits, target, smooth=1.0, ignore_index=None, weight=None):
    """1 − (weighted) mean_c D_c, written pixel by pixel in numpy."""
    x, t = logits.detach().double().numpy(), target.numpy()
    n, k, h, w = x.shape
    inter, psum, ysum = np.zeros(k), np.zeros(k), np.zeros(k)
    for i in range(n):
        for r in range(h):
            for c in range(w):
                if ignore_index is not None and t[i, r, c] == ignore_index:
                    continue
                e = np.exp(x[i, :, r, c] - x[i, :, r, c].max())
                p = e / e.sum()
                for cls in range(k):
                    y = float(t[i, r, c] == cls)
                    inter[cls] += p[cls] * y
                    psum[cls] += p[cls]
                    ysum[cls] += y
    d = (2 * inter + smooth) / (psum + ysum + smooth)
    wt = np.ones(k) if weight is None else np.asarray(weight, dtype=float)
    return 1 - (wt * d).sum() / wt.sum()


def focal_by_loops(logits, target, gamma=2.0, alpha=None, ignore_index=None):
    """mean over non-ignored pixels of −α_t (1 − p_t)^γ log p_t, with math.* per pixel."""
    x, t = logits.detach().double().numpy(), target.numpy()
    n, k, h, w = x.shape
    total, count = 0.0, 0
    for i in range(n):
        for r in range(h):
            for c in range(w):
                label = int(t[i, r, c])
                if ignore_index is not None and label == ignore_index:
                    continue
                z = x[i, :, r, c]
                pt = math.exp(z[label]) / sum(math.exp(v) for v in z)
                a = 1.0 if alpha is None else alpha[label]
                total += -a * (1 - pt) ** gamma * math.log(pt)
                count += 1
    return total / count


def test_dice_hand_example():
    # One image, K=2, two pixels: pixel 0 is class 0 with p = (0.75, 0.25), pixel 1 is class 1 with p = (0.5, 0.5).
    logits = torch.tensor([[[[math.log(3.0), 0.0]], [[0.0, 0.0]]]])           # (1, 2, 1, 2)
    target = torch.tensor([[[0, 1]]])
    d0 = (2 * 0.75 + 1) / (1.25 + 1 + 1)                                        # Σp·y=.75, Σp=1.25, Σy=1
    d1 = (2 * 0.5 + 1) / (0.75 + 1 + 1)
    assert dice_loss(logits, target).item() == pytest.approx(1 - (d0 + d1) / 2, abs=1e-6)
    assert dice_loss(logits, target, weight=[1, 3]).item() == pytest.approx(1 - (d0 + 3 * d1) / 4, abs=1e-6)


def test_focal_hand_example():
    logits = torch.tensor([[[[math.log(3.0), 0.0]], [[0.0, 0.0]]]])           # p_t = 0.75 and 0.5
    target = torch.tensor([[[0, 1]]])
    fl = lambda pt, a=1.0: -a * (1 - pt) ** 2 * math.log(pt)                    # noqa: E731
    assert focal_loss(logits, target).item() == pytest.approx((fl(0.75) + fl(0.5)) / 2, rel=1e-6)
    # alpha: a plain mean over the 2 pixels, NOT divided by Σ α_t = 0.25 + 2
    expected = (fl(0.75, 0.25) + fl(0.5, 2.0)) / 2
    assert focal_loss(logits, target, alpha=[0.25, 2.0]).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("ignore_index,void", [(None, 0.0), (VOID, 0.3), (1, 0.0)])
def test_against_loops(ignore_index, void):
    logits, target = make(k=4, void=void, seed=3)
    for kw in ({}, {"smooth": 0.5}, {"weight": [0.5, 1.0, 2.0, 0.0]}):
        assert dice_loss(logits, target, ignore_index=ignore_index, **kw).item() == \
            pytest.approx(dice_by_loops(logits, target, ignore_index=ignore_index, **kw), abs=1e-6)
    for kw in ({}, {"gamma": 0.5}, {"gamma": 3.0, "alpha": [0.25, 1.0, 2.0, 0.5]}):
        assert focal_loss(logits, target, ignore_index=ignore_index, **kw).item() == \
            pytest.approx(focal_by_loops(logits, target, ignore_index=ignore_index, **kw), rel=1e-5)


# ------------------------------------------------------------------------------------------ cross-entropy

@pytest.mark.parametrize("scale", [1.0, 40.0])                                  # 40: p_t as small as 1e-60
@pytest.mark.parametrize("ignore_index,void", [(None, 0.0), (VOID, 0.3), (0, 0.0)])
def test_focal_gamma0_is_cross_entropy(ignore_index, void, scale):
    logits, target = make(void=void, seed=1)
    logits = scale * logits
    ce = F.cross_entropy(logits, target, ignore_index=-100 if ignore_index is None else ignore_index)
    torch.testing.assert_close(focal_loss(logits, target, gamma=0.0, ignore_index=ignore_index), ce)
    torch.testing.assert_close(FocalLoss(gamma=0, ignore_index=ignore_index)(logits, target), ce)


def test_focal_alpha_is_a_plain_mean_unlike_cross_entropy_weight():
    logits, target = make(void=0.3, seed=2)
    alpha = torch.tensor([0.25, 1.0, 3.0])
    ours = focal_loss(logits, target, gamma=0.0, alpha=alpha, ignore_index=VOID)
    num_valid = (target != VOID).sum()
    ce_sum = F.cross_entropy(logits, target, weight=alpha, ignore_index=VOID, reduction="sum")
    torch.testing.assert_close(ours, ce_sum / num_valid)                          # Σ α_t ℓ / M
    ce_mean = F.cross_entropy(logits, target, weight=alpha, ignore_index=VOID)    # Σ α_t ℓ / Σ α_t
    torch.testing.assert_close(ce_mean, ce_sum / alpha[target[target != VOID]].sum())
    assert not torch.allclose(ours, ce_mean)


def test_focal_down_weights_easy_pixels():
    logits, target = make(n=1, k=3, h=1, w=12, seed=4)
    for gamma in (0.5, 2.0, 5.0):
        for j in range(12):
            x, t = logits[..., j:j + 1], target[..., j:j + 1]                      # a single pixel
            pt = x.softmax(1)[0, t[0, 0, 0], 0, 0]
            ratio = focal_loss(x, t, gamma=gamma) / F.cross_entropy(x, t)
            torch.testing.assert_close(ratio, (1 - pt) ** gamma)
    confident = torch.tensor([[[[6.0]], [[0.0]], [[0.0]]]])
    t = torch.zeros(1, 1, 1, dtype=torch.long)
    assert focal_loss(confident, t) < 1e-3 * F.cross_entropy(confident, t)


# ------------------------------------------------------------------------------------------ MONAI

@pytest.mark.parametrize("ignore_index,void", [(None, 0.0), (VOID, 0.3)])
def test_dice_equals_monai(ignore_index, void):
    monai_losses = pytest.importorskip("monai.losses")
    logits, target = make(k=4, void=void, seed=5, dtype=torch.float64)
    for s in (1.0, 1e-5):
        monai = monai_losses.DiceLoss(softmax=True, to_onehot_y=True, include_background=True, smooth_nr=s,
                                      smooth_dr=s, batch=True, reduction="mean", ignore_index=ignore_index)
        torch.testing.assert_close(dice_loss(logits, target, smooth=s, ignore_index=ignore_index),
                                   monai(logits, target[:, None]))
    # MONAI's `weight` averages w_c (1 − D_c) over the K classes; ours divides by Σ w_c, so they differ by K / Σ w.
    w = [1.0, 2.0, 0.5, 3.0]
    monai = monai_losses.DiceLoss(softmax=True, to_onehot_y=True, smooth_nr=1.0, smooth_dr=1.0, batch=True,
                                  weight=w, ignore_index=ignore_index)
    torch.testing.assert_close(dice_loss(logits, target, ignore_index=ignore_index, weight=w),
                               monai(logits, target[:, None]) * len(w) / sum(w))


@pytest.mark.parametrize("alpha", [None, [0.25, 1.0, 2.0, 0.5]])
def test_focal_equals_monai(alpha):
    monai_losses = pytest.importorskip("monai.losses")
    logits, target = make(k=4, void=0.3, seed=6, dtype=torch.float64)
    clean = torch.where(target == VOID, 0, target)

    def monai(reduction, ignore_index, t):
        fl = monai_losses.FocalLoss(gamma=2.0, alpha=alpha, use_softmax=True, to_onehot_y=True,
                                    reduction=reduction, ignore_index=ignore_index)
        return fl(logits, t[:, None]).double()                                      # MONAI computes in float32

    ours = focal_loss(logits, clean, alpha=alpha)
    # Same per-pixel term: MONAI's "none" map (N, K, H, W) is non-zero only in the true-class channel, and its
    # sequence alpha multiplies that channel, i.e. α_t = alpha[target] as here.
    torch.testing.assert_close(monai("none", None, clean).sum(1).mean(), ours, rtol=1e-5, atol=0)
    # MONAI "mean" divides by the N·K·H·W elements of that map (K times too many) when nothing is ignored...
    torch.testing.assert_close(monai("mean", None, clean) * 4, ours, rtol=1e-5, atol=0)
    # ...but by the number of non-ignored PIXELS when ignore_index is set: then it equals ours.
    torch.testing.assert_close(monai("mean", VOID, target), focal_loss(logits, target, alpha=alpha, ignore_index=VOID),
                               rtol=1e-5, atol=0)


# ------------------------------------------------------------------------------------------ gradients, ignore

def test_gradcheck_float64():
    logits, target = make(n=2, k=3, h=3, w=3, void=0.3, seed=7, dtype=torch.float64)
    logits.requires_grad_(True)
    checks = [
        lambda x: dice_loss(x, target, ignore_index=VOID),
        lambda x: dice_loss(x, target, smooth=0.1, ignore_index=VOID, weight=[1.0, 2.0, 0.5]),
        lambda x: focal_loss(x, target, ignore_index=VOID),
        lambda x: focal_loss(x, target, gamma=0.5, alpha=[0.25, 1.0, 2.0], ignore_index=VOID),
    ]
    for fn in checks:
        assert torch.autograd.gradcheck(fn, (logits,))


@pytest.mark.parametrize("loss", [DiceLoss(ignore_index=VOID), FocalLoss(ignore_index=VOID),
                                  FocalLoss(gamma=0.5, alpha=[1.0, 2.0, 3.0], ignore_index=VOID),
                                  CombinedLoss.ce_dice(0.5, ignore_index=VOID)])
def test_ignored_pixels_move_nothing(loss):
    logits, target = make(void=0.3, seed=8)
    ignored = (target == VOID)[:, None].expand_as(logits)

    def loss_and_grad(x):
        x = x.clone().requires_grad_(True)
        value = loss(x, target)
        value.backward()
        return value.detach(), x.grad

    value, grad = loss_and_grad(logits)
    assert (grad[ignored] == 0).all() and grad[~ignored].abs().sum() > 0
    wild = torch.where(ignored, 50 * torch.randn_like(logits), logits)
    value2, grad2 = loss_and_grad(wild)
    torch.testing.assert_close(value2, value, rtol=0, atol=0)
    torch.testing.assert_close(grad2, grad, rtol=0, atol=0)


@pytest.mark.parametrize("fn", [dice_loss, focal_loss, lambda x, t, ignore_index: dice_loss(x, t, 0.0, ignore_index)])
def test_all_pixels_ignored_gives_connected_zero(fn):
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    target = torch.full((2, 4, 4), VOID)
    value = fn(logits, target, ignore_index=VOID)
    assert value.item() == 0.0 and value.grad_fn is not None
    value.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_focal_gradient_finite_for_saturated_pixels():
    logits = torch.tensor([[[[200.0, 0.0]], [[0.0, 0.0]]]], requires_grad=True)  # p_t == 1 in float32
    target = torch.tensor([[[0, 1]]])
    for gamma in (0.0, 0.5, 2.0):
        logits.grad = None
        focal_loss(logits, target, gamma=gamma).backward()
        assert torch.isfinite(logits.grad).all()


# ------------------------------------------------------------------------------------------ modules, combination

def test_modules_match_functions_and_combination():
    logits, target = make(void=0.2, seed=9)
    torch.testing.assert_close(DiceLoss(0.5, VOID, [1, 2, 3])(logits, target),
                               dice_loss(logits, target, 0.5, VOID, [1, 2, 3]))
    torch.testing.assert_close(FocalLoss(1.5, (0.2, 0.3, 0.5), VOID)(logits, target),
                               focal_loss(logits, target, 1.5, torch.tensor([0.2, 0.3, 0.5]), VOID))
    ce = F.cross_entropy(logits, target, ignore_index=VOID)
    dice = dice_loss(logits, target, ignore_index=VOID)
    combo = CombinedLoss([nn.CrossEntropyLoss(ignore_index=VOID), DiceLoss(ignore_index=VOID)], [0.3, 2.0])
    torch.testing.assert_close(combo(logits, target), 0.3 * ce + 2.0 * dice)
    torch.testing.assert_close(CombinedLoss.ce_dice(0.25, ignore_index=VOID)(logits, target), 0.75 * ce + 0.25 * dice)
    logits, target = make(seed=9)
    torch.testing.assert_close(CombinedLoss.ce_dice(0.0)(logits, target), F.cross_entropy(logits, target))


# ------------------------------------------------------------------------------------------ bad input

@pytest.mark.parametrize("call,error,match", [
    (lambda x, t: dice_loss(x, t.float()), TypeError, "integer class labels"),
    (lambda x, t: focal_loss(x, t + 1), ValueError, "label 3 outside the valid range 0..2"),
    (lambda x, t: dice_loss(x, torch.where(t == 0, VOID, t)), ValueError, "ignore_index=255"),
    (lambda x, t: focal_loss(x, t[:, :3]), ValueError, "does not match target"),
    (lambda x, t: dice_loss(x[0], t), ValueError, r"\(N, K, H, W\)"),
    (lambda x, t: focal_loss(x.clone().index_fill_(0, torch.tensor([0]), float("nan")), t), ValueError, "NaN"),
    (lambda x, t: focal_loss(x[:, :1], t.clamp_max(0)), ValueError, "K ≥ 2"),
    (lambda x, t: focal_loss(x, t, alpha=[1.0, 2.0]), ValueError, r"2 entries but logits have K=3.*\(3,\)"),
    (lambda x, t: FocalLoss(alpha=[1.0, -1.0, 1.0])(x, t), ValueError, "non-negative"),
    (lambda x, t: dice_loss(x, t, weight=[[1.0, 2.0, 3.0]]), ValueError, "1-D"),
    (lambda x, t: focal_loss(x, t, gamma=-1.0), ValueError, "gamma must be finite and ≥ 0"),
    (lambda x, t: FocalLoss(gamma="2"), TypeError, "gamma must be a number"),
    (lambda x, t: dice_loss(x, t, smooth=-0.5), ValueError, "smooth must be finite and ≥ 0"),
    (lambda x, t: DiceLoss(smooth=float("nan")), ValueError, "smooth"),
    (lambda x, t: CombinedLoss([DiceLoss()], [1.0, 2.0]), ValueError, "one weight per loss"),
    (lambda x, t: CombinedLoss([DiceLoss()], [-1.0]), ValueError, "weight must be finite and ≥ 0"),
    (lambda x, t: CombinedLoss.ce_dice(1.5), ValueError, r"mix must be in \[0, 1\]"),
])
def test_bad_input_is_named(call, error, match):
    logits, target = make(k=3)
    with pytest.raises(error, match=match):
        call(logits, target)


# ------------------------------------------------------------------------------------------ properties

@settings(max_examples=40, deadline=None)
@given(k=st.integers(2, 5), h=st.integers(1, 6), w=st.integers(1, 6), seed=st.integers(0, 10_000),
       scale=st.floats(0.0, 30.0), smooth=st.sampled_from([1e-6, 0.1, 1.0, 10.0]))
def test_dice_in_unit_interval_and_perfect_logits_reach_zero(k, h, w, seed, scale, smooth):
    logits, target = make(n=2, k=k, h=h, w=w, seed=seed)
    value = dice_loss(scale * logits, target, smooth=smooth).item()
    assert -1e-6 <= value <= 1 + 1e-6
    perfect = 40.0 * F.one_hot(target, k).permute(0, 3, 1, 2).float()            # very confident and correct
    assert dice_loss(perfect, target, smooth=smooth).item() < 1e-5
    assert dice_loss(perfect, target, smooth=smooth) <= dice_loss(perfect / 8, target, smooth=smooth)
