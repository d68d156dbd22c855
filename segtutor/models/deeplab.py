"""The DeepLab family on the small ResNet: v1 (atrous conv, large field of view), v2 (ASPP) and v3+.

Taught in ``03_deeplab.ipynb``. Atrous (dilated) convolution ``y[i] = sum_k x[i + r k] w[k]`` widens a
3x3 kernel to ``2r + 1`` pixels with the same 9 weights; the backbone trades its last pools for dilation
(output stride 8 or 16), and the heads look at several rates at once.

- **v1** (Chen et al., 2015): backbone at output stride 8, "LargeFOV" head: a 3x3 conv at a large rate, then
  a 1x1 conv to class scores, bilinearly upsampled 8x.
- **v2** (Chen et al., 2017): ASPP of four branches at rates 6, 12, 18, 24, each ending in its own class-score
  layer; the four ``K``-channel score maps are **summed**. The source document says they are concatenated:
  that is v3's ASPP, not v2's (v2's paper and released model fuse the branches by an element-wise sum, so
  every rate votes for every class and no extra layer has to mix them).
- **v3** (Chen et al., 2017, "Rethinking Atrous Convolution"): ASPP of a 1x1 conv, three 3x3 atrous convs and
  image-level pooling, with BN, concatenated and projected by a 1x1 conv; class scores upsampled from the output
  stride (``DeepLabV3Plus(..., decoder=False)``).
- **v3+** (Chen et al., 2018, "Encoder-Decoder with Atrous Separable Convolution"): v3's ASPP and a decoder that
  upsamples it to stride 4, concatenates the stride-4 backbone features (reduced by a 1x1 conv), refines with
  two 3x3 convs and upsamples 4x. (The paper's depthwise-separable convs and Xception backbone are not
  reproduced: the small ResNet keeps ordinary convs.)

Rates and image size. The paper rates are for 513-px crops: at output stride 16 the feature map is 33x33,
and rates (6, 12, 18) span a fifth to a half of it; they double at output stride 8, (12, 24, 36) on a 65x65
map. The course trains on 64-px images: at output stride 16 the map is 4x4 and at 8 it is 8x8, so a rate
of 12 puts every tap but the centre on zero padding and the atrous conv degenerates to a 1x1 conv. By
default the models therefore use the paper rates divided by 6 (images about 8x smaller, rounded to keep the
1 : 2 : 3 ratios): v1 rate 2, v2 rates (1, 2, 3, 4), v3+ rates (1, 2, 3) at output stride 16 and (2, 4, 6)
at 8. ``atrous_rates(..., paper=True)`` gives the paper's; any model takes explicit ``rates``.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .backbone import build_backbone
from .base import SegmentationModel
from .layers import check_images, conv_bn_relu, upsample

__all__ = ["PAPER_RATES", "atrous_rates", "LargeFOVHead", "ASPPv2", "ImagePooling", "ASPP", "Decoder",
           "DeepLabV1", "DeepLabV2", "DeepLabV3Plus"]

#: The papers' atrous rates at output stride 8 (they halve at output stride 16).
PAPER_RATES = {"v1": (12,), "v2": (6, 12, 18, 24), "v3plus": (12, 24, 36)}
#: Course rates = paper rates / 6, for 64-px images (see the module docstring).
_COURSE_DIVISOR = 6


def atrous_rates(version: str, output_stride: int = 8, *, paper: bool = False) -> tuple[int, ...]:
    """The default atrous rates of DeepLab ``version`` (``"v1"``, ``"v2"``, ``"v3plus"``) at ``output_stride`` 8 or 16.

    ``paper=True``: the published rates (for 513-px crops); else the course's, sized for 64-px images.
    """
    if version not in PAPER_RATES:
        raise ValueError(f"unknown DeepLab version {version!r}; expected one of {', '.join(PAPER_RATES)}")
    if output_stride not in (8, 16):
        raise ValueError(f"output_stride must be 8 or 16, got {output_stride}")
    divisor = (output_stride // 8) * (1 if paper else _COURSE_DIVISOR)
    if any(r % divisor for r in PAPER_RATES[version]):
        raise ValueError(f"DeepLab {version} has no integer {'paper' if paper else 'course'} rates at output stride "
                         f"{output_stride} ({PAPER_RATES[version]} / {divisor}); pass rates explicitly")
    return tuple(r // divisor for r in PAPER_RATES[version])


def _check_rates(rates: Sequence[int], count: int | None, who: str) -> tuple[int, ...]:
    rates = tuple(int(r) for r in rates)
    if (count is not None and len(rates) != count) or not rates or min(rates) < 1:
        need = f"{count} positive integers" if count is not None else "positive integers"
        raise ValueError(f"{who} needs {need} as rates, got {rates}")
    return rates


class LargeFOVHead(nn.Sequential):
    """DeepLab v1's head: 3x3 conv at ``rate`` -> BN -> ReLU -> 1x1 conv to class scores.

    ``(N, C, h, w) -> (N, num_classes, h, w)``. (v1 had no BN; it is here so that the head trains from scratch.)
    """

    def __init__(self, in_channels: int, hidden: int, num_classes: int, rate: int) -> None:
        super().__init__(conv_bn_relu(in_channels, hidden, 3, dilation=rate), nn.Conv2d(hidden, num_classes, 1))


class ASPPv2(nn.Module):
    """DeepLab v2's ASPP: one :class:`LargeFOVHead` per rate, their class scores summed.

    ``(N, C, h, w) -> (N, num_classes, h, w)``: ``sum_r Branch_r(x)``, not a concatenation.
    """

    def __init__(self, in_channels: int, hidden: int, num_classes: int, rates: Sequence[int]) -> None:
        super().__init__()
        self.rates = _check_rates(rates, None, "ASPPv2")
        self.branches = nn.ModuleList(LargeFOVHead(in_channels, hidden, num_classes, r) for r in self.rates)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([branch(x) for branch in self.branches]).sum(dim=0)


class ImagePooling(nn.Module):
    """ASPP's image-level branch: global average pool -> 1x1 conv -> ReLU, broadcast back to ``(h, w)``.

    ``(N, C_in, h, w) -> (N, C_out, h, w)``. The 1x1 conv keeps its bias instead of the paper's BN: BN over a
    1x1 map fails in training on a batch of one image, which the last batch of an epoch can be.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv2d(in_channels, out_channels, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(self.pool(x))).expand(-1, -1, *x.shape[-2:])


