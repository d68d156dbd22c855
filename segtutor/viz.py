"""Pictures of segmentation: coloured masks, overlays, prediction grids, training curves, confusion matrices
and feature maps.

Used by ``notebooks/00_task_and_data.ipynb`` (masks, palettes, overlays), ``05_metrics.ipynb`` (confusion
matrix) and ``06_end_to_end.ipynb`` (prediction grids, failure cases, training curves, feature maps).

- :func:`colorize` is :func:`segtutor.data.palette.colorize` (labels ``(H, W)`` → ``uint8 (H, W, 3)``).
- :func:`overlay` blends a coloured mask over an image and returns the RGB array.
- :func:`show_batch`, :func:`plot_history`, :func:`plot_confusion_matrix`, :func:`show_feature_maps` each
  return a :class:`matplotlib.figure.Figure`.
- :class:`LiveCurves` redraws :func:`plot_history` in place while ``fit`` trains (``fit(progress="curves")``).

The figures are made with ``matplotlib.figure.Figure`` directly, not through ``pyplot``: nothing is shown
behind your back (no duplicate pictures) and nothing piles up in pyplot's list of open figures. In Jupyter a
figure appears when the call is the last expression of a cell (or with ``display(fig)``); elsewhere use
``fig.savefig(path)``.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import io
import math

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from torch import nn

from ._validation import check_int
from .data.palette import colorize
from .history import History
from .runtime import model_mode

__all__ = ["colorize", "figure", "to_png", "overlay", "show_batch", "plot_history", "plot_confusion_matrix", "show_feature_maps",
           "LiveCurves"]


# ------------------------------------------------------------------------------------------- helpers

def to_png(fig: Figure, dpi: float | None = None) -> bytes:
    """The figure rendered as PNG bytes (for widgets, which show images, and for notebook display)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi if dpi is not None else "figure", bbox_inches="tight")
    return buffer.getvalue()


class _Figure(Figure):
    """A Figure that Jupyter shows as a PNG when it is a cell's last expression, with or without pyplot."""

    def _repr_png_(self) -> bytes:
        return to_png(self)


def figure(**kwargs: Any) -> Figure:
    """A new matplotlib Figure, not registered with pyplot, that a notebook shows when it is the last expression."""
    return _Figure(**kwargs)


def _to_numpy(value: Any, name: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value
    raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(value).__name__}")


