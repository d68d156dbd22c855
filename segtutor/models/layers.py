"""Small parts shared by every model of the course: conv-BN-ReLU, the input check, and exact upsampling.

Met in ``01_fcn.ipynb`` (the bilinear transposed convolution), ``02_unet.ipynb`` (the conv block, cropping
an upsampled map to its skip) and ``03_deeplab.ipynb`` (atrous convolutions). The argument checks and the
``config`` of every model live in :mod:`segtutor.models.base`.

One convention holds in every model: a feature at stride ``s``, index ``j``, describes the input cell
``[s*j, s*j + s)``. Every downsampling is a 2x2 max-pool (``ceil_mode=True``, so an odd border row still gets
a cell), and every upsampling is by an integer factor with half-pixel centres (``align_corners=False``),
followed by a crop of the overhang. Under that convention upsampling a map of stride ``s`` by ``s`` lands
each feature exactly on the pixels it describes, for any input size, multiple of 32 or not.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MIN_SIZE", "check_images", "conv_bn_relu", "crop_to", "upsample", "bilinear_kernel",
           "BilinearUpsample"]

#: Smallest input side every model accepts: at stride 32 it is one feature cell.
MIN_SIZE = 32


def check_images(x: torch.Tensor, in_channels: int, *, min_size: int = MIN_SIZE, name: str = "images") -> None:
    """Raise unless ``x`` is a floating batch of shape ``(N, in_channels, H, W)`` with ``H, W >= min_size``."""
    expected = f"(N, {in_channels}, H, W) with H, W >= {min_size}"
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {expected}, got {type(x).__name__}")
    if x.ndim != 4:
        hint = "; for a single image of shape (C, H, W) use x.unsqueeze(0)" if x.ndim == 3 else ""
        raise ValueError(f"{name} must have shape {expected}, got {x.ndim}-D shape {tuple(x.shape)}{hint}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be floating point (e.g. float32 in [0, 1]), got dtype {x.dtype}; "
                        "for uint8 images use x.float() / 255")
    if x.shape[1] != in_channels:
        hint = " (channels last? use x.permute(0, 3, 1, 2))" if x.shape[-1] == in_channels else ""
        raise ValueError(f"{name} has {x.shape[1]} channels (dim 1) but the model was built with "
                         f"in_channels={in_channels}: expected shape {expected}, got {tuple(x.shape)}{hint}")
    if x.shape[2] < min_size or x.shape[3] < min_size:
        raise ValueError(f"{name} of spatial size {x.shape[2]}x{x.shape[3]} is too small: expected shape {expected}, "
                         f"got {tuple(x.shape)}")


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 3, *, dilation: int = 1) -> nn.Sequential:
    """Conv (``same`` padding, no bias: BN has one) -> BatchNorm -> ReLU; ``(N, C_in, H, W) -> (N, C_out, H, W)``."""
    padding = dilation * (kernel_size - 1) // 2
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def crop_to(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Crop the bottom/right overhang of ``x`` ``(N, C, H', W')`` to ``(N, C, H, W)``, ``size = (H, W)``.

    Upsampling a ceil-pooled map by its factor gives ``H' >= H``; the extra rows and columns describe cells
    past the border of the input, so dropping them keeps every feature on the pixels it describes.
    """
    h, w = int(size[0]), int(size[1])
    if x.shape[-2] < h or x.shape[-1] < w:
        raise ValueError(f"cannot crop a map of size {x.shape[-2]}x{x.shape[-1]} to the larger size {h}x{w}")
    return x[..., :h, :w]


def upsample(x: torch.Tensor, factor: int, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Bilinear upsampling of ``(N, C, h, w)`` by an integer ``factor`` (half-pixel centres), cropped to ``size``.

    Unlike ``F.interpolate(x, size=size)``, which stretches ``h`` cells over ``H`` pixels when ``H`` is not a
    multiple of ``factor``, this keeps the scale exactly ``factor`` and crops instead.
    """
    if factor > 1:
        x = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    return crop_to(x, size)


def bilinear_kernel(in_channels: int, out_channels: int, kernel_size: int) -> torch.Tensor:
    """Weight ``(in_channels, out_channels, k, k)`` that makes ``nn.ConvTranspose2d`` a bilinear upsampler.

    Each channel is mapped to itself by the separable tent ``t(i) = 1 - |i - c| / f`` with
    ``f = ceil(k / 2)`` and centre ``c = f - 1`` (odd ``k``) or ``f - 0.5`` (even ``k``); other channel pairs
    get zero. With ``kernel_size = 2 * factor``, ``stride = factor`` and ``padding = factor // 2`` (even
    ``factor``), the transposed convolution equals ``F.interpolate(scale_factor=factor, mode="bilinear",
    align_corners=False)`` away from the border, where it sees zeros instead of repeating the edge.
    """
    if in_channels != out_channels:
        raise ValueError(f"bilinear upsampling maps each channel to itself: in_channels ({in_channels}) must equal "
                         f"out_channels ({out_channels})")
    if kernel_size < 1:
        raise ValueError(f"kernel_size must be >= 1, got {kernel_size}")
    factor = (kernel_size + 1) // 2
    centre = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    tent = 1 - (torch.arange(kernel_size, dtype=torch.float64) - centre).abs() / factor
    weight = torch.zeros(in_channels, out_channels, kernel_size, kernel_size, dtype=torch.float64)
    channels = torch.arange(in_channels)
    weight[channels, channels] = torch.outer(tent, tent)
    return weight.float()


class BilinearUpsample(nn.ConvTranspose2d):
    """Learnable upsampling by an even ``factor``: a transposed conv initialised to bilinear interpolation.

    ``(N, C, h, w) -> (N, C, factor * h, factor * w)``; FCN's upsampling layers (Long et al., 2015).
    """

    def __init__(self, channels: int, factor: int) -> None:
        if factor < 2 or factor % 2:
            raise ValueError(f"factor must be an even integer >= 2, got {factor}")
        super().__init__(channels, channels, kernel_size=2 * factor, stride=factor, padding=factor // 2, bias=False)
        self.factor = factor
        with torch.no_grad():
            self.weight.copy_(bilinear_kernel(channels, channels, 2 * factor))
