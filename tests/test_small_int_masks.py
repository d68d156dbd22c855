"""Small-integer masks (uint8, int8) against ignore_index (issue 12, item 3).

``mask == -1`` on a uint8 mask casts -1 to 255, so 255 was taken for the ignored label (and -100 for 156).
Oracles: the same call on the int64 copy of the mask, and hand-counted pixels.
"""
import pytest
import torch

from segtutor.data import SyntheticShapes
from segtutor.losses import dice_loss, focal_loss
from segtutor.metrics import ConfusionMatrix, boundary_miou, confusion_matrix, pixel_accuracy
from segtutor.models import build_model
from segtutor.train import fit

K = 4


def masks(dtype, values=(0, 1, 2, 3)):
    t = torch.tensor(values, dtype=torch.int64).repeat(8)[:16].view(1, 4, 4).to(dtype)
    return t


@pytest.mark.parametrize("dtype,bad,ignore", [(torch.uint8, 255, -1), (torch.uint8, 156, -100),
                                              (torch.int8, -1, 255), (torch.int16, 300, -100)])
def test_labels_outside_range_are_refused_whatever_the_dtype(dtype, bad, ignore):
    target = masks(dtype)
    target[0, 0, 0] = bad
    pred = torch.zeros(1, 4, 4, dtype=torch.long)
    logits = torch.zeros(1, K, 4, 4)
    for call in (lambda: confusion_matrix(pred, target, K, ignore_index=ignore),
                 lambda: ConfusionMatrix(K, ignore_index=ignore).update(pred, target),
                 lambda: boundary_miou(pred, target, K, ignore_index=ignore),
                 lambda: focal_loss(logits, target, ignore_index=ignore),
                 lambda: dice_loss(logits, target, ignore_index=ignore)):
        with pytest.raises(ValueError, match=f"label {bad} outside the valid range 0..3 or ignore_index={ignore}"):
            call()
    with pytest.raises(ValueError, match=f"label {bad} outside"):
        pixel_accuracy(logits, target, ignore_index=ignore)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8, torch.int16, torch.int32])
def test_small_int_masks_count_like_int64(dtype):
    torch.manual_seed(0)
    target = torch.randint(0, K, (2, 8, 8))
    target[0, :2] = 100                        # the ignored label, representable in every dtype here
    pred = torch.randint(0, K, (2, 8, 8))
    small = target.to(dtype)
    assert torch.equal(confusion_matrix(pred, small, K, ignore_index=100),
                       confusion_matrix(pred, target, K, ignore_index=100))
    assert int(confusion_matrix(pred, small, K, ignore_index=100).sum()) == 2 * 64 - 16
    assert pixel_accuracy(pred, small, ignore_index=100) == pixel_accuracy(pred, target, ignore_index=100)
    logits = torch.randn(2, K, 8, 8)
    assert torch.equal(focal_loss(logits, small, ignore_index=100), focal_loss(logits, target, ignore_index=100))


def test_fit_refuses_a_uint8_255_with_ignore_index_minus_one():
    class U8(torch.utils.data.Dataset):
        def __init__(self):
            self.base = SyntheticShapes(4, 32, K, seed=0)

        def __len__(self):
            return 4

        def __getitem__(self, i):
            image, mask = self.base[i]
            mask = mask.to(torch.uint8)
            mask[0, 0] = 255
            return image, mask

    torch.manual_seed(0)
    model = build_model("fcn8s", K, width=4)
    with pytest.raises(ValueError, match="label 255 outside the valid range 0..3 or ignore_index=-1"):
        fit(model, U8(), epochs=1, batch_size=2, progress=False, device="cpu", ignore_index=-1)