def _image_rgb(image: Any, name: str = "image") -> np.ndarray:
    """One image as float ``(H, W, 3)`` in [0, 1] for ``imshow``.

    Accepts a tensor ``(C, H, W)`` (C = 1 or 3) or an array ``(H, W, C)`` / ``(H, W)``. ``uint8`` is divided
    by 255; float values outside [0, 1] (normalised images) are rescaled by their min and max.
    """
    is_tensor = isinstance(image, torch.Tensor)
    array = _to_numpy(image, name)
    if array.ndim == 3 and is_tensor:
        array = np.moveaxis(array, 0, -1)  # (C, H, W) -> (H, W, C)
    elif array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3):
        expected = "(C, H, W) with C = 1 or 3" if is_tensor else "(H, W, C) with C = 1 or 3, or (H, W)"
        raise ValueError(f"{name} must have shape {expected}, got {tuple(_to_numpy(image, name).shape)}")
    if array.dtype == np.uint8:
        array = array.astype(np.float64) / 255.0
    elif array.dtype.kind in "fiu":
        array = array.astype(np.float64)
    else:
        raise TypeError(f"{name} must hold numbers, got dtype {array.dtype}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    lo, hi = array.min(), array.max()
    if lo < 0 or hi > 1:
        array = (array - lo) / (hi - lo) if hi > lo else np.zeros_like(array)
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return array


def _labels(value: Any, name: str, ndim: int) -> np.ndarray:
    """Integer labels with ``ndim`` dims; scores with one more dim (``(N, K, H, W)``) are argmax-ed over K."""
    if isinstance(value, torch.Tensor) and value.is_floating_point() and value.ndim == ndim + 1:
        value = value.argmax(-3)  # the class axis: (N, K, H, W) or (K, H, W)
    array = _to_numpy(value, name)
    if array.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {array.shape}")
    if array.dtype.kind not in "iub":
        raise TypeError(f"{name} must hold integer class labels, got dtype {array.dtype}")
    return array.astype(np.int64)


def _class_colors(num_classes: int, palette: Any) -> np.ndarray:
    """The palette's RGB colour of each class 0..K-1 as floats in [0, 1], read through :func:`colorize`."""
    return colorize(np.arange(num_classes)[None], palette, ignore_index=None)[0] / 255.0


def _off(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


# ------------------------------------------------------------------------------------------- overlay

def overlay(image: torch.Tensor | np.ndarray, mask: torch.Tensor | np.ndarray, alpha: float = 0.5, *,
            palette: Any = None, background: int | None = 0, ignore_index: int | None = 255) -> np.ndarray:
    """Blend the coloured ``mask`` over ``image``: float RGB array ``(H, W, 3)`` in [0, 1].

    ``out = (1 − alpha) · image + alpha · colorize(mask) / 255`` on every pixel whose label is not
    ``background`` (those keep the image as it is; ``background=None`` blends everywhere). ``image`` is a
    tensor ``(C, H, W)`` or an array ``(H, W, C)``; ``mask`` labels ``(H, W)``.
    """
    if not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    rgb = _image_rgb(image)
    labels = _labels(mask, "mask", 2)
    if labels.shape != rgb.shape[:2]:
        raise ValueError(f"mask of shape {labels.shape} does not match the image's (H, W) = {rgb.shape[:2]}")
    colors = colorize(labels, palette, ignore_index=ignore_index) / 255.0
    blended = (1.0 - alpha) * rgb + alpha * colors
    if background is None:
        return blended
    return np.where((labels == background)[..., None], rgb, blended)


# ---------------------------------------------------------------------------------------- show_batch

def show_batch(images: torch.Tensor, masks: torch.Tensor, preds: torch.Tensor | None = None,
               class_names: Sequence[str] | None = None, n: int = 4, *, palette: Any = None,
               ignore_index: int | None = 255) -> Figure:
    """A grid with one row per sample: image | truth | prediction, and a legend of the class colours.

    ``images`` ``(N, C, H, W)``, ``masks`` labels ``(N, H, W)``, ``preds`` labels ``(N, H, W)`` or scores
    ``(N, K, H, W)`` (argmax-ed); the first ``n`` samples are drawn. Each prediction's title gives that
    image's mIoU (:func:`segtutor.metrics.mean_iou`), which makes failure cases easy to spot.
    """
    n = check_int(n, "n")
    image_array = _to_numpy(images, "images")
    if image_array.ndim != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {image_array.shape}")
    truth = _labels(masks, "masks", 3)
    if truth.shape[0] != image_array.shape[0] or truth.shape[1:] != image_array.shape[2:]:
        raise ValueError(f"masks {truth.shape} do not match images {image_array.shape}; expected (N, H, W) "
                         "with the images' N, H, W")
    pred = None if preds is None else _labels(preds, "preds", 3)
    if pred is not None and pred.shape != truth.shape:
        raise ValueError(f"preds {pred.shape} do not match masks {truth.shape}")
    rows = min(n, truth.shape[0])
    valid = [a[a != ignore_index] if ignore_index is not None else a.ravel() for a in (truth, pred) if a is not None]
    top = max([int(v.max()) for v in valid if v.size] + [0])
    num_classes = max(len(class_names) if class_names is not None else 0, top + 1)
    names = list(class_names) if class_names is not None else [f"class {k}" for k in range(num_classes)]
    if len(names) < num_classes:
        raise ValueError(f"class_names has {len(names)} names but the labels go up to {top}")

    cols = 3 if pred is not None else 2
    fig = figure(figsize=(2.6 * cols, 2.6 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for i in range(rows):
        axes[i, 0].imshow(_image_rgb(images[i], "images[i]"))
        axes[i, 1].imshow(colorize(truth[i], palette, ignore_index=ignore_index), interpolation="nearest")
        axes[i, 0].set_title("image")
        axes[i, 1].set_title("truth")
        if pred is not None:
            from .metrics import mean_iou

            score = mean_iou(torch.from_numpy(pred[i:i + 1]), torch.from_numpy(truth[i:i + 1]), num_classes,
                             ignore_index=ignore_index if ignore_index is not None and ignore_index >= num_classes else None)
            axes[i, 2].imshow(colorize(pred[i], palette, ignore_index=ignore_index), interpolation="nearest")
            axes[i, 2].set_title(f"prediction (mIoU {score:.2f})")
        for ax in axes[i]:
            _off(ax)
    colors = _class_colors(num_classes, palette)
    handles = [Patch(facecolor=colors[k], edgecolor="0.5", label=names[k]) for k in range(num_classes)]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(num_classes, 6), frameon=False)
    return fig


# -------------------------------------------------------------------------------------- plot_history

def _history_columns(history: Any) -> dict[str, list]:
    if hasattr(history, "to_dict"):
        history = history.to_dict()
    if isinstance(history, Mapping):
        columns = {k: list(v) for k, v in history.items()}
    elif isinstance(history, Sequence):
        rows = [r if isinstance(r, Mapping) else vars(r) for r in history]
        columns = {k: [r.get(k) for r in rows] for k in History.COLUMNS}
    else:
        raise TypeError(f"history must be a segtutor.train.History, a dict of columns or a list of epochs, "
                        f"got {type(history).__name__}")
    if "train_loss" not in columns:
        raise ValueError(f"history has no 'train_loss' column (got {sorted(columns)})")
    n = len(columns["train_loss"])
    columns.setdefault("epoch", list(range(1, n + 1)))
    for key in History.COLUMNS:
        columns.setdefault(key, [None] * n)
    return columns


def _floats(values: list) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def plot_history(history: Any) -> Figure:
    """Training curves per epoch: loss (train and validation), validation mIoU and pixel accuracy, learning rate.

    ``history`` is a :class:`segtutor.train.History`, its ``to_dict()`` columns or a list of per-epoch dicts.
    Three panels titled ``loss``, ``validation`` and ``learning rate``.
    """
    columns = _history_columns(history)
    epochs = _floats(columns["epoch"])
    fig = figure(figsize=(12, 3.4), layout="constrained")
    ax_loss, ax_val, ax_lr = fig.subplots(1, 3)
    ax_loss.plot(epochs, _floats(columns["train_loss"]), "o-", label="train")
    val_loss = _floats(columns["val_loss"])
    if not np.isnan(val_loss).all():
        ax_loss.plot(epochs, val_loss, "o-", label="validation")
    ax_loss.set_title("loss")
    ax_loss.legend()
    miou, acc = _floats(columns["val_miou"]), _floats(columns["val_pixel_accuracy"])
    if np.isnan(miou).all() and np.isnan(acc).all():
        ax_val.text(0.5, 0.5, "no validation data", ha="center", va="center", transform=ax_val.transAxes)
    else:
        ax_val.plot(epochs, miou, "o-", label="mIoU")
        ax_val.plot(epochs, acc, "s--", label="pixel accuracy")
        ax_val.set_ylim(0, 1)
        ax_val.legend()
    ax_val.set_title("validation")
    ax_lr.plot(epochs, _floats(columns["lr"]), "o-")
    ax_lr.set_title("learning rate")
    ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    for ax in (ax_loss, ax_val, ax_lr):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    return fig


# ------------------------------------------------------------------------------ plot_confusion_matrix

def _normalized(matrix: np.ndarray, normalize: str | None) -> np.ndarray:
    counts = matrix.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        if normalize == "row":
            return counts / counts.sum(axis=1, keepdims=True)
        if normalize == "column":
            return counts / counts.sum(axis=0, keepdims=True)
        if normalize == "all":
            return counts / counts.sum()
    return counts


def plot_confusion_matrix(matrix: Any, class_names: Sequence[str] | None = None, normalize: str | None = "row", *,
                          annotate: bool | None = None, cmap: str = "Blues") -> Figure:
    """Draw a ``(K, K)`` confusion matrix (rows = truth, columns = prediction).

    ``matrix``: counts as a tensor / array, a :class:`segtutor.metrics.ConfusionMatrix` or the result of its
    ``compute()``. ``normalize``: ``"row"`` (each true class sums to 1: the diagonal is per-class recall),
    ``"column"`` (each predicted class sums to 1: precision), ``"all"`` or ``None`` (raw counts). A row or
    column with no pixels is left blank. Cell values are written in when ``K <= 12`` (``annotate``).
    """
    if normalize not in ("row", "column", "all", None):
        raise ValueError(f"normalize must be 'row', 'column', 'all' or None, got {normalize!r}")
    for attr in ("matrix", "confusion"):
        if not isinstance(matrix, (torch.Tensor, np.ndarray)) and hasattr(matrix, attr):
            matrix = getattr(matrix, attr)
    counts = _to_numpy(matrix, "matrix")
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"matrix must be square (K, K), got shape {counts.shape}")
    if (counts < 0).any() or not np.isfinite(counts).all():
        raise ValueError("matrix must hold non-negative finite counts")
    k = counts.shape[0]
    if class_names is not None and len(class_names) != k:
        raise ValueError(f"class_names has {len(class_names)} names for a {k}x{k} matrix")
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    values = _normalized(counts, normalize)

    fig = figure(figsize=(1.0 + 0.6 * k + 1.5, 0.6 * k + 1.5), layout="constrained")
    ax = fig.subplots()
    shown = np.ma.masked_invalid(values)
    image = ax.imshow(shown, cmap=cmap, vmin=0, vmax=1 if normalize else None, interpolation="nearest")
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.set_xticks(range(k), names, rotation=45, ha="right")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    label = {"row": "rows sum to 1 (diagonal = recall)", "column": "columns sum to 1 (diagonal = precision)",
             "all": "fraction of all pixels", None: "pixel counts"}[normalize]
    ax.set_title(f"confusion matrix\n{label}", fontsize=10)
    if annotate if annotate is not None else k <= 12:
        threshold = np.nanmax(values) / 2 if np.isfinite(values).any() else 0
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                text = f"{v:.2f}" if normalize else f"{int(v)}"
                ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if v > threshold else "black")
    return fig


# --------------------------------------------------------------------------------- show_feature_maps

def _resolve_layers(model: nn.Module, layers: Any) -> list[tuple[str, nn.Module]]:
    named = dict(model.named_modules())
    if layers is None:  # the top-level blocks that hold weights (activations and pooling add no rows);
        blocks = []     # a ModuleList / ModuleDict is never called itself, so its members stand for it
        for name, child in model.named_children():
            members = child.named_children() if isinstance(child, (nn.ModuleList, nn.ModuleDict)) else [("", child)]
            blocks += [(f"{name}.{sub}" if sub else name, module) for sub, module in members
                       if any(True for _ in module.parameters())]
        return blocks
    if isinstance(layers, (str, nn.Module)):
        layers = [layers]
    resolved = []
    for layer in layers:
        if isinstance(layer, str):
            if layer not in named:
                children = ", ".join(name for name, _ in model.named_children())
                raise ValueError(f"the model has no layer named {layer!r}; its top-level layers are: {children}")
            resolved.append((layer, named[layer]))
        elif isinstance(layer, nn.Module):
            name = next((n for n, m in named.items() if m is layer), None)
            if name is None:
                raise ValueError(f"the module {type(layer).__name__} given is not part of the model")
            resolved.append((name or type(layer).__name__, layer))
        else:
            raise TypeError(f"layer_names must hold layer names (str) or modules of the model, got {type(layer).__name__}")
    return resolved


def show_feature_maps(model: nn.Module, image: torch.Tensor, layer_names: Any = None, n: int = 8, *,
                      cmap: str = "viridis") -> Figure:
    """What the network sees: for each layer, its ``n`` most active channels on one image.

    ``image`` is ``(C, H, W)`` or ``(1, C, H, W)``. ``layer_names``: names from ``model.named_modules()``
    (``"enc1"``, ``"backbone.layer2"``), modules of the model, or ``None`` for every top-level child that has
    weights and outputs a feature map (the members of a top-level ``ModuleList``, e.g. U-Net's ``down.0``). Forward hooks record each layer's output ``(1, C_l, H_l, W_l)`` during
    one forward pass (eval mode, no gradients; the model's mode is restored). Row = layer, labelled with its
    name and output shape ``(C_l, H_l, W_l)``; column = one of the ``n`` channels with the largest mean
    ``|activation|``, titled with its channel index.
    """
    n = check_int(n, "n")
    if not isinstance(image, torch.Tensor) or image.ndim not in (3, 4) or (image.ndim == 4 and image.shape[0] != 1):
        got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"image must be a tensor (C, H, W) or (1, C, H, W), got {got}")
    batch = image[None] if image.ndim == 3 else image
    explicit = layer_names is not None
    layers = _resolve_layers(model, layer_names)
    outputs: dict[str, torch.Tensor] = {}

    def hook(name: str):
        def record(module: nn.Module, inputs: Any, output: Any) -> None:
            out = output[0] if isinstance(output, (tuple, list)) else output
            if isinstance(out, torch.Tensor):
                outputs[name] = out.detach().float().cpu()
        return record

    handles = [module.register_forward_hook(hook(name)) for name, module in layers]
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    try:
        with model_mode(model), torch.no_grad():
            model(batch.to(device))
    finally:
        for handle in handles:
            handle.remove()

    maps = []
    for name, _ in layers:
        out = outputs.get(name)
        if out is None or out.ndim != 4:
            if explicit:
                got = "no output" if out is None else f"shape {tuple(out.shape)}"
                raise ValueError(f"layer {name!r} gave {got}; feature maps need an output (1, C, H, W)")
            continue
        maps.append((name, out[0]))
    if not maps:
        raise ValueError("no layer produced a feature map (1, C, H, W); name the layers with layer_names=")

    cols = min(n, max(m.shape[0] for _, m in maps))
    fig = figure(figsize=(1.6 * cols + 1.0, 1.7 * len(maps)), layout="constrained")
    axes = fig.subplots(len(maps), cols, squeeze=False)
    for row, (name, fmap) in enumerate(maps):
        strength = fmap.abs().mean(dim=(1, 2))
        order = torch.argsort(strength, descending=True, stable=True)[:cols]
        for col in range(cols):
            ax = axes[row, col]
            _off(ax)
            if col >= len(order):
                ax.set_visible(False)
                continue
            channel = int(order[col])
            ax.imshow(fmap[channel].numpy(), cmap=cmap, interpolation="nearest")
            ax.set_title(f"ch {channel}", fontsize=8)
        axes[row, 0].set_ylabel(f"{name}\n{tuple(fmap.shape)}", fontsize=8)
    return fig