class ASPP(nn.Module):
    """DeepLab v3's ASPP: ``[1x1 conv, 3x3 conv at each rate, image pooling]``, concatenated, projected by a 1x1 conv.

    ``(N, C_in, h, w) -> (N, C_out, h, w)``; every conv is followed by BN and ReLU.
    """

    def __init__(self, in_channels: int, out_channels: int, rates: Sequence[int]) -> None:
        super().__init__()
        self.rates = _check_rates(rates, 3, "ASPP")
        self.branches = nn.ModuleList([
            conv_bn_relu(in_channels, out_channels, 1),
            *(conv_bn_relu(in_channels, out_channels, 3, dilation=r) for r in self.rates),
            ImagePooling(in_channels, out_channels),
        ])
        self.project = conv_bn_relu(len(self.branches) * out_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.branches], dim=1))


class Decoder(nn.Module):
    """DeepLab v3+'s decoder: upsample the ASPP output to the low-level map, concatenate, refine, classify.

    ``x (N, C_aspp, h, w)`` at the output stride, ``low (N, C_low, H4, W4)`` at stride 4 -> ``(N, num_classes, H4, W4)``,
    with ``factor = output_stride / 4``. The low-level features are first reduced by a 1x1 conv so that
    they do not outweigh the semantic ones.
    """

    def __init__(self, in_channels: int, low_in_channels: int, low_channels: int, num_classes: int, factor: int) -> None:
        super().__init__()
        self.factor = factor
        self.reduce = conv_bn_relu(low_in_channels, low_channels, 1)
        self.refine = nn.Sequential(conv_bn_relu(in_channels + low_channels, in_channels),
                                    conv_bn_relu(in_channels, in_channels))
        self.classifier = nn.Conv2d(in_channels, num_classes, 1)

    def forward(self, x: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        low = self.reduce(low)
        x = upsample(x, self.factor, low.shape[-2:])
        return self.classifier(self.refine(torch.cat([x, low], dim=1)))


class DeepLabV1(SegmentationModel):
    """DeepLab v1: atrous ResNet at output stride 8 + LargeFOV head; ``(N, C, H, W) -> (N, num_classes, H, W)``.

    Args:
        num_classes, in_channels: ``K`` and ``C``.
        width: base channel count (backbone ``(1, 2, 4, 8) * width``, head ``4 * width``).
        depths: basic blocks per backbone stage.
        rate: the head's atrous rate; ``None``: ``atrous_rates("v1")`` = 2 (the paper's 12 is for 513-px crops).
    """

    model_name = "deeplabv1"

    @classmethod
    def resolve(cls, arguments: dict) -> dict:
        rate = arguments["rate"]
        arguments["rate"] = atrous_rates("v1")[0] if rate is None else _check_rates([rate], 1, "DeepLabV1")[0]
        return arguments

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 16, depths: Sequence[int] = (2, 2, 2, 2),
                 rate: int | None = None) -> None:
        super().__init__()
        self.backbone = build_backbone(in_channels, width, depths, output_stride=8)
        self.head = LargeFOVHead(self.backbone.channels["layer4"], 4 * width, num_classes, rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, self.in_channels)
        scores = self.head(self.backbone(x)["layer4"])
        return upsample(scores, self.backbone.output_stride, x.shape[-2:])


