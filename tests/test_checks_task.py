"""Checks of notebook 00 (segtutor.checks.task): a correct mask_to_boxes passes, wrong ones fail with
expected / got / a hint that names the mistake."""
import pytest
import torch

from check_helpers import failure_message
from segtutor import checks
from segtutor.data import SyntheticShapes


def good_boxes(instance_mask):
    rows = []
    for k in range(1, int(instance_mask.max()) + 1):
        ys, xs = torch.nonzero(instance_mask == k, as_tuple=True)
        rows.append([xs.min(), ys.min(), xs.max(), ys.max()])
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)


def swapped_xy(instance_mask):
    return good_boxes(instance_mask)[:, [1, 0, 3, 2]]


def exclusive_end(instance_mask):
    return good_boxes(instance_mask) + torch.tensor([0.0, 0.0, 1.0, 1.0])


def no_reshape(instance_mask):  # an empty mask gives shape (0,) instead of (0, 4)
    rows = [good_boxes(instance_mask)[k].tolist() for k in range(int(instance_mask.max()))]
    return torch.tensor(rows, dtype=torch.float32)


def integer_boxes(instance_mask):
    return good_boxes(instance_mask).long()


def stub(instance_mask):
    raise NotImplementedError()


def test_correct_implementation_passes(capsys):
    checks.check_mask_to_boxes(good_boxes)
    assert "✓ mask_to_boxes: passed" in capsys.readouterr().out


def test_the_oracle_is_the_datasets_own_boxes():
    # the reference the check relies on: scene.boxes agree with the instance mask they come from
    data = SyntheticShapes(6, 48, num_classes=4, seed=7)
    for i in range(len(data)):
        scene = data.scene(i)
        assert torch.equal(good_boxes(scene.instance_mask), scene.boxes)


@pytest.mark.parametrize("wrong, hint", [
    (swapped_xy, "x is the column index"),
    (exclusive_end, "inclusive"),
    (no_reshape, "shape (n, 4)"),
    (integer_boxes, "floating-point"),
])
def test_wrong_implementations_fail_with_a_hint(wrong, hint):
    text = failure_message("mask_to_boxes", checks.check_mask_to_boxes, wrong)
    assert "hint" in text
    assert hint in text


def test_unfinished_stub_says_so():
    with pytest.raises(checks.CheckFailed, match="not done yet"):
        checks.check_mask_to_boxes(stub)


def test_exported_from_checks():
    assert "check_mask_to_boxes" in checks.__all__
