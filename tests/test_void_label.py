"""The void label 255 is honoured end to end: VOC files -> dataset -> joint transforms -> losses -> metrics.

A batch from the VOC-layout look-alike (void bands along every outline, plus 255 padding from RandomCrop)
goes through a tiny model. Void pixels must contribute nothing: the gradient of every loss w.r.t. the
logits there is exactly zero, and changing the predictions (or, with a pointwise model, the image) at
void pixels changes neither the loss, nor the training step, nor the metrics. The common mistake, mapping
255 to background, is shown to fail the same checks, so the checks can fail.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from segtutor.data import VOCSegmentation, make_fake_voc
from segtutor.data import transforms as T
from segtutor.losses import CombinedLoss, DiceLoss, FocalLoss
from segtutor.metrics import ConfusionMatrix

K, VOID = 21, 255

LOSSES = {
    "cross_entropy": lambda logits, target: F.cross_entropy(logits, target, ignore_index=VOID),
    "dice": DiceLoss(ignore_index=VOID),
    "focal": FocalLoss(gamma=2.0, ignore_index=VOID),
    "ce+dice": CombinedLoss.ce_dice(0.5, ignore_index=VOID),
}


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = make_fake_voc(tmp_path_factory.mktemp("void"), n=4, image_size=24, seed=5, splits={"train": 1})
    data = VOCSegmentation(root, "train", transforms=T.Compose([T.RandomCrop(28), T.Normalize()]))
    torch.manual_seed(0)
    images, masks = next(iter(torch.utils.data.DataLoader(data, batch_size=4)))
    void = masks == VOID
    assert images.shape == (4, 3, 28, 28) and masks.dtype == torch.int64
    assert bool(void[:, 24:, :].all()) and bool(void[:, :, 24:].all()), "RandomCrop pads masks with 255"
    assert 0 < int(void[:, :24, :24].sum()) < void[:, :24, :24].numel() // 2, "void bands from the VOC masks"
    return images, masks


def tiny_model(seed: int = 0) -> nn.Module:
    """Pointwise convolutions: each output pixel sees only its own input pixel."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU(), nn.Conv2d(8, K, 1))


def scramble_void(logits: torch.Tensor, void: torch.Tensor) -> torch.Tensor:
    """Other, confident predictions at void pixels only."""
    g = torch.Generator().manual_seed(1)
    changed = logits.detach().clone()
    noise = 10 * torch.randn(changed.shape, generator=g)
    return torch.where(void[:, None], noise, changed)


@pytest.mark.parametrize("name", list(LOSSES))
def test_void_pixels_get_no_gradient(batch, name) -> None:
    images, masks = batch
    void = masks == VOID
    logits = tiny_model()(images)
    logits.retain_grad()
    LOSSES[name](logits, masks).backward()
    grad = logits.grad.movedim(1, -1)          # (N, H, W, K)
    assert bool((grad[void] == 0).all()), f"{name}: void pixels received a gradient"
    assert bool((grad[~void].abs().sum(-1) > 0).all()), f"{name}: labelled pixels must receive a gradient"


@pytest.mark.parametrize("name", list(LOSSES))
def test_predictions_at_void_pixels_change_nothing(batch, name) -> None:
    images, masks = batch
    void = masks == VOID
    logits = tiny_model()(images).detach()
    other = scramble_void(logits, void)
    assert not torch.allclose(logits, other)
    torch.testing.assert_close(LOSSES[name](other, masks), LOSSES[name](logits, masks))


def test_metrics_ignore_void(batch) -> None:
    images, masks = batch
    void = masks == VOID
    logits = tiny_model()(images).detach()
    first, second = ConfusionMatrix(K, ignore_index=VOID), ConfusionMatrix(K, ignore_index=VOID)
    first.update(logits, masks)
    second.update(scramble_void(logits, void), masks)
    assert torch.equal(first.matrix, second.matrix)
    assert int(first.matrix.sum()) == int((~void).sum()), "only labelled pixels are counted"
    a, b = first.compute(), second.compute()
    assert a.miou == b.miou and a.pixel_accuracy == b.pixel_accuracy
    # Oracle for the counts: labelled pixels only, counted by hand.
    pred, truth = logits.argmax(1)[~void], masks[~void]
    expected = torch.zeros(K, K, dtype=torch.int64)
    expected.index_put_((truth, pred), torch.ones_like(truth), accumulate=True)
    assert torch.equal(first.matrix.cpu(), expected)


def test_one_training_step_ignores_void(batch) -> None:
    """Images that differ only at void pixels give the same loss, step and metrics (pointwise model)."""
    images, masks = batch
    void = masks == VOID
    g = torch.Generator().manual_seed(2)
    other_images = torch.where(void[:, None], torch.randn(images.shape, generator=g), images)
    loss_fn = CombinedLoss([nn.CrossEntropyLoss(ignore_index=VOID), DiceLoss(ignore_index=VOID),
                            FocalLoss(ignore_index=VOID)])

    def step(x: torch.Tensor) -> tuple[float, list[torch.Tensor], torch.Tensor]:
        model = tiny_model()
        before = [p.detach().clone() for p in model.parameters()]
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        loss = loss_fn(model(x), masks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        after = [p.detach().clone() for p in model.parameters()]
        assert any(not torch.equal(b, a) for b, a in zip(before, after)), "the step must train"
        metric = ConfusionMatrix(K, ignore_index=VOID)
        with torch.no_grad():
            metric.update(model(x), masks)
        return float(loss.detach()), after, metric.matrix

    loss_a, params_a, matrix_a = step(images)
    loss_b, params_b, matrix_b = step(other_images)
    assert loss_a == pytest.approx(loss_b, rel=1e-6)
    for a, b in zip(params_a, params_b):
        torch.testing.assert_close(a, b)
    assert torch.equal(matrix_a, matrix_b)


def test_mapping_void_to_background_fails_these_checks(batch) -> None:
    """The known mistake: treating 255 as background makes void predictions count."""
    images, masks = batch
    void = masks == VOID
    wrong = masks.masked_fill(void, 0)
    logits = tiny_model()(images).detach()
    other = scramble_void(logits, void)
    assert not torch.allclose(F.cross_entropy(other, wrong), F.cross_entropy(logits, wrong))
    first, second = ConfusionMatrix(K), ConfusionMatrix(K)
    first.update(logits, wrong)
    second.update(other, wrong)
    assert not torch.equal(first.matrix, second.matrix)
    with pytest.raises(ValueError, match="pass ignore_index=255"):
        ConfusionMatrix(K).update(logits, masks)
