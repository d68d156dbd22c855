"""Models record their own config (issue 11): from the constructor's arguments, the same keys and values as before.

The configs and state_dict layouts below were printed by the code before the refactor (commit 8b8c306, where
every constructor wrote its ``self.config`` by hand): a checkpoint saved then is accepted by
``load_checkpoint`` only if today's model has the same config and parameter names and shapes.
"""
import hashlib

import numpy as np
import pytest
import torch
from torch import nn

from segtutor.models import MODEL_NAMES, SegmentationModel, build_model
from segtutor.models.layers import check_images
from segtutor.train import CheckpointError, load_checkpoint, save_checkpoint

BEFORE = [
    ("fcn32s", {}, {"name": "fcn32s", "num_classes": 3, "in_channels": 3, "width": 16, "depths": (2, 2, 2, 2)}),
    ("fcn16s", {}, {"name": "fcn16s", "num_classes": 3, "in_channels": 3, "width": 16, "depths": (2, 2, 2, 2)}),
    ("fcn8s", {}, {"name": "fcn8s", "num_classes": 3, "in_channels": 3, "width": 16, "depths": (2, 2, 2, 2)}),
    ("unet", {}, {"name": "unet", "num_classes": 3, "in_channels": 3, "width": 16, "depth": 3, "mode": "transpose",
                  "skip": True}),
    ("deeplabv1", {}, {"name": "deeplabv1", "num_classes": 3, "in_channels": 3, "width": 16, "depths": (2, 2, 2, 2),
                       "rate": 2}),
    ("deeplabv2", {}, {"name": "deeplabv2", "num_classes": 3, "in_channels": 3, "width": 16, "depths": (2, 2, 2, 2),
                       "rates": (1, 2, 3, 4)}),
    ("deeplabv3plus", {}, {"name": "deeplabv3plus", "num_classes": 3, "in_channels": 3, "width": 16,
                           "depths": (2, 2, 2, 2), "output_stride": 16, "rates": (1, 2, 3), "decoder": True}),
    ("unet", {"depth": 2, "mode": "bilinear", "skip": False},
     {"name": "unet", "num_classes": 3, "in_channels": 3, "width": 16, "depth": 2, "mode": "bilinear", "skip": False}),
    ("deeplabv3plus", {"output_stride": 8},
     {"name": "deeplabv3plus", "num_classes": 3, "in_channels": 3, "width": 16, "depths": (2, 2, 2, 2),
      "output_stride": 8, "rates": (2, 4, 6), "decoder": True}),
    ("deeplabv1", {"rate": 3}, {"name": "deeplabv1", "num_classes": 3, "in_channels": 3, "width": 16,
                                "depths": (2, 2, 2, 2), "rate": 3}),
    ("deeplabv2", {"rates": [1, 2]}, {"name": "deeplabv2", "num_classes": 3, "in_channels": 3, "width": 16,
                                      "depths": (2, 2, 2, 2), "rates": (1, 2)}),
    ("fcn16s", {"width": 8, "depths": [1, 1, 1, 1]}, {"name": "fcn16s", "num_classes": 3, "in_channels": 3,
                                                      "width": 8, "depths": (1, 1, 1, 1)}),
]

# sha256 (first 16 hex digits) of "name:shape" lines of build_model(name, 3, width=4).state_dict(), before
LAYOUT_BEFORE = {"fcn32s": "e7643ca77dd3c0c4", "fcn16s": "6e22910020b32427", "fcn8s": "7d8f37e779b3849a",
                 "unet": "e36a685cb8eed8eb", "deeplabv1": "4656a5b21f6cc873", "deeplabv2": "6ff64c7f1a8c679f",
                 "deeplabv3plus": "e87818675be26ef8"}


@pytest.mark.parametrize("name, kwargs, config", BEFORE)
def test_config_has_the_same_keys_and_values_as_before(name, kwargs, config):
    got = build_model(name, 3, **kwargs).config
    assert got == config and list(got) == list(config)
    assert build_model(**got).config == got  # the round trip the checkpoint check relies on


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_parameter_layout_is_the_one_old_checkpoints_hold(name):
    model = build_model(name, 3, width=4)
    lines = "\n".join(f"{k}:{tuple(v.shape)}" for k, v in model.state_dict().items())
    assert hashlib.sha256(lines.encode()).hexdigest()[:16] == LAYOUT_BEFORE[name]


def test_numpy_arguments_are_recorded_as_plain_ints_so_the_checkpoint_saves(tmp_path):
    model = build_model("deeplabv3plus", np.int64(3), width=np.int64(4), depths=np.array([1, 1, 1, 1]).tolist(),
                        rates=[np.int64(1), np.int64(2), np.int64(3)])
    assert model.config == build_model("deeplabv3plus", 3, width=4, depths=(1, 1, 1, 1), rates=(1, 2, 3)).config
    assert all(type(v) is int for v in (model.config["num_classes"], model.config["width"], *model.config["rates"]))
    load_checkpoint(save_checkpoint(tmp_path / "np.pt", model), build_model(**model.config))


class _Toy(SegmentationModel):
    """A model written the way the course's are, with an argument none of them has."""

    model_name = "toy"

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 4, kernel: int = 3,
                 sizes=(1, 2)) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, num_classes, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, self.in_channels)
        return self.conv(x)


def test_a_new_argument_is_recorded_without_writing_it_down(tmp_path):
    model = _Toy(2, kernel=5, sizes=[3, 4])
    assert model.config == {"name": "toy", "num_classes": 2, "in_channels": 3, "width": 4, "kernel": 5, "sizes": (3, 4)}
    assert (model.num_classes, model.in_channels) == (2, 3)
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 2, 32, 32)
    path = save_checkpoint(tmp_path / "toy.pt", model)
    with pytest.raises(CheckpointError, match=r"kernel=5.*kernel=3"):  # the checkpoint check sees the new argument
        load_checkpoint(path, _Toy(2))
    with pytest.raises(ValueError, match=r"^num_classes must be a positive integer"):
        _Toy(0)


def test_a_checkpoint_from_before_a_new_option_still_loads(tmp_path):
    """DeepLabV3Plus gained decoder=True after checkpoints existed: a file whose config lacks the key was written
    by a model with the default, so it loads into decoder=True and is refused by decoder=False."""
    import torch

    from segtutor.models import build_model
    from segtutor.train import CheckpointError, load_checkpoint, save_checkpoint

    model = build_model("deeplabv3plus", 4, width=8)
    path = tmp_path / "old.pt"
    save_checkpoint(path, model)
    payload = torch.load(path, weights_only=True)
    del payload["model"]["config"]["decoder"]  # as written before the option existed
    torch.save(payload, path)
    load_checkpoint(path, build_model("deeplabv3plus", 4, width=8))
    with pytest.raises(CheckpointError):
        load_checkpoint(path, build_model("deeplabv3plus", 4, width=8, decoder=False))
