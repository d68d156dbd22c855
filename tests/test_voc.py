"""VOCSegmentation reads the real VOC 2012 layout: palette masks as indices, 255 kept, clear errors.

Oracles: the fake dataset is written from known tensors (SyntheticShapes + the void band), so what the
reader returns is compared with what was written; the mask colours are checked against the VOC colour map.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from segtutor.data import VOC_CLASSES, VOCSegmentation, make_fake_voc, voc_palette
from segtutor.data import transforms as T
from segtutor.data.fake import void_border
from segtutor.data.synthetic import SyntheticShapes

N, SIZE, CLASSES = 8, 24, (1, 7, 15)


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory):
    return make_fake_voc(tmp_path_factory.mktemp("voc"), n=N, image_size=SIZE, seed=3, classes=CLASSES)


@pytest.fixture
def voc_copy(voc_root, tmp_path):
    """A private copy to break."""
    shutil.copytree(voc_root, tmp_path / "copy")
    return tmp_path / "copy" / "VOCdevkit" / "VOC2012"


def expected_masks() -> torch.Tensor:
    _, masks = SyntheticShapes(N, SIZE, num_classes=4, seed=3).tensors()
    to_voc = torch.tensor([0, *CLASSES])
    return torch.stack([void_border(to_voc[m], 1) for m in masks])


def test_class_names() -> None:
    assert len(VOC_CLASSES) == 21
    assert VOC_CLASSES[0] == "background" and VOC_CLASSES[1] == "aeroplane"
    assert VOC_CLASSES[15] == "person" and VOC_CLASSES[20] == "tvmonitor"


def test_items_match_what_was_written(voc_root) -> None:
    data = VOCSegmentation(voc_root, "trainval")
    assert len(data) == N and data.ids == [f"2099_{i:06d}" for i in range(N)]
    assert data.ignore_index == 255 and data.num_classes == 21
    np.testing.assert_array_equal(data.palette, voc_palette())
    expected = expected_masks()
    images, _ = SyntheticShapes(N, SIZE, num_classes=4, seed=3).tensors()
    for i in range(N):
        image, mask = data[i]
        assert image.dtype == torch.float32 and image.shape == (3, SIZE, SIZE)
        assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
        assert mask.dtype == torch.int64 and mask.shape == (SIZE, SIZE)
        assert torch.equal(mask, expected[i]), "the mask must come back exactly as written (PNG is lossless)"
        # JPEG at quality 95 without chroma subsampling keeps the colours close.
        assert float((image - images[i]).abs().mean()) < 0.03
    all_masks = torch.stack([data[i][1] for i in range(N)])
    assert set(all_masks.unique().tolist()) == {0, *CLASSES, 255}
    assert int((all_masks == 255).sum()) > 0, "the void border is kept as 255, not mapped to background"


def test_masks_are_palette_pngs_with_voc_colours(voc_root) -> None:
    data = VOCSegmentation(voc_root, "train")
    with Image.open(data.mask_path(0)) as im:
        assert im.mode == "P"
        rgb = np.asarray(im.convert("RGB"))
    mask = data.load_mask(0).numpy()
    np.testing.assert_array_equal(rgb, voc_palette()[mask])
    assert tuple(voc_palette()[255]) == (224, 224, 192)


def test_splits_and_nestings(voc_root, tmp_path) -> None:
    train, val = VOCSegmentation(voc_root, "train"), VOCSegmentation(voc_root, "val")
    assert len(train) == 6 and len(val) == 2 and not set(train.ids) & set(val.ids)
    voc = voc_root / "VOCdevkit" / "VOC2012"
    for root in (voc_root, voc_root / "VOCdevkit", voc):
        assert VOCSegmentation(root, "val").root == voc
    nested = make_fake_voc(tmp_path / "VOCtrainval_11-May-2012", n=2, image_size=16, splits={"train": 1, "val": 1})
    found = VOCSegmentation(tmp_path, "val").root
    assert found == nested / "VOCdevkit" / "VOC2012"


def test_joint_transforms_are_applied(voc_root) -> None:
    calls = []

    def record(image, mask):
        calls.append((image.shape, mask.shape))
        return T.RandomCrop(10)(image, mask)

    data = VOCSegmentation(voc_root, "val", transforms=record)
    image, mask = data[1]
    assert image.shape == (3, 10, 10) and mask.shape == (10, 10)
    assert calls == [(torch.Size([3, SIZE, SIZE]), torch.Size([SIZE, SIZE]))]
    batch = next(iter(torch.utils.data.DataLoader(data, batch_size=2)))
    assert batch[0].shape == (2, 3, 10, 10) and batch[1].dtype == torch.int64


def test_missing_folder_and_split(voc_root, tmp_path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        VOCSegmentation(tmp_path / "nowhere")
    message = str(info.value)
    for nesting in ("nowhere", "nowhere/VOC2012", "nowhere/VOCdevkit/VOC2012",
                    "nowhere/VOCtrainval_11-May-2012/VOCdevkit/VOC2012"):
        assert str(tmp_path / nesting) in message
    with pytest.raises(FileNotFoundError, match=r"Segmentation/test\.txt.*available splits: train, trainval, val"):
        VOCSegmentation(voc_root, "test")


def test_missing_listed_file(voc_copy) -> None:
    (voc_copy / "JPEGImages" / "2099_000001.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"2099_000001\.jpg"):
        VOCSegmentation(voc_copy, "train")


def test_rgb_mask_is_rejected(voc_copy) -> None:
    path = voc_copy / "SegmentationClass" / "2099_000002.png"
    with Image.open(path) as im:
        im.convert("RGB").save(path)
    data = VOCSegmentation(voc_copy, "train")
    with pytest.raises(ValueError, match=r"2099_000002\.png has PIL mode 'RGB', expected 'P'"):
        data[2]


def test_label_outside_voc_is_rejected(voc_copy) -> None:
    path = voc_copy / "SegmentationClass" / "2099_000000.png"
    with Image.open(path) as im:
        labels = np.array(im)
    labels[0, 0] = 40
    bad = Image.frombytes("P", (SIZE, SIZE), labels.tobytes())
    bad.putpalette(voc_palette().flatten().tolist())
    bad.save(path)
    with pytest.raises(ValueError, match=r"2099_000000\.png holds label 40"):
        VOCSegmentation(voc_copy, "train")[0]


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_image_is_named(voc_copy, damage) -> None:
    path = voc_copy / "JPEGImages" / "2099_000003.jpg"
    data = path.read_bytes()
    path.write_bytes(b"not a jpeg at all" if damage == "garbage" else data[: len(data) // 3])
    dataset = VOCSegmentation(voc_copy, "train")
    with pytest.raises(OSError, match=r"cannot read image .*2099_000003\.jpg"):
        dataset[3]
    dataset[2]  # the others still load


def test_size_mismatch_names_the_id(voc_copy) -> None:
    path = voc_copy / "JPEGImages" / "2099_000004.jpg"
    Image.new("RGB", (SIZE + 1, SIZE)).save(path)
    with pytest.raises(ValueError, match=r"VOC id '2099_000004'.*\(24, 25\).*\(24, 24\)"):
        VOCSegmentation(voc_copy, "train")[4]


def test_index_out_of_range(voc_root) -> None:
    data = VOCSegmentation(voc_root, "val")
    assert torch.equal(data[-1][1], data[1][1])
    with pytest.raises(IndexError):
        data[2]


def test_fake_voc_arguments(tmp_path) -> None:
    root = make_fake_voc(tmp_path / "a", n=5, image_size=(16, 20), splits={"train": 1, "val": 1, "test": 1})
    split_dir = root / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation"
    counts = {p.stem: len(p.read_text().split()) for p in split_dir.glob("*.txt")}
    assert counts == {"train": 2, "val": 1, "test": 2, "trainval": 3}
    assert VOCSegmentation(root, "test")[0][1].shape == (16, 20)
    with pytest.raises(ValueError, match="at least one image"):
        make_fake_voc(tmp_path / "b", n=2, splits={"train": 1, "val": 1, "test": 1})
    with pytest.raises(ValueError, match="distinct VOC labels in 1..20"):
        make_fake_voc(tmp_path / "c", n=4, classes=(0, 7))
