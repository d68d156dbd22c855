"""CityscapesSegmentation: label ids -> 19 train ids by the official table, pairs found, clear errors.

Oracle for the mapping: the official table written out again here as a plain dict and applied pixel by
pixel in Python, against the module's vectorised lookup.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from segtutor.data import CITYSCAPES_CLASSES, CityscapesSegmentation, make_fake_cityscapes
from segtutor.data.cityscapes import cityscapes_palette, label_ids_to_train_ids

# cityscapesScripts helpers/labels.py: label id -> train id for the 19 evaluated classes
OFFICIAL = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
            26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
H, W = 32, 48


@pytest.fixture(scope="module")
def cs_root(tmp_path_factory):
    return make_fake_cityscapes(tmp_path_factory.mktemp("cs"), n=5, image_size=(H, W), seed=1,
                                splits={"train": 3, "val": 2})


@pytest.fixture
def cs_copy(cs_root, tmp_path):
    shutil.copytree(cs_root, tmp_path / "copy")
    return tmp_path / "copy"


def test_lookup_table_is_the_official_one() -> None:
    every_id = torch.arange(256)
    mapped = label_ids_to_train_ids(every_id)
    assert mapped.dtype == torch.int64
    assert mapped.tolist() == [OFFICIAL.get(i, 255) for i in range(256)]
    for not_evaluated in (0, 1, 2, 3, 4, 5, 6, 9, 10, 14, 15, 16, 18, 29, 30):  # unlabeled … trailer
        assert int(mapped[not_evaluated]) == 255
    with pytest.raises(TypeError, match="integers"):
        label_ids_to_train_ids(torch.zeros(2, 2))


def test_names_and_palette() -> None:
    assert len(CITYSCAPES_CLASSES) == 19
    assert CITYSCAPES_CLASSES[0] == "road" and CITYSCAPES_CLASSES[13] == "car" and CITYSCAPES_CLASSES[18] == "bicycle"
    palette = cityscapes_palette()
    assert palette.shape == (256, 3) and palette.dtype == np.uint8
    assert tuple(palette[0]) == (128, 64, 128) and tuple(palette[10]) == (70, 130, 180)  # road, sky
    assert tuple(palette[13]) == (0, 0, 142) and tuple(palette[18]) == (119, 11, 32)     # car, bicycle
    assert len({tuple(c) for c in palette[:19]}) == 19


def test_items_are_mapped_pixel_by_pixel(cs_root) -> None:
    data = CityscapesSegmentation(cs_root, "train")
    assert len(data) == 3 and data.num_classes == 19 and data.ignore_index == 255
    for i in range(len(data)):
        image, mask = data[i]
        assert image.dtype == torch.float32 and image.shape == (3, H, W)
        assert mask.dtype == torch.int64 and mask.shape == (H, W)
        with Image.open(data.masks[i]) as im:
            assert im.mode == "L"
            raw = np.array(im)
        expected = [[OFFICIAL.get(int(v), 255) for v in row] for row in raw]
        assert mask.tolist() == expected
        assert int((mask == 255).sum()) > 0 and int((mask == 0).sum()) > 0  # ignored ids present, road present
        with Image.open(data.images[i]) as im:  # PNG images: lossless
            np.testing.assert_array_equal((image * 255).round().byte().permute(1, 2, 0).numpy(), np.asarray(im))


def test_pairs_and_ids(cs_root) -> None:
    train, val = CityscapesSegmentation(cs_root, "train"), CityscapesSegmentation(cs_root, "val")
    assert len(val) == 2 and not set(train.ids) & set(val.ids)
    for image, mask, image_id in zip(train.images, train.masks, train.ids):
        assert image.name == f"{image_id}_leftImg8bit.png" and mask.name == f"{image_id}_gtFine_labelIds.png"
        assert image.parent.name == mask.parent.name  # same city


def test_nested_root_and_transforms(cs_root, tmp_path) -> None:
    shutil.copytree(cs_root, tmp_path / "cityscapes")
    data = CityscapesSegmentation(tmp_path, "val", transforms=lambda i, m: (i[:, :8], m[:8]))
    assert data.root == tmp_path / "cityscapes"
    image, mask = data[0]
    assert image.shape == (3, 8, W) and mask.shape == (8, W)


def test_missing_root_and_split(cs_root, tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"leftImg8bit/ and gtFine/.*nowhere.*cityscapes-dataset\.com"):
        CityscapesSegmentation(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"leftImg8bit/test; available splits: train, val"):
        CityscapesSegmentation(cs_root, "test")


def test_missing_mask_names_the_file(cs_copy) -> None:
    data = CityscapesSegmentation(cs_copy, "val")
    missing = data.masks[1]
    missing.unlink()
    with pytest.raises(FileNotFoundError, match=missing.name):
        CityscapesSegmentation(cs_copy, "val")


def test_wrong_mask_mode_and_size(cs_copy) -> None:
    data = CityscapesSegmentation(cs_copy, "train")
    with Image.open(data.masks[0]) as im:
        im.convert("RGB").save(data.masks[0])
    with pytest.raises(ValueError, match=rf"{data.masks[0].name} has PIL mode 'RGB', expected 'L'"):
        data[0]
    Image.new("RGB", (W, H + 2)).save(data.images[1])
    with pytest.raises(ValueError, match=rf"Cityscapes id '{data.ids[1]}'"):
        data[1]
