"""Joint augmentation: every transform takes ``(image, mask)`` and returns ``(image, mask)``.

Taught in ``notebooks/07_real_data.ipynb``. A segmentation label is a picture of the image, so every
geometric change must move both in exactly the same way; only photometric changes (``Normalize``) touch
the image alone. The rules that keep a mask valid:

* the image is resampled bilinearly, the mask with **nearest** neighbours, never interpolated: blending
  label 3 with label 15 must not invent label 9, nor blend the void label 255 into a class;
* the nearest neighbour is taken with ``"nearest-exact"``, which samples the same point the bilinear
  resize samples (pixel centres). PyTorch's plain ``"nearest"`` uses ``floor(i * in / out)`` and so
  shifts the mask by up to half an input pixel against the image;
* padding fills the image with 0 and the mask with the ignore label, so padded pixels are never
  scored as background.

Image: ``float (3, H, W)`` (any number of channels works); mask: ``int64 (H, W)``. Randomness comes from
torch's RNG: the global one (seeded by :func:`segtutor.runtime.seed_everything`, and per worker by the
``DataLoader``) or a ``torch.Generator`` passed as ``generator=`` for a reproducible stream of its own.
(A generator object is copied into every ``DataLoader`` worker, so workers would then repeat each
other's draws: use the global RNG with ``num_workers > 0``.)
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from .._validation import check_int

__all__ = [
    "Compose",
    "RandomScale",
    "RandomCrop",
    "RandomHorizontalFlip",
    "Normalize",
    "Resize",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "check_sample",
    "resize_pair",
]

Pair = tuple[torch.Tensor, torch.Tensor]

#: The usual normalisation statistics of ImageNet-pretrained backbones (RGB, images in ``[0, 1]``).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def check_sample(image: torch.Tensor, mask: torch.Tensor) -> None:
    """Raise unless ``image`` is a float ``(C, H, W)`` tensor and ``mask`` an integer ``(H, W)`` tensor of the same H, W."""
    if not isinstance(image, torch.Tensor) or not isinstance(mask, torch.Tensor):
        raise TypeError("joint transforms take (image, mask) as torch tensors: image float (C, H, W), mask int64 (H, W); "
                        f"got {type(image).__name__} and {type(mask).__name__}")
    if not image.is_floating_point() or image.ndim != 3:
        raise ValueError(f"image must be a float tensor of shape (C, H, W), got dtype {image.dtype} and shape {tuple(image.shape)}")
    if mask.is_floating_point() or mask.is_complex() or mask.dtype == torch.bool or mask.ndim != 2:
        raise ValueError(f"mask must be an integer label tensor of shape (H, W), got dtype {mask.dtype} and shape {tuple(mask.shape)}")
    if tuple(image.shape[1:]) != tuple(mask.shape):
        raise ValueError(f"image of shape {tuple(image.shape)} and mask of shape {tuple(mask.shape)} differ in (H, W)")


def _pair_size(size: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(size, int) and not isinstance(size, bool):
        h = w = size
    elif isinstance(size, Sequence) and len(size) == 2 and all(isinstance(s, int) and not isinstance(s, bool) for s in size):
        h, w = size
    else:
        raise TypeError(f"{name} must be an int or a pair of ints (H, W), got {size!r}")
    if h < 1 or w < 1:
        raise ValueError(f"{name} must be positive, got {size!r}")
    return int(h), int(w)


def resize_pair(image: torch.Tensor, mask: torch.Tensor, size: tuple[int, int]) -> Pair:
    """Resize ``image (C, H, W)`` bilinearly and ``mask (H, W)`` by nearest neighbour to ``size = (h, w)``.

    Both sample the same points (pixel centres, ``align_corners=False`` / ``"nearest-exact"``), so they
    stay aligned; the mask only ever holds labels it held before.
    """
    check_sample(image, mask)
    if tuple(size) == tuple(mask.shape):
        return image, mask
    image = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]
    # Labels are small integers, exact in float32 (< 2**24); nearest never blends them.
    mask = F.interpolate(mask[None, None].float(), size=size, mode="nearest-exact")[0, 0].to(mask.dtype)
    return image, mask


class Compose:
    """Apply joint transforms in order: ``Compose([RandomScale(0.5, 2.0), RandomCrop(256), RandomHorizontalFlip()])``."""

    def __init__(self, transforms: Sequence[Callable[[torch.Tensor, torch.Tensor], Pair]]) -> None:
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose takes callables t(image, mask) -> (image, mask), got {t!r}")

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> Pair:
        for t in self.transforms:
            out = t(image, mask)
            if not (isinstance(out, tuple) and len(out) == 2):
                raise TypeError(f"{t!r} must return (image, mask), got {type(out).__name__}")
            image, mask = out
        return image, mask

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"


class RandomScale:
    """Rescale image and mask by one factor ``s ~ U(min_scale, max_scale)``: ``(H, W) -> (round(sH), round(sW))``.

    The image is resampled bilinearly, the mask by nearest neighbour (see the module docstring).
    """

    def __init__(self, min_scale: float, max_scale: float, *, generator: torch.Generator | None = None) -> None:
        if not (0 < min_scale <= max_scale):
            raise ValueError(f"RandomScale needs 0 < min_scale <= max_scale, got min_scale={min_scale}, max_scale={max_scale}")
        self.min_scale, self.max_scale, self.generator = float(min_scale), float(max_scale), generator

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> Pair:
        check_sample(image, mask)
        u = float(torch.rand((), generator=self.generator))
        s = self.min_scale + (self.max_scale - self.min_scale) * u
        h, w = mask.shape
        return resize_pair(image, mask, (max(1, round(h * s)), max(1, round(w * s))))

    def __repr__(self) -> str:
        return f"RandomScale({self.min_scale}, {self.max_scale})"


class RandomCrop:
    """Cut a random ``size = (h, w)`` window (an int means a square).

    An image smaller than the window is first padded at the bottom and right: the image with 0, the
    mask with ``ignore_index`` (255, the void label), so the padding is never trained or scored.
    """

    def __init__(self, size: int | Sequence[int], ignore_index: int = 255, *,
                 generator: torch.Generator | None = None) -> None:
        self.size = _pair_size(size, "RandomCrop size")
        self.ignore_index = check_int(ignore_index, "RandomCrop ignore_index", minimum=None)
        self.generator = generator

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> Pair:
        check_sample(image, mask)
        ch, cw = self.size
        h, w = mask.shape
        pad_h, pad_w = max(0, ch - h), max(0, cw - w)
        if pad_h or pad_w:
            info = torch.iinfo(mask.dtype)
            if not info.min <= self.ignore_index <= info.max:
                raise ValueError(f"RandomCrop pads the mask with ignore_index={self.ignore_index}, which a {mask.dtype} "
                                 f"mask cannot hold (range {info.min}..{info.max}); use masks of dtype int64 "
                                 "(mask.long()) or an ignore_index in that range (255 for uint8)")
            image = F.pad(image, (0, pad_w, 0, pad_h), value=0.0)
            mask = F.pad(mask, (0, pad_w, 0, pad_h), value=self.ignore_index)
            h, w = mask.shape
        top = int(torch.randint(0, h - ch + 1, (), generator=self.generator))
        left = int(torch.randint(0, w - cw + 1, (), generator=self.generator))
        return image[:, top:top + ch, left:left + cw], mask[top:top + ch, left:left + cw]

    def __repr__(self) -> str:
        return f"RandomCrop({self.size}, ignore_index={self.ignore_index})"


class RandomHorizontalFlip:
    """Mirror image and mask left-right with probability ``p``."""

    def __init__(self, p: float = 0.5, *, generator: torch.Generator | None = None) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip p must be a probability in [0, 1], got {p}")
        self.p, self.generator = float(p), generator

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> Pair:
        check_sample(image, mask)
        if float(torch.rand((), generator=self.generator)) < self.p:
            return image.flip(-1), mask.flip(-1)
        return image, mask

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Normalize:
    """``image[c] = (image[c] - mean[c]) / std[c]``; the mask passes through untouched."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        self.mean = torch.as_tensor(mean, dtype=torch.float32).flatten()
        self.std = torch.as_tensor(std, dtype=torch.float32).flatten()
        if self.mean.shape != self.std.shape:
            raise ValueError(f"Normalize mean and std need one value per channel each, got {len(self.mean)} and {len(self.std)}")
        if not bool(torch.isfinite(self.mean).all() & torch.isfinite(self.std).all()) or bool((self.std <= 0).any()):
            raise ValueError(f"Normalize std must be finite and positive (and mean finite), got mean={mean}, std={std}")

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> Pair:
        check_sample(image, mask)
        if image.shape[0] != self.mean.numel():
            raise ValueError(f"Normalize has statistics for {self.mean.numel()} channels, image has {image.shape[0]} "
                             f"(shape {tuple(image.shape)})")
        mean = self.mean.to(image.device, image.dtype)[:, None, None]
        std = self.std.to(image.device, image.dtype)[:, None, None]
        return (image - mean) / std, mask

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


class Resize:
    """Resize to a fixed ``size = (h, w)``; an int means a square ``(size, size)``.

    Unlike torchvision's ``Resize(int)`` (shorter side), both sides are fixed, so a batch of resized
    samples stacks. Image bilinear, mask nearest (see the module docstring).
    """

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _pair_size(size, "Resize size")

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> Pair:
        return resize_pair(image, mask, self.size)

    def __repr__(self) -> str:
        return f"Resize({self.size})"
