"""Checks of notebook 06's exercises: correct solutions pass, typical mistakes fail with expected / got / hint."""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from check_helpers import failure_message
from segtutor import checks
from segtutor.checks.end_to_end import _TinyNet
from segtutor.data import SyntheticShapes
from segtutor.metrics import ConfusionMatrix, mean_iou, pixel_accuracy, source_style_miou
from segtutor.train import evaluate


# ---------------------------------------------------------------------------------- evaluate_by_hand

def eval_correct(model, data, num_classes, batch_size=8):
    confusion = ConfusionMatrix(num_classes)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for images, masks in DataLoader(data, batch_size=batch_size):
            confusion.update(model(images).argmax(1), masks)
    model.train(was_training)
    return confusion.compute()


def eval_by_counting(model, data, num_classes, batch_size=8):
    """Another correct way, independent of segtutor.metrics: count with numpy, return a dict."""
    was_training = model.training
    model.eval()
    m = np.zeros((num_classes, num_classes), dtype=np.int64)
    with torch.inference_mode():
        for images, masks in DataLoader(data, batch_size=batch_size):
            pred = model(images).argmax(1)
            np.add.at(m, (masks.numpy().ravel(), pred.numpy().ravel()), 1)
    model.train(was_training)
    tp = np.diag(m).astype(float)
    with np.errstate(invalid="ignore"):
        iou = tp / (m.sum(0) + m.sum(1) - tp)
    return {"miou": float(np.nanmean(iou)), "pixel_accuracy": float(tp.sum() / m.sum())}


def eval_no_eval_mode(model, data, num_classes, batch_size=8):
    confusion = ConfusionMatrix(num_classes)
    with torch.no_grad():
        for images, masks in DataLoader(data, batch_size=batch_size):
            confusion.update(model(images).argmax(1), masks)
    return confusion.compute()


def eval_with_grad(model, data, num_classes, batch_size=8):
    confusion = ConfusionMatrix(num_classes)
    was_training = model.training
    model.eval()
    for images, masks in DataLoader(data, batch_size=batch_size):
        confusion.update(model(images).argmax(1), masks)
    model.train(was_training)
    return confusion.compute()


def eval_not_restored(model, data, num_classes, batch_size=8):
    confusion = ConfusionMatrix(num_classes)
    model.eval()
    with torch.no_grad():
        for images, masks in DataLoader(data, batch_size=batch_size):
            confusion.update(model(images).argmax(1), masks)
    return confusion.compute()


def _per_batch(model, data, num_classes, batch_size, score):
    was_training = model.training
    model.eval()
    mious, accs = [], []
    with torch.no_grad():
        for images, masks in DataLoader(data, batch_size=batch_size):
            pred = model(images).argmax(1)
            mious.append(score(pred, masks, num_classes))
            accs.append(pixel_accuracy(pred, masks))
    model.train(was_training)
    return {"miou": sum(mious) / len(mious), "pixel_accuracy": sum(accs) / len(accs)}


def eval_batch_mean(model, data, num_classes, batch_size=8):
    return _per_batch(model, data, num_classes, batch_size, mean_iou)


def eval_batch_source_style(model, data, num_classes, batch_size=8):
    return _per_batch(model, data, num_classes, batch_size, source_style_miou)


def eval_returns_float(model, data, num_classes, batch_size=8):
    return eval_correct(model, data, num_classes, batch_size).miou


def test_tiny_net_needs_eval_mode():
    """The check's premise: its network predicts differently in training mode, and the batches disagree."""
    data = SyntheticShapes(10, 32, num_classes=4, seed=100)
    model = _TinyNet(4, 0)
    images = torch.stack([data[i][0] for i in range(4)])
    with torch.no_grad():
        train_pred = model.train()(images).argmax(1)
        eval_pred = model.eval()(images).argmax(1)
    assert (train_pred != eval_pred).double().mean() > 0.05
    assert len(eval_pred.unique()) > 1
    assert abs(eval_batch_mean(model, data, 4, 4)["miou"] - evaluate(model, data, 4).miou) > 1e-3


@pytest.mark.parametrize("solution", [eval_correct, eval_by_counting])
def test_evaluate_by_hand_correct_solutions_pass(solution, capsys):
    checks.check_evaluate_by_hand(solution)
    assert "✓ evaluate_by_hand: passed" in capsys.readouterr().out


