"""A synthetic segmentation dataset whose labels can only be read from the shapes: :class:`SyntheticShapes`.

Taught in ``notebooks/00_task_and_data.ipynb`` (dataset tour; classification vs detection vs semantic vs
instance segmentation on one :class:`Scene`) and used to train every model of notebooks 01–06; the
imbalanced variant (:meth:`SyntheticShapes.imbalanced`) drives the loss comparison of ``04_losses.ipynb``.

The class of a pixel is the TYPE of the shape that covers it — background, circle, rectangle, triangle,
then ellipse, ring, cross, star when ``num_classes`` asks for more — never its colour: every shape gets a
random colour, drawn independently of its type, on a textured background (a colour gradient and soft blobs)
with pixel noise. A model has to look at the outline, which is what segmentation is about. This fixes two
defects of the source document: its images were pure noise (the shapes existed only in the mask), and its
triangles were chosen but never drawn.

Sample ``i`` is a function of ``(seed, i)`` alone: its random numbers come from
``numpy.random.default_rng([seed, i])`` and it is drawn on its own, so a sample is the same whichever
order or dataset size it is generated in, cached or not. A held-out set is another ``seed``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .._validation import check_int, is_int
from .palette import shapes_palette

__all__ = ["SyntheticShapes", "Scene", "SHAPE_TYPES", "CLASS_NAMES"]

#: Shape types in label order; label 0 is the background. ``num_classes = k`` uses the first ``k - 1``.
SHAPE_TYPES = ("circle", "rectangle", "triangle", "ellipse", "ring", "cross", "star")
#: All class names, index = label.
CLASS_NAMES = ("background", *SHAPE_TYPES)

_CIRCLE, _RECTANGLE, _TRIANGLE, _ELLIPSE, _RING, _CROSS, _STAR = range(1, 8)

# How far apart two shapes' centres should be, as a fraction of the sum of their radii: below 1 they may
# overlap (the later one occludes the earlier), but an earlier shape keeps a recognisable part.
_SEPARATION = 0.75
_PLACEMENT_TRIES = 30
_COLOR_TRIES = 50
_MIN_CONTRAST_BACKGROUND = 0.4   # RGB distance from a shape's colour to the background's colour range
_MIN_CONTRAST_SHAPES = 0.3       # RGB distance between the colours of two shapes of one image
_NUM_BLOBS = 3


@dataclass(frozen=True, repr=False)
class Scene:
    """One synthetic image seen through four tasks (notebook 00).

    - ``image``: ``float32 (3, H, W)`` in ``[0, 1]``;
    - semantic segmentation: ``mask``, ``int64 (H, W)``, the class of every pixel;
    - instance segmentation: ``instance_mask``, ``int64 (H, W)``, 0 for background and ``1..n`` for the
      visible shapes in drawing order (a shape hidden entirely by later ones is dropped);
    - detection: ``boxes``, ``float32 (n, 4)`` as ``(x0, y0, x1, y1)``, the first and last column and row of
      each instance's visible pixels (inclusive, as ``torchvision.ops.masks_to_boxes``), and ``labels``,
      ``int64 (n,)``, the class of each instance;
    - classification: ``present``, ``bool (K,)``, which classes appear (index 0: background), and
      ``dominant``, the class that covers most foreground pixels (0 when there is no foreground).
    """

    image: torch.Tensor
    mask: torch.Tensor
    instance_mask: torch.Tensor
    boxes: torch.Tensor
    labels: torch.Tensor
    present: torch.Tensor
    dominant: int
    class_names: tuple[str, ...]

    @property
    def num_instances(self) -> int:
        return int(self.labels.numel())

    def __repr__(self) -> str:
        names = [self.class_names[int(c)] for c in self.labels]
        shown = [n for n, p in zip(self.class_names, self.present.tolist()) if p]
        return (f"Scene(image={tuple(self.image.shape)}, instances={names}, present={shown}, "
                f"dominant={self.class_names[self.dominant]!r})")


@dataclass(frozen=True)
class _Params:
    """Everything random about one sample (shapes in drawing order)."""

    background: np.ndarray   # (3 + 3 + 2,) colour c0, colour c1, cos and sin of the gradient direction
    blobs: np.ndarray        # (_NUM_BLOBS, 6): cy, cx, sigma, amplitude RGB
    types: np.ndarray        # (S,) labels 1..7
    geometry: np.ndarray     # (S, 6): cy, cx, radius, cos and sin of the rotation, shape-specific parameter
    colors: np.ndarray       # (S, 3)
    shading: np.ndarray      # (S, 2): brightness gradient along the shape's own axes
    noise: np.ndarray        # (3, H, W) float32, uniform in [0, 1)


def _to_float(images: torch.Tensor) -> torch.Tensor:
    """``uint8`` → ``float32`` in ``[0, 1]``. Done in NumPy: a per-item torch op of this size would start
    torch's intra-op threads on every call, which costs milliseconds per item on a busy laptop."""
    return torch.from_numpy(np.divide(images.numpy(), np.float32(255), dtype=np.float32))


