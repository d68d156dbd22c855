"""Checks for the exercise of ``notebooks/07_real_data.ipynb`` (real datasets).

- :func:`check_labelids_to_trainids` — ``labelids_to_trainids(label_ids)``: map Cityscapes label ids
  ``(..., H, W)`` (0..255) to the 19 train ids, every id that is not evaluated to 255. The oracle is
  :func:`segtutor.data.cityscapes.label_ids_to_train_ids` (a 256-entry lookup table built from the official
  cityscapesScripts label list). The hints name the usual mistakes: ids without a train id sent to 0 (which
  is *road*), and replacing ids one by one in place, so that an id already rewritten is rewritten again.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from . import call_student, check_shape, fail, passed

__all__ = ["check_labelids_to_trainids", "labelids_to_trainids_reference"]

_EXERCISE = "labelids_to_trainids"


def labelids_to_trainids_reference(label_ids: Any) -> torch.Tensor:
    """segtutor's answer: :func:`segtutor.data.cityscapes.label_ids_to_train_ids` (``int64``, same shape)."""
    from ..data.cityscapes import label_ids_to_train_ids

    return label_ids_to_train_ids(label_ids)


def _cases() -> list[tuple[str, torch.Tensor]]:
    every_id = torch.arange(256, dtype=torch.int64).reshape(16, 16)
    g = torch.Generator().manual_seed(0)
    scene = torch.randint(0, 34, (2, 6, 9), generator=g)          # label ids of the annotation protocol, 0..33
    return [
        ("every label id 0..255, int64 (16, 16)", every_id),
        ("label ids 0..33, int64 (2, 6, 9) - a batch", scene),
        ("label ids as read from a PNG, uint8 (16, 16)", every_id.to(torch.uint8)),
    ]


def check_labelids_to_trainids(fn: Callable[[torch.Tensor], Any]) -> None:
    """Check ``fn(label_ids (..., H, W) integers) -> train ids int64 (..., H, W)``: 0..18, 255 for ids not evaluated."""
    from ..data.cityscapes import LABEL_TO_TRAIN

    for what, ids in _cases():
        before = ids.clone()
        got = call_student(_EXERCISE, fn, ids)
        if not torch.equal(ids, before):
            fail(_EXERCISE, expected="the input label ids left unchanged", got="the input was modified in place",
                 hint="build a new tensor (e.g. index a lookup table) instead of writing into label_ids")
        if got is None:
            fail(_EXERCISE, expected="a tensor of train ids", got="None", hint="did you forget to `return`?")
        if not isinstance(got, torch.Tensor):
            fail(_EXERCISE, expected="a torch.Tensor of train ids", got=type(got).__name__,
                 hint="return a tensor (torch.as_tensor / torch.from_numpy)")
        check_shape(_EXERCISE, got, tuple(ids.shape), hint=f"one train id per pixel: same shape as the input ({what})")
        if got.dtype != torch.int64:
            fail(_EXERCISE, expected="dtype torch.int64 (what cross-entropy and the metrics take as targets)",
                 got=f"dtype {got.dtype}", hint=f"convert with .long() ({what})")
        expected = labelids_to_trainids_reference(ids)
        if torch.equal(got.cpu(), expected):
            continue
        flat_ids, flat_got, flat_exp = ids.flatten().long(), got.flatten().cpu(), expected.flatten()
        wrong = sorted({int(i) for i in flat_ids[flat_got != flat_exp].tolist()})
        examples = ", ".join(f"id {i} -> {int(flat_got[flat_ids == i][0])} (expected {int(LABEL_TO_TRAIN[i])})"
                             for i in wrong[:4])
        unlisted = set((LABEL_TO_TRAIN == 255).nonzero().flatten().tolist())
        wrong_unlisted = [i for i in wrong if i in unlisted]
        to_zero = sum(int(flat_got[flat_ids == i][0]) == 0 for i in wrong_unlisted)
        hint = "Build a lookup table lut = torch.full((256,), 255) with lut[label_id] = train_id, then return lut[label_ids]"
        if wrong_unlisted and to_zero > len(wrong_unlisted) / 2:
            hint = ("label ids without a train id (0 unlabeled, 1 ego vehicle, 4 static, ...) must become 255, not 0: "
                    "train id 0 is road. " + hint)
        elif any(int(flat_got[flat_ids == i][0]) == i for i in wrong_unlisted):
            hint = ("some ids came back unchanged: an id that is not in the table (e.g. 14, guard rail) is not a train "
                    "id, even if it is below 19; every unlisted id becomes 255. Replacing ids one by one in place also "
                    "confuses rewritten ids with original ones. " + hint)
        fail(_EXERCISE, expected=f"the official train ids ({what})", got=f"wrong train ids: {examples}", hint=hint)
    passed(_EXERCISE, "every label id 0..255 maps as in cityscapesScripts; int64, input untouched")


