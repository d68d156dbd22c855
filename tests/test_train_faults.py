"""fit / evaluate / predict under faults (issue 12, items 4, 7 and 8): NaN, all-void batches, items that
cannot be stacked, float64 data, a folder that cannot be written, resuming on other data.

Oracles: the weights recorded just before the failing step, the same runs on float32 data, and counts that
do not depend on the shuffling order.
"""
import os

import pytest
import torch
import torch.nn.functional as F

from segtutor.data import SyntheticShapes
from segtutor.models import build_model
from segtutor.train import CheckpointError, evaluate, fit, predict
from fakes import Items

K = 4


def tiny(seed=0):
    torch.manual_seed(seed)
    return build_model("fcn8s", K, width=4)


def shapes(n=8, seed=0, size=32):
    return [SyntheticShapes(n, size, K, seed=seed)[i] for i in range(n)]


# ----------------------------------------------------------------------------------------------- NaN

def test_first_nan_training_loss_stops_before_the_step_and_keeps_the_last_finite_weights():
    model = tiny()
    seen = {"calls": 0}

    def loss(logits, target):
        seen["calls"] += 1
        seen["weights"] = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}
        value = F.cross_entropy(logits, target)
        return value * float("nan") if seen["calls"] == 6 else value

    with pytest.raises(FloatingPointError, match=r"training loss is nan at epoch 2/3, batch 2 of 4.*weights of the "
                                                 r"last finite step"):
        fit(model, Items(shapes(16)), epochs=3, batch_size=4, loss=loss, progress=False, device="cpu")
    assert seen["calls"] == 6                                          # stopped at once, not at the epoch's end
    params = dict(model.named_parameters())
    for name, value in seen["weights"].items():
        if name in params:
            assert torch.equal(params[name].detach(), value), name     # the weights the NaN step started from
            assert bool(torch.isfinite(value).all())


def test_nan_images_are_refused_by_evaluate_and_predict():
    model = tiny()
    items = shapes(4)
    image, mask = items[2]
    image = image.clone()
    image[0, 3, 3] = float("nan")
    items[2] = (image, mask)
    with pytest.raises(ValueError, match=r"data batch 0 images contain NaN values \(in image\(s\) \[2\]"):
        evaluate(model, Items(items), K)
    batch = torch.stack([i for i, _ in items])
    with pytest.raises(ValueError, match="predict images 0..3 contain NaN"):
        predict(model, batch)
    batch[2, 0, 3, 3] = float("inf")
    with pytest.raises(ValueError, match="contain infinite values"):
        predict(model, batch[2])
    with pytest.raises(ValueError, match="train_data batch .* contain NaN"):
        fit(tiny(), Items(items), epochs=1, batch_size=4, progress=False, device="cpu")


def test_nan_validation_loss_stops_fit_before_the_checkpoint(tmp_path):
    def loss(logits, target):
        value = F.cross_entropy(logits, target)
        return value if torch.is_grad_enabled() else value * float("nan")   # NaN in validation only

    path = tmp_path / "run.pt"
    with pytest.raises(FloatingPointError, match=r"validation loss is nan after epoch 1/2.*not saved"):
        fit(tiny(), Items(shapes(8)), Items(shapes(4, seed=1)), epochs=2, batch_size=4, loss=loss, progress=False,
            device="cpu", checkpoint=path)
    assert not path.exists()


# ------------------------------------------------------------------------------------------- all void

def test_all_void_batches_are_skipped_and_counted():
    items = shapes(8)
    for i in range(6):                                  # 6 of 8 items have no labelled pixel: at least 2 void batches
        items[i] = (items[i][0], torch.full_like(items[i][1], 255))
    history = fit(tiny(), Items(items), epochs=3, batch_size=2, ignore_index=255, progress=False, device="cpu")
    assert all(s >= 2 for s in history.skipped_batches) and all(s <= 3 for s in history.skipped_batches)
    assert all(torch.isfinite(torch.tensor(history.train_loss)))
    all_void = [(image, torch.full_like(mask, 255)) for image, mask in shapes(4)]
    with pytest.raises(ValueError, match="no training batch had a labelled pixel"):
        fit(tiny(), Items(all_void), epochs=1, batch_size=2, ignore_index=255, progress=False, device="cpu")
    with pytest.raises(ValueError, match="val_data has no labelled pixel"):
        fit(tiny(), Items(items), Items(all_void), epochs=1, batch_size=2, ignore_index=255, progress=False,
            device="cpu")


