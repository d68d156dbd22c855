"""A catalogue of bad inputs to every public function of COURSE.md §4 (issue 12, Deliver).

Each row: an id, a call (a zero-argument lambda, so that building the row cannot fail), the exception type it
must raise and a phrase its message must contain: the message names the problem and the expected form. A row
that returned a number, hung or raised a deep-library error would fail. The faults that need a process, a
file system or a trained model have their own files: test_checkpoint_safety.py, test_train_faults.py,
test_small_int_masks.py, test_archive_safety.py, test_metrics_input_rules.py, test_checks_limits.py.
"""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from segtutor.data import CamVid, SyntheticShapes
from segtutor.data.transforms import Normalize, RandomCrop, RandomHorizontalFlip, RandomScale, Resize
from segtutor.losses import CombinedLoss, DiceLoss, FocalLoss, dice_loss, focal_loss
from segtutor.metrics import (ConfusionMatrix, SegmentationMetrics, confusion_matrix, mean_iou, per_image_miou,
                              pixel_accuracy)
from segtutor.models import build_model
from segtutor.runtime import budget, get_device, seed_everything
from segtutor.train import CheckpointError, evaluate, fit, load_checkpoint, predict, save_checkpoint
from fakes import Items

K = 4
torch.manual_seed(0)
MODEL = build_model("fcn8s", K, width=4)
DATA = SyntheticShapes(4, 32, K, seed=0)
IMAGE, MASK = DATA[0]
LOGITS = torch.randn(2, K, 8, 8)
TARGET = torch.randint(0, K, (2, 8, 8))
LABELS = torch.randint(0, K, (2, 8, 8))


def with_mask(mask, image=IMAGE):
    return Items([(image, mask), (image, mask)])


def fit_on(data, **kwargs):
    return fit(MODEL, data, **{"epochs": 1, "batch_size": 2, "progress": False, "device": "cpu", **kwargs})


def nan_at(t, index=(0,)):
    t = t.clone()
    t.view(-1)[index[0]] = float("nan")
    return t


def written(tmp_name, payload):
    import tempfile
    from pathlib import Path
    path = Path(tempfile.mkdtemp(prefix="bad_inputs_")) / tmp_name
    if isinstance(payload, bytes):
        path.write_bytes(payload)
    else:
        torch.save(payload, path)
    return path