# ---------------------------------------------------------------------------------- joint random crop

__all__ += ["check_random_crop", "random_crop_reference"]

_CROP = "random_crop"


def random_crop_reference(image: torch.Tensor, mask: torch.Tensor, size: tuple[int, int],
                          ignore_index: int = 255) -> tuple[torch.Tensor, torch.Tensor]:
    """segtutor's answer: :class:`segtutor.data.transforms.RandomCrop` (``size = (h, w)``), drawing from torch's
    global generator. ``image (C, H, W)``, ``mask (H, W)`` -> ``(C, h, w)``, ``(h, w)``."""
    from ..data.transforms import RandomCrop

    return RandomCrop(tuple(size), ignore_index=ignore_index)(image, mask)


def _coded_pair(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """An image whose channels hold each pixel's row and column (plus one), and a mask holding ``row * w + col``:
    from any crop, where it was cut can be read off, in the image and in the mask separately."""
    rows = torch.arange(h, dtype=torch.float32)[:, None].expand(h, w)
    cols = torch.arange(w, dtype=torch.float32)[None, :].expand(h, w)
    image = torch.stack([rows + 1, cols + 1, torch.ones(h, w)])           # 0 only where padded
    mask = (torch.arange(h)[:, None] * w + torch.arange(w)[None, :]).long()
    return image, mask


def _call_crop(fn: Callable[..., Any], image: torch.Tensor, mask: torch.Tensor, size: tuple[int, int],
               what: str) -> tuple[torch.Tensor, torch.Tensor]:
    before = (image.clone(), mask.clone())
    try:
        out = fn(image, mask, size)
    except NotImplementedError:
        out = call_student(_CROP, fn, image, mask, size)
    except Exception as exc:
        hint = "run your function on a small input and read the traceback"
        if "random_" in str(exc) or "to > from" in str(exc) or "high" in str(exc) or "range" in str(exc):
            hint = ("the window's top can be 0 .. H - h (inclusive); torch.randint(low, high) excludes high, so "
                    "draw torch.randint(0, H - h + 1, ())")
        fail(_CROP, expected=f"a crop of size {size} ({what})", got=f"{type(exc).__name__}: {exc}", hint=hint)
    if not (torch.equal(image, before[0]) and torch.equal(mask, before[1])):
        fail(_CROP, expected="the input image and mask left unchanged", got="the input was modified in place",
             hint="slice (and pad into new tensors) instead of writing into the inputs")
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        fail(_CROP, expected="a pair (image_crop, mask_crop)", got=type(out).__name__, hint="return image, mask")
    crop_image, crop_mask = out
    if not isinstance(crop_image, torch.Tensor) or not isinstance(crop_mask, torch.Tensor):
        fail(_CROP, expected="two tensors", got=f"({type(crop_image).__name__}, {type(crop_mask).__name__})",
             hint="return the cropped image tensor and the cropped mask tensor")
    h, w = size
    hint = f"the image crop is (C, h, w) and the mask crop (h, w), with (h, w) = {size} ({what})"
    if mask.shape[0] < h or mask.shape[1] < w:
        hint = (f"the input {tuple(mask.shape)} is smaller than the window {size}: pad it first (bottom and right; "
                "image with 0, mask with ignore_index) so that the crop has the full size")
    check_shape(_CROP, crop_image, (image.shape[0], h, w), hint=hint)
    check_shape(_CROP, crop_mask, (h, w), hint=hint)
    return crop_image, crop_mask


def check_random_crop(fn: Callable[..., Any]) -> None:
    """Check ``fn(image (C, H, W), mask (H, W), size=(h, w), ignore_index=255) -> (image (C, h, w), mask (h, w))``.

    One random window, the same for image and mask; every position ``0 .. H - h`` and ``0 .. W - w`` reachable;
    an input smaller than the window padded at the bottom and right, the image with 0 and the mask with
    ``ignore_index``. Runs on torch's global generator inside :func:`torch.random.fork_rng` (seed 0), so the check
    is deterministic and leaves the caller's random state alone.
    """
    with torch.random.fork_rng():
        torch.manual_seed(0)
        _check_random_crop(fn)
    passed(_CROP, "image and mask cut at the same random place; every position reachable; padding 0 / 255")


def _check_random_crop(fn: Callable[..., Any]) -> None:
    H, W, h, w = 9, 12, 4, 5
    image, mask = _coded_pair(H, W)
    tops, lefts = set(), set()
    for _ in range(300):
        crop_image, crop_mask = _call_crop(fn, image, mask, (h, w), f"input {H}x{W}")
        top_i, left_i = int(crop_image[0, 0, 0]) - 1, int(crop_image[1, 0, 0]) - 1
        if not torch.equal(crop_image, image[:, top_i:top_i + h, left_i:left_i + w]):
            fail(_CROP, expected=f"a contiguous {h}x{w} window of the image", got="pixels that are not one window",
                 hint="slice image[:, top:top + h, left:left + w]; do not resize or shuffle pixels")
        top_m, left_m = divmod(int(crop_mask[0, 0]), W)
        if not torch.equal(crop_mask, mask[top_m:top_m + h, left_m:left_m + w]):
            fail(_CROP, expected=f"a contiguous {h}x{w} window of the mask", got="pixels that are not one window",
                 hint="slice mask[top:top + h, left:left + w] (the mask has no channel dimension)")
        if (top_i, left_i) != (top_m, left_m):
            fail(_CROP, expected="image and mask cut at the same place",
                 got=f"image window at (top, left) = {(top_i, left_i)}, mask window at {(top_m, left_m)}",
                 hint="draw top and left ONCE and use them for both the image and the mask: separate random draws "
                      "put the mask off the object")
        tops.add(top_i)
        lefts.add(left_i)
    if len(tops) == 1 and len(lefts) == 1:
        fail(_CROP, expected="windows at random places", got=f"always (top, left) = {(tops.pop(), lefts.pop())}",
             hint="draw top and left at random for every call, e.g. torch.randint(0, H - h + 1, ())")
    want_tops, want_lefts = set(range(H - h + 1)), set(range(W - w + 1))
    if tops != want_tops or lefts != want_lefts:
        missing = sorted(want_tops - tops), sorted(want_lefts - lefts)
        hint = "every window position must be possible: top in 0 .. H - h and left in 0 .. W - w, inclusive"
        if (H - h) in missing[0] or (W - w) in missing[1]:
            hint = ("the window never touches the bottom or right edge: torch.randint(low, high) excludes high, so "
                    "draw torch.randint(0, H - h + 1, ()) and torch.randint(0, W - w + 1, ())")
        fail(_CROP, expected=f"tops {sorted(want_tops)} and lefts {sorted(want_lefts)} over 300 calls",
             got=f"tops {sorted(tops)}, lefts {sorted(lefts)}", hint=hint)

    # the window as large as the input: only one place
    crop_image, crop_mask = _call_crop(fn, image, mask, (H, W), "window = the whole input")
    if not (torch.equal(crop_image, image) and torch.equal(crop_mask, mask)):
        fail(_CROP, expected="the whole input back", got="a different window",
             hint="with a window as large as the input, top = left = 0")

    # an input smaller than the window: pad at the bottom and right, image 0, mask ignore_index
    for (ph, pw), size in (((3, 4), (5, 6)), ((3, 8), (5, 4))):
        image, mask = _coded_pair(ph, pw)
        mask = mask % 7                                                    # labels 0..6, so 0 is a real class
        crop_image, crop_mask = _call_crop(fn, image, mask, size, f"input {ph}x{pw} smaller than the window")
        ch, cw = size
        padded_mask = torch.full((max(ph, ch), max(pw, cw)), 255, dtype=mask.dtype)
        padded_mask[:ph, :pw] = mask
        left = int(crop_image[1, 0, 0]) - 1 if bool(crop_image[1, 0, 0] > 0) else 0
        expected_mask = padded_mask[:ch, left:left + cw]
        if torch.equal(crop_mask, expected_mask):
            padded_image = torch.zeros(3, max(ph, ch), max(pw, cw))
            padded_image[:, :ph, :pw] = image
            if not torch.equal(crop_image, padded_image[:, :ch, left:left + cw]):
                fail(_CROP, expected="the image padded with 0 at the bottom and right", got="other image values",
                     hint="pad the image with F.pad(image, (0, pad_w, 0, pad_h), value=0)")
            continue
        pad = crop_mask[expected_mask == 255]                            # where the padding should be
        hint = ("pad at the bottom and right (F.pad(mask, (0, pad_w, 0, pad_h), value=ignore_index)), then cut "
                "the window")
        if pad.numel() and bool((pad == 0).all()):
            hint = ("the padding was labelled 0, i.e. background: pad the mask with ignore_index (255), so that the "
                    "padded pixels are never trained or scored")
        fail(_CROP, expected=f"the mask padded with 255 at the bottom and right (input {ph}x{pw}, window {size})",
             got=crop_mask, hint=hint)