# ---------------------------------------------------------------------------------- shapes and dtypes

def test_items_that_cannot_be_stacked_are_named():
    model = tiny()
    base = shapes(4)
    big = SyntheticShapes(1, 40, K, seed=3)[0]
    with pytest.raises(ValueError, match=r"data items 0 and 1 differ in size: image \(3, 32, 32\) vs \(3, 40, 40\).*size="):
        evaluate(model, Items([base[0], big, base[2]]), K)
    gray = (base[1][0][:1], base[1][1])
    with pytest.raises(ValueError, match="data items 0 and 1 differ in channel count"):
        evaluate(model, Items([base[0], gray]), K)
    as_uint8 = ((base[1][0] * 255).to(torch.uint8), base[1][1])
    with pytest.raises(TypeError, match=r"data\[1\] image has dtype torch.uint8.*float.*\.float\(\) / 255"):
        evaluate(model, Items([base[0], as_uint8]), K)
    with pytest.raises(ValueError, match=r"looks like \(H, W, C\).*permute\(2, 0, 1\)"):
        evaluate(model, Items([(base[0][0].permute(1, 2, 0), base[0][1])]), K)
    with pytest.raises(ValueError, match=r"looks like \(H, W, C\)"):
        fit(model, Items([(img.permute(1, 2, 0), m) for img, m in base]), epochs=1, batch_size=2, progress=False)
    images = torch.stack([i for i, _ in base])
    with pytest.raises(ValueError, match=r"looks like \(H, W, C\).*permute\(0, 3, 1, 2\)"):
        predict(model, images.permute(0, 2, 3, 1))


def test_float64_datasets_train_like_float32_and_predict_names_the_dtype():
    base = shapes(8)
    doubles = [(image.double(), mask) for image, mask in base]
    a = fit(tiny(), Items(base), epochs=1, batch_size=4, progress=False, device="cpu")
    b = fit(tiny(), Items(doubles), epochs=1, batch_size=4, progress=False, device="cpu")
    assert a.train_loss == b.train_loss
    model = tiny()
    assert evaluate(model, Items(doubles), K).miou == evaluate(model, Items(base), K).miou
    with pytest.raises(TypeError, match=r"images of dtype torch.float64 .* weights are torch.float32.*images.float\(\)"):
        predict(model, torch.stack([i for i, _ in doubles]))


# ------------------------------------------------------------------------------------------ checkpoints

def test_unwritable_checkpoint_folder_is_refused_before_the_first_epoch(tmp_path):
    calls = []

    def loss(logits, target):
        calls.append(1)
        return F.cross_entropy(logits, target)

    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the checkpoint folder should be")
    targets = [blocker / "run.pt"]
    if os.geteuid() != 0:                       # root writes to read-only folders anyway
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        targets.append(ro / "run.pt")
    for target in targets:
        with pytest.raises(PermissionError, match="cannot write the checkpoint .* not writable"):
            fit(tiny(), Items(shapes(4)), epochs=1, batch_size=2, loss=loss, progress=False, device="cpu",
                checkpoint=target)
    assert calls == []


def test_resuming_with_other_data_of_the_same_length_is_refused(tmp_path):
    path = tmp_path / "run.pt"
    fit(tiny(), Items(shapes(8, seed=0)), epochs=1, batch_size=4, progress=False, device="cpu", checkpoint=path)
    again = fit(tiny(), Items(shapes(8, seed=0)), epochs=1, batch_size=4, progress=False, device="cpu", checkpoint=path)
    assert len(again) == 1                                   # the same data: resumed (here: already finished)
    with pytest.raises(CheckpointError, match="trained on other data: train_data has the same length"):
        fit(tiny(), Items(shapes(8, seed=1)), epochs=1, batch_size=4, progress=False, device="cpu", checkpoint=path)
