"""Fully convolutional networks: FCN-32s, FCN-16s and FCN-8s (Long, Shelhamer & Darrell, 2015).

Taught in ``01_fcn.ipynb``: no fully connected layer, so any input size works; class scores are read off
the encoder's coarse features by 1x1 convs and upsampled by transposed convolutions initialised to bilinear
interpolation (:func:`~segtutor.models.layers.bilinear_kernel`), which training may then change.

Skip fusion, with the roles the right way round (the source document swaps them)::

    S_16 = Upsample_2x(S_32) + Score(F_16)       S_8 = Upsample_2x(S_16) + Score(F_8)

the coarse, high-level (semantic) scores are upsampled; the finer, low-level features are scored by a 1x1
conv at their own resolution and added. Fusion is by addition of class scores, not by concatenation.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .backbone import build_backbone
from .base import SegmentationModel
from .layers import BilinearUpsample, bilinear_kernel, check_images, crop_to

__all__ = ["FCN", "FCN_VARIANTS", "bilinear_kernel"]

#: variant -> the backbone stages whose scores are fused, coarsest first.
FCN_VARIANTS = {"32s": ("layer4",), "16s": ("layer4", "layer3"), "8s": ("layer4", "layer3", "layer2")}


class FCN(SegmentationModel):
    """FCN on the small ResNet: ``(N, C, H, W) -> (N, num_classes, H, W)`` logits.

    Args:
        num_classes: ``K``, the number of classes.
        in_channels: ``C``.
        variant: ``"32s"`` (scores from stride 32 only), ``"16s"`` (+ stride 16) or ``"8s"`` (+ stride 8).
        width: base channel count; the backbone has ``(width, 2 width, 4 width, 8 width)`` channels.
        depths: basic blocks per backbone stage.

    ``config`` records every argument but ``variant``, which is in its name (``"fcn8s"``).
    """

    name_arguments = ("variant",)

    @classmethod
    def resolve(cls, arguments: dict) -> dict:
        if arguments["variant"] not in FCN_VARIANTS:
            raise ValueError(f"unknown FCN variant {arguments['variant']!r}; expected one of {', '.join(FCN_VARIANTS)}")
        return arguments

    @classmethod
    def config_name(cls, arguments: dict) -> str:
        return f"fcn{arguments['variant']}"

    def __init__(self, num_classes: int, in_channels: int = 3, variant: str = "8s", width: int = 16,
                 depths: Sequence[int] = (2, 2, 2, 2)) -> None:
        super().__init__()
        self.variant = variant
        self.backbone = build_backbone(in_channels, width, depths, output_stride=32)
        self.stages = FCN_VARIANTS[variant]
        # One 1x1 score layer per fused stage; a learnable 2x upsampling between consecutive ones.
        self.score = nn.ModuleDict({s: nn.Conv2d(self.backbone.channels[s], num_classes, 1) for s in self.stages})
        self.up2 = nn.ModuleList(BilinearUpsample(num_classes, 2) for _ in self.stages[1:])
        self.final_stride = self.backbone.strides[self.stages[-1]]
        self.upsample = BilinearUpsample(num_classes, self.final_stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, self.in_channels)
        features = self.backbone(x)
        coarsest, *finer = self.stages
        scores = self.score[coarsest](features[coarsest])
        for stage, up in zip(finer, self.up2):
            fine = self.score[stage](features[stage])
            scores = crop_to(up(scores), fine.shape[-2:]) + fine
        return crop_to(self.upsample(scores), x.shape[-2:])