ROWS = [
    # ----------------------------------------------------------------------------------- SyntheticShapes
    ("synthetic: negative size", lambda: SyntheticShapes(-1), ValueError, "num_samples must be a positive integer"),
    ("synthetic: float size", lambda: SyntheticShapes(4.0), TypeError, "num_samples must be a positive integer"),
    ("synthetic: tiny images", lambda: SyntheticShapes(4, image_size=8), ValueError, "at least 16 pixels"),
    ("synthetic: too many classes", lambda: SyntheticShapes(4, num_classes=99), ValueError, "num_classes must be an int in 2..8"),
    ("synthetic: index past the end", lambda: SyntheticShapes(4)[10], IndexError, "out of range for a dataset of 4"),
    # ---------------------------------------------------------------------------------------------- CamVid
    ("CamVid: missing folder", lambda: CamVid("/nonexistent/camvid"), FileNotFoundError, "no CamVid folder (with train/"),
    ("CamVid: unknown split", lambda: CamVid("/nonexistent", split="dev"), ValueError, "expected one of train, val, test"),
    ("CamVid: zero size", lambda: CamVid("/nonexistent", size=0), ValueError, "size must be positive"),
    ("CamVid: size not ints", lambda: CamVid("/nonexistent", size=(10, "a")), TypeError, "a pair of ints (H, W)"),
    # ----------------------------------------------------------------------------------------- build_model
    ("build_model: unknown name", lambda: build_model("segnet", K), ValueError, "expected one of fcn32s"),
    ("build_model: float classes", lambda: build_model("unet", 4.0), TypeError, "num_classes must be a positive integer"),
    ("build_model: zero channels", lambda: build_model("unet", K, in_channels=0), ValueError, "in_channels must be a positive"),
    ("build_model: huge num_classes", lambda: build_model("unet", 10**9), ValueError, "is more than 10000"),
    # -------------------------------------------------------------------------------------------- losses
    ("dice: labels as floats", lambda: dice_loss(LOGITS, TARGET.float()), TypeError, "integer class labels"),
    ("dice: label out of range", lambda: dice_loss(LOGITS, TARGET + K), ValueError, "outside the valid range 0..3"),
    ("dice: NaN logits", lambda: dice_loss(nan_at(LOGITS), TARGET), ValueError, "contain NaN values"),
    ("dice: shapes differ", lambda: dice_loss(LOGITS, TARGET[:, :4]), ValueError, "does not match target"),
    ("dice: negative smooth", lambda: dice_loss(LOGITS, TARGET, smooth=-1.0), ValueError, "smooth must be finite and ≥ 0"),
    ("dice: one class channel", lambda: dice_loss(LOGITS[:, :1], TARGET.clamp(max=0)), ValueError, "K ≥ 2 class channels"),
    ("dice: weights of wrong length", lambda: dice_loss(LOGITS, TARGET, weight=[1.0, 2.0]), ValueError, "one weight per class"),
    ("focal: 3-D logits", lambda: focal_loss(LOGITS[0], TARGET), ValueError, "shape (N, K, H, W)"),
    ("focal: negative gamma", lambda: focal_loss(LOGITS, TARGET, gamma=-1.0), ValueError, "gamma must be finite and ≥ 0"),
    ("focal: uint8 255 with ignore -1", lambda: focal_loss(LOGITS, torch.full((2, 8, 8), 255, dtype=torch.uint8),
                                                           ignore_index=-1), ValueError, "label 255 outside"),
    ("focal: float ignore_index", lambda: focal_loss(LOGITS, TARGET, ignore_index=2.5), TypeError, "ignore_index must be an int or None"),
    ("FocalLoss: string gamma", lambda: FocalLoss(gamma="2"), TypeError, "gamma must be a number"),
    ("DiceLoss: negative weight", lambda: DiceLoss(weight=[1.0, -1.0, 1.0, 1.0]), ValueError, "non-negative per-class weights"),
    ("DiceLoss: weights as text", lambda: DiceLoss(weight="abc"), TypeError, "per-class weights (numbers)"),
    ("CombinedLoss: weights mismatch", lambda: CombinedLoss([DiceLoss()], [1.0, 2.0]), ValueError, "one weight per loss"),
    ("CombinedLoss.ce_dice: mix > 1", lambda: CombinedLoss.ce_dice(1.5), ValueError, "mix must be in [0, 1]"),
    # ------------------------------------------------------------------------------------------- metrics
    ("ConfusionMatrix: zero classes", lambda: ConfusionMatrix(0), ValueError, "num_classes must be a positive integer"),
    ("ConfusionMatrix: huge classes", lambda: ConfusionMatrix(10**6), ValueError, "(K, K) confusion matrix alone would take"),
    ("ConfusionMatrix: unknown device", lambda: ConfusionMatrix(K, device="tpu"), ValueError, "such as 'cpu' or 'cuda'"),
    ("ConfusionMatrix: ignore is a class", lambda: ConfusionMatrix(K, ignore_index=1), ValueError, "is also a class index"),
    ("ConfusionMatrix.update: label out of range", lambda: ConfusionMatrix(K).update(LABELS, TARGET + 10), ValueError,
     "outside the valid range 0..3"),
    ("ConfusionMatrix.update: wrong score channels", lambda: ConfusionMatrix(K).update(torch.randn(2, 3, 8, 8), TARGET),
     ValueError, "expected shape (N, 4, H, W)"),
    ("ConfusionMatrix.update: float labels", lambda: ConfusionMatrix(K).update(LABELS.float(), TARGET), TypeError,
     "labels must be integers"),
    ("confusion_matrix: uint8 255, ignore -1", lambda: confusion_matrix(LABELS, torch.full((2, 8, 8), 255, dtype=torch.uint8),
                                                                         K, ignore_index=-1), ValueError, "label 255 outside"),
    ("confusion_matrix: uint8 156, ignore -100", lambda: confusion_matrix(LABELS, torch.full((2, 8, 8), 156, dtype=torch.uint8),
                                                                           K, ignore_index=-100), ValueError, "label 156 outside"),
    ("confusion_matrix: NaN scores", lambda: confusion_matrix(nan_at(LOGITS), TARGET, K), ValueError, "contain NaN"),
    ("confusion_matrix: list input", lambda: confusion_matrix([[0, 1]], TARGET, K), TypeError, "must be a torch.Tensor"),
    ("confusion_matrix: 255 without ignore_index", lambda: confusion_matrix(LABELS, TARGET.masked_fill(TARGET == 0, 255), K),
     ValueError, "pass ignore_index=255"),
    ("mean_iou: shapes differ", lambda: mean_iou(LABELS, TARGET[:1], K), ValueError, "does not match target"),
    ("pixel_accuracy: negative labels", lambda: pixel_accuracy(LABELS, TARGET - 1), ValueError, "label -1"),
    ("per_image_miou: bool target", lambda: per_image_miou(LABELS, TARGET.bool(), K), TypeError, "integer class labels"),
    ("from_confusion: normalised matrix", lambda: SegmentationMetrics.from_confusion(torch.full((K, K), 1 / K**2)),
     ValueError, "looks normalised"),
    ("from_confusion: negative counts", lambda: SegmentationMetrics.from_confusion(-torch.eye(K)), ValueError,
     "negative entries"),
    ("from_confusion: not square", lambda: SegmentationMetrics.from_confusion(torch.zeros(2, 3)), ValueError, "(K, K)"),
    # -------------------------------------------------------------------------------------------- fit
    ("fit: zero epochs", lambda: fit_on(DATA, epochs=0), ValueError, "epochs must be a positive integer"),
    ("fit: float batch", lambda: fit_on(DATA, batch_size=2.0), TypeError, "batch_size must be a positive integer"),
    ("fit: NaN lr", lambda: fit_on(DATA, lr=float("nan")), ValueError, "lr must be a positive number"),
    ("fit: a DataLoader", lambda: fit_on(torch.utils.data.DataLoader(DATA)), TypeError, "not a DataLoader"),
    ("fit: empty data", lambda: fit_on(Items([])), ValueError, "is empty"),
    ("fit: not pairs", lambda: fit_on(Items([IMAGE, IMAGE])), TypeError, "must be an (image, mask) pair"),
    ("fit: wrong channels", lambda: fit_on(Items([(IMAGE[:1], MASK)] * 2)), ValueError, "expects in_channels=3"),
    ("fit: uint8 images", lambda: fit_on(Items([((IMAGE * 255).byte(), MASK)] * 2)), ValueError, ".float() / 255"),
    ("fit: (H, W, C) images", lambda: fit_on(Items([(IMAGE.permute(1, 2, 0), MASK)] * 2)), ValueError,
     "this looks like (H, W, C) (the PIL/NumPy order): use image.permute(2, 0, 1)"),
    ("fit: mask of other size", lambda: fit_on(with_mask(MASK[:16])), ValueError, "mask must have shape (H, W) = (32, 32)"),
    ("fit: label 255 without ignore_index", lambda: fit_on(with_mask(MASK.masked_fill(MASK == 0, 255))), ValueError,
     "pass ignore_index=255"),
    ("fit: uint8 255 with ignore -1", lambda: fit_on(with_mask(MASK.to(torch.uint8).masked_fill(MASK == 0, 255)),
                                                     ignore_index=-1), ValueError, "label 255 outside"),
    ("fit: uint8 156 with ignore -100", lambda: fit_on(with_mask(MASK.to(torch.uint8).masked_fill(MASK == 0, 156)),
                                                       ignore_index=-100), ValueError, "label 156 outside"),
    ("fit: sizes differ", lambda: fit_on(Items([DATA[0], SyntheticShapes(1, 48, K)[0]])), ValueError, "differ in size"),
    ("fit: uint8 after floats", lambda: fit_on(Items([DATA[0], ((IMAGE * 255).byte(), MASK)])), TypeError,
     "image has dtype torch.uint8"),
    ("fit: ignore_index is a class", lambda: fit_on(DATA, ignore_index=0), ValueError, "is also a class index"),
    ("fit: wrong num_classes", lambda: fit_on(DATA, num_classes=5), ValueError, "outputs 4 class channels"),
    ("fit: NaN weight_decay", lambda: fit_on(DATA, weight_decay=float("nan")), ValueError, "weight_decay must be a finite"),
    ("fit: loss not a scalar", lambda: fit_on(DATA, loss=lambda a, b: a.mean((1, 2, 3))), TypeError,
     "the loss must return a scalar tensor"),
    ("fit: later item not a pair", lambda: fit_on(Items([DATA[0], DATA[1], "x", DATA[3]])), TypeError,
     "must be an (image, mask) pair of tensors"),
    ("fit: unknown schedule", lambda: fit_on(DATA, schedule="cosine"), ValueError, "expected 'onecycle', 'poly'"),
    ("fit: unknown device", lambda: fit_on(DATA, device="tpu"), ValueError, "expected 'cpu', 'cuda'"),
    ("fit: negative seed", lambda: fit_on(DATA, seed=-1), ValueError, "seed must be a non-negative integer"),
    ("fit: model is not a module", lambda: fit(lambda x: x, DATA, epochs=1, batch_size=2), TypeError,
     "must be a torch.nn.Module"),
    ("fit: checkpoint is a folder", lambda: fit_on(DATA, checkpoint=written("x", b"").parent), IsADirectoryError,
     "is a directory"),
    # -------------------------------------------------------------------------------------------- evaluate
    ("evaluate: float num_classes", lambda: evaluate(MODEL, DATA, 4.0), TypeError, "num_classes must be a positive"),
    ("evaluate: huge num_classes", lambda: evaluate(MODEL, DATA, 10**5), ValueError, "is more than 10000"),
    ("evaluate: ignore is a class", lambda: evaluate(MODEL, DATA, K, ignore_index=2), ValueError, "also a class index"),
    ("evaluate: NaN images", lambda: evaluate(MODEL, Items([(nan_at(IMAGE), MASK)] * 2), K), ValueError, "contain NaN"),
    ("evaluate: channels differ", lambda: evaluate(MODEL, Items([DATA[0], (IMAGE[:1], MASK)]), K), ValueError,
     "differ in channel count"),
    ("evaluate: float64 model", lambda: evaluate(build_model("fcn8s", K, width=4).double(), DATA, K), TypeError,
     "weights are torch.float64"),
    # -------------------------------------------------------------------------------------------- predict
    ("predict: a list", lambda: predict(MODEL, [IMAGE]), TypeError, "must be a torch.Tensor of shape (N, C, H, W)"),
    ("predict: 2-D image", lambda: predict(MODEL, IMAGE[0]), ValueError, "(N, C, H, W) or a single (C, H, W)"),
    ("predict: uint8", lambda: predict(MODEL, (IMAGE * 255).byte()), TypeError, ".float() / 255"),
    ("predict: NaN", lambda: predict(MODEL, nan_at(IMAGE)), ValueError, "contain NaN"),
    ("predict: float64", lambda: predict(MODEL, IMAGE.double()), TypeError, "images of dtype torch.float64"),
    ("predict: (N, H, W, C)", lambda: predict(MODEL, IMAGE.permute(1, 2, 0)[None]), ValueError, "looks like (H, W, C)"),
    ("predict: zero batch_size", lambda: predict(MODEL, IMAGE, batch_size=0), ValueError, "batch_size must be a positive"),
    # ------------------------------------------------------------------------------------------ checkpoints
    ("save_checkpoint: NumPy extra", lambda: save_checkpoint(written("x", b"").parent / "c.pt", MODEL, stats=np.ones(2)),
     TypeError, "use .tolist()"),
    ("save_checkpoint: full disk", None, OSError, "disk may be full"),  # in test_checkpoint_safety.py (needs monkeypatch)
    ("load_checkpoint: missing file", lambda: load_checkpoint("/nonexistent/ckpt.pt", MODEL), FileNotFoundError,
     "no checkpoint at"),
    ("load_checkpoint: text file", lambda: load_checkpoint(written("t.pt", b"hello"), MODEL), CheckpointError,
     "may be corrupt"),
    ("load_checkpoint: bare state_dict", lambda: load_checkpoint(written("s.pt", MODEL.state_dict()), MODEL),
     CheckpointError, "model.load_state_dict"),
    ("load_checkpoint: no state_dict", lambda: load_checkpoint(written("n.pt", {"format": "segtutor-checkpoint"}), MODEL),
     CheckpointError, "no 'state_dict' entry"),
    ("load_checkpoint: unsafe pickle", lambda: load_checkpoint(written("p.pt", pickle.dumps({"a": Items}, protocol=2)),
                                                               MODEL), CheckpointError, "refused to load"),
    ("load_checkpoint: other architecture", lambda: load_checkpoint(save_checkpoint(written("x", b"").parent / "u.pt",
                                                                                    build_model("unet", K, width=4)), MODEL),
     CheckpointError, "holds a unet("),
    # ------------------------------------------------------------------------------------------- transforms
    ("RandomCrop: fill outside uint8", lambda: RandomCrop(40, ignore_index=-1)(IMAGE, MASK.to(torch.uint8)), ValueError,
     "cannot hold (range 0..255)"),
    ("RandomCrop: float fill", lambda: RandomCrop(8, ignore_index=2.5), TypeError, "ignore_index must be an integer"),
    ("RandomCrop: zero size", lambda: RandomCrop(0), ValueError, "must be positive"),
    ("RandomScale: inverted range", lambda: RandomScale(2.0, 1.0), ValueError, "0 < min_scale <= max_scale"),
    ("RandomHorizontalFlip: p > 1", lambda: RandomHorizontalFlip(2.0), ValueError, "a probability in [0, 1]"),
    ("Normalize: zero std", lambda: Normalize(std=(0.0, 1.0, 1.0)), ValueError, "std must be finite and positive"),
    ("Resize: float mask", lambda: Resize(16)(IMAGE, MASK.float()), ValueError, "mask must be an integer label tensor"),
    # --------------------------------------------------------------------------------------------- runtime
    ("budget: an int", lambda: budget(5), TypeError, "budget name must be a string"),
    ("budget: unknown name", lambda: budget("huge"), ValueError, "expected one of ci, cpu, gpu"),
    ("get_device: unknown", lambda: get_device("gpu0"), ValueError, "unknown device"),
    ("get_device: a number", lambda: get_device(0), ValueError, "unknown device"),
    ("seed_everything: 2**70", lambda: seed_everything(2**70), ValueError, "seed must be an integer in [-2**63, 2**64)"),
    ("seed_everything: a float", lambda: seed_everything(1.5), TypeError, "seed must be an integer"),
    ("seed_everything: a string", lambda: seed_everything("0"), TypeError, "seed must be an integer"),
]


@pytest.mark.parametrize("call,error,phrase", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input_gets_a_clear_error(call, error, phrase):
    if call is None:
        pytest.skip("covered where it needs a fixture (see the row's comment)")
    with pytest.raises(error) as info:
        call()
    assert phrase in str(info.value), f"message lacks {phrase!r}: {info.value}"


def test_catalogue_covers_every_public_function_of_the_contract():
    covered = {r[0].split(":")[0].split(".")[0] for r in ROWS}
    contract = {"synthetic", "build_model", "dice", "focal", "FocalLoss", "DiceLoss", "CombinedLoss", "ConfusionMatrix",
                "confusion_matrix", "mean_iou", "pixel_accuracy", "per_image_miou", "from_confusion", "fit", "evaluate",
                "predict", "save_checkpoint", "load_checkpoint", "budget", "get_device", "seed_everything", "RandomCrop",
                "CamVid"}
    assert contract <= covered, contract - covered
