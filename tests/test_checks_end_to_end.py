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


# ------------------------------------------------------------------------------------------- keep_best

def keep_best_correct(path, model, score, best_score, epoch):
    from segtutor.train import save_checkpoint

    if score > best_score:
        save_checkpoint(path, model, epoch=epoch, val_miou=score)
        return score
    return best_score


def keep_best_plain_torch(path, model, score, best_score, epoch):
    """Another correct way: keep the best in memory with max(), write the file with segtutor only on improvement."""
    from segtutor.train import save_checkpoint

    best = max(score, best_score)
    if best == score and score != best_score:
        save_checkpoint(path, model, epoch=epoch)
    return best


def keep_best_always_saves(path, model, score, best_score, epoch):
    from segtutor.train import save_checkpoint

    save_checkpoint(path, model, epoch=epoch)          # what fit(checkpoint=...) does: the latest epoch
    return max(score, best_score)


def keep_best_returns_score(path, model, score, best_score, epoch):
    keep_best_correct(path, model, score, best_score, epoch)
    return score


def keep_best_never_saves(path, model, score, best_score, epoch):
    return max(score, best_score)


def keep_best_no_epoch(path, model, score, best_score, epoch):
    from segtutor.train import save_checkpoint

    if score > best_score:
        save_checkpoint(path, model)
        return score
    return best_score


def keep_best_no_return(path, model, score, best_score, epoch):
    keep_best_correct(path, model, score, best_score, epoch)


def test_keep_best_accepts_right_answers(capsys):
    for fn in (checks.keep_best_reference, keep_best_correct, keep_best_plain_torch):
        checks.check_keep_best(fn)
    assert capsys.readouterr().out.count("keep_best: passed") == 3


@pytest.mark.parametrize("wrong, hint", [
    (keep_best_always_saves, "LATEST epoch"),
    (keep_best_returns_score, "max(score, best_score)"),
    (keep_best_never_saves, "call train.save_checkpoint"),
    (keep_best_no_epoch, "pass epoch=epoch"),
    (keep_best_no_return, "return the new best score"),
])
def test_keep_best_names_the_mistake(wrong, hint):
    assert hint in failure_message("keep_best", checks.check_keep_best, wrong)


# -------------------------------------------------------------------------------- predict_and_colorize

def colorize_correct(model, images, palette=None):
    from segtutor.viz import colorize

    was_training = model.training
    model.eval()
    with torch.no_grad():
        labels = model(images).argmax(1)
    model.train(was_training)
    return colorize(labels, palette)


def colorize_by_indexing(model, images, palette=None):
    """Another correct way, without viz.colorize: index the palette array with the labels."""
    from segtutor.data import shapes_palette

    colours = np.asarray(shapes_palette(4) if palette is None else palette, dtype=np.uint8)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        labels = model(images).argmax(1).numpy()
    model.train(was_training)
    return colours[labels]


def colorize_train_mode(model, images, palette=None):
    from segtutor.viz import colorize

    with torch.no_grad():
        labels = model(images).argmax(1)
    return colorize(labels, palette)


def colorize_with_grad(model, images, palette=None):
    from segtutor.viz import colorize

    was_training = model.training
    model.eval()
    labels = model(images).argmax(1)
    model.train(was_training)
    return colorize(labels.detach(), palette)


def colorize_not_restored(model, images, palette=None):
    from segtutor.viz import colorize

    model.eval()
    with torch.no_grad():
        return colorize(model(images).argmax(1), palette)


def colorize_channels_first(model, images, palette=None):
    return np.ascontiguousarray(colorize_correct(model, images, palette).transpose(0, 3, 1, 2))


def colorize_floats(model, images, palette=None):
    return colorize_correct(model, images, palette) / 255.0


def colorize_tab10_stretched(model, images, palette=None):
    """The source's imshow(cmap='tab10') without vmin/vmax: each image stretched over its own labels."""
    import matplotlib

    was_training = model.training
    model.eval()
    with torch.no_grad():
        labels = model(images).argmax(1)
    model.train(was_training)
    out = []
    for lab in labels:
        norm = matplotlib.colors.Normalize(int(lab.min()), int(lab.max()))
        out.append((matplotlib.colormaps["tab10"](norm(lab.double().numpy()))[..., :3] * 255).astype(np.uint8))
    return np.stack(out)


def colorize_ignores_palette(model, images, palette=None):
    return colorize_correct(model, images, None)


def test_predict_and_colorize_accepts_right_answers(capsys):
    for fn in (checks.predict_and_colorize_reference, colorize_correct, colorize_by_indexing):
        checks.check_predict_and_colorize(fn)
    assert capsys.readouterr().out.count("predict_and_colorize: passed") == 3


@pytest.mark.parametrize("wrong, hint", [
    (colorize_train_mode, "model.eval()"),
    (colorize_with_grad, "torch.no_grad()"),
    (colorize_not_restored, "model.train(was_training)"),
    (colorize_channels_first, "do not permute"),
    (colorize_floats, "dtype uint8"),
    (colorize_tab10_stretched, "without vmin/vmax"),
    (colorize_ignores_palette, "palette argument was not used"),
])
def test_predict_and_colorize_names_the_mistake(wrong, hint):
    assert hint in failure_message("predict_and_colorize", checks.check_predict_and_colorize, wrong)
