"""Checks of notebook 05's exercises: a correct solution passes, typical mistakes fail with expected / got / hint."""
import numpy as np
import pytest
import torch

from check_helpers import failure_message
from segtutor import checks
from segtutor.metrics import ConfusionMatrix, SegmentationMetrics, confusion_matrix


# ------------------------------------------------------------------------------- confusion matrix

def cm_loops(pred, target, num_classes):  # the slow, obvious way: an independent oracle too
    m = np.zeros((num_classes, num_classes), dtype=np.int64)
    for t, p in zip(target.flatten().tolist(), pred.flatten().tolist()):
        m[t, p] += 1
    return torch.from_numpy(m)


def cm_bincount(pred, target, num_classes):
    return torch.bincount((target * num_classes + pred).flatten(), minlength=num_classes ** 2).view(num_classes, -1)


def cm_transposed(pred, target, num_classes):
    return cm_bincount(pred, target, num_classes).T


def cm_only_present(pred, target, num_classes):  # sizes the matrix by the labels seen, not by num_classes
    k = int(max(pred.max(), target.max())) + 1
    return cm_bincount(pred, target, k)


def cm_normalised(pred, target, num_classes):
    m = cm_bincount(pred, target, num_classes).double()
    return m / m.sum(1, keepdim=True)


def test_confusion_matrix_oracle_agrees_with_the_package():
    g = torch.Generator().manual_seed(5)
    pred, target = torch.randint(0, 5, (2, 6, 7), generator=g), torch.randint(0, 5, (2, 6, 7), generator=g)
    assert torch.equal(cm_loops(pred, target, 5), confusion_matrix(pred, target, 5))


@pytest.mark.parametrize("solution", [cm_loops, cm_bincount])
def test_confusion_matrix_correct_solutions_pass(solution, capsys):
    checks.check_confusion_matrix(solution)
    assert "✓ confusion matrix: passed" in capsys.readouterr().out


@pytest.mark.parametrize("wrong,hint", [
    (cm_transposed, "transposed"),
    (cm_only_present, "(num_classes, num_classes)"),
    (cm_normalised, "do not normalise"),
])
def test_confusion_matrix_mistakes_fail_with_expected_got_and_hint(wrong, hint):
    text = failure_message("confusion matrix", checks.check_confusion_matrix, wrong)
    assert hint in text


def test_confusion_matrix_stub_gives_a_clear_failure():
    def stub(pred, target, num_classes):
        raise NotImplementedError()

    with pytest.raises(checks.CheckFailed, match="NotImplementedError"):
        checks.check_confusion_matrix(stub)


# ------------------------------------------------------------------------------------- IoU

def iou_correct(matrix):
    m = matrix.double()
    tp = m.diagonal()
    return tp / (m.sum(0) + m.sum(1) - tp)


def iou_numpy(matrix):  # another way to write it, returning a numpy array
    m = np.asarray(matrix, dtype=np.float64)
    tp = np.diag(m)
    with np.errstate(invalid="ignore"):
        return tp / (m.sum(0) + m.sum(1) - tp)


def iou_source_style(matrix):  # the source's calculate_iou: 0 where the union is empty
    return torch.nan_to_num(iou_correct(matrix), nan=0.0)


def iou_double_counted_union(matrix):
    m = matrix.double()
    return m.diagonal() / (m.sum(0) + m.sum(1))


def iou_is_dice(matrix):
    m = matrix.double()
    return 2 * m.diagonal() / (m.sum(0) + m.sum(1))


def iou_recall(matrix):
    m = matrix.double()
    return m.diagonal() / m.sum(1)


def test_iou_oracle_by_hand():
    # class 0: TP 5, truth 6, pred 7 -> 5 / 8; class 1: TP 3, truth 6, pred 4 -> 3 / 7; class 2: 4 / 5
    m = torch.tensor([[5, 1, 0], [2, 3, 1], [0, 0, 4]])
    np.testing.assert_allclose(SegmentationMetrics.from_confusion(m).iou.numpy(), [5 / 8, 3 / 7, 4 / 5])


@pytest.mark.parametrize("solution", [iou_correct, iou_numpy])
def test_iou_correct_solutions_pass(solution, capsys):
    checks.check_iou_from_confusion(solution)
    assert "✓ IoU from the confusion matrix: passed" in capsys.readouterr().out


@pytest.mark.parametrize("wrong,hint", [
    (iou_source_style, "return NaN"),
    (iou_double_counted_union, "counted in both sums"),
    (iou_is_dice, "that is Dice"),
    (iou_recall, "TP_c / (truth_c + pred_c − TP_c)"),
])
def test_iou_mistakes_fail_with_expected_got_and_hint(wrong, hint):
    text = failure_message("IoU from the confusion matrix", checks.check_iou_from_confusion, wrong)
    assert hint in text


