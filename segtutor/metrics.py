"""Segmentation metrics from one confusion matrix: IoU, mIoU, pixel and mean accuracy, fwIoU, Dice.

Taught in ``notebooks/05_metrics.ipynb``.

Everything here is read off the ``(K, K)`` confusion matrix ``M``, rows = truth, columns = prediction::

    TP_c  = M[c, c]            truth_c = Σ_j M[c, j]         pred_c = Σ_i M[i, c]
    IoU_c = TP_c / (truth_c + pred_c − TP_c)                 Dice_c = 2 TP_c / (truth_c + pred_c)

A class absent from both truth and prediction has no IoU (0/0): it is NaN and left out of every mean.
The source document scores it 0 instead, which drags mIoU down; :func:`source_style_miou` reproduces that
convention so the notebook can show the difference, and nothing else in the course uses it.

:class:`ConfusionMatrix` accumulates the matrix over a whole dataset with one ``bincount`` per batch, on the
device of the inputs. Mean IoU over the *dataset* (this module) is not the mean of per-image mIoUs
(:func:`per_image_miou`): the notebook shows how far apart they can be.

Boundaries: :func:`boundary_band` and :func:`boundary_miou` score how well a model draws object edges
(``01_fcn.ipynb``); :func:`boundary_contrast` measures whether a dataset's images show its mask boundaries at
all (``00_task_and_data.ipynb`` derives it, ``06_end_to_end.ipynb`` uses it on the source's noise images).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from ._validation import check_ignore_index, check_int, check_prediction

__all__ = [
    "ConfusionMatrix",
    "SegmentationMetrics",
    "confusion_matrix",
    "iou_per_class",
    "mean_iou",
    "pixel_accuracy",
    "per_image_miou",
    "source_style_miou",
    "boundary_band",
    "boundary_miou",
    "boundary_contrast",
]


# --------------------------------------------------------------------------------------------------------------
# Inputs: labels or scores → validated int64 labels
# --------------------------------------------------------------------------------------------------------------

def _check_config(num_classes: int, ignore_index: int | None) -> tuple[int, int | None]:
    """``(num_classes, ignore_index)`` as Python ints, checked by the package's one rule for each."""
    num_classes = check_int(num_classes, "num_classes")
    return num_classes, check_ignore_index(ignore_index, num_classes)


def _to_labels(pred: torch.Tensor, target: torch.Tensor, num_classes: int | None,
               ignore_index: int | None) -> torch.Tensor:
    """Validate ``pred`` (labels ``(N, H, W)`` or scores ``(N, K, H, W)``) and ``target`` ``(N, H, W)``.

    Returns the predicted labels as int64 ``(N, H, W)``. ``num_classes=None`` (pixel accuracy on labels) checks
    only that labels are non-negative integers.
    """
    if check_prediction(pred, target, num_classes, ignore_index):
        return _argmax_classes(pred.detach())
    return pred.long()


def _argmax_classes(scores: torch.Tensor) -> torch.Tensor:
    """``scores.argmax(1)`` for finite scores ``(N, K, H, W)`` → int64 ``(N, H, W)``, ties to the first class.

    On the CPU, torch's argmax over dim 1 is several times slower than a plain max (``amax``), so the index
    is found from the max instead: among the classes equal to the max, the first one is the one with the
    largest reversed number ``K − 1 − c``, which ``amax`` of a small integer tensor finds quickly.
    """
    if scores.device.type != "cpu":
        return scores.argmax(1)
    k = scores.shape[1]
    is_max = (scores == scores.amax(1, keepdim=True)).view(torch.uint8)
    dtype = torch.uint8 if k <= 256 else torch.int32
    reversed_class = torch.arange(k - 1, -1, -1, dtype=dtype).view(1, k, *([1] * (scores.ndim - 2)))
    return (k - 1) - is_max.to(dtype).mul_(reversed_class).amax(1).long()


