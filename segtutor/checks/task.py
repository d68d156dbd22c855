"""Checks for the exercises of ``notebooks/00_task_and_data.ipynb`` (the task and the data).

- :func:`check_mask_to_boxes` — ``mask_to_boxes(instance_mask)``: the detection view of a scene, read off its
  instance mask. The oracle is a hand-made mask and the boxes :meth:`segtutor.data.SyntheticShapes.scene`
  computes for real scenes.
"""
from __future__ import annotations

from typing import Callable

import torch

from . import _as_tensor, call_student, check_close, check_shape, fail, passed

__all__ = ["check_mask_to_boxes"]

_BOXES = "mask_to_boxes"

#: Two instances on a 5 x 6 grid, and their boxes (x0, y0, x1, y1), inclusive.
_TOY_MASK = torch.tensor([
    [0, 0, 0, 0, 0, 0],
    [0, 1, 1, 0, 0, 0],
    [0, 1, 1, 0, 2, 0],
    [0, 0, 0, 0, 2, 0],
    [0, 0, 0, 0, 2, 2],
])
_TOY_BOXES = torch.tensor([[1.0, 1.0, 2.0, 2.0], [4.0, 2.0, 5.0, 4.0]])


def _boxes_hint(got: torch.Tensor, expected: torch.Tensor) -> str:
    """A hint that names the usual mistake when ``got`` is one of them."""
    if got.shape == expected.shape:
        if torch.equal(got, expected[:, [1, 0, 3, 2]]):
            return "x is the column index (dim 1) and y the row index (dim 0): rows are (x0, y0, x1, y1)"
        if torch.equal(got, expected + torch.tensor([0.0, 0.0, 1.0, 1.0])):
            return "x1 and y1 are the last column and row INSIDE the instance (inclusive), not one past it"
        if torch.equal(got.flip(0), expected):
            return "row i is instance i + 1: keep the instances in the order of their ids"
    return ("for instance k = 1..n take the pixels where instance_mask == k; x0/x1 are the smallest/largest "
            "column, y0/y1 the smallest/largest row")


def _one_case(fn: Callable, mask: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    got = call_student(_BOXES, fn, mask.clone())
    if got is None:
        fail(_BOXES, expected=f"a float tensor of shape {tuple(expected.shape)}", got="None",
             hint="did you forget to `return` the boxes?")
    try:
        got_t = _as_tensor(got)
    except (TypeError, ValueError, RuntimeError):
        fail(_BOXES, expected=f"a float tensor of shape {tuple(expected.shape)}", got=type(got).__name__)
    check_shape(_BOXES, got_t, tuple(expected.shape),
                hint=f"{what}: one row (x0, y0, x1, y1) per instance id 1..n, so shape (n, 4)")
    if got_t.numel() and not got_t.is_floating_point():
        fail(_BOXES, expected="a floating-point tensor (float32), like scene.boxes", got=f"dtype {got_t.dtype}",
             hint="convert at the end, e.g. torch.tensor(rows, dtype=torch.float32)")
    check_close(_BOXES, got_t.float(), expected, atol=0, rtol=0,
                hint=f"{what}: {_boxes_hint(got_t.float(), expected)}")


def check_mask_to_boxes(fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Check ``fn(instance_mask)``: ``int64 (H, W)`` with 0 = background and instances ``1..n`` -> boxes
    ``float32 (n, 4)`` as ``(x0, y0, x1, y1)``, the first and last column and row of each instance (inclusive).

    Checked on a hand-made mask, on an empty one (``(0, 4)``), and on real scenes against
    :attr:`segtutor.data.Scene.boxes`.
    """
    _one_case(fn, _TOY_MASK, _TOY_BOXES, "on a 5x6 mask with two instances")
    _one_case(fn, torch.zeros(4, 4, dtype=torch.int64), torch.zeros(0, 4), "on a mask without any instance")
    from ..data import SyntheticShapes

    data = SyntheticShapes(6, 48, num_classes=4, seed=7)
    for i in range(len(data)):
        scene = data.scene(i)
        _one_case(fn, scene.instance_mask, scene.boxes, f"on scene {i} of SyntheticShapes(6, 48, seed=7)")
    passed(_BOXES, "hand-made mask, empty mask and 6 scenes agree with scene.boxes")