# ------------------------------------------------------------------------------ LiveCurves

class LiveCurves:
    """Training curves that redraw in the notebook while :func:`segtutor.train.fit` runs.

    ``fit(..., progress="curves")`` makes one, or pass your own as ``fit(..., on_epoch=LiveCurves())``: fit calls
    it with the :class:`~segtutor.history.History` after every epoch and calls :meth:`close` at the end. Each
    redraw is :func:`plot_history` sent as one PNG through one IPython display handle (the same output area,
    updated in place), and redraws are at least ``min_interval`` seconds apart, so a run sends at most about
    ``duration / min_interval + 2`` display messages whatever its number of epochs; :meth:`close` draws the
    final epoch if the last one was skipped. Outside IPython nothing is drawn.
    """

    def __init__(self, min_interval: float = 1.0, *, clock: Callable[[], float] | None = None) -> None:
        if not isinstance(min_interval, (int, float)) or isinstance(min_interval, bool) or not min_interval >= 0:
            raise ValueError(f"min_interval must be a number of seconds >= 0, got {min_interval!r}")
        import time

        self.min_interval = float(min_interval)
        self._clock = clock or time.monotonic
        self._handle: Any = None
        self._last_draw = -math.inf
        self._pending: Any = None
        self.redraws = 0

    def _show(self, png: bytes) -> None:
        try:
            from IPython import get_ipython
            from IPython.display import Image, display
        except ImportError:  # plain Python without IPython
            return
        if get_ipython() is None:
            return
        if self._handle is None:
            self._handle = display(Image(png), display_id=True)
        else:
            self._handle.update(Image(png))

    def draw(self, history: Any) -> bytes:
        """Render ``history`` now (one PNG, also returned) and show it."""
        fig = plot_history(history)
        png = to_png(fig)
        self._show(png)
        self._last_draw, self._pending = self._clock(), None
        self.redraws += 1
        return png

    def __call__(self, history: Any) -> None:
        if self._clock() - self._last_draw >= self.min_interval:
            self.draw(history)
        else:
            self._pending = history

    def close(self) -> None:
        """Draw the last history if its redraw was skipped."""
        if self._pending is not None:
            self.draw(self._pending)
