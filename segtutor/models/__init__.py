"""The course's segmentation models, built from scratch in plain PyTorch (no pretrained weights).

``build_model(name, num_classes)`` is how notebooks get a model; ``06_end_to_end.ipynb`` compares them,
and each family has its own notebook: FCN in ``01_fcn.ipynb``, U-Net in ``02_unet.ipynb``, DeepLab in
``03_deeplab.ipynb``.

Every model maps images ``(N, C, H, W)`` to logits ``(N, num_classes, H, W)`` for any ``H, W >= 32``, and
records how it was built in ``model.config`` so that ``build_model(**model.config)`` rebuilds the same
architecture (checkpoints use it to refuse weights of another one): every model is a
:class:`~segtutor.models.base.SegmentationModel`, which records ``config`` from the constructor's own
arguments, and FCN and DeepLab share one backbone builder (:func:`~segtutor.models.backbone.build_backbone`). The default sizes (``width=16``) are
for teaching on a laptop CPU with 64-px images; ``build_model(..., width=budget().width)`` makes them
narrower for the test suite (8) or wider on a GPU (32): every channel count scales linearly with ``width``.
"""
from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from .backbone import BasicBlock, ResNet, build_backbone
from .base import SegmentationModel
from .deeplab import ASPP, ASPPv2, DeepLabV1, DeepLabV2, DeepLabV3Plus, PAPER_RATES, atrous_rates
from .fcn import FCN
from .layers import BilinearUpsample, bilinear_kernel
from .unet import UNet

__all__ = ["MODEL_NAMES", "build_model", "SegmentationModel", "build_backbone", "FCN", "UNet", "DeepLabV1", "DeepLabV2", "DeepLabV3Plus", "ResNet",
           "BasicBlock", "ASPP", "ASPPv2", "BilinearUpsample", "bilinear_kernel", "atrous_rates", "PAPER_RATES"]

# name -> (class, arguments the name fixes)
_MODELS: dict[str, tuple[type[SegmentationModel], dict[str, Any]]] = {
    "fcn32s": (FCN, {"variant": "32s"}),
    "fcn16s": (FCN, {"variant": "16s"}),
    "fcn8s": (FCN, {"variant": "8s"}),
    "unet": (UNet, {}),
    "deeplabv1": (DeepLabV1, {}),
    "deeplabv2": (DeepLabV2, {}),
    "deeplabv3plus": (DeepLabV3Plus, {}),
}

#: The names :func:`build_model` accepts.
MODEL_NAMES = tuple(_MODELS)


def build_model(name: str, num_classes: int, in_channels: int = 3, **kwargs: Any) -> nn.Module:
    """Build the model called ``name`` (one of :data:`MODEL_NAMES`): ``(N, in_channels, H, W) -> (N, num_classes, H, W)``.

    ``kwargs`` go to the model's class, e.g. ``width`` (all models; default 16), ``depth``/``mode``/``skip``
    (U-Net), ``output_stride``/``rates`` (DeepLab v3+). The result's ``config`` attribute holds every
    constructor argument, so ``build_model(**model.config)`` builds the same architecture again.
    """
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in _MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODEL_NAMES)}")
    cls, fixed = _MODELS[key]
    accepted = [p for p in inspect.signature(cls).parameters if p not in ("num_classes", "in_channels", *fixed)]
    for arg in kwargs:
        if arg in fixed:
            raise TypeError(f"build_model({key!r}) fixes {arg}={fixed[arg]!r}; choose another name from "
                            f"{', '.join(MODEL_NAMES)} instead of passing {arg}")
        if arg not in accepted:
            raise TypeError(f"build_model({key!r}) got an unexpected keyword argument {arg!r}; "
                            f"{cls.__name__} accepts: {', '.join(accepted)}")
    return cls(num_classes, in_channels, **fixed, **kwargs)
