"""segtutor.train: fit / evaluate / predict / checkpoints.

Small models (width 4) on 32-px SyntheticShapes images keep the whole file to a few seconds. Oracles:
torch's own cross-entropy and argmax, torchmetrics' Jaccard index, OneCycleLR's definition, and runs
compared with each other (same seed, interrupted vs uninterrupted).
"""
import builtins
import os
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from segtutor import train
from segtutor.data import SyntheticShapes
from segtutor.models import build_model
from segtutor.train import CheckpointError, History, evaluate, fit, load_checkpoint, predict, save_checkpoint

K = 4
SIZE = 32

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def data():
    train_set = SyntheticShapes(8, SIZE, K, seed=0)
    val_set = SyntheticShapes(4, SIZE, K, seed=1)
    return train_set, val_set


def tiny(name="unet", seed=0, **kwargs):
    torch.manual_seed(seed)
    defaults = {"width": 4, "depth": 2} if name == "unet" else {"width": 4}
    return build_model(name, K, **{**defaults, **kwargs})


def state_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class FailingDataset(Dataset):
    """Wraps a dataset and raises once its ``fail_at``-th item access is reached (a crash inside an epoch)."""

    def __init__(self, base, fail_at):
        self.base, self.fail_at, self.calls = base, fail_at, 0

    def __len__(self):
        return len(self.base)

    def __getitem__(self, index):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("simulated crash")
        return self.base[index]


