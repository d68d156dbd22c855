"""A small ResNet, trained from scratch, that FCN and DeepLab build on.

Taught in ``01_fcn.ipynb`` (the encoder: features at strides 4, 8, 16, 32) and ``03_deeplab.ipynb``
(trading stride for dilation to reach output stride 16 or 8).

Layout (``widths = (w1, w2, w3, w4)``, ``depths`` basic blocks per stage; strides at ``output_stride=32``)::

    stem    3x3 conv (full resolution) -> 2x2 max-pool -> 3x3 conv      stride 2   w1 channels
    layer1  2x2 max-pool -> depths[0] basic blocks                      stride 4   w1
    layer2  2x2 max-pool -> depths[1] basic blocks                      stride 8   w2
    layer3  2x2 max-pool -> depths[2] basic blocks                      stride 16  w3
    layer4  2x2 max-pool -> depths[3] basic blocks                      stride 32  w4

Two choices differ from ImageNet ResNets, for the course's 64-px images: the stem is two 3x3 convs, not a
7x7 stride-2 conv plus max-pool (which leaves a 16x16 map of a 64-px image after two layers), and every
downsampling is a 2x2 max-pool instead of a stride-2 3x3 conv, which keeps feature ``j`` at stride ``s`` on
the input cell ``[s*j, s*j + s)`` (see :mod:`segtutor.models.layers`).

``output_stride=16`` drops layer4's pool and runs its convs at dilation 2; ``output_stride=8`` also drops
layer3's pool, with dilation 2 there and 4 in layer4 (DeepLab's atrous backbone, without multi-grid).
The receptive field keeps growing as if the pools were there, the feature maps stay 2x or 4x larger.

:func:`build_backbone` is the one place FCN and DeepLab get theirs: ``(1, 2, 4, 8) * width`` channels.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
from torch import nn

from .layers import conv_bn_relu

__all__ = ["BasicBlock", "ResNet", "build_backbone"]

STAGES = ("layer1", "layer2", "layer3", "layer4")


class BasicBlock(nn.Module):
    """ResNet's basic block, ``(N, C_in, H, W) -> (N, C_out, H, W)``: ``relu(bn(conv3x3(relu(bn(conv3x3(x))))) + shortcut(x))``.

    The shortcut is the identity, or a 1x1 conv + BN when the channel count changes. Both 3x3 convs use
    ``dilation`` (padding = dilation keeps the size).
    """

    def __init__(self, in_channels: int, out_channels: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        if in_channels == out_channels:
            self.shortcut: nn.Module = nn.Identity()
        else:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))

    def receptive_field_path(self) -> list[nn.Module]:
        """The layers that widen the receptive field, in order (the 1x1 shortcut does not)."""
        return [self.conv1, self.conv2]


class ResNet(nn.Module):
    """Small ResNet: ``(N, C, H, W)`` -> ordered dict of feature maps ``stem, layer1 .. layer4``.

    ``features["layerK"]`` has shape ``(N, widths[K-1], ceil(H / s), ceil(W / s))`` with ``s = self.strides["layerK"]``;
    ``self.channels`` holds the channel counts by the same names.

    Args:
        in_channels: input channels ``C``.
        widths: channels of layer1 .. layer4 (the stem has ``widths[0]``).
        depths: basic blocks in layer1 .. layer4.
        output_stride: 32, 16 or 8; below 32 the last stages trade their pool for dilation.
    """

    def __init__(self, in_channels: int = 3, widths: Sequence[int] = (16, 32, 64, 128),
                 depths: Sequence[int] = (2, 2, 2, 2), output_stride: int = 32) -> None:
        super().__init__()
        widths, depths = tuple(int(w) for w in widths), tuple(int(d) for d in depths)
        if len(widths) != 4 or len(depths) != 4 or min(widths) < 1 or min(depths) < 1:
            raise ValueError("widths and depths must be 4 positive integers (one per stage), "
                             f"got widths={widths}, depths={depths}")
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 32, 16 or 8, got {output_stride}")
        # Stages past the output stride keep their resolution and dilate instead: (pooled?, dilation) per stage.
        dilated = {32: 0, 16: 1, 8: 2}[output_stride]
        plan = [(True, 1)] * (4 - dilated) + [(False, 2 ** (i + 1)) for i in range(dilated)]

        self.in_channels = in_channels
        self.stem = nn.Sequential(
            conv_bn_relu(in_channels, widths[0]),
            nn.MaxPool2d(2, ceil_mode=True),
            conv_bn_relu(widths[0], widths[0]),
        )
        stride, previous = 2, widths[0]
        self.strides, self.channels = {"stem": 2}, {"stem": widths[0]}
        for name, width, depth, (pooled, dilation) in zip(STAGES, widths, depths, plan):
            blocks: list[nn.Module] = [nn.MaxPool2d(2, ceil_mode=True)] if pooled else []
            blocks += [BasicBlock(previous if i == 0 else width, width, dilation) for i in range(depth)]
            self.add_module(name, nn.Sequential(*blocks))
            stride *= 2 if pooled else 1
            self.strides[name], self.channels[name], previous = stride, width, width
        self.output_stride = output_stride

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        features: OrderedDict[str, torch.Tensor] = OrderedDict()
        features["stem"] = x = self.stem(x)
        for name in STAGES:
            features[name] = x = getattr(self, name)(x)
        return features

    def receptive_field_path(self) -> list[nn.Module]:
        """The chain from the input to layer4, for :func:`segtutor.receptive_field.layers_from_module`."""
        return [self.stem, *(getattr(self, name) for name in STAGES)]


def build_backbone(in_channels: int, width: int, depths: Sequence[int], output_stride: int) -> ResNet:
    """The backbone of FCN and DeepLab: :class:`ResNet` with ``(width, 2 width, 4 width, 8 width)`` channels."""
    return ResNet(in_channels, [width * m for m in (1, 2, 4, 8)], depths, output_stride=output_stride)
