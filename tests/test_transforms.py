"""Joint transforms keep image and mask aligned, and masks keep only labels they had (segtutor.data.transforms).

The probe: the image stores each pixel's source coordinates (channel 0 = row, channel 1 = column) and
the mask stores the same coordinates as one integer label (``OFFSET + row * W + col``). After any
geometric transform, the source pixel a mask label names must be within half a pixel of the point the
image sampled there; flips and crops must match exactly.
"""
from __future__ import annotations

import pytest
import torch

from segtutor.data import transforms as T

H, W = 13, 17
OFFSET = 1000  # coordinate labels never collide with the void label 255


def coordinate_pair(h: int = H, w: int = W) -> tuple[torch.Tensor, torch.Tensor]:
    rows = torch.arange(h, dtype=torch.float32)[:, None].expand(h, w)
    cols = torch.arange(w, dtype=torch.float32)[None, :].expand(h, w)
    image = torch.stack([rows, cols, torch.zeros(h, w)])
    mask = OFFSET + (rows * w + cols).long()
    return image, mask


def assert_aligned(image: torch.Tensor, mask: torch.Tensor, *, tol: float, w: int = W) -> None:
    """Every labelled pixel: the image's sampled coordinate is within ``tol`` of the mask's source pixel."""
    valid = mask != 255
    assert bool(valid.any())
    src = mask[valid] - OFFSET
    assert bool((src >= 0).all()), "mask holds labels that were never in the input"
    src_row, src_col = (src // w).float(), (src % w).float()
    err_row = (image[0][valid] - src_row).abs().max().item()
    err_col = (image[1][valid] - src_col).abs().max().item()
    assert err_row <= tol and err_col <= tol, f"image and mask misaligned by {err_row:.3f} rows, {err_col:.3f} columns"


def label_blocks() -> tuple[torch.Tensor, torch.Tensor]:
    """A mask of a few VOC labels and void stripes, with an image of matching size."""
    mask = torch.zeros(H, W, dtype=torch.long)
    mask[2:9, 3:10] = 15
    mask[5:12, 8:16] = 3
    mask[:, 6] = 255
    mask[10, :] = 255
    return torch.rand(3, H, W), mask


@pytest.mark.parametrize("scale", [0.37, 0.5, 0.8, 1.3, 2.0, 3.1])
def test_random_scale_keeps_alignment_and_labels(scale: float) -> None:
    image, mask = coordinate_pair()
    out_image, out_mask = T.RandomScale(scale, scale)(image, mask)
    assert out_mask.shape == (round(H * scale), round(W * scale))
    assert out_image.shape == (3, *out_mask.shape)
    assert out_mask.dtype == torch.int64 and out_image.dtype == torch.float32
    # Bilinear samples a linear ramp exactly, so the image holds the sampled source point; nearest-exact
    # picks the source pixel whose centre is nearest that point: at most half a pixel away.
    assert_aligned(out_image, out_mask, tol=0.5 + 1e-4)

    _, blocks = label_blocks()
    _, scaled = T.RandomScale(scale, scale)(torch.rand(3, H, W), blocks)
    assert set(scaled.unique().tolist()) <= {0, 3, 15, 255}


def test_plain_nearest_would_misalign() -> None:
    """Why the mask uses "nearest-exact": torch's "nearest" shifts the mask against the bilinear image."""
    image, mask = coordinate_pair(18, 21)
    size = (6, 7)  # shrink by 3: "nearest" takes source pixel 3i, the bilinear image samples 3i + 1
    img = torch.nn.functional.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]
    bad = torch.nn.functional.interpolate(mask[None, None].float(), size=size, mode="nearest")[0, 0].long()
    with pytest.raises(AssertionError, match="misaligned by 1.000 rows"):
        assert_aligned(img, bad, tol=0.5 + 1e-4, w=21)
    good_img, good = T.resize_pair(image, mask, size)
    assert torch.equal(good_img, img)
    assert_aligned(good_img, good, tol=1e-4, w=21)


def test_random_scale_draws_within_range_and_is_seeded() -> None:
    image, mask = coordinate_pair()
    sizes = set()
    for seed in range(12):
        out = T.RandomScale(0.5, 2.0, generator=torch.Generator().manual_seed(seed))(image, mask)
        again = T.RandomScale(0.5, 2.0, generator=torch.Generator().manual_seed(seed))(image, mask)
        assert torch.equal(out[1], again[1]) and torch.equal(out[0], again[0])
        h, w = out[1].shape
        assert round(H * 0.5) <= h <= round(H * 2.0) and round(W * 0.5) <= w <= round(W * 2.0)
        sizes.add((h, w))
    assert len(sizes) > 3, "the scale is not random"
    with pytest.raises(ValueError, match="min_scale"):
        T.RandomScale(2.0, 1.0)