@pytest.mark.parametrize("wrong,hint", [
    (eval_no_eval_mode, "model.eval()"),
    (eval_with_grad, "torch.no_grad()"),
    (eval_not_restored, "model.train(was_training)"),
    (eval_batch_mean, "mean of per-batch mIoUs"),
    (eval_batch_source_style, "scored 0"),
    (eval_returns_float, "not a single number"),
])
def test_evaluate_by_hand_mistakes_fail_with_expected_got_and_hint(wrong, hint):
    text = failure_message("evaluate_by_hand", checks.check_evaluate_by_hand, wrong)
    assert hint in text


def test_evaluate_by_hand_stub_gives_a_clear_failure():
    def stub(model, data, num_classes, batch_size=8):
        raise NotImplementedError()

    with pytest.raises(checks.CheckFailed, match="NotImplementedError"):
        checks.check_evaluate_by_hand(stub)


def test_evaluate_by_hand_reference_is_train_evaluate():
    data = SyntheticShapes(6, 32, num_classes=3, seed=3)
    model = _TinyNet(3, 1)
    got = checks.evaluate_by_hand_reference(model, data, 3, batch_size=4)
    assert got.miou == pytest.approx(eval_by_counting(model, data, 3, 4)["miou"], abs=1e-12)


# -------------------------------------------------------------------------------------- worst_images

def worst_sorted(scores, k):
    scores = torch.as_tensor(scores, dtype=torch.float64)
    valid = [i for i in range(len(scores)) if not torch.isnan(scores[i])]
    return sorted(valid, key=lambda i: float(scores[i]))[:k]


def worst_topk(scores, k):  # torch.topk on the valid ones: tie order may differ from the reference
    scores = torch.as_tensor(scores, dtype=torch.float64)
    valid = torch.nonzero(~scores.isnan()).flatten()
    k = min(k, len(valid))
    values, idx = torch.topk(-scores[valid], k)
    return valid[idx]


def worst_numpy(scores, k):
    s = np.asarray(scores, dtype=float)
    order = np.argsort(np.where(np.isnan(s), np.inf, s), kind="stable")
    return np.array([i for i in order if not np.isnan(s[i])][:k])


def worst_best_instead(scores, k):
    s = torch.as_tensor(scores, dtype=torch.float64).nan_to_num(-1.0)
    return torch.argsort(s, descending=True)[:k]


def worst_keeps_nan(scores, k):
    s = torch.as_tensor(scores, dtype=torch.float64)
    return torch.argsort(s)[:k]   # NaN sorts last, so it appears once k exceeds the valid scores


def worst_nan_as_zero(scores, k):
    s = torch.as_tensor(scores, dtype=torch.float64).nan_to_num(0.0)
    return torch.argsort(s, stable=True)[:k]


def worst_values(scores, k):
    s = torch.as_tensor(scores, dtype=torch.float64)
    return torch.sort(s[~s.isnan()]).values[:k]


def worst_unsorted(scores, k):
    return sorted(worst_sorted(scores, k))


@pytest.mark.parametrize("solution", [worst_sorted, worst_topk, worst_numpy, checks.worst_images_reference])
def test_worst_images_correct_solutions_pass(solution, capsys):
    checks.check_worst_images(solution)
    assert "✓ worst_images: passed" in capsys.readouterr().out


@pytest.mark.parametrize("wrong,hint", [
    (worst_best_instead, "LOWEST"),
    (worst_keeps_nan, "NaN"),
    (worst_nan_as_zero, "NaN"),
    (worst_values, "not the scores"),
    (worst_unsorted, "ascending"),
])
def test_worst_images_mistakes_fail_with_expected_got_and_hint(wrong, hint):
    text = failure_message("worst_images", checks.check_worst_images, wrong)
    assert hint in text


def test_worst_images_reference_against_numpy_on_random_scores():
    rng = np.random.default_rng(0)
    for _ in range(20):
        s = rng.random(12)
        s[rng.random(12) < 0.2] = np.nan
        k = int(rng.integers(0, 15))
        assert checks.worst_images_reference(torch.from_numpy(s), k).tolist() == worst_numpy(s, k).tolist()


def test_worst_images_reference_rejects_bad_input():
    with pytest.raises(ValueError, match=r"shape \(N,\)"):
        checks.worst_images_reference(torch.zeros(2, 3), 1)
    with pytest.raises(ValueError, match="non-negative int"):
        checks.worst_images_reference(torch.zeros(3), -1)
