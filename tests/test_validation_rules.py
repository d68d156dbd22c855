"""One rule per input (issue 11): integer arguments and the ignored label are checked the same way everywhere.

Before, six checkers disagreed: ``build_model("unet", np.int64(4))`` raised ValueError, ``ConfusionMatrix(np.int64(4))``
TypeError, ``fit(epochs=np.int64(4))`` accepted it. Now every site uses :func:`segtutor._validation.check_int` and
:func:`segtutor._validation.check_ignore_index`, which these tests pin down at each site.
"""
import re

import numpy as np
import pytest
import torch

from segtutor._validation import IntegerTypeError, check_ignore_index, check_int
from segtutor.data import SyntheticShapes
from segtutor.losses import DiceLoss, FocalLoss, dice_loss, focal_loss
from segtutor.metrics import ConfusionMatrix, boundary_band, mean_iou, pixel_accuracy
from segtutor.models import build_model
from segtutor.train import evaluate, fit, predict
from segtutor.viz import show_batch
from segtutor.widgets.dilation import layer_rates, sampling_pattern

K = 4
DATA = SyntheticShapes(4, 32, K, seed=0)
TARGET = torch.tensor([[[0, 1], [2, 3]]])
LOGITS = torch.randn(1, K, 2, 2, generator=torch.Generator().manual_seed(0))


def tiny_model():
    torch.manual_seed(0)
    return build_model("fcn32s", K, width=4)


# (argument name as the message gives it, a call that passes the value to that argument), one per checker home
SITES = {
    "train.fit epochs": ("epochs", lambda v: fit(tiny_model(), DATA, epochs=v, batch_size=2, progress=False, device="cpu")),
    "train.evaluate batch_size": ("batch_size", lambda v: evaluate(tiny_model(), DATA, K, batch_size=v)),
    "train.predict batch_size": ("batch_size", lambda v: predict(tiny_model(), DATA[0][0], batch_size=v)),
    "models num_classes": ("num_classes", lambda v: build_model("unet", v)),
    "models width": ("width", lambda v: build_model("deeplabv3plus", K, width=v)),
    "widgets.dilation layers": ("layers", lambda v: layer_rates(2, v)),
    "widgets.dilation rates": ("rates[0]", lambda v: sampling_pattern(3, (v,))),
    "data.synthetic num_samples": ("num_samples", lambda v: SyntheticShapes(v, 32)),
    "metrics num_classes": ("num_classes", lambda v: ConfusionMatrix(v)),
    "metrics functional num_classes": ("num_classes", lambda v: mean_iou(TARGET, TARGET, v)),
    "metrics width": ("width", lambda v: boundary_band(TARGET, width=v)),
    "viz n": ("n", lambda v: show_batch(torch.zeros(1, 3, 2, 2), TARGET, n=v)),
}


def expected_message(name: str, got: str) -> str:
    return (rf"^{re.escape(name)} must be a positive integer \(a Python int or a NumPy/torch integer scalar\), "
            rf"got {re.escape(got)}$")


@pytest.mark.parametrize("site", SITES)
@pytest.mark.parametrize("value, got, error", [
    (True, "True of type bool", IntegerTypeError),
    (2.0, "2.0 of type float", IntegerTypeError),
    (np.float64(2.5), "np.float64(2.5) of type float64", IntegerTypeError),
    (0, "0", ValueError),
    (-3, "-3", ValueError),
])
def test_bad_integers_are_refused_with_the_same_message_everywhere(site, value, got, error):
    name, call = SITES[site]
    with pytest.raises(error, match=expected_message(name, got)) as info:
        call(value)
    if error is IntegerTypeError:  # a TypeError, and still a ValueError for callers of the old checkers
        assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)
    else:
        assert not isinstance(info.value, TypeError)


@pytest.mark.parametrize("value", [np.int64(4), np.int32(4), torch.tensor(4), 4])
def test_check_int_accepts_integer_scalars_and_returns_a_python_int(value):
    out = check_int(value, "x")
    assert out == 4 and type(out) is int


@pytest.mark.parametrize("value", [torch.tensor([4]), torch.tensor(4.0), torch.tensor(True), np.bool_(True), "4", None])
def test_check_int_refuses_everything_else(value):
    with pytest.raises(IntegerTypeError, match=r"^x must be a positive integer"):
        check_int(value, "x")