def test_iou_wrong_shape_is_named():
    def mean_only(matrix):
        return iou_correct(matrix).nanmean()

    with pytest.raises(checks.CheckFailed, match=r"shape \(3,\)"):
        checks.check_iou_from_confusion(mean_only)


# ------------------------------------------------------------------------- streaming confusion matrix

class StreamingCorrect:
    def __init__(self, num_classes, ignore_index=None):
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.reset()

    def reset(self):
        self.matrix = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)

    def _counts(self, pred, target):
        pred, target = pred.flatten(), target.flatten()
        if self.ignore_index is not None:
            keep = target != self.ignore_index
            pred, target = pred[keep], target[keep]
        return cm_loops(pred, target, self.num_classes)       # the loop oracle, so nothing is shared with the check

    def update(self, pred, target):
        self.matrix += self._counts(pred, target)


class StreamingNumpy:  # another correct way: a numpy array and np.add.at
    def __init__(self, num_classes, ignore_index=None):
        self.k, self.ignore_index = num_classes, ignore_index
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def reset(self):
        self.matrix = np.zeros((self.k, self.k), dtype=np.int64)

    def update(self, pred, target):
        p, t = pred.numpy().ravel(), target.numpy().ravel()
        if self.ignore_index is not None:
            p, t = p[t != self.ignore_index], t[t != self.ignore_index]
        np.add.at(self.matrix, (t, p), 1)


class StreamingReplaces(StreamingCorrect):
    def update(self, pred, target):
        self.matrix = self._counts(pred, target)


class StreamingTransposed(StreamingCorrect):
    def update(self, pred, target):
        self.matrix += self._counts(pred, target).T


class StreamingSharedState(StreamingCorrect):
    matrix = None

    def reset(self):
        if StreamingSharedState.matrix is None:
            StreamingSharedState.matrix = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)
        self.matrix = StreamingSharedState.matrix

    def update(self, pred, target):
        self.matrix += self._counts(pred, target)          # in place into the one shared tensor


class StreamingNoReset(StreamingCorrect):
    def __init__(self, num_classes, ignore_index=None):
        super().__init__(num_classes, ignore_index)
        self.reset = lambda: None


class StreamingIgnoreCounted(StreamingCorrect):  # maps void to the last class instead of dropping it
    def update(self, pred, target):
        if self.ignore_index is not None:
            target = target.clamp_max(self.num_classes - 1)
        self.matrix += cm_loops(pred.flatten(), target.flatten(), self.num_classes)


class StreamingIgnoreUnhandled(StreamingCorrect):  # bincount without dropping: 255 * K + p is out of range
    def update(self, pred, target):
        self.matrix += cm_bincount(pred, target, self.num_classes)


class StreamingDropsPredToo(StreamingCorrect):  # also drops pixels predicted as the last class
    def update(self, pred, target):
        keep = target != self.ignore_index if self.ignore_index is not None else torch.ones_like(target, dtype=bool)
        keep &= pred != self.num_classes - 1 if self.ignore_index is not None else keep
        self.matrix += cm_loops(pred[keep], target[keep], self.num_classes)


@pytest.mark.parametrize("solution", [StreamingCorrect, StreamingNumpy, ConfusionMatrix])
def test_streaming_confusion_matrix_correct_solutions_pass(solution, capsys):
    checks.check_streaming_confusion_matrix(solution)
    assert "✓ streaming confusion matrix: passed" in capsys.readouterr().out


@pytest.mark.parametrize("wrong,hint", [
    (StreamingReplaces, "replaced the matrix with the last batch"),
    (StreamingTransposed, "transposed"),
    (StreamingSharedState, "two instances share their counts"),
    (StreamingNoReset, "reset() must forget"),
    (StreamingIgnoreCounted, "ignored pixels were counted"),
    (StreamingIgnoreUnhandled, "drop the pixels whose TRUTH is 255"),
    (StreamingDropsPredToo, "drop only the pixels whose TRUTH is ignore_index"),
])
def test_streaming_confusion_matrix_mistakes_fail_with_expected_got_and_hint(wrong, hint):
    StreamingSharedState.matrix = None
    text = failure_message("streaming confusion matrix", checks.check_streaming_confusion_matrix, wrong)
    assert hint in text


def test_streaming_confusion_matrix_stub_gives_a_clear_failure():
    class Stub:
        def __init__(self, num_classes, ignore_index=None):
            raise NotImplementedError()

    with pytest.raises(checks.CheckFailed, match="NotImplementedError"):
        checks.check_streaming_confusion_matrix(Stub)
