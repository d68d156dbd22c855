"""Tests for segtutor.metrics: hand-computed cases, torchmetrics as an oracle, properties, and bad input."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from segtutor import metrics as M

torchmetrics = pytest.importorskip("torchmetrics")
from torchmetrics.classification import MulticlassJaccardIndex  # noqa: E402
from torchmetrics.functional.classification import multiclass_confusion_matrix, multiclass_jaccard_index  # noqa: E402
from torchmetrics.functional.segmentation import mean_iou as tm_segmentation_mean_iou  # noqa: E402

NAN = float("nan")


def same(a, b) -> bool:
    """Element-wise equality of float tensors/lists where NaN equals NaN."""
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=0, atol=1e-12, equal_nan=True))


# ---------------------------------------------------------------------------------------------------------------
# A 2 x 3 image worked out by hand, K = 4 (class 3 appears nowhere)
#   target  0 0 1      pred  0 1 1
#           1 2 2            1 2 0
# rows = truth, columns = prediction:
#   truth 0: pixel (0,0)→0, (0,1)→1        → [1, 1, 0, 0]
#   truth 1: (0,2)→1, (1,0)→1              → [0, 2, 0, 0]
#   truth 2: (1,1)→2, (1,2)→0              → [1, 0, 1, 0]
#   truth 3: none                          → [0, 0, 0, 0]
# IoU_c = TP / (truth + pred − TP): 1/(2+2−1) = 1/3, 2/(2+3−2) = 2/3, 1/(2+1−1) = 1/2, 0/0 = NaN
# ---------------------------------------------------------------------------------------------------------------
TARGET = torch.tensor([[[0, 0, 1], [1, 2, 2]]])
PRED = torch.tensor([[[0, 1, 1], [1, 2, 0]]])
MATRIX = torch.tensor([[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])


def test_hand_computed_example():
    assert torch.equal(M.confusion_matrix(PRED, TARGET, 4), MATRIX)
    m = M.SegmentationMetrics.from_confusion(MATRIX)
    assert same(m.iou, [1 / 3, 2 / 3, 1 / 2, NAN])
    assert same(m.dice, [2 * 1 / 4, 2 * 2 / 5, 2 * 1 / 3, NAN])       # 2 TP / (truth + pred)
    assert same(m.class_accuracy, [1 / 2, 2 / 2, 1 / 2, NAN])          # TP / truth
    assert m.miou == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)        # class 3 left out: 0.5
    assert m.pixel_accuracy == pytest.approx(4 / 6)
    assert m.mean_accuracy == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    assert m.fw_iou == pytest.approx(2 / 6 * (1 / 3 + 2 / 3 + 1 / 2))  # each class has 2 truth pixels
    assert m.mean_dice == pytest.approx((1 / 2 + 4 / 5 + 2 / 3) / 3)
    assert m.num_pixels == 6 and m.num_classes == 4
    # the functional forms agree with the hand numbers
    assert same(M.iou_per_class(PRED, TARGET, 4), [1 / 3, 2 / 3, 1 / 2, NAN])
    assert M.mean_iou(PRED, TARGET, 4) == pytest.approx(0.5)
    assert M.pixel_accuracy(PRED, TARGET) == pytest.approx(4 / 6)
    assert same(M.per_image_miou(PRED, TARGET, 4), [0.5])
    # the source document's convention scores the absent class 0 and divides by 4
    assert M.source_style_miou(PRED, TARGET, 4) == pytest.approx((1 / 3 + 2 / 3 + 1 / 2 + 0) / 4)


def test_streaming_matches_the_hand_matrix_and_reset_forgets():
    cm = M.ConfusionMatrix(4)
    assert torch.equal(cm.matrix, torch.zeros(4, 4, dtype=torch.int64))
    cm.update(PRED[:, :1], TARGET[:, :1])   # first row of pixels
    cm.update(PRED[:, 1:], TARGET[:, 1:])   # second row
    assert cm.matrix.dtype == torch.int64 and torch.equal(cm.matrix, MATRIX)
    assert cm.compute().miou == pytest.approx(0.5)
    cm.update(PRED, TARGET)
    assert torch.equal(cm.matrix, 2 * MATRIX)
    cm.reset()
    assert torch.equal(cm.matrix, torch.zeros(4, 4, dtype=torch.int64))
    empty = cm.compute()
    assert math.isnan(empty.miou) and math.isnan(empty.pixel_accuracy) and math.isnan(empty.fw_iou)
    assert empty.num_pixels == 0


def test_absent_class_is_nan_but_predicted_only_class_is_zero():
    target = torch.tensor([[[0, 0], [1, 1]]])
    pred = torch.tensor([[[0, 2], [1, 1]]])  # class 2 predicted, never true; class 3 nowhere
    m = M.ConfusionMatrix(4)
    m.update(pred, target)
    r = m.compute()
    assert same(r.iou, [1 / 2, 1.0, 0.0, NAN])
    assert same(r.dice, [2 / 3, 1.0, 0.0, NAN])
    assert same(r.class_accuracy, [1 / 2, 1.0, NAN, NAN])  # recall: NaN where the truth lacks the class
    assert r.miou == pytest.approx(1.5 / 3)
    assert r.mean_accuracy == pytest.approx(1.5 / 2)


def test_ignore_index_pixels_change_nothing():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 5, (3, 9, 11), generator=g)
    pred = torch.randint(0, 5, (3, 9, 11), generator=g)
    void = torch.rand(3, 9, 11, generator=g) < 0.3
    for ignore in (255, -100):
        with_void = target.masked_fill(void, ignore)
        expected = M.confusion_matrix(pred[~void][None, None], target[~void][None, None], 5)
        assert torch.equal(M.confusion_matrix(pred, with_void, 5, ignore_index=ignore), expected)
        # whatever is predicted on an ignored pixel does not matter
        other = torch.where(void, (pred + 1) % 5, pred)
        assert torch.equal(M.confusion_matrix(other, with_void, 5, ignore_index=ignore), expected)
        assert M.pixel_accuracy(pred, with_void, ignore_index=ignore) == pytest.approx(
            float((pred[~void] == target[~void]).double().mean()))
    # uint8 VOC-style masks with the void label 255
    voc = target.masked_fill(void, 255).to(torch.uint8)
    assert torch.equal(M.confusion_matrix(pred, voc, 5, ignore_index=255), expected)


def test_all_pixels_of_an_image_ignored_gives_nan_for_that_image():
    target = torch.tensor([[[255, 255]], [[0, 1]]])
    pred = torch.tensor([[[0, 0]], [[0, 1]]])
    assert same(M.per_image_miou(pred, target, 2, ignore_index=255), [NAN, 1.0])


# ---------------------------------------------------------------------------------------------------------------
# torchmetrics as an independent oracle
# ---------------------------------------------------------------------------------------------------------------

def _random_with_absent_classes(seed: int, k: int = 7):
    """Labels drawn from a subset: class 5 and 6 absent everywhere, class 4 only ever predicted."""
    g = torch.Generator().manual_seed(seed)
    target = torch.tensor([0, 1, 2, 3])[torch.randint(0, 4, (4, 13, 17), generator=g)]
    pred = torch.tensor([0, 1, 2, 3, 4])[torch.randint(0, 5, (4, 13, 17), generator=g)]
    return pred, target


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("ignore_index", [None, 255])
def test_miou_equals_torchmetrics_multiclass_jaccard(seed, ignore_index):
    k = 7
    pred, target = _random_with_absent_classes(seed, k)
    if ignore_index is not None:
        target = target.masked_fill(torch.rand(target.shape, generator=torch.Generator().manual_seed(9)) < 0.2,
                                    ignore_index)
    ours = M.ConfusionMatrix(k, ignore_index=ignore_index)
    theirs = MulticlassJaccardIndex(num_classes=k, average="macro", ignore_index=ignore_index)
    for chunk in range(0, 4, 2):   # two batches, streamed in both
        ours.update(pred[chunk:chunk + 2], target[chunk:chunk + 2])
        theirs.update(pred[chunk:chunk + 2], target[chunk:chunk + 2])
    result = ours.compute()
    # torchmetrics 1.x "macro": a class with no truth and no prediction pixel gets weight 0 (dropped from
    # the mean), exactly our NaN convention; so the means agree although classes 5 and 6 are absent.
    assert result.miou == pytest.approx(float(theirs.compute()), abs=1e-6)
    assert M.mean_iou(pred, target, k, ignore_index) == pytest.approx(result.miou, abs=1e-12)
    # Nuance: per class (average="none") torchmetrics reports 0 for an absent class (zero_division=0),
    # where we report NaN; the present classes agree.
    per_class = multiclass_jaccard_index(pred, target, k, average="none", ignore_index=ignore_index).double()
    assert torch.equal(result.iou.isnan(), torch.tensor([False] * 5 + [True] * 2))
    assert torch.allclose(result.iou.nan_to_num(0.0), per_class, atol=1e-6)
    assert per_class[5:].eq(0).all()
    # class 4 is predicted but never true: IoU 0 for both, and it counts in the mean for both
    assert result.iou[4] == 0


@pytest.mark.parametrize("ignore_index", [None, 255])
def test_confusion_matrix_equals_torchmetrics(ignore_index):
    pred, target = _random_with_absent_classes(3)
    if ignore_index is not None:
        target[:, ::3] = ignore_index
    expected = multiclass_confusion_matrix(pred, target, 7, ignore_index=ignore_index)
    assert torch.equal(M.confusion_matrix(pred, target, 7, ignore_index), expected)
    # scores in, argmax taken: same matrix as torchmetrics given the scores
    scores = torch.randn(4, 7, 13, 17, generator=torch.Generator().manual_seed(4))
    expected = multiclass_confusion_matrix(scores, target, 7, ignore_index=ignore_index)
    assert torch.equal(M.confusion_matrix(scores, target, 7, ignore_index), expected)


def test_per_image_miou_equals_torchmetrics_segmentation_mean_iou():
    pred, target = _random_with_absent_classes(5)
    pred[0] = target[0]                    # one perfect image
    target[1, :, :] = 2; pred[1, :, :5] = 2  # one image with a single true class
    expected = tm_segmentation_mean_iou(pred, target, num_classes=7, input_format="index").double()
    assert torch.allclose(M.per_image_miou(pred, target, 7), expected, atol=1e-6)


def test_per_image_and_dataset_miou_differ_on_a_constructed_case():
    # image 0: a large object (class 1, 8 pixels) found exactly; image 1: a 1-pixel object missed.
    target = torch.zeros(2, 4, 4, dtype=torch.long)
    target[0, :2, :] = 1
    target[1, 0, 0] = 1
    pred = target.clone()
    pred[1, 0, 0] = 0
    per_image = M.per_image_miou(pred, target, 2)
    # image 0: IoU 1 for both classes → 1; image 1: background 15/16, object 0/1 → 15/32
    assert same(per_image, [1.0, (15 / 16 + 0) / 2])
    # dataset: background TP 23 of union 24; object TP 8 of union 9
    assert M.mean_iou(pred, target, 2) == pytest.approx((23 / 24 + 8 / 9) / 2)
    assert float(per_image.mean()) == pytest.approx(0.734375)
    assert abs(float(per_image.mean()) - M.mean_iou(pred, target, 2)) > 0.18


def test_source_style_is_lower_on_a_perfect_prediction_with_an_absent_class():
    target = torch.tensor([[[0, 1], [1, 0]]])
    assert M.mean_iou(target, target, 3) == 1.0
    assert M.source_style_miou(target, target, 3) == pytest.approx(2 / 3)


def test_scores_argmax_and_ties_follow_argmax():
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 3, (2, 5, 6, 7), generator=g).float()  # many ties
    target = torch.randint(0, 5, (2, 6, 7), generator=g)
    assert torch.equal(M.confusion_matrix(scores, target, 5), M.confusion_matrix(scores.argmax(1), target, 5))
    channels_last = scores.contiguous(memory_format=torch.channels_last)
    assert torch.equal(M.confusion_matrix(channels_last, target, 5), M.confusion_matrix(scores.argmax(1), target, 5))
    assert M.pixel_accuracy(scores, target) == pytest.approx(float((scores.argmax(1) == target).double().mean()))


def test_scores_requiring_grad_are_accepted_without_building_a_graph():
    scores = torch.randn(1, 3, 4, 4, requires_grad=True)
    cm = M.ConfusionMatrix(3)
    cm.update(scores, torch.zeros(1, 4, 4, dtype=torch.long))
    assert not cm.matrix.requires_grad and int(cm.matrix.sum()) == 16


# ---------------------------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------------------------

@st.composite
def label_pairs(draw, max_k: int = 6):
    k = draw(st.integers(1, max_k))
    n, h, w = draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2 ** 31 - 1))
    g = torch.Generator().manual_seed(seed)
    # draw both from a random subset of the classes so absent classes are common
    used = draw(st.integers(1, k))
    return k, torch.randint(0, used, (n, h, w), generator=g), torch.randint(0, used, (n, h, w), generator=g)


@settings(max_examples=60, deadline=None)
@given(label_pairs())
def test_property_scores_lie_in_unit_interval_and_nan_means_absent(case):
    k, pred, target = case
    r = M.SegmentationMetrics.from_confusion(M.confusion_matrix(pred, target, k))
    for values in (r.iou, r.dice):
        present = ~values.isnan()
        assert ((values[present] >= 0) & (values[present] <= 1)).all()
    absent = torch.tensor([not ((pred == c).any() or (target == c).any()) for c in range(k)])
    assert torch.equal(r.iou.isnan(), absent)
    assert 0 <= r.miou <= 1 and 0 <= r.pixel_accuracy <= 1 and 0 <= r.fw_iou <= 1
    assert int(r.confusion.sum()) == target.numel()


@settings(max_examples=40, deadline=None)
@given(label_pairs())
def test_property_perfect_prediction_scores_one_on_present_classes(case):
    k, _, target = case
    r = M.ConfusionMatrix(k)
    r.update(target, target)
    r = r.compute()
    present = torch.tensor([(target == c).any().item() for c in range(k)])
    assert (r.iou[present] == 1).all() and r.iou[~present].isnan().all()
    assert r.miou == 1 and r.pixel_accuracy == 1 and r.mean_accuracy == 1 and r.fw_iou == 1


@settings(max_examples=40, deadline=None)
@given(label_pairs(), st.randoms(use_true_random=False))
def test_property_permuting_class_labels_permutes_ious(case, rng):
    k, pred, target = case
    perm = list(range(k))
    rng.shuffle(perm)
    perm = torch.tensor(perm)  # class c is renamed perm[c]
    iou = M.iou_per_class(pred, target, k)
    renamed = M.iou_per_class(perm[pred], perm[target], k)
    assert same(renamed[perm], iou)


@settings(max_examples=40, deadline=None)
@given(label_pairs(), st.integers(1, 3))
def test_property_streaming_over_chunks_equals_one_shot(case, parts):
    k, pred, target = case
    cm = M.ConfusionMatrix(k)
    for p, t in zip(pred.chunk(parts), target.chunk(parts)):
        cm.update(p, t)
    assert torch.equal(cm.matrix, M.confusion_matrix(pred, target, k))
    assert same([cm.compute().miou], [M.mean_iou(pred, target, k)])


# ---------------------------------------------------------------------------------------------------------------
# Presentation
# ---------------------------------------------------------------------------------------------------------------

def test_table_and_dict():
    cm = M.ConfusionMatrix(4, class_names=["background", "circle", "square", "triangle"])
    cm.update(PRED, TARGET)
    r = cm.compute()
    text = str(r)
    assert "triangle" in text and "absent" in text and "0.3333" in text
    assert "mIoU            0.5000  (mean over 3 of 4 classes" in text
    assert r.table(digits=2).splitlines()[1].split() == ["background", "0.33", "0.50", "0.50", "2", "2"]
    d = r.to_dict()
    assert d["miou"] == pytest.approx(0.5) and d["confusion"] == MATRIX.tolist()
    assert d["class_names"][3] == "triangle" and math.isnan(d["iou"][3])
    assert repr(r).startswith("SegmentationMetrics(miou=0.5000")
    with pytest.raises(ValueError, match="class_names has 2 names"):
        r.table(class_names=["a", "b"])


# ---------------------------------------------------------------------------------------------------------------
# Bad input: a clear error, never a silent number
# ---------------------------------------------------------------------------------------------------------------

GOOD_T = torch.zeros(2, 4, 4, dtype=torch.long)


@pytest.mark.parametrize("pred, target, error, message", [
    (torch.full((2, 4, 4), 3), GOOD_T, ValueError, r"pred has label 3 outside the valid range 0\.\.2"),
    (GOOD_T, torch.full((2, 4, 4), 3), ValueError, r"target has label 3 outside the valid range 0\.\.2"),
    (GOOD_T, torch.full((2, 4, 4), -1), ValueError, r"target has label -1 outside"),
    (torch.full((2, 4, 4), -2), GOOD_T, ValueError, r"pred has label -2 outside"),
    (GOOD_T, torch.full((2, 4, 4), 255), ValueError, r"pass ignore_index=255"),
    (GOOD_T.float(), GOOD_T, TypeError, r"labels must be integers \(use \.long\(\)\)"),
    (GOOD_T, GOOD_T.float(), TypeError, r"target must hold integer class labels"),
    (GOOD_T, GOOD_T[:, :3], ValueError, r"does not match target of shape \(2, 3, 4\)"),
    (torch.zeros(2, 3, 4, 5), GOOD_T, ValueError, r"does not match target"),
    (torch.zeros(2, 5, 4, 4), GOOD_T, ValueError, r"5 class channels .* num_classes=3"),
    (torch.zeros(2, 3, 4, 4).index_fill_(2, torch.tensor([1]), NAN), GOOD_T, ValueError, r"pred contain NaN"),
    (torch.zeros(4, 4, dtype=torch.long), GOOD_T[0], ValueError, r"target must have 3 dimensions"),
    (GOOD_T.numpy(), GOOD_T, TypeError, r"pred must be a torch.Tensor"),
    (GOOD_T, GOOD_T.tolist(), TypeError, r"target must be a torch.Tensor"),
])
def test_bad_input_raises_a_clear_error(pred, target, error, message):
    with pytest.raises(error, match=message):
        M.confusion_matrix(pred, target, 3)
    cm = M.ConfusionMatrix(3)
    with pytest.raises(error, match=message):
        cm.update(pred, target)
    assert int(cm.matrix.sum()) == 0  # nothing was counted


def test_bad_configuration():
    with pytest.raises(ValueError, match="ignore_index=0 is also a class index"):
        M.ConfusionMatrix(3, ignore_index=0)
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        M.mean_iou(GOOD_T, GOOD_T, 0)
    with pytest.raises(TypeError, match="num_classes must be a positive int"):
        M.ConfusionMatrix(3.0)
    with pytest.raises(TypeError, match="ignore_index must be an int"):
        M.pixel_accuracy(GOOD_T, GOOD_T, ignore_index=255.0)
    with pytest.raises(ValueError, match="class_names has 2 names"):
        M.ConfusionMatrix(3, class_names=["a", "b"])
    with pytest.raises(ValueError, match="pred has label -1 outside the valid range non-negative integers"):
        M.pixel_accuracy(torch.full((2, 4, 4), -1), GOOD_T)
    with pytest.raises(ValueError, match=r"target has label 5 outside the valid range 0\.\.2"):  # scores give K
        M.pixel_accuracy(torch.zeros(2, 3, 4, 4), torch.full((2, 4, 4), 5))


# ---------------------------------------------------------------------------------------------------------------
# CUDA: counting stays on the device and agrees with the CPU
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matrix_stays_on_device_and_equals_cpu():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(3, 6, 20, 24, generator=g)
    target = torch.randint(0, 6, (3, 20, 24), generator=g)
    target[:, :2] = 255
    cpu = M.ConfusionMatrix(6, ignore_index=255)
    gpu = M.ConfusionMatrix(6, ignore_index=255)
    for i in range(3):
        cpu.update(scores[i:i + 1], target[i:i + 1])
        gpu.update(scores[i:i + 1].cuda(), target[i:i + 1].cuda())
    assert gpu.matrix.device.type == "cuda" and gpu.matrix.dtype == torch.int64
    assert torch.equal(gpu.matrix.cpu(), cpu.matrix)
    assert same(gpu.compute().iou, cpu.compute().iou)
    assert torch.equal(M.confusion_matrix(scores.cuda(), target.cuda(), 6, 255).cpu(),
                       multiclass_confusion_matrix(scores, target, 6, ignore_index=255))
    assert same(M.per_image_miou(scores.cuda(), target.cuda(), 6, 255).cpu(), M.per_image_miou(scores, target, 6, 255))
    with pytest.raises(ValueError, match="pred has label 6"):
        M.confusion_matrix(torch.full((1, 2, 2), 6, device="cuda"), torch.zeros(1, 2, 2, dtype=torch.long, device="cuda"), 6)
    with pytest.raises(ValueError, match="same device"):
        M.confusion_matrix(scores.cuda(), target, 6, 255)


# ---- boundary band and boundary mIoU (01_fcn, 02_unet) ---------------------------------------------------------

def test_boundary_band_hand_cases():
    square = torch.zeros(1, 6, 6, dtype=torch.long)
    square[0, 2:4, 2:4] = 1
    expected = torch.zeros(1, 6, 6, dtype=torch.bool)
    expected[0, 1:5, 1:5] = True                   # the square and the ring touching it, diagonals included
    assert torch.equal(M.boundary_band(square, 1), expected)
    edge = torch.zeros(1, 4, 8, dtype=torch.long)
    edge[0, :, 4:] = 2                             # label change between columns 3 and 4
    for width, cols in ((1, [3, 4]), (2, [2, 3, 4, 5])):
        band = M.boundary_band(edge, width)[0]
        assert band.any(dim=0).nonzero().flatten().tolist() == cols
        assert bool(band[:, cols].all())
    assert not M.boundary_band(torch.zeros(2, 5, 5, dtype=torch.long)).any()


def test_boundary_miou_hand_case_and_ignore():
    square = torch.zeros(1, 6, 6, dtype=torch.long)
    square[0, 2:4, 2:4] = 1
    # all-background prediction on the 16-pixel band: IoU_0 = 12/16, IoU_1 = 0/4 -> 0.375
    assert M.boundary_miou(torch.zeros_like(square), square, 2, width=1) == pytest.approx(0.375)
    assert M.boundary_miou(square, square, 2, width=1) == pytest.approx(1.0)
    # an error far from any boundary does not count
    far = square.clone()
    far[0, 0, 0] = 1
    assert M.boundary_miou(far, square, 2, width=1) == pytest.approx(1.0)
    assert M.mean_iou(far, square, 2) < 1.0
    # ignored pixels inside the band are left out
    void = square.clone()
    void[0, 1, 1:5] = 255
    pred = square.clone()
    pred[0, 1, 1:5] = 1                            # wrong only where the truth is void
    assert M.boundary_miou(pred, void, 2, width=1, ignore_index=255) == pytest.approx(1.0)


def test_boundary_band_bad_input():
    with pytest.raises(ValueError, match="width"):
        M.boundary_band(torch.zeros(1, 4, 4, dtype=torch.long), 0)
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        M.boundary_band(torch.zeros(4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        M.boundary_band(torch.zeros(1, 4, 4))


# ------------------------------------------------------------------------------------------ boundary_contrast

def test_boundary_contrast_by_hand():
    # one row: pairs (0.0, 0.5) inside a region (step 0.5) and (0.5, 2.5) across the boundary (step 2.0)
    images = torch.tensor([[[[0.0, 0.5, 2.5]]]])
    masks = torch.tensor([[[0, 0, 1]]])
    assert M.boundary_contrast(images, masks) == pytest.approx(2.0 / 0.5)
    # two channels, 2x2: steps are summed over channels; horizontal and vertical pairs both count
    images = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]], [[0.0, 1.0], [0.5, 1.0]]]])
    masks = torch.tensor([[[0, 1], [0, 1]]])
    across = [1.0 + 1.0, 1.0 + 0.5]              # (0,0)-(0,1) and (1,0)-(1,1)
    inside = [0.0 + 0.5, 0.0 + 0.0]              # (0,0)-(1,0) and (0,1)-(1,1)
    assert M.boundary_contrast(images, masks) == pytest.approx((sum(across) / 2) / (sum(inside) / 2))


def test_boundary_contrast_tells_shapes_from_noise():
    from segtutor.data import SyntheticShapes

    images, masks = SyntheticShapes(16, 48, 4, seed=0).tensors()
    noise = torch.rand(images.shape, generator=torch.Generator().manual_seed(0))
    assert M.boundary_contrast(images, masks) > 2.0
    assert M.boundary_contrast(noise, masks) == pytest.approx(1.0, abs=0.05)


def test_boundary_contrast_refuses_bad_input():
    with pytest.raises(ValueError, match=r"images must be a float tensor \(N, C, H, W\)"):
        M.boundary_contrast(torch.zeros(3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"masks must be integer labels \(N, H, W\) = \(1, 4, 4\)"):
        M.boundary_contrast(torch.zeros(1, 3, 4, 4), torch.zeros(1, 4, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="at least one boundary"):
        M.boundary_contrast(torch.rand(1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long))


def test_notebook_00_derives_the_package_boundary_contrast():
    """00_task_and_data.ipynb teaches boundary_contrast by writing it; its version must be the package's."""
    import json
    from pathlib import Path

    nb = json.loads((Path(__file__).resolve().parents[1] / "notebooks" / "00_task_and_data.ipynb").read_text())
    cell = next("".join(c["source"]) for c in nb["cells"] if "def boundary_contrast(" in "".join(c["source"]))
    namespace = {"torch": torch}
    exec(cell.split("\n\n\n")[0], namespace)     # the function definition only
    images, masks = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1)), torch.zeros(2, 8, 8).long()
    masks[:, 2:6, 3:7] = 1
    assert namespace["boundary_contrast"](images, masks) == pytest.approx(M.boundary_contrast(images, masks), rel=1e-12)