def _to_long(labels: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(labels.numpy().astype(np.int64))


def _distance_to_segment(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance of each row of ``points (M, 3)`` to the segment ``[a, b]``."""
    ab = b - a
    t = np.clip(((points - a) @ ab) / max(float(ab @ ab), 1e-12), 0.0, 1.0)
    return np.linalg.norm(points - (a + t[:, None] * ab), axis=1)


class SyntheticShapes(Dataset):
    """Images of random shapes on textured backgrounds, labelled by shape type.

    Args:
        num_samples: number of images.
        image_size: side ``S`` (square) or ``(H, W)``, each at least 16.
        num_classes: ``K``, 2..8: background plus the first ``K - 1`` of :data:`SHAPE_TYPES`
            (4 = background, circle, rectangle, triangle).
        seed: sample ``i`` depends on ``(seed, i)`` only; use another seed for a held-out set.
        shapes_per_image: ``(lo, hi)``, inclusive, or one int; default 1 to 4.
        size_range: ``(lo, hi)`` diameter of a shape's circumscribed circle as a fraction of ``min(H, W)``,
            or one ``(lo, hi)`` per shape type (``K - 1`` pairs) to give types different sizes.
        class_probs: relative frequency of each shape type (``K - 1`` non-negative numbers), default uniform.
        noise: standard deviation of the (uniform) pixel noise, on image values in ``[0, 1]``.
        cache: render every sample once at construction and keep it as ``uint8`` (``3·H·W + H·W`` bytes per
            sample); ``False`` renders a sample on each access instead (same values).

    Items are ``(image, mask)``: ``float32 (3, H, W)`` in ``[0, 1]`` and ``int64 (H, W)`` in ``0..K-1``.
    """

    def __init__(self, num_samples: int, image_size: int | tuple[int, int] = 64, num_classes: int = 4,
                 seed: int = 0, *, shapes_per_image: int | tuple[int, int] = (1, 4),
                 size_range: Sequence[float] | Sequence[Sequence[float]] = (0.2, 0.45),
                 class_probs: Sequence[float] | None = None, noise: float = 0.05, cache: bool = True) -> None:
        self.num_samples = check_int(num_samples, "num_samples")
        self.image_size = self._check_image_size(image_size)
        if not is_int(num_classes) or not 2 <= num_classes <= len(CLASS_NAMES):
            raise ValueError(f"num_classes must be an int in 2..{len(CLASS_NAMES)} (background plus up to "
                             f"{len(SHAPE_TYPES)} shape types: {', '.join(SHAPE_TYPES)}), got {num_classes!r}")
        self.num_classes = int(num_classes)
        num_types = self.num_classes - 1
        self.seed = check_int(seed, "seed", minimum=0)
        self.shapes_per_image = self._check_shape_count(shapes_per_image)
        self.size_range = self._check_sizes(size_range, num_types)
        self.class_probs = self._check_probs(class_probs, num_types)
        if isinstance(noise, bool) or not isinstance(noise, (int, float, np.floating)) \
                or not math.isfinite(noise) or not 0 <= noise <= 0.5:
            raise ValueError(f"noise must be a number in [0, 0.5] (std of pixel noise on [0, 1] images), got {noise!r}")
        self.noise = float(noise)
        if not isinstance(cache, bool):
            raise TypeError(f"cache must be True or False, got {cache!r}")
        self.cache = cache
        self.class_names: tuple[str, ...] = CLASS_NAMES[: self.num_classes]
        self.palette: np.ndarray = shapes_palette(self.num_classes)
        self._images: torch.Tensor | None = None
        self._masks: torch.Tensor | None = None
        if cache:
            self._images, self._masks, _ = self._render(range(self.num_samples))

    # ------------------------------------------------------------------ factories
    @classmethod
    def imbalanced(cls, num_samples: int, image_size: int | tuple[int, int] = 64, num_classes: int = 4,
                   seed: int = 0, *, rare_class: int | None = None, rare_prob: float = 0.15,
                   rare_size: tuple[float, float] = (0.12, 0.2), **kwargs) -> "SyntheticShapes":
        """A dataset with one rare, tiny class (notebook 04): the setting where plain cross-entropy
        neglects a class and Dice / Focal losses help.

        ``rare_class`` (default the last class, the triangle when ``num_classes=4``) is drawn with
        probability ``rare_prob`` per shape and with diameters in ``rare_size`` (fractions of the image side);
        the other types share the remaining probability and keep sizes 0.25–0.5. With the defaults at 64 px
        the rare class covers about 0.4 % of the pixels (the benchmark script prints the frequencies).
        Other keyword arguments go to the constructor; ``shapes_per_image`` defaults to ``(2, 5)``.
        """
        if not is_int(num_classes) or not 3 <= num_classes <= len(CLASS_NAMES):
            raise ValueError(f"an imbalanced dataset needs num_classes in 3..{len(CLASS_NAMES)} "
                             f"(background, common shapes and a rare one), got {num_classes!r}")
        rare = num_classes - 1 if rare_class is None else rare_class
        if not is_int(rare) or not 1 <= rare < num_classes:
            raise ValueError(f"rare_class must be a shape class in 1..{num_classes - 1}, got {rare_class!r}")
        if not isinstance(rare_prob, (int, float)) or not 0 < rare_prob < 1:
            raise ValueError(f"rare_prob must lie strictly between 0 and 1, got {rare_prob!r}")
        for key in ("class_probs", "size_range"):
            if key in kwargs:
                raise TypeError(f"imbalanced() sets {key} itself; use rare_prob / rare_size, or the constructor")
        num_types = num_classes - 1
        common = (1 - rare_prob) / (num_types - 1)
        probs = [rare_prob if t + 1 == rare else common for t in range(num_types)]
        sizes = [tuple(rare_size) if t + 1 == rare else (0.25, 0.5) for t in range(num_types)]
        kwargs.setdefault("shapes_per_image", (2, 5))
        return cls(num_samples, image_size, num_classes, seed, class_probs=probs, size_range=sizes, **kwargs)

    # ------------------------------------------------------------------ argument checks
    @staticmethod
    def _check_image_size(image_size: object) -> tuple[int, int]:
        if is_int(image_size):
            size = (int(image_size), int(image_size))
        elif isinstance(image_size, (tuple, list)) and len(image_size) == 2 and all(is_int(s) for s in image_size):
            size = (int(image_size[0]), int(image_size[1]))
        else:
            raise TypeError(f"image_size must be an int or a pair of ints (H, W), got {image_size!r}")
        if min(size) < 16:
            raise ValueError(f"image_size must be at least 16 pixels on each side, got {size}")
        return size

    @staticmethod
    def _check_shape_count(count: object) -> tuple[int, int]:
        if is_int(count):
            count = (count, count)
        if not (isinstance(count, (tuple, list)) and len(count) == 2 and all(is_int(c) for c in count)):
            raise TypeError(f"shapes_per_image must be an int or a pair (lo, hi) of ints, got {count!r}")
        lo, hi = int(count[0]), int(count[1])
        if not 0 <= lo <= hi <= 16:
            raise ValueError(f"shapes_per_image must satisfy 0 <= lo <= hi <= 16, got ({lo}, {hi})")
        return lo, hi

    @staticmethod
    def _check_sizes(size_range: object, num_types: int) -> tuple[tuple[float, float], ...]:
        def pair(value: object, what: str) -> tuple[float, float]:
            if not (isinstance(value, (tuple, list)) and len(value) == 2
                    and all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in value)):
                raise TypeError(f"{what} must be a pair (lo, hi) of fractions of the image side, got {value!r}")
            lo, hi = float(value[0]), float(value[1])
            if not (0 < lo <= hi <= 1):
                raise ValueError(f"{what} must satisfy 0 < lo <= hi <= 1 (fractions of the image side), "
                                 f"got ({lo}, {hi})")
            return lo, hi

        if isinstance(size_range, (tuple, list)) and len(size_range) > 0 \
                and all(isinstance(v, (tuple, list)) for v in size_range):
            if len(size_range) != num_types:
                raise ValueError(f"size_range per shape type needs {num_types} pairs (one per shape type), "
                                 f"got {len(size_range)}")
            return tuple(pair(v, f"size_range[{t}]") for t, v in enumerate(size_range))
        return (pair(size_range, "size_range"),) * num_types

    @staticmethod
    def _check_probs(class_probs: object, num_types: int) -> np.ndarray:
        if class_probs is None:
            return np.full(num_types, 1.0 / num_types)
        if isinstance(class_probs, torch.Tensor):
            class_probs = class_probs.tolist()
        try:
            probs = np.asarray(class_probs, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"class_probs must be a sequence of {num_types} numbers, got {class_probs!r}") from exc
        if probs.shape != (num_types,):
            raise ValueError(f"class_probs needs one relative frequency per shape type: {num_types} numbers "
                             f"(for {', '.join(SHAPE_TYPES[:num_types])}; the background is not drawn), "
                             f"got shape {probs.shape}")
        if not np.isfinite(probs).all() or (probs < 0).any() or probs.sum() <= 0:
            raise ValueError(f"class_probs must be finite, non-negative and not all zero, got {probs.tolist()}")
        return probs / probs.sum()

    # ------------------------------------------------------------------ Dataset protocol
    def __len__(self) -> int:
        return self.num_samples

    def _index(self, index: int) -> int:
        if isinstance(index, torch.Tensor) and index.numel() == 1:
            index = int(index.item())
        if not is_int(index):
            raise TypeError(f"index must be an int, got {type(index).__name__}")
        if not -self.num_samples <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for a dataset of {self.num_samples} samples")
        return int(index) % self.num_samples

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample ``index``: image ``float32 (3, H, W)`` in ``[0, 1]``, mask ``int64 (H, W)``."""
        i = self._index(index)
        if self._images is not None and self._masks is not None:
            image, mask = self._images[i], self._masks[i]
        else:
            images, masks, _ = self._render([i])
            image, mask = images[0], masks[0]
        return _to_float(image), _to_long(mask)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole dataset at once: images ``float32 (N, 3, H, W)``, masks ``int64 (N, H, W)``."""
        if self._images is not None and self._masks is not None:
            return _to_float(self._images), _to_long(self._masks)
        images, masks, _ = self._render(range(self.num_samples))
        return _to_float(images), _to_long(masks)

    def scene(self, index: int) -> Scene:
        """Sample ``index`` with its instance masks, boxes and image-level labels (see :class:`Scene`)."""
        i = self._index(index)
        images, masks, instances = self._render([i])
        image, mask, slots = _to_float(images[0]), _to_long(masks[0]), _to_long(instances[0])
        types = self._params(i).types
        visible = [s for s in torch.unique(slots).tolist() if s > 0]   # slot numbers, in drawing order
        instance_mask = torch.zeros_like(mask)
        boxes, labels = [], []
        for new_id, slot in enumerate(visible, start=1):
            pixels = slots == slot
            instance_mask[pixels] = new_id
            rows, cols = torch.nonzero(pixels, as_tuple=True)
            boxes.append([cols.min(), rows.min(), cols.max(), rows.max()])
            labels.append(int(types[slot - 1]))
        counts = torch.bincount(mask.flatten(), minlength=self.num_classes)
        dominant = int(counts[1:].argmax()) + 1 if counts[1:].sum() > 0 else 0
        return Scene(
            image=image,
            mask=mask,
            instance_mask=instance_mask,
            boxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            labels=torch.tensor(labels, dtype=torch.int64),
            present=counts > 0,
            dominant=dominant,
            class_names=self.class_names,
        )

    def __repr__(self) -> str:
        h, w = self.image_size
        return (f"SyntheticShapes(num_samples={self.num_samples}, image_size=({h}, {w}), "
                f"num_classes={self.num_classes}, seed={self.seed}, classes={list(self.class_names)})")

    # ------------------------------------------------------------------ random parameters of one sample
    def _params(self, index: int) -> _Params:
        rng = np.random.default_rng([self.seed, index])
        h, w = self.image_size
        side = min(h, w)

        c0 = rng.uniform(0.05, 0.95, 3)
        c1 = np.clip(c0 + rng.uniform(-0.3, 0.3, 3), 0.0, 1.0)
        direction = rng.uniform(0, 2 * math.pi)
        background = np.concatenate([c0, c1, [math.cos(direction), math.sin(direction)]])
        blobs = np.column_stack([
            rng.uniform(0, h, _NUM_BLOBS), rng.uniform(0, w, _NUM_BLOBS),
            rng.uniform(0.15, 0.4, _NUM_BLOBS) * side, rng.uniform(-0.12, 0.12, (_NUM_BLOBS, 3)),
        ])

        lo, hi = self.shapes_per_image
        count = int(rng.integers(lo, hi + 1))
        types = rng.choice(self.num_classes - 1, size=count, p=self.class_probs) + 1
        geometry = np.zeros((count, 6))
        colors = np.zeros((count, 3))
        for s, kind in enumerate(types):
            size_lo, size_hi = self.size_range[kind - 1]
            radius = rng.uniform(size_lo, size_hi) * side / 2
            # centre: inside the image, and not too deep inside an earlier shape
            ys = rng.uniform(min(radius, h / 2), max(h - radius, h / 2), _PLACEMENT_TRIES)
            xs = rng.uniform(min(radius, w / 2), max(w - radius, w / 2), _PLACEMENT_TRIES)
            if s > 0:
                gap = np.hypot(ys[:, None] - geometry[:s, 0], xs[:, None] - geometry[:s, 1])
                ratio = (gap / (_SEPARATION * (radius + geometry[:s, 2]))).min(axis=1)
                best = int(np.argmax(ratio >= 1)) if (ratio >= 1).any() else int(np.argmax(ratio))
            else:
                best = 0
            extra = {
                _RECTANGLE: rng.uniform(0.45, 1.0),   # aspect ratio b / a
                _TRIANGLE: rng.uniform(0.8, 1.2),     # stretch of one axis
                _ELLIPSE: rng.uniform(0.45, 0.65),    # minor / major axis
                _RING: rng.uniform(0.45, 0.6),        # inner / outer radius
                _CROSS: rng.uniform(0.22, 0.34),      # half-width of an arm
            }.get(int(kind), 0.0)
            rotation = rng.uniform(0, 2 * math.pi)
            geometry[s] = (ys[best], xs[best], radius, math.cos(rotation), math.sin(rotation), extra)
            # colour: any colour (independent of the type) that stands out from the background and the others
            candidates = rng.uniform(0, 1, (_COLOR_TRIES, 3))
            contrast = _distance_to_segment(candidates, c0, c1) / _MIN_CONTRAST_BACKGROUND
            if s > 0:
                others = np.linalg.norm(candidates[:, None] - colors[None, :s], axis=2).min(axis=1)
                contrast = np.minimum(contrast, others / _MIN_CONTRAST_SHAPES)
            best = int(np.argmax(contrast >= 1)) if (contrast >= 1).any() else int(np.argmax(contrast))
            colors[s] = candidates[best]
        shading = rng.uniform(-0.08, 0.08, (count, 2))
        noise = rng.random((3, h, w), dtype=np.float32)
        return _Params(background, blobs, types, geometry, colors, shading, noise)

    # ------------------------------------------------------------------ drawing
    def _render(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Draw samples ``indices``: images ``uint8 (N, 3, H, W)``, masks ``uint8 (N, H, W)``, and the
        drawing slot (1-based) of the shape on top of each pixel, ``uint8 (N, H, W)``."""
        indices = list(indices)
        h, w = self.image_size
        images = np.empty((len(indices), 3, h, w), dtype=np.uint8)
        masks = np.empty((len(indices), h, w), dtype=np.uint8)
        slots = np.empty((len(indices), h, w), dtype=np.uint8)
        for k, i in enumerate(indices):
            images[k], masks[k], slots[k] = _draw(self._params(i), h, w, self.noise)
        return torch.from_numpy(images), torch.from_numpy(masks), torch.from_numpy(slots)


def _draw(p: _Params, h: int, w: int, noise: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render one sample: image ``uint8 (3, H, W)``, mask ``uint8 (H, W)``, drawing slot ``uint8 (H, W)``.

    Vectorised over pixels; each shape is evaluated only inside the square around its circumscribed circle.
    """
    y = np.arange(h, dtype=np.float32)[:, None] + 0.5   # pixel centres, (H, 1)
    x = np.arange(w, dtype=np.float32)[None, :] + 0.5   # (1, W)

    # background: a linear gradient from c0 to c1 along a random direction, plus soft Gaussian blobs
    c0, c1 = p.background[0:3, None, None], p.background[3:6, None, None]
    cos, sin = p.background[6], p.background[7]
    t = np.clip(((x - w / 2) * cos + (y - h / 2) * sin) / max(h, w) + 0.5, 0, 1)
    image = (c0 + (c1 - c0) * t).astype(np.float32)                                # (3, H, W)
    for cy, cx, sigma, *amplitude in p.blobs:
        bump = np.exp(-0.5 * ((y - cy) / sigma) ** 2) * np.exp(-0.5 * ((x - cx) / sigma) ** 2)  # separable
        image += np.asarray(amplitude, dtype=np.float32)[:, None, None] * bump

    mask = np.zeros((h, w), dtype=np.uint8)
    slot = np.zeros((h, w), dtype=np.uint8)
    for s, (kind, (cy, cx, radius, cos, sin, extra), color, (shade_u, shade_v)) in enumerate(
            zip(p.types, p.geometry, p.colors, p.shading), start=1):
        reach = 1.25 * radius   # covers the stretched triangle too
        y0, y1 = max(0, int(cy - reach)), min(h, int(math.ceil(cy + reach)) + 1)
        x0, x1 = max(0, int(cx - reach)), min(w, int(math.ceil(cx + reach)) + 1)
        if y0 >= y1 or x0 >= x1:
            continue
        dy, dx = y[y0:y1] - cy, x[:, x0:x1] - cx
        u = (dx * cos + dy * sin) / radius      # the shape's own frame: circumscribed circle of radius 1
        v = (dy * cos - dx * sin) / radius
        inside = _inside(int(kind), u, v, extra)
        paint = color[:, None, None] + (shade_u * u + shade_v * v)   # later shapes occlude earlier ones
        window = image[:, y0:y1, x0:x1]
        window[...] = np.where(inside, paint, window)
        mask[y0:y1, x0:x1][inside] = kind
        slot[y0:y1, x0:x1][inside] = s

    if noise > 0:   # uniform pixel noise with standard deviation `noise`
        image += (p.noise - 0.5) * np.float32(noise * math.sqrt(12))
    image = np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8)
    return image, mask, slot


def _inside(kind: int, u: np.ndarray, v: np.ndarray, extra: float) -> np.ndarray:
    """Which points ``(u, v)`` of a shape's own frame (circumscribed circle of radius 1) lie inside it."""
    if kind == _CIRCLE:
        return u * u + v * v <= 1
    if kind == _ELLIPSE:
        return u * u + (v / extra) ** 2 <= 1
    if kind == _RING:
        r2 = u * u + v * v
        return (r2 <= 1) & (r2 >= extra * extra)
    if kind == _RECTANGLE:
        # corners on the unit circle: half-sides a, b with a^2 + b^2 = 1 and b / a = aspect
        half_a = 1 / math.sqrt(1 + extra * extra)
        return (np.abs(u) <= half_a) & (np.abs(v) <= extra * half_a)
    if kind == _CROSS:
        arm = math.sqrt(1 - extra * extra)
        au, av = np.abs(u), np.abs(v)
        return ((au <= extra) & (av <= arm)) | ((av <= extra) & (au <= arm))
    if kind == _TRIANGLE:
        # equilateral triangle inscribed in the unit circle (inradius 1/2), one axis stretched by `extra`
        v = v / extra
        half = math.sqrt(3) / 2
        return (-v <= 0.5) & (0.5 * v + half * u <= 0.5) & (0.5 * v - half * u <= 0.5)
    if kind == _STAR:
        # regular pentagram: the 5 lines through pairs of tips; a point is inside if beyond at most one
        beyond = np.zeros(u.shape, dtype=np.int8)
        for k in range(5):
            a = math.pi / 2 + 2 * math.pi * k / 5
            beyond += u * math.cos(a) + v * math.sin(a) > math.cos(2 * math.pi / 5)
        return beyond <= 1
    raise ValueError(f"unknown shape type {kind}")
