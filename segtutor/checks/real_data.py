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
