"""The loss explorer of ``notebooks/04_losses.ipynb``: how γ, α, Dice smoothing and the CE/Dice mix reshape a loss.

Everything is computed by autograd through :mod:`segtutor.losses` (and torch's ``F.cross_entropy``), never by
re-typed formulas, so the pictures show what training with those losses actually does.

- :func:`loss_curves` — loss and gradient against the true-class probability ``p_t`` of ONE pixel
  (two classes, the pixel belongs to class 1, the rare class).
- :func:`imbalanced_batch` and :func:`gradient_shares` — a fixed toy batch where 2 % of the pixels belong
  to the rare class, and the share of the total gradient that those pixels receive under each loss.
- :func:`draw_loss_panel` — the three panels as a matplotlib ``Figure``.
- :func:`loss_explorer` — sliders wired to :func:`draw_loss_panel` (ipywidgets).

Conventions. The class weight ``alpha`` weights the rare class (class 1) in the focal loss; the other class
has weight 1, so ``alpha=1`` is unweighted and ``gamma=0, alpha=1`` is exactly cross-entropy. (RetinaNet
writes ``α`` for the foreground and ``1 − α`` for the background; only the ratio changes where the gradient
goes, so RetinaNet's ``α = 0.25`` is ``alpha = 0.25 / 0.75 = 1/3`` here.) The gradient reported for a pixel
is ``∂L/∂z`` with respect to its logits ``z`` (what backpropagation sends into the network): :func:`loss_curves`
gives ``|∂L/∂z_t|`` for the true class ``t``, and :func:`gradient_shares` uses the norm over both classes,
``‖∂L/∂z_i‖₂`` (for two classes ``√2 |∂L/∂z_t|``).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from ..losses import CombinedLoss, dice_loss, focal_loss
from ..viz import figure, to_png

__all__ = ["LOSS_NAMES", "loss_curves", "imbalanced_batch", "gradient_shares", "draw_loss_panel", "loss_explorer",
           "LossExplorer"]

#: The losses compared, in drawing order.
LOSS_NAMES = ("cross-entropy", "focal", "dice", "CE + Dice")

_COLORS = {"cross-entropy": "tab:blue", "focal": "tab:orange", "dice": "tab:green", "CE + Dice": "tab:purple"}
_RARE = 1  # the rare (foreground) class of the two


def _check_params(gamma: float, alpha: float, smooth: float, mix: float) -> None:
    for name, value, rule, ok in (
        ("gamma", gamma, "a number ≥ 0 (0 = cross-entropy, 2 is usual)", lambda v: v >= 0),
        ("alpha", alpha, "a number > 0 (the rare class's weight; 1 = unweighted)", lambda v: v > 0),
        ("smooth", smooth, "a number ≥ 0 (the Dice smoothing term s)", lambda v: v >= 0),
        ("mix", mix, "a number in [0, 1] (0 = cross-entropy only, 1 = Dice only)", lambda v: 0 <= v <= 1),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or not ok(value):
            raise ValueError(f"{name} must be {rule}, got {value!r}")


def _losses(gamma: float, alpha: float, smooth: float, mix: float) -> dict[str, Callable[..., torch.Tensor]]:
    """The four losses as ``loss(logits (N, 2, H, W), target (N, H, W)) -> scalar``."""
    ce_dice = CombinedLoss.ce_dice(mix, smooth=smooth)
    return {
        "cross-entropy": F.cross_entropy,
        "focal": lambda z, t: focal_loss(z, t, gamma=gamma, alpha=[1.0, alpha]),
        "dice": lambda z, t: dice_loss(z, t, smooth=smooth),
        "CE + Dice": ce_dice,
    }


def _two_class_logits(p_t: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Logits ``(M, 2)`` whose softmax gives probability ``p_t`` to the class ``target`` of each pixel."""
    true = torch.log(p_t)
    other = torch.log1p(-p_t)
    logits = torch.stack([other, true], dim=1)
    return torch.where((target == 0)[:, None], logits.flip(1), logits)


def _as_probabilities(p: Any) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(p, dtype=np.float64)).reshape(-1)
    if t.numel() == 0 or not bool(((t > 0) & (t < 1)).all()):
        raise ValueError("p must be a non-empty 1-D sequence of probabilities strictly between 0 and 1 "
                         "(the true-class probability p_t), e.g. numpy.linspace(0.01, 0.99, 99)")
    return t


