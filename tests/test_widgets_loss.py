"""The loss explorer of notebook 04: its curves against closed forms, its gradient shares, and the widget wiring."""
import math

import numpy as np
import pytest
import torch

from segtutor.widgets import loss as lw

P = np.array([0.02, 0.1, 0.3, 0.5, 0.7, 0.9, 0.98])


def focal_closed(p, gamma, alpha):
    return -alpha * (1 - p) ** gamma * np.log(p)


def dice_closed(p, s):
    # one pixel of class 1: class 1 present (y = 1), class 0 absent (y = 0)
    return 1 - 0.5 * ((2 * p + s) / (p + 1 + s) + s / (1 - p + s))


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


@pytest.mark.parametrize("gamma,alpha,smooth,mix", [(2.0, 1.0, 1.0, 0.5), (0.5, 3.0, 0.0, 0.2), (4.0, 0.25, 2.5, 1.0)])
def test_curves_equal_closed_forms(gamma, alpha, smooth, mix):
    c = lw.loss_curves(P, gamma, alpha, smooth, mix)
    np.testing.assert_allclose(c["p"], P)
    np.testing.assert_allclose(c["cross-entropy"], -np.log(P), rtol=1e-10)
    np.testing.assert_allclose(c["grad cross-entropy"], 1 - P, rtol=1e-10)       # softmax-CE: ∂L/∂z_t = p − 1
    np.testing.assert_allclose(c["focal"], focal_closed(P, gamma, alpha), rtol=1e-10)
    np.testing.assert_allclose(c["dice"], dice_closed(P, smooth), rtol=1e-10)
    np.testing.assert_allclose(c["CE + Dice"], (1 - mix) * -np.log(P) + mix * dice_closed(P, smooth), rtol=1e-10)