def _counts(labels: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int | None,
            per_image: bool = False) -> torch.Tensor:
    """Confusion counts of validated labels, with ONE ``bincount``: ``(K, K)``, or ``(N, K, K)`` if ``per_image``.

    Pixel ``i`` goes to bin ``target_i · K + pred_i`` (plus ``n · K²`` for image ``n``); ignored pixels go to
    one extra bin past the end that is dropped, so no boolean indexing (and no copy) is needed.
    """
    k2 = num_classes * num_classes
    index = torch.add(labels, target, alpha=num_classes)  # int64: labels are int64
    bins = k2
    if per_image:
        n = index.shape[0]
        index += torch.arange(n, device=index.device).view(n, *([1] * (index.ndim - 1))) * k2
        bins = n * k2
    if ignore_index is not None:
        index.masked_fill_(target == ignore_index, bins)
    counts = torch.bincount(index.reshape(-1), minlength=bins + 1)[:bins]
    return counts.view(-1, num_classes, num_classes) if per_image else counts.view(num_classes, num_classes)


# --------------------------------------------------------------------------------------------------------------
# Scores read off a confusion matrix
# --------------------------------------------------------------------------------------------------------------

def _iou(matrix: torch.Tensor) -> torch.Tensor:
    """Per-class IoU of ``(..., K, K)`` counts → ``(..., K)`` float64, NaN where the union is empty."""
    m = matrix.double()
    tp = m.diagonal(dim1=-2, dim2=-1)
    union = m.sum(-1) + m.sum(-2) - tp
    return tp / union  # 0/0 = NaN: absent from truth and prediction


def _nanmean(values: torch.Tensor) -> torch.Tensor:
    """Mean over the last dimension ignoring NaN; NaN when every entry is NaN (no warning)."""
    present = ~values.isnan()
    return values.nan_to_num(0.0).sum(-1) / present.sum(-1)


_COUNTS_FORM = "a (K, K) matrix of non-negative integer counts (rows = truth, columns = prediction)"


def _check_counts(matrix: torch.Tensor) -> torch.Tensor:
    """``matrix`` ``(K, K)`` as int64 counts, or an error saying why it is not counts."""
    if matrix.dtype == torch.bool or matrix.is_complex():
        raise TypeError(f"matrix must be {_COUNTS_FORM}, got dtype {matrix.dtype}")
    if matrix.numel() == 0:
        return matrix.to(torch.int64)
    if matrix.is_floating_point():
        m = matrix.double()
        if not bool(m.isfinite().all()):
            kind = "NaN" if bool(m.isnan().any()) else "infinite"
            raise ValueError(f"matrix must be {_COUNTS_FORM}; it has {kind} entries")
        fractional = m != m.round()
        if bool(fractional.any()):
            example = float(m[fractional][0])
            normalised = bool((m >= 0).all()) and (math.isclose(float(m.sum()), 1.0, rel_tol=1e-4) or bool(
                ((m.sum(1) - 1).abs() < 1e-4).all()) or bool(((m.sum(0) - 1).abs() < 1e-4).all()))
            what = ("it looks normalised (it sums to 1 overall, per row or per column): pass the raw pixel counts, "
                    "e.g. ConfusionMatrix.matrix" if normalised else "it has non-integral entries")
            raise ValueError(f"matrix must be {_COUNTS_FORM}, got {matrix.dtype} values such as {example:.6g}; {what}")
    if bool((matrix < 0).any()):
        raise ValueError(f"matrix must be {_COUNTS_FORM}; it has negative entries such as {matrix[matrix < 0][0].item()}")
    return matrix.to(torch.int64)