def test_random_crop_is_an_exact_window() -> None:
    image, mask = coordinate_pair()
    g = torch.Generator().manual_seed(0)
    corners = set()
    for _ in range(20):
        out_image, out_mask = T.RandomCrop((5, 7), generator=g)(image, mask)
        assert out_mask.shape == (5, 7) and out_image.shape == (3, 5, 7)
        assert_aligned(out_image, out_mask, tol=0.0)
        top, left = int(out_image[0, 0, 0]), int(out_image[1, 0, 0])
        assert torch.equal(out_mask, mask[top:top + 5, left:left + 7])
        corners.add((top, left))
    assert len(corners) > 5


def test_random_crop_pads_with_void_and_zero() -> None:
    image, mask = coordinate_pair()
    out_image, out_mask = T.RandomCrop((H + 4, W + 3))(image, mask)
    assert out_mask.shape == (H + 4, W + 3)
    assert torch.equal(out_mask[:H, :W], mask) and torch.equal(out_image[:, :H, :W], image)
    assert bool((out_mask[H:, :] == 255).all()) and bool((out_mask[:, W:] == 255).all())
    assert bool((out_image[:, H:, :] == 0).all()) and bool((out_image[:, :, W:] == 0).all())
    # A custom ignore label; padding only in one direction, random offset in the other.
    _, m = T.RandomCrop((H + 2, 5), ignore_index=-1, generator=torch.Generator().manual_seed(1))(image, mask)
    assert bool((m[H:] == -1).all()) and not bool((m[:H] == -1).any())


def test_horizontal_flip() -> None:
    image, mask = coordinate_pair()
    flipped_image, flipped_mask = T.RandomHorizontalFlip(p=1.0)(image, mask)
    assert torch.equal(flipped_mask, mask.flip(-1)) and torch.equal(flipped_image, image.flip(-1))
    assert_aligned(flipped_image, flipped_mask, tol=0.0)
    same = T.RandomHorizontalFlip(p=0.0)(image, mask)
    assert torch.equal(same[1], mask)
    g = torch.Generator().manual_seed(0)
    flips = [bool(torch.equal(T.RandomHorizontalFlip(generator=g)(image, mask)[1], mask.flip(-1))) for _ in range(40)]
    assert 5 < sum(flips) < 35
    with pytest.raises(ValueError, match="probability"):
        T.RandomHorizontalFlip(p=1.5)


def test_normalize_touches_only_the_image() -> None:
    image, mask = label_blocks()
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 2.0)
    out_image, out_mask = T.Normalize(mean, std)(image, mask)
    expected = torch.stack([(image[c] - mean[c]) / std[c] for c in range(3)])
    torch.testing.assert_close(out_image, expected)
    assert out_mask is mask
    with pytest.raises(ValueError, match="positive"):
        T.Normalize((0.0, 0.0, 0.0), (1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="channels"):
        T.Normalize((0.0,), (1.0,))(image, mask)


def test_resize_fixed_size() -> None:
    image, mask = coordinate_pair()
    out_image, out_mask = T.Resize((8, 30))(image, mask)
    assert out_mask.shape == (8, 30) and out_image.shape == (3, 8, 30)
    assert_aligned(out_image, out_mask, tol=0.5 + 1e-4)
    assert T.Resize(9)(image, mask)[1].shape == (9, 9)
    _, blocks = label_blocks()
    assert set(T.Resize((40, 7))(torch.rand(3, H, W), blocks)[1].unique().tolist()) <= {0, 3, 15, 255}


def test_compose_pipeline_keeps_alignment() -> None:
    torch.manual_seed(0)
    pipeline = T.Compose([T.RandomScale(0.5, 2.0), T.RandomCrop(11), T.RandomHorizontalFlip()])
    for _ in range(25):
        image, mask = pipeline(*coordinate_pair())
        assert image.shape == (3, 11, 11) and mask.shape == (11, 11)
        assert_aligned(image, mask, tol=0.5 + 1e-4)
        assert bool((image[:, mask == 255] == 0).all())
    torch.manual_seed(3)
    first = pipeline(*coordinate_pair())
    torch.manual_seed(3)
    second = pipeline(*coordinate_pair())
    assert torch.equal(first[1], second[1]), "the global seed must fix the augmentation"


def test_bad_input_is_named() -> None:
    image, mask = label_blocks()
    with pytest.raises(ValueError, match="mask must be an integer"):
        T.RandomHorizontalFlip()(image, mask.float())
    with pytest.raises(ValueError, match=r"differ in \(H, W\)"):
        T.Resize(4)(image[:, :-1], mask)
    with pytest.raises(ValueError, match=r"image must be a float tensor of shape \(C, H, W\)"):
        T.RandomCrop(4)(image[0], mask)
    with pytest.raises(TypeError, match="pair of ints"):
        T.RandomCrop((4, 4, 4))
    with pytest.raises(TypeError, match=r"must return \(image, mask\)"):
        T.Compose([lambda i, m: i])(image, mask)