class Evil:
    """Unpickling this runs code: it creates the file ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.exec, (f"open({self.marker!r}, 'w').write('pwned')",))


# ------------------------------------------------------------------------------------------------ fit

def test_fit_overfits_four_images():
    four = SyntheticShapes(4, SIZE, K, seed=3)
    model = tiny("unet", width=8)
    history = fit(model, four, epochs=100, batch_size=4, lr=3e-2, progress=False, device="cpu")
    assert history.train_loss[-1] < 0.05 and history.train_loss[0] > 1.0
    images, masks = four.tensors()
    pred = predict(model, images)
    assert (pred == masks).float().mean().item() > 0.995
    assert evaluate(model, four, K).miou > 0.98


def test_history_columns_and_oracles(data):
    train_set, val_set = data
    model = tiny()
    lr = 4e-3
    history = fit(model, train_set, val_set, epochs=2, batch_size=4, lr=lr, progress=False, device="cpu")
    assert len(history) == 2 and history.epoch == [1, 2] and history[-1] is history[1]
    # one-cycle stepped once per batch, ending at max_lr / div_factor / final_div_factor (OneCycleLR's defaults)
    assert history.lr[-1] == pytest.approx(lr / 25 / 1e4)
    assert all(s > 0 for s in history.seconds)
    # the last validation numbers are those of the final weights: compare with an independent computation
    images, masks = val_set.tensors()
    model.eval()
    with torch.no_grad():
        logits = model(images)
    assert history.val_loss[-1] == pytest.approx(F.cross_entropy(logits, masks).item(), rel=1e-5)
    from torchmetrics.classification import MulticlassJaccardIndex

    expected = MulticlassJaccardIndex(num_classes=K, average="macro")(logits.argmax(1), masks).item()
    assert history.val_miou[-1] == pytest.approx(expected, abs=1e-6)
    assert history.val_pixel_accuracy[-1] == pytest.approx((logits.argmax(1) == masks).double().mean().item())
    # plain-dict round trip (what checkpoints store)
    assert History.from_dict(history.to_dict()) == history
    assert isinstance(history[:1], History) and len(history[:1]) == 1
    with pytest.raises(AttributeError, match="columns are"):
        history.val_iou  # noqa: B018


def test_fit_without_validation_records_none(data):
    history = fit(tiny("fcn8s"), data[0], epochs=1, batch_size=4, progress=False, device="cpu")
    assert history.val_loss == [None] and history.val_miou == [None] and history.val_pixel_accuracy == [None]


def test_same_seed_same_history_and_other_seed_differs(data):
    train_set, val_set = data
    runs = []
    for seed in (0, 0, 1):
        model = tiny("fcn8s")
        h = fit(model, train_set, val_set, epochs=2, batch_size=4, progress=False, device="cpu", seed=seed)
        runs.append((h, model.state_dict()))
    (h0, s0), (h1, s1), (h2, _) = runs
    for column in ("train_loss", "val_loss", "val_miou", "val_pixel_accuracy", "lr"):
        assert getattr(h0, column) == getattr(h1, column), column
    assert state_equal(s0, s1)
    assert h0.train_loss != h2.train_loss  # the seed changes the shuffling


def test_fit_restores_mode_and_progress_bars(data, capsys):
    model = tiny("fcn8s")
    model.eval()
    fit(model, data[0], data[1], epochs=1, batch_size=4, progress=True, device="cpu")
    assert not model.training
    err = capsys.readouterr().err
    assert "epochs" in err and "val_mIoU" in err


def test_fit_makes_two_progress_bars_whatever_the_epochs(data, monkeypatch):
    # Each tqdm bar in a notebook is a new widget (kernel messages, page clutter): fit makes one bar for the
    # epochs and one batch bar that it resets each epoch, however many epochs it runs.
    import segtutor.train as train_module

    made = []
    real = train_module._progress

    def counting(enabled, **kwargs):
        bar = real(enabled, **kwargs)
        made.append(bar)
        return bar

    monkeypatch.setattr(train_module, "_progress", counting)
    fit(tiny("fcn8s"), data[0], epochs=3, batch_size=4, progress=True, device="cpu")
    assert len(made) == 2
    epochs, batches = made
    assert epochs.n == 3 and epochs.total == 3
    assert batches.total == len(data[0]) // 4 and batches.n == batches.total  # reset, then counted, per epoch
    assert batches.desc.startswith("epoch 3/3") and "loss" in batches.postfix


def test_fit_accepts_segtutor_loss_and_ignore_index(data):
    from segtutor.losses import DiceLoss

    images, masks = data[0].tensors()
    masks = masks.clone()
    masks[:, :2, :] = 255  # a void border, as in VOC
    void = TensorDataset(images, masks)
    h = fit(tiny("fcn8s"), void, void, loss=DiceLoss(ignore_index=255), ignore_index=255, epochs=1, batch_size=4,
            progress=False, device="cpu")
    assert np.isfinite(h.train_loss[0]) and 0 <= h.val_miou[0] <= 1


def test_fit_amp_on_cpu_uses_bfloat16(data):
    model = tiny("fcn8s")
    seen = []
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    handle = first_conv.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    h = fit(model, data[0], epochs=1, batch_size=4, amp=True, progress=False, device="cpu")
    handle.remove()
    assert np.isfinite(h.train_loss[0])
    assert torch.bfloat16 in seen


# ---------------------------------------------------------------------------------------- bad inputs

def test_fit_rejects_bad_arguments(data):
    model = tiny("fcn8s")
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        fit(model, data[0], epochs=0, batch_size=4, progress=False, device="cpu")
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        fit(model, data[0], epochs=1, batch_size=0, progress=False, device="cpu")
    with pytest.raises(TypeError, match="epochs must be a positive int"):
        fit(model, data[0], epochs=1.5, batch_size=4, progress=False, device="cpu")
    with pytest.raises(ValueError, match="lr must be a positive number"):
        fit(model, data[0], epochs=1, batch_size=4, lr=-1.0, progress=False, device="cpu")
    with pytest.raises(ValueError, match="unknown schedule"):
        fit(model, data[0], epochs=1, batch_size=4, schedule="cosine", progress=False, device="cpu")


def test_fit_rejects_empty_dataset():
    empty = TensorDataset(torch.zeros(0, 3, SIZE, SIZE), torch.zeros(0, SIZE, SIZE, dtype=torch.long))
    with pytest.raises(ValueError, match="train_data is empty"):
        fit(tiny("fcn8s"), empty, epochs=1, batch_size=4, progress=False, device="cpu")


def test_fit_rejects_wrong_channel_count(data):
    gray = TensorDataset(torch.rand(4, 1, SIZE, SIZE), torch.zeros(4, SIZE, SIZE, dtype=torch.long))
    with pytest.raises(ValueError, match=r"1 channel\(s\) but the model \(fcn8s\) expects in_channels=3"):
        fit(tiny("fcn8s"), gray, epochs=1, batch_size=4, progress=False, device="cpu")
    # a model without .config: the first convolution tells the expected channels
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, K, 1))
    with pytest.raises(ValueError, match="expects in_channels=3"):
        fit(net, gray, epochs=1, batch_size=4, progress=False, device="cpu")


def test_fit_rejects_labels_out_of_range_before_any_step(data):
    images, masks = data[0].tensors()
    bad = masks.clone()
    bad[0, 0, 0] = K  # label 4 with 4 classes
    model = tiny("fcn8s")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"label 4 outside the valid range 0\.\.3"):
        fit(model, TensorDataset(images, bad), epochs=1, batch_size=4, progress=False, device="cpu")
    assert state_equal(before, model.state_dict())
    void = masks.clone()
    void[0, 0, 0] = 255
    with pytest.raises(ValueError, match="ignore_index=255"):
        fit(model, TensorDataset(images, void), epochs=1, batch_size=4, progress=False, device="cpu")
    # a bad label in a later sample is caught by the per-batch check, naming the batch
    late = masks.clone()
    late[-1, 3, 3] = -1
    with pytest.raises(ValueError, match=r"train_data batch \d masks has label -1"):
        fit(model, TensorDataset(images, late), epochs=1, batch_size=4, progress=False, device="cpu", seed=5)
    with pytest.raises(ValueError, match=r"val_data\[0\] mask has label 4"):
        fit(model, data[0], TensorDataset(images, bad), epochs=1, batch_size=4, progress=False, device="cpu")


def test_fit_rejects_bad_samples_and_models(data):
    with pytest.raises(TypeError, match=r"train_data\[0\] must be an \(image, mask\) pair"):
        fit(tiny("fcn8s"), TensorDataset(torch.rand(4, 3, SIZE, SIZE)), epochs=1, batch_size=4, progress=False,
            device="cpu")
    with pytest.raises(ValueError, match=r"mask must have shape \(H, W\) = \(32, 32\)"):
        fit(tiny("fcn8s"), TensorDataset(torch.rand(4, 3, SIZE, SIZE), torch.zeros(4, 16, 16, dtype=torch.long)),
            epochs=1, batch_size=4, progress=False, device="cpu")
    with pytest.raises(ValueError, match="convert uint8 images"):
        fit(tiny("fcn8s"), TensorDataset(torch.zeros(4, 3, SIZE, SIZE, dtype=torch.uint8),
                                         torch.zeros(4, SIZE, SIZE, dtype=torch.long)),
            epochs=1, batch_size=4, progress=False, device="cpu")
    # a model that returns the wrong resolution (the source's U-Net doubles it) is caught before training
    broken = nn.Sequential(nn.Conv2d(3, K, 3, padding=1), nn.Upsample(scale_factor=2))
    with pytest.raises(ValueError, match="at the input's resolution"):
        fit(broken, data[0], epochs=1, batch_size=4, progress=False, device="cpu")
    with pytest.raises(ValueError, match="ignore_index must be an int outside the classes 0..3"):
        fit(tiny("fcn8s"), data[0], epochs=1, batch_size=4, ignore_index=0, progress=False, device="cpu")
    with pytest.raises(ValueError, match="num_classes=3 but the model"):
        fit(tiny("fcn8s"), data[0], epochs=1, batch_size=4, num_classes=3, progress=False, device="cpu")


# --------------------------------------------------------------------------------- evaluate / predict

def test_evaluate_matches_torchmetrics_with_void(data):
    from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

    _, val_set = data
    images, masks = val_set.tensors()
    masks = masks.clone()
    masks[:, :, :3] = 255
    model = tiny("fcn8s")
    model.train()
    result = evaluate(model, TensorDataset(images, masks), K, ignore_index=255, batch_size=3)
    assert model.training  # mode restored
    pred = predict(model, images)
    jaccard = MulticlassJaccardIndex(num_classes=K, average="macro", ignore_index=255)
    accuracy = MulticlassAccuracy(num_classes=K, average="micro", ignore_index=255)
    assert result.miou == pytest.approx(jaccard(pred, masks).item(), abs=1e-6)
    assert result.pixel_accuracy == pytest.approx(accuracy(pred, masks).item(), abs=1e-6)
    with pytest.raises(ValueError, match="outputs 4 class channels but num_classes=5"):
        evaluate(model, val_set, 5)


def test_predict_shapes_values_and_mode():
    model = tiny("unet")
    images = torch.rand(3, 3, SIZE + 5, SIZE)  # not a multiple of 32
    model.train()
    labels = predict(model, images, batch_size=2)
    assert model.training
    assert labels.shape == (3, SIZE + 5, SIZE) and labels.dtype == torch.int64
    model.eval()
    with torch.no_grad():
        expected = model(images).argmax(1)
    assert torch.equal(labels, expected)  # eval mode (BatchNorm running statistics), argmax over classes
    single = predict(model, images[1])
    assert not model.training
    assert single.shape == (SIZE + 5, SIZE) and torch.equal(single, expected[1])


def test_predict_rejects_bad_images():
    model = tiny("fcn8s")
    with pytest.raises(ValueError, match="expects in_channels=3"):
        predict(model, torch.rand(2, 1, SIZE, SIZE))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\) or a single \(C, H, W\)"):
        predict(model, torch.rand(SIZE, SIZE))
    with pytest.raises(TypeError, match="convert uint8 images"):
        predict(model, torch.zeros(1, 3, SIZE, SIZE, dtype=torch.uint8))
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        predict(model, np.zeros((1, 3, SIZE, SIZE), dtype=np.float32))


# ------------------------------------------------------------------------------------------ checkpoints

def test_checkpoint_round_trip(tmp_path, data):
    model = tiny("unet")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    images, masks = data[0].tensors()
    F.cross_entropy(model(images[:2]), masks[:2]).backward()
    optimizer.step()
    history = History.from_dict({"epoch": [1], "train_loss": [0.5], "val_loss": [None], "val_miou": [None],
                                 "val_pixel_accuracy": [None], "lr": [1e-3], "seconds": [0.1]})
    path = save_checkpoint(tmp_path / "run" / "ckpt.pt", model, optimizer, epoch=1, history=history, note="hello",
                           sizes=[1, 2])
    assert path.exists() and os.listdir(path.parent) == ["ckpt.pt"]

    fresh = tiny("unet", seed=123)
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=1e-3)
    assert not state_equal(fresh.state_dict(), model.state_dict())
    payload = load_checkpoint(path, fresh, fresh_opt)
    assert state_equal(fresh.state_dict(), model.state_dict())
    saved_state, loaded_state = optimizer.state_dict()["state"], fresh_opt.state_dict()["state"]
    assert saved_state.keys() == loaded_state.keys()
    assert all(torch.equal(saved_state[i]["exp_avg"], loaded_state[i]["exp_avg"]) for i in saved_state)
    assert payload["epoch"] == 1 and payload["extra"] == {"note": "hello", "sizes": [1, 2]}
    assert History.from_dict(payload["history"]) == history
    assert payload["model"]["config"] == model.config
    model.eval(), fresh.eval()
    assert torch.equal(predict(model, images), predict(fresh, images))


def test_save_checkpoint_refuses_objects_weights_only_cannot_load(tmp_path):
    path = tmp_path / "c.pt"
    with pytest.raises(TypeError, match=r"checkpoint\['extra'\]\['stats'\] is a ndarray.*weights_only"):
        save_checkpoint(path, tiny("fcn8s"), stats=np.zeros(3))
    assert not path.exists()


def test_atomic_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    first = tiny("fcn8s", seed=1)
    save_checkpoint(path, first, epoch=1)

    def half_written_then_crash(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 partial bytes")
        raise OSError("disk full")

    monkeypatch.setattr(train.torch, "save", half_written_then_crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, tiny("fcn8s", seed=2), epoch=2)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["ckpt.pt"]  # no temporary file left behind
    model = tiny("fcn8s", seed=3)
    assert load_checkpoint(path, model)["epoch"] == 1
    assert state_equal(model.state_dict(), first.state_dict())


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_malicious_checkpoint_is_refused_without_running_code(tmp_path):
    marker = tmp_path / "pwned"
    assert not marker.exists()
    pickle.loads(pickle.dumps(Evil(marker)))  # the payload is live: plain unpickling runs it
    assert marker.exists()
    marker.unlink()
    as_torch = tmp_path / "evil.pt"
    torch.save({"format": "segtutor-checkpoint", "state_dict": Evil(marker)}, as_torch)
    as_pickle = tmp_path / "evil.pkl"
    as_pickle.write_bytes(pickle.dumps({"state_dict": Evil(marker)}, protocol=2))
    for path in (as_torch, as_pickle):
        with pytest.raises(CheckpointError, match="refused to load .* can run arbitrary code"):
            load_checkpoint(path, tiny("fcn8s"))
        assert not marker.exists()
    framed = tmp_path / "evil4.pkl"  # pickle protocol 4: refused at its first unsupported opcode
    framed.write_bytes(pickle.dumps({"state_dict": Evil(marker)}, protocol=4))
    with pytest.raises(CheckpointError):
        load_checkpoint(framed, tiny("fcn8s"))
    assert not marker.exists()


def test_checkpoint_of_another_architecture_names_both(tmp_path):
    path = save_checkpoint(tmp_path / "unet.pt", tiny("unet"))
    with pytest.raises(CheckpointError, match=r"holds a unet\(.*\) model, but the model given is a fcn8s\("):
        load_checkpoint(path, tiny("fcn8s"))
    with pytest.raises(CheckpointError, match=r"width=4.*width=8"):
        load_checkpoint(path, tiny("unet", width=8))


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nothing.pt", tiny("fcn8s"))
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="is not a segtutor checkpoint"):
        load_checkpoint(text, tiny("fcn8s"))
    bare = tmp_path / "bare.pt"
    torch.save(tiny("fcn8s").state_dict(), bare)
    with pytest.raises(CheckpointError, match="not a segtutor checkpoint.*load_state_dict"):
        load_checkpoint(bare, tiny("fcn8s"))


# ----------------------------------------------------------------------------------- fit + checkpoint

def test_fit_resumes_after_interruption_with_identical_history(tmp_path, data):
    train_set, val_set = data
    epochs, batch = 3, 4
    reference_model = tiny("fcn8s")
    reference = fit(reference_model, train_set, val_set, epochs=epochs, batch_size=batch, progress=False,
                    device="cpu")

    path = tmp_path / "run.pt"
    # accesses: data[0] once for the input check, then len(train_set) per epoch; crash in the middle of epoch 2
    crashing = FailingDataset(train_set, fail_at=1 + len(train_set) + len(train_set) // 2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(tiny("fcn8s"), crashing, val_set, epochs=epochs, batch_size=batch, progress=False, device="cpu",
            checkpoint=path)
    assert load_checkpoint(path, tiny("fcn8s"))["epoch"] == 1

    resumed_model = tiny("fcn8s", seed=99)  # a new process: other initial weights, replaced by the checkpoint's
    resumed = fit(resumed_model, train_set, val_set, epochs=epochs, batch_size=batch, progress=False, device="cpu",
                  checkpoint=path)
    for column in ("epoch", "train_loss", "val_loss", "val_miou", "val_pixel_accuracy", "lr"):
        assert getattr(resumed, column) == getattr(reference, column), column
    assert state_equal(resumed_model.state_dict(), reference_model.state_dict())

    # a finished run is not trained again: the history comes back and the weights are the checkpoint's
    again_model = tiny("fcn8s", seed=7)
    again = fit(again_model, train_set, val_set, epochs=epochs, batch_size=batch, progress=False, device="cpu",
                checkpoint=path)
    assert again.train_loss == reference.train_loss
    assert state_equal(again_model.state_dict(), reference_model.state_dict())


def test_fit_refuses_to_resume_a_different_run(tmp_path, data):
    path = tmp_path / "run.pt"
    fit(tiny("fcn8s"), data[0], epochs=1, batch_size=4, progress=False, device="cpu", checkpoint=path)
    with pytest.raises(CheckpointError, match="different fit.*epochs: checkpoint 1 vs now 2"):
        fit(tiny("fcn8s"), data[0], epochs=2, batch_size=4, progress=False, device="cpu", checkpoint=path)
    with pytest.raises(CheckpointError, match=r"holds a fcn8s\(.*but the model given is a unet"):
        fit(tiny("unet"), data[0], epochs=1, batch_size=4, progress=False, device="cpu", checkpoint=path)
    plain = save_checkpoint(tmp_path / "plain.pt", tiny("fcn8s"))
    with pytest.raises(CheckpointError, match="not written by fit"):
        fit(tiny("fcn8s"), data[0], epochs=1, batch_size=4, progress=False, device="cpu", checkpoint=plain)


# ---------------------------------------------------------------------------------------------- CUDA

@cuda
@pytest.mark.cuda
def test_fit_on_cuda_uses_amp_and_channels_last(data):
    model = tiny("unet")
    seen = {}

    def record(module, inputs, output):
        seen["dtype"] = output.dtype
        seen["channels_last"] = inputs[0].is_contiguous(memory_format=torch.channels_last)

    handle = model.inc.register_forward_hook(record)
    history = fit(model, data[0], data[1], epochs=2, batch_size=4, progress=False, device="cuda")
    handle.remove()
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert seen == {"dtype": expected, "channels_last": True}
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert all(np.isfinite(history.train_loss)) and 0 <= history.val_miou[-1] <= 1
    labels = predict(model, data[1].tensors()[0])  # CPU images in, CPU labels out
    assert labels.device.type == "cpu" and labels.shape == (4, SIZE, SIZE)


@cuda
@pytest.mark.cuda
def test_fit_on_cuda_fp32_and_checkpoint_reloads_on_cpu(tmp_path, data):
    model = tiny("fcn8s")
    seen = []
    handle = model.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    path = tmp_path / "gpu.pt"
    fit(model, data[0], epochs=1, batch_size=4, amp=False, channels_last=False, progress=False, device="cuda",
        checkpoint=path)
    handle.remove()
    assert set(seen) == {torch.float32}
    on_cpu = tiny("fcn8s", seed=5)
    load_checkpoint(path, on_cpu)
    assert state_equal(on_cpu.state_dict(), {k: v.cpu() for k, v in model.state_dict().items()})