@dataclass(frozen=True, repr=False, eq=False)
class SegmentationMetrics:
    """The scores of one confusion matrix. Per-class tensors are ``(K,)`` float64 on the CPU.

    ``iou`` and ``dice`` are NaN for a class absent from both truth and prediction; ``class_accuracy``
    (recall) is NaN for a class absent from the truth. ``miou``, ``mean_dice`` and ``mean_accuracy`` average
    the non-NaN entries. ``fw_iou`` weights each class's IoU by its share of the truth pixels.
    ``print(m)`` or ``m.table()`` shows a table; ``m.to_dict()`` gives plain Python numbers.
    """

    confusion: torch.Tensor
    iou: torch.Tensor
    dice: torch.Tensor
    class_accuracy: torch.Tensor
    miou: float
    mean_dice: float
    pixel_accuracy: float
    mean_accuracy: float
    fw_iou: float
    class_names: tuple[str, ...] | None = None

    @classmethod
    def from_confusion(cls, matrix: torch.Tensor, class_names: Sequence[str] | None = None) -> "SegmentationMetrics":
        """Compute every score from a ``(K, K)`` confusion matrix (rows = truth, columns = prediction).

        ``matrix`` holds non-negative whole-number pixel counts, in an integer dtype (or a float dtype holding
        whole numbers); a normalised matrix (fractions) or negative entries are refused, not scored.
        """
        if not isinstance(matrix, torch.Tensor) or matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"matrix must be a (K, K) tensor, got {getattr(matrix, 'shape', type(matrix).__name__)}")
        num_classes = matrix.shape[0]
        if class_names is not None:
            class_names = tuple(str(c) for c in class_names)
            if len(class_names) != num_classes:
                raise ValueError(f"class_names has {len(class_names)} names but there are {num_classes} classes")
        confusion = _check_counts(matrix.detach().cpu())
        m = confusion.double()
        tp, truth, pred = m.diagonal(), m.sum(1), m.sum(0)
        total = m.sum()
        iou = _iou(m)
        dice = 2 * tp / (truth + pred)
        class_accuracy = tp / truth
        return cls(
            confusion=confusion,
            iou=iou,
            dice=dice,
            class_accuracy=class_accuracy,
            miou=float(_nanmean(iou)),
            mean_dice=float(_nanmean(dice)),
            pixel_accuracy=float(tp.sum() / total),
            mean_accuracy=float(_nanmean(class_accuracy)),
            fw_iou=float((truth * iou.nan_to_num(0.0)).sum() / total),  # Σ_c (truth_c / total) IoU_c
            class_names=class_names,
        )

    @property
    def num_classes(self) -> int:
        return self.confusion.shape[0]

    @property
    def num_pixels(self) -> int:
        """How many (non-ignored) pixels were counted."""
        return int(self.confusion.sum())

    def _names(self, class_names: Sequence[str] | None) -> list[str]:
        names = class_names if class_names is not None else self.class_names
        if names is None:
            return [str(c) for c in range(self.num_classes)]
        if len(names) != self.num_classes:
            raise ValueError(f"class_names has {len(names)} names but there are {self.num_classes} classes")
        return [str(n) for n in names]

    def table(self, class_names: Sequence[str] | None = None, digits: int = 4) -> str:
        """A plain-text table: one row per class (IoU, Dice, accuracy, pixel counts), then the summary scores."""
        def fmt(x: float) -> str:
            return "absent" if math.isnan(x) else f"{x:.{digits}f}"

        names = self._names(class_names)
        truth, pred = self.confusion.sum(1).tolist(), self.confusion.sum(0).tolist()
        header = ["class", "IoU", "Dice", "accuracy", "truth px", "pred px"]
        rows = [[name, fmt(i), fmt(d), fmt(a), str(t), str(p)] for name, i, d, a, t, p in
                zip(names, self.iou.tolist(), self.dice.tolist(), self.class_accuracy.tolist(), truth, pred)]
        widths = [max(len(r[j]) for r in [header, *rows]) for j in range(len(header))]
        line = lambda r: "  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths)))
        counted = int((~self.iou.isnan()).sum())
        summary = [
            f"mIoU            {fmt(self.miou)}  (mean over {counted} of {self.num_classes} classes; absent ones left out)",
            f"mean Dice       {fmt(self.mean_dice)}",
            f"pixel accuracy  {fmt(self.pixel_accuracy)}  ({self.num_pixels} pixels counted)",
            f"mean accuracy   {fmt(self.mean_accuracy)}",
            f"fwIoU           {fmt(self.fw_iou)}",
        ]
        return "\n".join([line(header), *(line(r) for r in rows), "", *summary])

    def to_dict(self) -> dict[str, Any]:
        """Plain Python numbers and lists (NaN stays ``float('nan')``), e.g. for JSON or ``pandas.DataFrame``."""
        return {
            "miou": self.miou,
            "mean_dice": self.mean_dice,
            "pixel_accuracy": self.pixel_accuracy,
            "mean_accuracy": self.mean_accuracy,
            "fw_iou": self.fw_iou,
            "class_names": self._names(None),
            "iou": self.iou.tolist(),
            "dice": self.dice.tolist(),
            "class_accuracy": self.class_accuracy.tolist(),
            "confusion": self.confusion.tolist(),
        }

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return (f"SegmentationMetrics(miou={self.miou:.4f}, pixel_accuracy={self.pixel_accuracy:.4f}, "
                f"mean_accuracy={self.mean_accuracy:.4f}, fw_iou={self.fw_iou:.4f}, mean_dice={self.mean_dice:.4f}, "
                f"num_classes={self.num_classes})")

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython / Jupyter display shows the table
        printer.text(repr(self) if cycle else self.table())


