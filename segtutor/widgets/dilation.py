"""The dilation explorer of ``03_deeplab.ipynb``: which input pixels a stack of atrous convolutions reads.

What it draws is counted by the lesson math of :mod:`segtutor.receptive_field`
(:func:`~segtutor.receptive_field.sampling_pattern`, :func:`~segtutor.receptive_field.dilation_stats`,
re-exported here): the number of paths from each input pixel to the centre output of a stack of ``k x k``
convolutions at rates ``r_1 .. r_L``. Two things become visible:

- **Receptive field for free.** The pattern spans ``1 + sum_l r_l (k - 1)`` pixels (the analytic formula
  of :mod:`segtutor.receptive_field`), while the weights stay ``L k^2 C^2`` whatever the rates.
- **Gridding.** With equal rates ``r > 1`` every tap lands on a multiple of ``r``: most pixels inside the
  receptive field are never read (rates ``(2, 2, 2)`` read 49 of 169). Rates without a common factor,
  such as ``(1, 2, 5)`` ("hybrid dilated convolution", Wang et al., 2018), fill the box.

:func:`draw_dilation` draws one pattern on a matplotlib axes and returns its :class:`DilationStats`;
:func:`dilation_explorer` wires sliders (rate, kernel size, layers, rate schedule) to it. The explorer's
picture is an ``ipywidgets.Image`` holding a PNG, so it updates (and can be tested) without a kernel.
"""
from __future__ import annotations

from typing import Any, Sequence

import ipywidgets as widgets
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .._validation import check_int
from ..receptive_field import DilationStats, dilation_stats, sampling_pattern
from ..viz import to_png

# DilationStats, sampling_pattern and dilation_stats are lesson math: they live in segtutor.receptive_field and are
# re-exported here for the drawing code and older imports.
__all__ = ["DilationStats", "SCHEDULES", "layer_rates", "sampling_pattern", "dilation_stats", "draw_dilation",
           "DilationExplorer", "dilation_explorer"]

#: How the explorer spreads the rate over the layers: all equal, or doubling from layer to layer.
SCHEDULES = ("constant", "doubling")

# Above this many cells per side, the pattern is drawn without cell borders and multiplicity numbers.
_ANNOTATE_MAX = 25


def layer_rates(rate: int, layers: int, schedule: str = "constant") -> tuple[int, ...]:
    """The rates of ``layers`` stacked convolutions: ``(rate,) * layers`` or ``rate * (1, 2, 4, ...)``."""
    rate, layers = check_int(rate, "rate"), check_int(layers, "layers")
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; expected one of {', '.join(SCHEDULES)}")
    return tuple(rate * (2**i if schedule == "doubling" else 1) for i in range(layers))