def loss_curves(p: Any = None, gamma: float = 2.0, alpha: float = 1.0, smooth: float = 1.0,
                mix: float = 0.5) -> dict[str, np.ndarray]:
    """Loss and gradient of one rare-class pixel as functions of its true-class probability ``p_t``.

    ``p``: ``(M,)`` probabilities in ``(0, 1)`` (default ``linspace(0.01, 0.99, 99)``). Each value is one
    batch of ONE pixel, ``logits (1, 2, 1, 1)`` with ``softmax = (1 − p_t, p_t)`` and target class 1, passed
    through each loss of :data:`LOSS_NAMES`. Returns ``{"p": (M,)}`` plus, for each loss name, ``name``:
    the loss ``(M,)`` and ``"grad " + name``: ``|∂L/∂z_t|`` ``(M,)``, the gradient on the true-class logit.

    Closed forms for this pixel: cross-entropy ``−log p``, focal ``−α (1 − p)^γ log p``, Dice
    ``1 − ½ [(2p + s)/(p + 1 + s) + s/(1 − p + s)]`` (class 1 present, class 0 absent from this one-pixel
    batch), CE + Dice ``(1 − mix)·CE + mix·Dice``. Dice depends on the whole batch, so its one-pixel
    curve shows the shape, not the size, of the Dice gradient of a pixel inside a real image.
    """
    _check_params(gamma, alpha, smooth, mix)
    p_t = _as_probabilities(np.linspace(0.01, 0.99, 99) if p is None else p)
    target = torch.full((1, 1, 1), _RARE, dtype=torch.int64)
    losses = _losses(gamma, alpha, smooth, mix)
    out: dict[str, np.ndarray] = {"p": p_t.numpy().copy()}
    for name, loss_fn in losses.items():
        values, grads = np.empty(len(p_t)), np.empty(len(p_t))
        for i, p_i in enumerate(p_t):
            z = _two_class_logits(p_i.reshape(1), target.reshape(1)).reshape(1, 2, 1, 1).requires_grad_(True)
            loss = loss_fn(z, target)
            (grad,) = torch.autograd.grad(loss, z)
            values[i] = float(loss.detach())
            grads[i] = abs(float(grad[0, _RARE, 0, 0]))
        out[name] = values
        out["grad " + name] = grads
    return out