@pytest.mark.parametrize("gamma,alpha", [(2.0, 1.0), (0.5, 3.0), (5.0, 0.5)])
def test_gradients_match_finite_differences_of_the_closed_forms(gamma, alpha):
    c = lw.loss_curves(P, gamma, alpha, smooth=1.0, mix=0.3)
    # Two classes: p_t = sigmoid(z_t − z_other); differentiate the closed forms in z_t numerically.
    z, h = np.log(P / (1 - P)), 1e-6

    def numeric(f):
        return np.abs((f(sigmoid(z + h)) - f(sigmoid(z - h))) / (2 * h))

    np.testing.assert_allclose(c["grad focal"], numeric(lambda p: focal_closed(p, gamma, alpha)), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(c["grad dice"], numeric(lambda p: dice_closed(p, 1.0)), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(c["grad CE + Dice"],
                               numeric(lambda p: 0.7 * -np.log(p) + 0.3 * dice_closed(p, 1.0)), rtol=1e-5, atol=1e-9)
    # and the focal gradient's analytic form (1 − p)^γ [(1 − p) − γ p log p]
    np.testing.assert_allclose(c["grad focal"], alpha * (1 - P) ** gamma * ((1 - P) - gamma * P * np.log(P)), rtol=1e-9)


def test_focal_with_gamma_zero_and_unit_weight_is_cross_entropy():
    c = lw.loss_curves(P, gamma=0.0, alpha=1.0)
    np.testing.assert_allclose(c["focal"], c["cross-entropy"], rtol=1e-12)
    np.testing.assert_allclose(c["grad focal"], c["grad cross-entropy"], rtol=1e-12)


def test_imbalanced_batch_is_fixed_and_has_the_requested_probabilities():
    logits, target = lw.imbalanced_batch(500, 0.04)
    assert logits.shape == (1, 2, 1, 500) and target.shape == (1, 1, 500) and target.dtype == torch.int64
    assert int((target == 1).sum()) == 20
    p_t = logits.softmax(1).gather(1, target[:, None]).squeeze(1)
    assert float(p_t[target == 0].min()) == pytest.approx(0.6) and float(p_t[target == 0].max()) == pytest.approx(0.99)
    assert float(p_t[target == 1].min()) == pytest.approx(0.05) and float(p_t[target == 1].max()) == pytest.approx(0.6)
    again = lw.imbalanced_batch(500, 0.04)
    assert torch.equal(logits, again[0]) and torch.equal(target, again[1])


def test_gradient_shares_equal_closed_forms():
    logits, target = lw.imbalanced_batch(400, 0.05)
    p_t = logits.softmax(1).gather(1, target[:, None]).squeeze(1).numpy().ravel()
    rare = target.numpy().ravel() == 1
    for gamma, alpha in [(0.0, 1.0), (0.0, 4.0), (2.0, 1.0), (2.0, 0.5)]:
        shares = lw.gradient_shares(gamma, alpha, 1.0, 0.5, batch=(logits, target))
        # per-pixel |∂L/∂z_t| of the mean focal loss, times the rare-class weight; CE is gamma = 0, alpha = 1
        g = (1 - p_t) ** gamma * ((1 - p_t) - gamma * p_t * np.log(p_t)) * np.where(rare, alpha, 1.0)
        assert shares["focal"] == pytest.approx(g[rare].sum() / g.sum(), rel=1e-9)
        ce = 1 - p_t
        assert shares["cross-entropy"] == pytest.approx(ce[rare].sum() / ce.sum(), rel=1e-9)
    # focusing moves gradient to the hard (rare) pixels; the weight α does too
    base = lw.gradient_shares(0.0, 1.0)
    assert lw.gradient_shares(2.0, 1.0)["focal"] > base["focal"] == pytest.approx(base["cross-entropy"])
    assert lw.gradient_shares(0.0, 4.0)["focal"] > base["focal"]


def test_gradient_shares_of_dice_and_the_mix_match_finite_differences():
    logits, target = lw.imbalanced_batch(20, 0.1)
    shares = lw.gradient_shares(2.0, 1.0, 0.5, 0.25, batch=(logits, target))

    def dice(z):  # closed form of the batch Dice loss, two classes, smooth 0.5
        p = z.softmax(1)
        y = torch.nn.functional.one_hot(target, 2).permute(0, 3, 1, 2).double()
        inter, total = (p * y).sum((0, 2, 3)), (p + y).sum((0, 2, 3))
        return 1 - ((2 * inter + 0.5) / (total + 0.5)).mean()

    def mixed(z):
        return 0.75 * torch.nn.functional.cross_entropy(z, target) + 0.25 * dice(z)

    rare = (target == 1).ravel()
    for name, f in (("dice", dice), ("CE + Dice", mixed)):
        grad = torch.zeros_like(logits)
        flat, h = logits.reshape(-1).clone(), 1e-6
        for j in range(flat.numel()):
            up, down = flat.clone(), flat.clone()
            up[j] += h
            down[j] -= h
            grad.view(-1)[j] = (f(up.view_as(logits)) - f(down.view_as(logits))) / (2 * h)
        g = grad.norm(dim=1).ravel()
        assert shares[name] == pytest.approx(float(g[rare].sum() / g.sum()), rel=1e-6)


@pytest.mark.parametrize("kwargs,match", [
    ({"gamma": -1.0}, "gamma"), ({"alpha": 0.0}, "alpha"), ({"smooth": -0.1}, "smooth"), ({"mix": 1.5}, "mix"),
    ({"gamma": math.nan}, "gamma"),
])
def test_bad_parameters_are_refused_with_the_expected_form(kwargs, match):
    with pytest.raises(ValueError, match=match):
        lw.loss_curves(P, **kwargs)
    with pytest.raises(ValueError, match=match):
        lw.gradient_shares(**kwargs)


@pytest.mark.parametrize("p", [[0.0, 0.5], [0.5, 1.0], [], [[np.nan]]])
def test_probabilities_outside_the_open_interval_are_refused(p):
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        lw.loss_curves(p)


def test_draw_loss_panel_draws_the_curves_it_computes():
    fig = lw.draw_loss_panel(1.0, 2.0, 0.5, 0.3, p=P)
    ax_loss, ax_grad, ax_share = fig.axes[:3]
    curves = lw.loss_curves(P, 1.0, 2.0, 0.5, 0.3)
    for line, name in zip(ax_loss.get_lines(), lw.LOSS_NAMES):
        assert line.get_label() == name
        np.testing.assert_allclose(line.get_ydata(), curves[name])
    for line, name in zip(ax_grad.get_lines(), lw.LOSS_NAMES):
        np.testing.assert_allclose(line.get_ydata(), curves["grad " + name])
    shares = lw.gradient_shares(1.0, 2.0, 0.5, 0.3)
    heights = [patch.get_height() for patch in ax_share.patches]
    np.testing.assert_allclose(heights, [shares[n] for n in lw.LOSS_NAMES])


def test_widget_builds_and_redraws_when_a_slider_moves():
    pytest.importorskip("ipywidgets")
    explorer = lw.loss_explorer()
    assert set(explorer.sliders) == {"gamma", "alpha", "smooth", "mix"}
    first_png, first_shares = explorer.image.value, dict(explorer.shares)
    assert first_png[:8] == b"\x89PNG\r\n\x1a\n"
    assert first_shares == pytest.approx(lw.gradient_shares(**explorer.values()))

    explorer.sliders["gamma"].value = 0.0
    assert explorer.values()["gamma"] == 0.0
    assert explorer.shares["focal"] == pytest.approx(explorer.shares["cross-entropy"])   # γ = 0, α = 1: CE
    assert explorer.image.value != first_png
    assert f"{explorer.shares['focal']:.3f}" in explorer.readout.value

    explorer.sliders["alpha"].value = 4.0
    explorer.sliders["mix"].value = 1.0
    assert explorer.shares == pytest.approx(lw.gradient_shares(0.0, 4.0, 1.0, 1.0))
    assert explorer.shares["CE + Dice"] == pytest.approx(explorer.shares["dice"])      # mix = 1: Dice only


def test_widget_refuses_bad_start_values():
    pytest.importorskip("ipywidgets")
    with pytest.raises(ValueError, match="mix"):
        lw.loss_explorer(mix=2.0)


def test_widgets_package_exports_the_explorer():
    import segtutor.widgets as widgets

    assert widgets.loss_explorer is lw.loss_explorer
