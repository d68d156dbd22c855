"""The dilation explorer of ``03_deeplab.ipynb``: which input pixels a stack of atrous convolutions reads.

What it draws is counted by the lesson math of :mod:`segtutor.receptive_field`
(:func:`~segtutor.receptive_field.sampling_pattern`, :func:`~segtutor.receptive_field.dilation_stats`,
re-exported here): the number of paths from each input pixel to the centre output of a stack of ``k x k``
convolutions at rates ``r_1 .. r_L``. Two things become visible:

- **Receptive field for free.** The pattern spans ``1 + sum_l r_l (k - 1)`` pixels (the analytic formula
  of :mod:`segtutor.receptive_field`), while the weights stay ``L k^2 C^2`` whatever the rates.
- **Gridding.** With equal rates ``r > 1`` every tap lands on a multiple of ``r``: most pixels inside the
  receptive field are never read (rates ``(2, 2, 2)`` read 49 of 169). Having no common factor is not
  enough: ``(1, 5, 9)`` reads 55 %. The box fills exactly when, sorted, each rate is at most the receptive
  field of the smaller ones (:func:`~segtutor.receptive_field.gap_free`): ``(1, 2, 5)``, ``(1, 3, 9)``.

:func:`draw_dilation` draws one pattern on a matplotlib axes and returns its :class:`DilationStats`;
:func:`dilation_explorer` wires sliders (rate, kernel size, layers), a rate schedule (``constant``,
``doubling`` or ``free``) and a text field of free per-layer rates (:func:`parse_rates`, used in ``free``
mode) to it. The explorer's picture is an ``ipywidgets.Image`` holding a PNG, so it updates (and can be
tested) without a kernel.
"""
from __future__ import annotations

import html
from typing import Any, Sequence

import ipywidgets as widgets
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .._validation import check_int
from ..receptive_field import DilationStats, dilation_stats, gap_free, sampling_pattern
from ..viz import to_png

# DilationStats, sampling_pattern and dilation_stats are lesson math: they live in segtutor.receptive_field and are
# re-exported here for the drawing code and older imports.
__all__ = ["DilationStats", "SCHEDULES", "layer_rates", "parse_rates", "sampling_pattern", "dilation_stats",
           "draw_dilation", "dilation_colorbar", "DilationExplorer", "dilation_explorer"]

#: How the explorer chooses the layers' rates: all equal, doubling from layer to layer, or ``free``: one rate
#: per layer typed in the explorer's text field (then the rate and layers sliders are not used).
SCHEDULES = ("constant", "doubling", "free")

# The most layers and the largest rate the free-rates field accepts (the picture stays drawable).
_FREE_MAX_LAYERS, _FREE_MAX_RATE = 8, 64

# Above this many cells per side, the pattern is drawn without cell borders and multiplicity numbers.
_ANNOTATE_MAX = 25


def parse_rates(text: str) -> tuple[int, ...]:
    """Per-layer rates from text such as ``"1, 2, 5"`` or ``"1 3 9"`` (commas and/or spaces; brackets allowed).

    At most 8 layers, each rate an integer from 1 to 64; anything else raises ``ValueError`` naming the
    problem and the expected form.
    """
    if not isinstance(text, str):
        raise TypeError(f"rates must be given as text such as '1, 2, 5', got {type(text).__name__}")
    parts = text.strip().strip("()[]").replace(",", " ").split()
    if not parts:
        raise ValueError("no rates given: type one positive integer per layer, such as '1, 2, 5'")
    rates = []
    for part in parts:
        if not part.isdigit() or int(part) < 1:
            raise ValueError(f"{part!r} is not a positive integer: type one rate per layer, such as '1, 2, 5'")
        rates.append(int(part))
    if len(rates) > _FREE_MAX_LAYERS:
        raise ValueError(f"{len(rates)} rates given; at most {_FREE_MAX_LAYERS} layers")
    if max(rates) > _FREE_MAX_RATE:
        raise ValueError(f"rate {max(rates)} is too large to draw; use rates from 1 to {_FREE_MAX_RATE}")
    return tuple(rates)