# --------------------------------------------------------------------------------------------------------------
# Streaming over a dataset
# --------------------------------------------------------------------------------------------------------------

class ConfusionMatrix:
    """A ``(K, K)`` int64 confusion matrix accumulated batch by batch (rows = truth, columns = prediction).

    ``update(pred, target)`` takes labels ``(N, H, W)`` or scores ``(N, K, H, W)`` (argmax over dim 1) and an
    integer target ``(N, H, W)``; pixels whose target is ``ignore_index`` are not counted. The counting runs
    where the inputs are (CPU or GPU, no copy to the host); the matrix lives on ``device``, by default the
    device of the first batch. ``compute()`` returns :class:`SegmentationMetrics`.
    """

    def __init__(self, num_classes: int, ignore_index: int | None = None, device: str | torch.device | None = None,
                 *, class_names: Sequence[str] | None = None) -> None:
        num_classes, ignore_index = _check_config(num_classes, ignore_index)
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"class_names has {len(class_names)} names but num_classes={num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.device = torch.device(device) if device is not None else None
        self.class_names = tuple(class_names) if class_names is not None else None
        self.reset()

    def reset(self) -> None:
        """Forget every counted pixel."""
        self._matrix: torch.Tensor | None = None

    @property
    def matrix(self) -> torch.Tensor:
        """The accumulated ``(K, K)`` int64 counts (zeros before the first update)."""
        if self._matrix is None:
            k = self.num_classes
            return torch.zeros(k, k, dtype=torch.int64, device=self.device or "cpu")
        return self._matrix

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Count one batch: ``pred`` labels ``(N, H, W)`` or scores ``(N, K, H, W)``, ``target`` ``(N, H, W)``."""
        labels = _to_labels(pred, target, self.num_classes, self.ignore_index)
        counts = _counts(labels, target, self.num_classes, self.ignore_index)
        if self._matrix is None:
            self._matrix = torch.zeros_like(counts, device=self.device or counts.device)
        self._matrix += counts.to(self._matrix.device)

    def compute(self) -> SegmentationMetrics:
        """Scores of everything counted since the last :meth:`reset` (NaN everywhere if nothing was counted)."""
        return SegmentationMetrics.from_confusion(self.matrix, self.class_names)

    def __repr__(self) -> str:
        return (f"ConfusionMatrix(num_classes={self.num_classes}, ignore_index={self.ignore_index}, "
                f"pixels={int(self.matrix.sum())}, device={self.matrix.device})")


# --------------------------------------------------------------------------------------------------------------
# Functional forms (one batch, or a whole dataset held in memory)
# --------------------------------------------------------------------------------------------------------------

@torch.no_grad()
def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                     ignore_index: int | None = None) -> torch.Tensor:
    """``(K, K)`` int64 counts, rows = truth, columns = prediction, on the inputs' device.

    ``pred``: labels ``(N, H, W)`` or scores ``(N, K, H, W)``; ``target``: integer labels ``(N, H, W)``.
    """
    num_classes, ignore_index = _check_config(num_classes, ignore_index)
    labels = _to_labels(pred, target, num_classes, ignore_index)
    return _counts(labels, target, num_classes, ignore_index)


def iou_per_class(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                  ignore_index: int | None = None) -> torch.Tensor:
    """IoU of each class over all pixels given: ``(K,)`` float64, NaN for a class absent from truth and prediction."""
    return _iou(confusion_matrix(pred, target, num_classes, ignore_index))


def mean_iou(pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int | None = None) -> float:
    """mIoU over all pixels given (dataset-level): the mean of :func:`iou_per_class` over non-NaN classes."""
    return float(_nanmean(iou_per_class(pred, target, num_classes, ignore_index)))


@torch.no_grad()
def pixel_accuracy(pred: torch.Tensor, target: torch.Tensor, ignore_index: int | None = None) -> float:
    """Fraction of non-ignored pixels whose predicted label equals the target (NaN if none is counted).

    ``pred``: labels ``(N, H, W)`` or scores ``(N, K, H, W)``; ``target``: integer labels ``(N, H, W)``.
    With scores the target is checked against ``K`` classes; with labels only for being non-negative integers.
    """
    ignore_index = check_ignore_index(ignore_index)
    labels = _to_labels(pred, target, None, ignore_index)
    correct = labels == target
    if ignore_index is None:
        return float(correct.sum().double() / correct.numel())
    kept = target != ignore_index
    return float((correct & kept).sum().double() / kept.sum())


@torch.no_grad()
def per_image_miou(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                   ignore_index: int | None = None) -> torch.Tensor:
    """mIoU of each image on its own: ``(N,)`` float64 (NaN for an image whose pixels are all ignored).

    In each image, classes absent from its truth and prediction are left out. This equals
    ``torchmetrics.functional.segmentation.mean_iou(pred, target, num_classes, input_format="index")``; its
    mean is a per-image average, which is NOT the dataset-level :func:`mean_iou` (small objects missed in one
    image weigh a whole image there, a few pixels here).
    """
    num_classes, ignore_index = _check_config(num_classes, ignore_index)
    labels = _to_labels(pred, target, num_classes, ignore_index)
    return _nanmean(_iou(_counts(labels, target, num_classes, ignore_index, per_image=True)))


@torch.no_grad()
def boundary_band(target: torch.Tensor, width: int = 2) -> torch.Tensor:
    """Pixels near a label change: bool ``(N, H, W)`` for integer labels ``target (N, H, W)``.

    A pixel is in the band when its ``(2·width+1)²`` neighbourhood holds more than one label, i.e. it lies
    within ``width`` pixels (chessboard distance) of a boundary. Taught in ``01_fcn.ipynb``, which builds it
    from two max-pools and checks its own version against this one.
    """
    width = check_int(width, "width")
    if not isinstance(target, torch.Tensor) or target.ndim != 3 or target.is_floating_point():
        raise ValueError("target must be integer labels of shape (N, H, W), got "
                         f"{getattr(target, 'dtype', type(target).__name__)} {tuple(getattr(target, 'shape', ()))}")
    m = target.unsqueeze(1).float()
    largest = torch.nn.functional.max_pool2d(m, 2 * width + 1, stride=1, padding=width)
    smallest = -torch.nn.functional.max_pool2d(-m, 2 * width + 1, stride=1, padding=width)
    return (largest != smallest).squeeze(1)


def boundary_miou(pred: torch.Tensor, target: torch.Tensor, num_classes: int, width: int = 2,
                  ignore_index: int | None = None) -> float:
    """mIoU over the pixels of :func:`boundary_band` only: how well a model draws the edges of objects.

    ``pred``: labels ``(N, H, W)`` or scores ``(N, K, H, W)``; ``target``: labels ``(N, H, W)``. Interior pixels
    (and ``ignore_index`` pixels) are left out, so coarse, blocky predictions score low here even when their
    overall mIoU looks fine (FCN-32s vs FCN-8s in ``01_fcn.ipynb``, skips in ``02_unet.ipynb``).
    """
    _check_config(num_classes, ignore_index)
    labels = _to_labels(pred, target, num_classes, ignore_index)  # the user's own num_classes and ignore_index
    band = boundary_band(target, width)
    if ignore_index is not None:
        band &= target != ignore_index
    counts = _counts(labels[band], target[band].long(), num_classes, None)  # only the band's valid pixels
    return SegmentationMetrics.from_confusion(counts).miou


@torch.no_grad()
def boundary_contrast(images: torch.Tensor, masks: torch.Tensor) -> float:
    """How visible the mask boundaries are in the images: mean colour step across a boundary / inside a region.

    ``images`` float ``(N, C, H, W)``, ``masks`` integer labels ``(N, H, W)``. For every pair of horizontal or
    vertical neighbours the colour step is ``sum_c |x[c, p] - x[c, q]|``; the result is the mean step over pairs
    whose labels differ divided by the mean over pairs whose labels agree. About 1 means the boundaries cannot
    be seen (the source document's images of pure noise); the course's ``SyntheticShapes`` give several times that.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or not images.is_floating_point():
        raise ValueError(f"images must be a float tensor (N, C, H, W), got "
                         f"{getattr(images, 'dtype', type(images).__name__)} {tuple(getattr(images, 'shape', ()))}")
    if not isinstance(masks, torch.Tensor) or masks.is_floating_point() \
            or tuple(masks.shape) != (images.shape[0], *images.shape[2:]):
        raise ValueError(f"masks must be integer labels (N, H, W) = {(images.shape[0], *images.shape[2:])} matching "
                         f"the images, got {getattr(masks, 'dtype', type(masks).__name__)} "
                         f"{tuple(getattr(masks, 'shape', ()))}")
    across, inside = [], []
    for dim in (-1, -2):                                      # horizontal and vertical neighbours
        step = images.diff(dim=dim).abs().sum(dim=1)          # (N, H, W-1) or (N, H-1, W)
        changes = masks.diff(dim=dim) != 0
        across.append(step[changes])
        inside.append(step[~changes])
    across_t, inside_t = torch.cat(across), torch.cat(inside)
    if across_t.numel() == 0 or inside_t.numel() == 0:
        raise ValueError("boundary_contrast needs masks with at least one boundary and one region of two or more "
                         f"pixels; got {across_t.numel()} neighbour pairs across a boundary and {inside_t.numel()} inside")
    return (across_t.mean() / inside_t.mean()).item()


def source_style_miou(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> float:
    """mIoU as the source document's ``calculate_iou`` computes it — the WRONG convention, kept for teaching.

    A class absent from both truth and prediction is scored 0 (instead of being left out) and the mean runs
    over all ``K`` classes, so a perfect prediction of an image without class ``c`` scores below 1
    (COURSE.md defect #5). Use :func:`mean_iou` or :class:`ConfusionMatrix` for real evaluation.
    """
    return float(iou_per_class(pred, target, num_classes).nan_to_num(0.0).mean())