def test_check_int_bounds():
    assert check_int(0, "seed", minimum=0) == 0
    with pytest.raises(ValueError, match=r"^seed must be a non-negative integer .* got -1$"):
        check_int(-1, "seed", minimum=0)
    assert check_int(-5, "offset", minimum=None) == -5
    with pytest.raises(ValueError, match=r"^k must be an integer >= 2 .* got 1$"):
        check_int(1, "k", minimum=2)


def test_numpy_integers_are_treated_like_python_ints_everywhere():
    torch.manual_seed(0)
    a = build_model("unet", np.int64(K), width=np.int64(4), depth=2)
    torch.manual_seed(0)
    b = build_model("unet", K, width=4, depth=2)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))

    cm_np, cm_int = ConfusionMatrix(np.int64(K), ignore_index=np.int64(255)), ConfusionMatrix(K, ignore_index=255)
    target = TARGET.clone()
    target[0, 0, 0] = 255
    cm_np.update(TARGET, target)
    cm_int.update(TARGET, target)
    assert torch.equal(cm_np.matrix, cm_int.matrix) and int(cm_np.matrix.sum()) == 3
    assert type(cm_np.num_classes) is int and type(cm_np.ignore_index) is int

    assert torch.equal(boundary_band(TARGET, width=np.int64(1)), boundary_band(TARGET, width=1))
    assert np.array_equal(sampling_pattern(np.int64(3), (np.int64(2),)), sampling_pattern(3, (2,)))
    assert layer_rates(np.int64(2), np.int64(3)) == layer_rates(2, 3)
    assert len(SyntheticShapes(np.int64(3), 32)) == 3

    runs = []
    for epochs in (np.int64(1), 1):
        torch.manual_seed(0)
        model = build_model("fcn32s", K, width=4)
        history = fit(model, DATA, epochs=epochs, batch_size=np.int64(2), seed=np.int64(0), progress=False, device="cpu")
        runs.append(history.train_loss)
    assert runs[0] == runs[1]


# ------------------------------------------------------------------------------------------ ignore_index

IGNORE_SITES = {
    "metrics.ConfusionMatrix": lambda v: ConfusionMatrix(K, ignore_index=v),
    "metrics.mean_iou": lambda v: mean_iou(TARGET, TARGET, K, ignore_index=v),
    "metrics.pixel_accuracy": lambda v: pixel_accuracy(TARGET, TARGET, ignore_index=v),
    "losses.dice_loss": lambda v: dice_loss(LOGITS, TARGET, ignore_index=v),
    "losses.focal_loss": lambda v: focal_loss(LOGITS, TARGET, ignore_index=v),
    "losses.DiceLoss": lambda v: DiceLoss(ignore_index=v),
    "losses.FocalLoss": lambda v: FocalLoss(ignore_index=v),
    "train.fit": lambda v: fit(tiny_model(), DATA, epochs=1, batch_size=2, ignore_index=v, progress=False, device="cpu"),
}


@pytest.mark.parametrize("site", IGNORE_SITES)
@pytest.mark.parametrize("value, got", [(True, "True of type bool"), (255.0, "255.0 of type float"),
                                        ("255", "'255' of type str")])
def test_a_non_integer_ignore_index_is_refused_with_the_same_message_everywhere(site, value, got):
    with pytest.raises(IntegerTypeError, match=rf"^ignore_index must be an int or None \(.*\), got {re.escape(got)}$"):
        IGNORE_SITES[site](value)


@pytest.mark.parametrize("site", ["metrics.ConfusionMatrix", "metrics.mean_iou", "train.fit"])
def test_an_ignore_index_that_is_a_class_is_refused_with_the_same_message(site):
    with pytest.raises(ValueError, match=r"^ignore_index must be an int outside the classes 0\.\.3: ignore_index=2 is "
                                         r"also a class index"):
        IGNORE_SITES[site](2)


@pytest.mark.parametrize("site", IGNORE_SITES)
def test_a_numpy_ignore_index_works_like_an_int(site):
    IGNORE_SITES[site](np.int64(255))  # no error: the same as 255
    assert check_ignore_index(np.int64(255), K) == 255 and type(check_ignore_index(np.int64(-100))) is int
    assert float(dice_loss(LOGITS, TARGET, ignore_index=np.int64(3))) == float(dice_loss(LOGITS, TARGET, ignore_index=3))
