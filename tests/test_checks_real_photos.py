"""Checks of notebook 08's exercise (SegNet's median-frequency weights): right answers pass, each usual mistake
fails with expected / got and a hint that names it."""
import numpy as np
import pytest
import torch

from check_helpers import failure_message
from segtutor import checks

EX = "median_frequency_weights"


# ------------------------------------------------------------------------------------------- right answers
def bincount_solution(masks, num_classes=11, ignore_index=255):
    labelled = masks[masks != ignore_index]
    f = torch.bincount(labelled, minlength=num_classes)[:num_classes].double()
    f = f / f.sum()
    w = torch.zeros_like(f)
    w[f > 0] = f[f > 0].median() / f[f > 0]
    return w


def numpy_solution(masks, num_classes=11, ignore_index=255):
    m = masks.numpy()
    counts = np.array([(m == c).sum() for c in range(num_classes)], dtype=np.float64)
    f = counts / counts.sum()
    present = f > 0
    w = np.zeros_like(f)
    w[present] = np.median(f[present]) / f[present]   # an odd number of classes present in the check's cases
    return torch.from_numpy(w).float()


@pytest.mark.parametrize("solution", [bincount_solution, numpy_solution, checks.median_frequency_weights_reference])
def test_right_answers_pass(solution, capsys):
    checks.check_median_frequency_weights(solution)
    assert "median_frequency_weights: passed" in capsys.readouterr().out


def test_reference_by_hand():
    masks = torch.tensor([[[0, 0, 0, 1], [1, 2, 255, 255]]])        # labelled: 3 x class 0, 2 x class 1, 1 x class 2
    torch.testing.assert_close(checks.median_frequency_weights_reference(masks, 3),
                               torch.tensor([2 / 3, 1.0, 2.0]))


# ------------------------------------------------------------------------------------------ wrong answers
def _f(masks, k, ignore=255, void_as=None):
    m = masks.masked_fill(masks == ignore, void_as) if void_as is not None else masks[masks != ignore]
    c = torch.bincount(m.flatten(), minlength=k)[:k].double()
    return c / c.sum()


def void_as_background(masks, num_classes=11, ignore_index=255):
    f = _f(masks, num_classes, ignore_index, void_as=0)
    return f.median() / f


def void_as_extra_class(masks, num_classes=11, ignore_index=255):
    c = torch.bincount(masks.masked_fill(masks == ignore_index, num_classes).flatten(), minlength=num_classes + 1)
    f = c.double() / c.sum()
    return (f.median() / f)[:num_classes]


def void_kept_in_output(masks, num_classes=11, ignore_index=255):
    c = torch.bincount(masks.masked_fill(masks == ignore_index, num_classes).flatten(), minlength=num_classes + 1)
    f = c.double() / c.sum()
    return f.median() / f


def mean_not_median(masks, num_classes=11, ignore_index=255):
    f = _f(masks, num_classes, ignore_index)
    return f.mean() / f


def inverted(masks, num_classes=11, ignore_index=255):
    f = _f(masks, num_classes, ignore_index)
    return f / f.median()


def over_images(masks, num_classes=11, ignore_index=255):
    n = torch.stack([torch.bincount(m[m != ignore_index], minlength=num_classes)[:num_classes] > 0
                     for m in masks]).double().sum(0)
    f = n / n.sum()
    return f.median() / f


def per_image_shares(masks, num_classes=11, ignore_index=255):
    f = torch.stack([_f(m, num_classes, ignore_index) for m in masks]).mean(0)
    return f.median() / f


def integer_counts(masks, num_classes=11, ignore_index=255):
    return torch.bincount(masks[masks != ignore_index], minlength=num_classes)[:num_classes]


def modifies_input(masks, num_classes=11, ignore_index=255):
    masks[masks == ignore_index] = 0
    return bincount_solution(masks, num_classes, ignore_index)


@pytest.mark.parametrize("wrong, phrase", [
    (void_as_background, "counted as class 0"),
    (void_as_extra_class, "void (255) took part in the median"),
    (void_kept_in_output, "void (255) is not a class"),
    (mean_not_median, "MEDIAN"),
    (inverted, "upside down"),
    (over_images, "count PIXELS"),
    (per_image_shares, "averaged each image's class shares"),
    (integer_counts, "floating-point"),
    (modifies_input, "modified in place"),
    (lambda masks, k, i: None, "forget to `return`"),
])
def test_mistakes_are_named(wrong, phrase):
    text = failure_message(EX, checks.check_median_frequency_weights, wrong)
    assert phrase in text, text


def test_unfinished_stub():
    def stub(masks, num_classes=11, ignore_index=255):
        raise NotImplementedError()

    assert "NotImplementedError" in failure_message(EX, checks.check_median_frequency_weights, stub)
