"""U-Net (Ronneberger, Fischer & Brox, 2015), done right.

Taught in ``02_unet.ipynb``: a contracting path (conv block, then 2x2 max-pool, channels doubling per
level), an expanding path (upsample 2x, concatenate the encoder's map of the same level, conv block) and a
1x1 conv to class scores. ``skip=False`` builds the same network without the concatenations, for the
notebook's with/without-skips experiment.

The source document's U-Net fails in three ways this one does not: its last upsampling doubles the
resolution past the input, its last decoder block is declared for 96 input channels but receives 35, and it
creates ``nn.MaxPool2d`` inside ``forward`` on every call (here the pools are modules made once in
``__init__``). Odd sizes work: pools use ``ceil_mode=True`` and each upsampled map is cropped to its skip's
size (the original crops the skip instead, because its convs are unpadded).
"""
from __future__ import annotations

import torch
from torch import nn

from .base import SegmentationModel
from .layers import check_images, conv_bn_relu, crop_to

__all__ = ["ConvBlock", "Down", "Up", "UNet", "UP_MODES"]

UP_MODES = ("transpose", "bilinear")


class ConvBlock(nn.Sequential):
    """Two (3x3 conv -> BN -> ReLU); ``(N, C_in, H, W) -> (N, C_out, H, W)``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(conv_bn_relu(in_channels, out_channels), conv_bn_relu(out_channels, out_channels))


class Down(nn.Sequential):
    """One contracting step: 2x2 max-pool, then a conv block; ``(N, C_in, H, W) -> (N, C_out, ceil(H/2), ceil(W/2))``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.MaxPool2d(2, ceil_mode=True), ConvBlock(in_channels, out_channels))


class Up(nn.Module):
    """One expanding step: upsample 2x to ``out_channels``, crop to the skip's size, concatenate the skip, conv block.

    ``x (N, C_in, h, w)``, ``skip (N, C_out, H, W)`` with ``h = ceil(H / 2)`` -> ``(N, C_out, H, W)``.
    ``mode="transpose"``: a learnable 2x2 stride-2 transposed conv; ``"bilinear"``: a 1x1 conv then bilinear
    upsampling. With ``skip=False`` only the skip's size is used and the conv block sees ``C_out`` channels.
    """

    def __init__(self, in_channels: int, out_channels: int, mode: str = "transpose", skip: bool = True) -> None:
        super().__init__()
        if mode not in UP_MODES:
            raise ValueError(f"unknown upsampling mode {mode!r}; expected one of {', '.join(UP_MODES)}")
        if mode == "transpose":
            self.up: nn.Module = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
        else:  # a 1x1 conv commutes with bilinear upsampling, so it runs first, at the low resolution
            self.up = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1),
                                    nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
        self.skip = skip
        self.conv = ConvBlock(2 * out_channels if skip else out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = crop_to(self.up(x), skip.shape[-2:])
        if self.skip:
            x = torch.cat([skip, x], dim=1)
        return self.conv(x)


class UNet(SegmentationModel):
    """U-Net: ``(N, C, H, W) -> (N, num_classes, H, W)`` logits.

    Args:
        num_classes: ``K``.
        in_channels: ``C``.
        width: base width, the channels of the first level; level ``i`` has ``width * 2**i``.
        depth: number of 2x downsamplings, 1..5. The paper uses 4; the default 3 leaves an 8x8 bottleneck on
            the course's 64-px images, learns as well there and costs a third less (a 2-core CPU trains it
            for 8 epochs of 800 images in about a minute).
        mode: ``"transpose"`` or ``"bilinear"`` upsampling.
        skip: concatenate the encoder's maps into the decoder (``False``: same network without skips).
    """

    model_name = "unet"

    @classmethod
    def resolve(cls, arguments: dict) -> dict:
        if not 1 <= arguments["depth"] <= 5:
            raise ValueError("depth must be between 1 and 5 (inputs may be as small as 32 px = 2**5), "
                             f"got {arguments['depth']}")
        if arguments["mode"] not in UP_MODES:
            raise ValueError(f"unknown upsampling mode {arguments['mode']!r}; expected one of {', '.join(UP_MODES)}")
        return arguments

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 16, depth: int = 3,
                 mode: str = "transpose", skip: bool = True) -> None:
        super().__init__()
        channels = [width * 2**i for i in range(depth + 1)]
        self.inc = ConvBlock(in_channels, channels[0])
        self.down = nn.ModuleList(Down(channels[i], channels[i + 1]) for i in range(depth))
        self.up = nn.ModuleList(Up(channels[i + 1], channels[i], mode, skip) for i in reversed(range(depth)))
        self.head = nn.Conv2d(channels[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, self.in_channels)
        x = self.inc(x)
        skips = []
        for down in self.down:          # contracting path
            skips.append(x)
            x = down(x)
        for up in self.up:              # expanding path, deepest level first
            x = up(x, skips.pop())
        return self.head(x)