def layer_rates(rate: int, layers: int, schedule: str = "constant", free: str | None = None) -> tuple[int, ...]:
    """The rates of the stacked convolutions: ``(rate,) * layers`` (``constant``), ``rate * (1, 2, 4, ...)``
    (``doubling``), or ``parse_rates(free)`` (``free``: one rate per layer, ``rate`` and ``layers`` unused)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; expected one of {', '.join(SCHEDULES)}")
    if schedule == "free":
        if free is None:
            raise ValueError("the 'free' schedule needs the rates as text, such as free='1, 2, 5'")
        return parse_rates(free)
    rate, layers = check_int(rate, "rate"), check_int(layers, "layers")
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
    registered with pyplot, so nothing is shown twice; on a given ``ax``, :func:`dilation_colorbar` adds
    one). Returns ``(figure, stats)``.
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
        dilation_colorbar(ax)
    return fig, stats


def dilation_colorbar(ax: Axes) -> Any:
    """Add the colour bar of path counts beside an axes that :func:`draw_dilation` drew on; returns it."""
    if not ax.get_images():
        raise ValueError("this axes holds no picture: draw on it with draw_dilation(..., ax=ax) first")
    image = ax.get_images()[-1]
    bar = ax.figure.colorbar(image, ax=ax, shrink=0.7, label="paths to the output pixel (white: 0, never read)")
    top = int(image.norm.vmax)
    if top <= 12:
        bar.set_ticks(range(1, top + 1))
    return bar



def _summary_html(stats: DilationStats) -> str:
    rates = ", ".join(map(str, stats.rates))
    rule = ("no holes: sorted, each rate &le; the field of the smaller ones" if gap_free(stats.kernel_size, stats.rates)
            else "holes: some rate (sorted) exceeds the field of the smaller ones")
    return (f"<b>rates ({rates})</b> &middot; {rule} &middot; receptive field <b>{stats.receptive_field}&times;"
            f"{stats.receptive_field}</b> &middot; pixels read <b>{stats.pixels_read}</b> of "
            f"{stats.receptive_field ** 2} ({stats.coverage:.0%}) &middot; most paths into one pixel "
            f"{stats.max_multiplicity} &middot; weights <b>{stats.parameters:,}</b> "
            f"(= {len(stats.rates)}&middot;{stats.kernel_size}&sup2;&middot;{stats.channels}&sup2;, whatever the rates)")


class DilationExplorer(widgets.VBox):
    """Sliders ``rate``, ``kernel_size``, ``layers``, buttons ``schedule``, text ``free_rates``; a summary line
    and the picture.

    Changing any control redraws at once (``observe``), in a kernel or not: ``stats`` and ``summary``
    follow, and ``image.value`` holds the PNG of :func:`draw_dilation`. In ``free`` mode the rates come from
    ``free_rates`` (:func:`parse_rates`); text that does not parse leaves the picture and ``stats`` as they
    were and puts the reason in ``summary``.
    """

    def __init__(self, *, kernel_size: int = 3, rate: int = 2, layers: int = 3, schedule: str = "constant",
                 channels: int = 64, free_rates: str = "1, 2, 5") -> None:
        dilation_stats(kernel_size, layer_rates(rate, layers, schedule, free_rates), channels)  # argument checks
        style = {"description_width": "initial"}
        self.rate = widgets.IntSlider(value=rate, min=1, max=max(8, rate), description="dilation rate r",
                                      style=style, continuous_update=False)
        self.kernel_size = widgets.IntSlider(value=kernel_size, min=1, max=max(7, kernel_size), step=2,
                                             description="kernel size k", style=style, continuous_update=False)
        self.layers = widgets.IntSlider(value=layers, min=1, max=max(5, layers), description="layers L",
                                        style=style, continuous_update=False)
        self.schedule = widgets.ToggleButtons(options=SCHEDULES, value=schedule, description="rates",
                                              style=style)
        self.free_rates = widgets.Text(value=free_rates, description="free rates (one per layer)",
                                       placeholder="1, 2, 5", style=style, continuous_update=False)
        self.channels = check_int(channels, "channels")
        self.summary = widgets.HTML()
        self.image = widgets.Image(format="png")
        self.stats: DilationStats | None = None
        controls = widgets.HBox([widgets.VBox([self.rate, self.kernel_size]),
                                 widgets.VBox([self.layers, self.schedule, self.free_rates])])
        super().__init__([controls, self.summary, self.image])
        for control in (self.rate, self.kernel_size, self.layers, self.schedule, self.free_rates):
            control.observe(self._redraw, names="value")
        self._redraw()

    def _redraw(self, change: Any = None) -> None:
        free = self.schedule.value == "free"
        self.rate.disabled = self.layers.disabled = free
        try:
            rates = layer_rates(self.rate.value, self.layers.value, self.schedule.value, self.free_rates.value)
        except (TypeError, ValueError) as exc:
            self.summary.value = f"<b>free rates:</b> {html.escape(str(exc), quote=False)}"
            return
        fig, self.stats = draw_dilation(self.kernel_size.value, rates=rates, channels=self.channels)
        self.summary.value = _summary_html(self.stats)
        self.image.value = to_png(fig, dpi=90)


def dilation_explorer(kernel_size: int = 3, rate: int = 2, layers: int = 3, schedule: str = "constant",
                      channels: int = 64, free_rates: str = "1, 2, 5") -> DilationExplorer:
    """An interactive :func:`draw_dilation`: sliders for the rate, kernel size and number of layers, and
    a rate schedule (``constant``: every layer at ``rate``; ``doubling``: ``rate, 2 rate, 4 rate, ...``;
    ``free``: the per-layer rates typed in the ``free_rates`` field, such as ``"1, 3, 9"``).

    Returns a :class:`DilationExplorer` (an ``ipywidgets.VBox``); display it as the last line of a cell.
    Its ``stats`` attribute always holds the :class:`DilationStats` of the current setting.
    """
    return DilationExplorer(kernel_size=kernel_size, rate=rate, layers=layers, schedule=schedule, channels=channels,
                            free_rates=free_rates)
