"""Class palettes and colorize (segtutor.data.palette)."""
import numpy as np
import pytest
import torch

from segtutor.data import IGNORE_COLOR, colorize, shapes_palette, voc_palette

# The PASCAL VOC 2012 class colours as published with the dataset (devkit colour map), index = label.
VOC_CLASS_COLOURS = [
    (0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128), (128, 0, 128), (0, 128, 128),
    (128, 128, 128), (64, 0, 0), (192, 0, 0), (64, 128, 0), (192, 128, 0), (64, 0, 128), (192, 0, 128),
    (64, 128, 128), (192, 128, 128), (0, 64, 0), (128, 64, 0), (0, 192, 0), (128, 192, 0), (0, 64, 128),
]


def test_voc_palette_matches_published_colours():
    palette = voc_palette()
    assert palette.shape == (256, 3) and palette.dtype == np.uint8
    assert [tuple(int(c) for c in row) for row in palette[:21]] == VOC_CLASS_COLOURS
    assert tuple(palette[1]) == (128, 0, 0)        # aeroplane
    assert tuple(palette[15]) == (192, 128, 128)   # person
    assert tuple(palette[255]) == (224, 224, 192)  # void
    assert len({tuple(row) for row in palette}) == 256
    assert np.array_equal(voc_palette(21), palette[:21])
    with pytest.raises(ValueError, match="1..256"):
        voc_palette(257)


def test_shapes_palette_distinct_with_dark_background():
    palette = shapes_palette()
    assert palette.shape == (8, 3) and palette.dtype == np.uint8
    assert len({tuple(row) for row in palette}) == 8
    brightness = palette.astype(int).sum(axis=1)
    assert brightness[0] == brightness.min() and brightness[0] < 100
    assert np.array_equal(shapes_palette(4), palette[:4])
    with pytest.raises(ValueError, match="num_classes"):
        shapes_palette(9)


def test_colorize_hand_example():
    palette = [(10, 20, 30), (200, 0, 0), (0, 0, 255)]
    mask = torch.tensor([[0, 1, 2], [2, 255, 0]])
    expected = np.array([[(10, 20, 30), (200, 0, 0), (0, 0, 255)],
                         [(0, 0, 255), IGNORE_COLOR, (10, 20, 30)]], dtype=np.uint8)
    out = colorize(mask, palette)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 3)
    assert np.array_equal(out, expected)
    # numpy input, float palette in [0, 1], and a custom ignore colour
    out = colorize(mask.numpy().astype(np.uint8), np.array(palette) / 255.0, ignore_color=(1, 2, 3))
    expected[1, 1] = (1, 2, 3)
    assert np.array_equal(out, expected)


def test_colorize_batch_and_default_palette():
    masks = torch.randint(0, 8, (3, 5, 7))
    out = colorize(masks)
    assert out.shape == (3, 5, 7, 3)
    assert np.array_equal(out, shapes_palette()[masks.numpy()])
    assert np.array_equal(out[1], colorize(masks[1]))
    assert np.array_equal(colorize(torch.tensor([[True, False]])), shapes_palette()[[[1, 0]]])


def test_colorize_voc_void_in_its_own_colour():
    mask = np.array([[0, 15, 255]], dtype=np.uint8)
    assert np.array_equal(colorize(mask, voc_palette(), ignore_color=None)[0],
                          [(0, 0, 0), (192, 128, 128), (224, 224, 192)])
    assert tuple(colorize(mask, voc_palette())[0, 2]) == IGNORE_COLOR


def test_colorize_rejects_bad_input():
    with pytest.raises(ValueError, match=r"label 8 .*palette has 8 colours"):
        colorize(torch.tensor([[0, 8]]))
    with pytest.raises(ValueError, match="label -1"):
        colorize(np.array([[-1, 0]]))
    with pytest.raises(ValueError, match="label 255"):
        colorize(torch.tensor([[255]]), ignore_index=None)
    with pytest.raises(TypeError, match="integer class labels"):
        colorize(torch.rand(4, 4))
    with pytest.raises(ValueError, match=r"\(H, W\) or \(N, H, W\)"):
        colorize(torch.zeros(1, 4, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"shape \(K, 3\)"):
        colorize(torch.zeros(2, 2, dtype=torch.long), palette=[(1, 2), (3, 4)])
    with pytest.raises(ValueError, match="0..255"):
        colorize(torch.zeros(2, 2, dtype=torch.long), palette=[(1, 2, 300)])
    with pytest.raises(ValueError, match="ignore_color=None"):
        colorize(torch.zeros(2, 2, dtype=torch.long), ignore_color=None)
    with pytest.raises(TypeError, match="torch.Tensor or numpy"):
        colorize([[0, 1]])