class DeepLabV2(SegmentationModel):
    """DeepLab v2: atrous ResNet at output stride 8 + ASPP summing four rate branches; ``(N, C, H, W) -> (N, K, H, W)``.

    Args:
        num_classes, in_channels, width, depths: as :class:`DeepLabV1`.
        rates: one branch per rate; ``None``: ``atrous_rates("v2")`` = (1, 2, 3, 4) (paper: 6, 12, 18, 24).
    """

    model_name = "deeplabv2"

    @classmethod
    def resolve(cls, arguments: dict) -> dict:
        rates = arguments["rates"]
        arguments["rates"] = atrous_rates("v2") if rates is None else _check_rates(rates, None, "DeepLabV2")
        return arguments

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 16, depths: Sequence[int] = (2, 2, 2, 2),
                 rates: Sequence[int] | None = None) -> None:
        super().__init__()
        self.backbone = build_backbone(in_channels, width, depths, output_stride=8)
        self.aspp = ASPPv2(self.backbone.channels["layer4"], 4 * width, num_classes, rates)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, self.in_channels)
        scores = self.aspp(self.backbone(x)["layer4"])
        return upsample(scores, self.backbone.output_stride, x.shape[-2:])


class DeepLabV3Plus(SegmentationModel):
    """DeepLab v3+: atrous ResNet -> ASPP -> decoder with stride-4 features; ``(N, C, H, W) -> (N, K, H, W)``.

    Args:
        num_classes, in_channels, width, depths: as :class:`DeepLabV1`; ASPP and decoder have ``4 * width``
            channels, the reduced low-level features ``width``.
        output_stride: 16 (default, as the paper trains) or 8.
        rates: the three atrous rates; ``None``: ``atrous_rates("v3plus", output_stride)`` = (1, 2, 3) at 16,
            (2, 4, 6) at 8 (paper: (6, 12, 18) and (12, 24, 36)).
        decoder: ``True`` (v3+): the decoder with the stride-4 features; ``False`` (v3): a 1x1 conv to class
            scores on the ASPP output, upsampled by the output stride (``self.decoder`` is ``None``, and
            ``self.classifier`` is that conv).
    """

    model_name = "deeplabv3plus"

    @classmethod
    def resolve(cls, arguments: dict) -> dict:
        output_stride, rates = arguments["output_stride"], arguments["rates"]
        if output_stride not in (8, 16):
            raise ValueError(f"DeepLab v3+ runs at output_stride 16 or 8, got {output_stride}")
        arguments["rates"] = (atrous_rates("v3plus", output_stride) if rates is None
                              else _check_rates(rates, 3, "DeepLabV3Plus"))
        if not isinstance(arguments["decoder"], bool):
            raise TypeError(f"decoder must be True (v3+) or False (v3), got {arguments['decoder']!r}")
        return arguments

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 16, depths: Sequence[int] = (2, 2, 2, 2),
                 output_stride: int = 16, rates: Sequence[int] | None = None, decoder: bool = True) -> None:
        super().__init__()
        self.backbone = build_backbone(in_channels, width, depths, output_stride)
        channels, strides = self.backbone.channels, self.backbone.strides
        self.aspp = ASPP(channels["layer4"], 4 * width, rates)
        if decoder:
            self.decoder: Decoder | None = Decoder(4 * width, channels["layer1"], width, num_classes,
                                                   factor=strides["layer4"] // strides["layer1"])
        else:
            self.decoder = None
            self.classifier = nn.Conv2d(4 * width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, self.in_channels)
        features = self.backbone(x)
        if self.decoder is None:                      # v3: scores at the output stride, upsampled all the way
            scores = self.classifier(self.aspp(features["layer4"]))
            return upsample(scores, self.backbone.strides["layer4"], x.shape[-2:])
        scores = self.decoder(self.aspp(features["layer4"]), features["layer1"])
        return upsample(scores, self.backbone.strides["layer1"], x.shape[-2:])