def draw_dilation(kernel_size: int = 3, rate: int = 2, layers: int = 2, *, rates: Sequence[int] | None = None,
                  schedule: str = "constant", channels: int = 64, ax: Axes | None = None,
                  margin: int = 2) -> tuple[Figure, DilationStats]:
    """Draw which input pixels feed the centre output of a stack of atrous convolutions.

    The stack is ``layers`` convolutions ``k x k`` at :func:`layer_rates` ``(rate, layers, schedule)``, or
    at the explicit ``rates`` (one per layer) when given. The input grid (receptive field plus ``margin``
    pixels on each side) is coloured by the number of paths into each pixel (:func:`sampling_pattern`;
    white = never read), the receptive field is outlined and the output pixel marked; on small grids each
    pixel shows its count. Draws on ``ax`` if given, else on a new ``Figure`` with a colour bar (not
    registered with pyplot, so nothing is shown twice). Returns ``(figure, stats)``.
    """
    if rates is None:
        rates = layer_rates(rate, layers, schedule)
    stats = dilation_stats(kernel_size, rates, channels)
    margin = int(margin)
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    pattern = sampling_pattern(stats.kernel_size, stats.rates)
    canvas = np.pad(pattern, margin)
    n = canvas.shape[0]
    created = ax is None
    if ax is None:
        fig = Figure(figsize=(4.6, 4.6), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    shown = np.ma.masked_equal(canvas, 0)
    ax.set_facecolor("white")
    image = ax.imshow(shown, cmap="viridis", vmin=1, vmax=max(2, stats.max_multiplicity),
                      extent=(-0.5, n - 0.5, n - 0.5, -0.5), interpolation="nearest")
    lo, hi = margin - 0.5, margin + stats.receptive_field - 0.5
    ax.plot([lo, hi, hi, lo, lo], [lo, lo, hi, hi, lo], color="tab:red", lw=1.5)
    centre = margin + stats.receptive_field // 2
    ax.add_patch(Rectangle((centre - 0.5, centre - 0.5), 1, 1, fill=False, edgecolor="tab:red", lw=1.5))
    if n <= _ANNOTATE_MAX:
        ax.set_xticks(np.arange(-0.5, n, 1), minor=True)
        ax.set_yticks(np.arange(-0.5, n, 1), minor=True)
        ax.grid(which="minor", color="0.85", lw=0.5)
        ax.tick_params(which="minor", length=0)
        for (i, j), count in np.ndenumerate(canvas):
            if count:
                ax.text(j, i, str(count), ha="center", va="center", fontsize=max(5, 10 - n // 5),
                        color="white" if count < 0.6 * stats.max_multiplicity else "black")
    ax.set_xticks([])
    ax.set_yticks([])
    rate_text = ", ".join(map(str, stats.rates))
    ax.set_title(f"k={stats.kernel_size}, rates ({rate_text})\nRF {stats.receptive_field}x{stats.receptive_field}, "
                 f"reads {stats.pixels_read}/{stats.receptive_field**2} px ({stats.coverage:.0%})", fontsize=9)
    ax.set_xlabel(f"{stats.parameters:,} weights ({len(stats.rates)}·{stats.kernel_size}²·{stats.channels}²)",
                  fontsize=8)
    if created:
        fig.colorbar(image, ax=ax, shrink=0.7, label="paths to the output pixel")
    return fig, stats



def _summary_html(stats: DilationStats) -> str:
    rates = ", ".join(map(str, stats.rates))
    return (f"<b>rates ({rates})</b> &middot; receptive field <b>{stats.receptive_field}&times;"
            f"{stats.receptive_field}</b> &middot; pixels read <b>{stats.pixels_read}</b> of "
            f"{stats.receptive_field ** 2} ({stats.coverage:.0%}) &middot; most paths into one pixel "
            f"{stats.max_multiplicity} &middot; weights <b>{stats.parameters:,}</b> "
            f"(= {len(stats.rates)}&middot;{stats.kernel_size}&sup2;&middot;{stats.channels}&sup2;, whatever the rates)")


class DilationExplorer(widgets.VBox):
    """Sliders ``rate``, ``kernel_size``, ``layers``, buttons ``schedule``; a summary line and the picture.

    Changing any control redraws at once (``observe``), in a kernel or not: ``stats`` and ``summary``
    follow, and ``image.value`` holds the PNG of :func:`draw_dilation`.
    """

    def __init__(self, *, kernel_size: int = 3, rate: int = 2, layers: int = 3, schedule: str = "constant",
                 channels: int = 64) -> None:
        dilation_stats(kernel_size, layer_rates(rate, layers, schedule), channels)  # argument checks
        style = {"description_width": "initial"}
        self.rate = widgets.IntSlider(value=rate, min=1, max=max(8, rate), description="dilation rate r",
                                      style=style, continuous_update=False)
        self.kernel_size = widgets.IntSlider(value=kernel_size, min=1, max=max(7, kernel_size), step=2,
                                             description="kernel size k", style=style, continuous_update=False)
        self.layers = widgets.IntSlider(value=layers, min=1, max=max(5, layers), description="layers L",
                                        style=style, continuous_update=False)
        self.schedule = widgets.ToggleButtons(options=SCHEDULES, value=schedule, description="rates",
                                              style=style)
        self.channels = check_int(channels, "channels")
        self.summary = widgets.HTML()
        self.image = widgets.Image(format="png")
        self.stats: DilationStats | None = None
        controls = widgets.HBox([widgets.VBox([self.rate, self.kernel_size]),
                                 widgets.VBox([self.layers, self.schedule])])
        super().__init__([controls, self.summary, self.image])
        for control in (self.rate, self.kernel_size, self.layers, self.schedule):
            control.observe(self._redraw, names="value")
        self._redraw()

    def _redraw(self, change: Any = None) -> None:
        rates = layer_rates(self.rate.value, self.layers.value, self.schedule.value)
        fig, self.stats = draw_dilation(self.kernel_size.value, rates=rates, channels=self.channels)
        self.summary.value = _summary_html(self.stats)
        self.image.value = to_png(fig, dpi=90)


def dilation_explorer(kernel_size: int = 3, rate: int = 2, layers: int = 3, schedule: str = "constant",
                      channels: int = 64) -> DilationExplorer:
    """An interactive :func:`draw_dilation`: sliders for the rate, kernel size and number of layers, and
    a rate schedule (``constant``: every layer at ``rate``; ``doubling``: ``rate, 2 rate, 4 rate, ...``).

    Returns a :class:`DilationExplorer` (an ``ipywidgets.VBox``); display it as the last line of a cell.
    Its ``stats`` attribute always holds the :class:`DilationStats` of the current setting.
    """
    return DilationExplorer(kernel_size=kernel_size, rate=rate, layers=layers, schedule=schedule, channels=channels)