def imbalanced_batch(num_pixels: int = 1000, rare_fraction: float = 0.02) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed toy batch that looks like the start of training on an imbalanced dataset.

    Returns ``logits`` float64 ``(1, 2, 1, num_pixels)`` and ``target`` int64 ``(1, 1, num_pixels)``. A share
    ``rare_fraction`` of the pixels (at least one) are of the rare class 1; the rest are background. The
    background pixels are mostly easy (``p_t`` evenly spread over ``[0.6, 0.99]``), the rare ones hard
    (``p_t`` over ``[0.05, 0.6]``). No randomness: the same batch every time.
    """
    if isinstance(num_pixels, bool) or not isinstance(num_pixels, int) or num_pixels < 2:
        raise ValueError(f"num_pixels must be an int ≥ 2, got {num_pixels!r}")
    if not isinstance(rare_fraction, (int, float)) or not 0 < rare_fraction < 1:
        raise ValueError(f"rare_fraction must lie strictly between 0 and 1, got {rare_fraction!r}")
    num_rare = min(num_pixels - 1, max(1, round(num_pixels * rare_fraction)))
    p_t = torch.cat([torch.linspace(0.6, 0.99, num_pixels - num_rare, dtype=torch.float64),
                     torch.linspace(0.05, 0.6, num_rare, dtype=torch.float64)])
    target = torch.cat([torch.zeros(num_pixels - num_rare, dtype=torch.int64),
                        torch.full((num_rare,), _RARE, dtype=torch.int64)])
    logits = _two_class_logits(p_t, target)                      # (M, 2)
    return logits.T.reshape(1, 2, 1, num_pixels).contiguous(), target.reshape(1, 1, num_pixels)


def gradient_shares(gamma: float = 2.0, alpha: float = 1.0, smooth: float = 1.0, mix: float = 0.5,
                    batch: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[str, float]:
    """For each loss of :data:`LOSS_NAMES`: the share of the total gradient that goes to rare-class pixels.

    ``batch``: ``(logits (N, 2, H, W), target (N, H, W))``, default :func:`imbalanced_batch`. The gradient of
    pixel ``i`` is ``g_i = ‖∂L/∂z_i‖₂`` over its two logits; the share is ``Σ_{i rare} g_i / Σ_i g_i``.
    Compare it with the rare class's share of the pixels. It is one snapshot at fixed probabilities: notebook 04
    measures whether it predicts the rare-class IoU after training (it need not).
    """
    _check_params(gamma, alpha, smooth, mix)
    logits, target = imbalanced_batch() if batch is None else batch
    rare = target == _RARE                                             # (N, H, W)
    shares = {}
    for name, loss_fn in _losses(gamma, alpha, smooth, mix).items():
        z = logits.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(loss_fn(z, target), z)
        per_pixel = grad.norm(dim=1)                                   # (N, H, W)
        shares[name] = float(per_pixel[rare].sum() / per_pixel.sum())
    return shares



def draw_loss_panel(gamma: float = 2.0, alpha: float = 1.0, smooth: float = 1.0, mix: float = 0.5, *,
                    p: Any = None, batch: tuple[torch.Tensor, torch.Tensor] | None = None) -> Figure:
    """Three panels: loss vs ``p_t``, ``|∂L/∂z_t|`` vs ``p_t`` (:func:`loss_curves`), and the rare class's share
    of the gradient on an imbalanced batch (:func:`gradient_shares`). Returns the ``Figure``."""
    curves = loss_curves(p, gamma, alpha, smooth, mix)
    logits, target = imbalanced_batch() if batch is None else batch
    shares = gradient_shares(gamma, alpha, smooth, mix, (logits, target))
    pixel_share = float((target == _RARE).double().mean())

    fig = figure(figsize=(13, 3.8), layout="constrained")
    ax_loss, ax_grad, ax_share = fig.subplots(1, 3)
    for name in LOSS_NAMES:
        ax_loss.plot(curves["p"], curves[name], color=_COLORS[name], label=name)
        ax_grad.plot(curves["p"], curves["grad " + name], color=_COLORS[name], label=name)
    ax_loss.set_title(f"loss of one rare-class pixel\nγ={gamma:g}, α={alpha:g}, s={smooth:g}, mix={mix:g}", fontsize=10)
    ax_loss.set_ylim(0, min(5.0, max(float(np.max(curves[n])) for n in LOSS_NAMES) * 1.05))
    ax_grad.set_title("gradient on its true-class logit  |∂L/∂z_t|", fontsize=10)
    ax_grad.set_yscale("log")
    ax_grad.set_ylim(bottom=max(1e-4, min(float(np.min(curves["grad " + n])) for n in LOSS_NAMES) / 2))
    for ax in (ax_loss, ax_grad):
        ax.set_xlabel("true-class probability $p_t$")
        ax.grid(alpha=0.3)
    ax_loss.legend(fontsize=8)

    names = list(LOSS_NAMES)
    bars = ax_share.bar(range(len(names)), [shares[n] for n in names], color=[_COLORS[n] for n in names])
    ax_share.bar_label(bars, fmt="%.2f", fontsize=8)
    ax_share.axhline(pixel_share, color="black", linestyle="--", linewidth=1,
                     label=f"rare class's share of the pixels ({pixel_share:.2f})")
    ax_share.legend(fontsize=8, loc="upper left")
    ax_share.set_xticks(range(len(names)), names, fontsize=8)
    ax_share.set_ylim(0, 1)
    ax_share.set_title(f"share of the gradient going to the rare class\n"
                       f"(toy batch: {target.numel()} pixels, {int((target == _RARE).sum())} rare)", fontsize=10)
    return fig



class LossExplorer:
    """Sliders for γ, α, Dice smoothing and the CE/Dice mix, redrawing :func:`draw_loss_panel` on change.

    ``.widget`` is the ipywidgets box to display (Jupyter shows a ``LossExplorer`` directly); ``.sliders``
    maps ``gamma``/``alpha``/``smooth``/``mix`` to their sliders; ``.image`` holds the current PNG;
    ``.readout`` the numbers of the right panel; ``.shares`` the last :func:`gradient_shares` result.
    """

    def __init__(self, gamma: float = 2.0, alpha: float = 1.0, smooth: float = 1.0, mix: float = 0.5) -> None:
        import ipywidgets as widgets

        _check_params(gamma, alpha, smooth, mix)
        style = {"description_width": "150px"}
        layout = widgets.Layout(width="420px")
        common = dict(continuous_update=False, style=style, layout=layout)
        self.sliders = {
            "gamma": widgets.FloatSlider(value=gamma, min=0.0, max=5.0, step=0.25,
                                         description="focal γ", **common),
            "alpha": widgets.FloatLogSlider(value=alpha, base=2, min=-3, max=4, step=0.25,
                                            description="rare-class weight α", **common),
            "smooth": widgets.FloatSlider(value=smooth, min=0.0, max=5.0, step=0.1,
                                          description="Dice smoothing s", **common),
            "mix": widgets.FloatSlider(value=mix, min=0.0, max=1.0, step=0.05,
                                       description="CE/Dice mix (1 = Dice)", **common),
        }
        self.image = widgets.Image(format="png")
        self.readout = widgets.HTML()
        self.shares: dict[str, float] = {}
        for slider in self.sliders.values():
            slider.observe(self._redraw, names="value")
        self.widget = widgets.VBox([widgets.HBox([widgets.VBox(list(self.sliders.values())), self.readout]),
                                    self.image])
        self._redraw()

    def values(self) -> dict[str, float]:
        """The current slider values, as keyword arguments of :func:`draw_loss_panel`."""
        return {name: float(slider.value) for name, slider in self.sliders.items()}

    def _redraw(self, change: Any = None) -> None:
        values = self.values()
        fig = draw_loss_panel(**values)
        self.image.value = to_png(fig, dpi=80)
        self.shares = gradient_shares(**values)
        rows = "".join(f"<tr><td>{name}</td><td style='text-align:right'>{share:.3f}</td></tr>"
                       for name, share in self.shares.items())
        self.readout.value = ("<b>rare-class share of the gradient</b>"
                              f"<table>{rows}</table>")

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def loss_explorer(gamma: float = 2.0, alpha: float = 1.0, smooth: float = 1.0, mix: float = 0.5) -> LossExplorer:
    """The interactive loss explorer of notebook 04 (needs ipywidgets); see :class:`LossExplorer`."""
    return LossExplorer(gamma, alpha, smooth, mix)
