"""Checks of notebook 04's exercises: a correct solution passes, typical mistakes fail with expected / got / hint."""
import pytest
import torch
import torch.nn.functional as F

from check_helpers import failure_message
from segtutor import checks
from segtutor.losses import dice_loss, focal_loss


# ------------------------------------------------------------------------------------------- Dice

def dice_correct(logits, target, smooth=1.0):
    p = logits.softmax(1)
    y = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2).to(p.dtype)
    inter = (p * y).sum((0, 2, 3))
    return 1 - ((2 * inter + smooth) / (p.sum((0, 2, 3)) + y.sum((0, 2, 3)) + smooth)).mean()


def dice_no_softmax(logits, target, smooth=1.0):  # raw logits used as probabilities (clamped to [0, 1])
    p = logits.clamp(0, 1)
    y = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2).float()
    return 1 - ((2 * (p * y).sum((0, 2, 3)) + smooth) / (p.sum((0, 2, 3)) + y.sum((0, 2, 3)) + smooth)).mean()


def dice_per_image(logits, target, smooth=1.0):
    p = logits.softmax(1)
    y = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2).float()
    return 1 - ((2 * (p * y).sum((2, 3)) + smooth) / (p.sum((2, 3)) + y.sum((2, 3)) + smooth)).mean()


def dice_hard(logits, target, smooth=1.0):  # argmax labels instead of probabilities (and so no gradient)
    p = F.one_hot(logits.argmax(1), logits.shape[1]).permute(0, 3, 1, 2).float()
    y = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2).float()
    return 1 - ((2 * (p * y).sum((0, 2, 3)) + smooth) / (p.sum((0, 2, 3)) + y.sum((0, 2, 3)) + smooth)).mean()


def dice_returns_float(logits, target, smooth=1.0):
    return float(dice_correct(logits, target, smooth))


def test_dice_reference_and_correct_solution_pass(capsys):
    checks.check_dice_loss(dice_correct)
    checks.check_dice_loss(dice_loss)          # the package's own function passes its own check
    assert "✓ dice loss: passed" in capsys.readouterr().out


@pytest.mark.parametrize("wrong,hint", [
    (dice_no_softmax, "softmax"),
    (dice_per_image, "sum over the batch as well"),
    (dice_hard, ""),
    (dice_returns_float, "return a tensor"),
])
def test_dice_mistakes_fail_with_expected_got_and_hint(wrong, hint):
    text = failure_message("dice loss", checks.check_dice_loss, wrong)
    assert "hint" in text
    assert hint in text


def test_dice_without_gradient_is_refused():
    def detached(logits, target, smooth=1.0):
        return dice_correct(logits, target, smooth).detach()

    with pytest.raises(checks.CheckFailed, match="requires_grad"):
        checks.check_dice_loss(detached)


def test_dice_stub_gives_a_clear_failure():
    def stub(logits, target, smooth=1.0):
        raise NotImplementedError()

    with pytest.raises(checks.CheckFailed, match="NotImplementedError"):
        checks.check_dice_loss(stub)


# ------------------------------------------------------------------------------------------ Focal

def focal_correct(logits, target, gamma=2.0):
    log_pt = F.log_softmax(logits, 1).gather(1, target[:, None]).squeeze(1)
    return (-(1 - log_pt.exp()) ** gamma * log_pt).mean()


def focal_log_of_softmax(logits, target, gamma=2.0):
    pt = logits.softmax(1).gather(1, target[:, None]).squeeze(1)
    return (-(1 - pt) ** gamma * torch.log(pt)).mean()


def focal_sum(logits, target, gamma=2.0):
    log_pt = F.log_softmax(logits, 1).gather(1, target[:, None]).squeeze(1)
    return (-(1 - log_pt.exp()) ** gamma * log_pt).sum()


def focal_no_modulation(logits, target, gamma=2.0):
    return F.cross_entropy(logits, target)


def focal_wrong_factor(logits, target, gamma=2.0):  # (p_t)^γ instead of (1 − p_t)^γ
    log_pt = F.log_softmax(logits, 1).gather(1, target[:, None]).squeeze(1)
    return (-log_pt.exp() ** gamma * log_pt).mean()


def test_focal_reference_and_correct_solution_pass(capsys):
    checks.check_focal_loss(focal_correct)
    checks.check_focal_loss(focal_loss)
    assert "✓ focal loss: passed" in capsys.readouterr().out


@pytest.mark.parametrize("wrong,hint", [
    (focal_sum, "MEAN over pixels"),          # caught already by the gamma = 0 case
    (focal_no_modulation, "(1 − p_t)**gamma is missing"),
    (focal_wrong_factor, "p_t = softmax(logits)[true class]"),
    (focal_log_of_softmax, "F.log_softmax"),
])
def test_focal_mistakes_fail_with_expected_got_and_hint(wrong, hint):
    text = failure_message("focal loss", checks.check_focal_loss, wrong)
    assert hint in text


def test_focal_sum_with_right_gamma_zero_is_named():
    def sum_unless_ce(logits, target, gamma=2.0):
        return F.cross_entropy(logits, target) if gamma == 0 else focal_sum(logits, target, gamma)

    with pytest.raises(checks.CheckFailed, match="do not sum"):
        checks.check_focal_loss(sum_unless_ce)


def test_focal_stub_gives_a_clear_failure():
    def stub(logits, target, gamma=2.0):
        raise NotImplementedError()

    with pytest.raises(checks.CheckFailed, match="not done yet"):
        checks.check_focal_loss(stub)


def test_solution_or_reference_falls_back_for_an_unfinished_exercise(capsys):
    def stub(logits, target, gamma=2.0):
        raise NotImplementedError()

    assert checks.solution_or_reference(stub, focal_loss, checks.check_focal_loss, name="focal_loss") is focal_loss
    assert "use segtutor's reference `focal_loss`" in capsys.readouterr().out
    assert checks.solution_or_reference(focal_correct, focal_loss, checks.check_focal_loss,
                                        name="focal_loss") is focal_correct


# ------------------------------------------------------------------------------ Dice with ignore_index

def _valid(target, ignore_index):
    return torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target != ignore_index


def dice_ignore_masked(logits, target, smooth=1.0, ignore_index=None):
    k, valid = logits.shape[1], _valid(target, ignore_index)
    p = logits.softmax(1) * valid[:, None]
    y = F.one_hot(target.masked_fill(~valid, 0), k).movedim(-1, 1).to(p.dtype) * valid[:, None]
    d = (0, 2, 3)
    return 1 - ((2 * (p * y).sum(d) + smooth) / (p.sum(d) + y.sum(d) + smooth)).mean()


def dice_ignore_selected(logits, target, smooth=1.0, ignore_index=None):  # select the valid pixels, (M, K)
    valid = _valid(target, ignore_index)
    p = logits.movedim(1, -1)[valid].softmax(-1)
    y = F.one_hot(target[valid], logits.shape[1]).to(p.dtype)
    return 1 - ((2 * (p * y).sum(0) + smooth) / (p.sum(0) + y.sum(0) + smooth)).mean()


def dice_ignore_p_unmasked(logits, target, smooth=1.0, ignore_index=None):  # Σ p still runs over ignored pixels
    k, valid = logits.shape[1], _valid(target, ignore_index)
    p = logits.softmax(1)
    y = F.one_hot(target.masked_fill(~valid, 0), k).movedim(-1, 1).to(p.dtype) * valid[:, None]
    d = (0, 2, 3)
    return 1 - ((2 * (p * y).sum(d) + smooth) / (p.sum(d) + y.sum(d) + smooth)).mean()


def dice_ignore_as_background(logits, target, smooth=1.0, ignore_index=None):  # void relabelled 0 and kept
    valid = _valid(target, ignore_index)
    return dice_ignore_masked(logits, target.masked_fill(~valid, 0), smooth)


def dice_ignore_unhandled(logits, target, smooth=1.0, ignore_index=None):  # one_hot(255) raises
    return dice_ignore_masked(logits, target, smooth)


def dice_ignore_no_parameter(logits, target, smooth=1.0):
    return dice_ignore_masked(logits, target, smooth)


def test_dice_ignore_oracle_agrees_with_monai():
    monai = pytest.importorskip("monai.losses")
    g = torch.Generator().manual_seed(3)
    logits, target = torch.randn(2, 3, 5, 5, generator=g), torch.randint(0, 3, (2, 5, 5), generator=g)
    target[:, 0] = 255
    # MONAI has no ignore_index: drop the void pixels by hand, as a (1, K, M, 1) "image" of the valid ones
    valid = target != 255
    z = logits.movedim(1, -1)[valid].T[None, :, :, None]
    t = target[valid][None, None, :, None]
    theirs = monai.DiceLoss(softmax=True, to_onehot_y=True, batch=True, smooth_nr=1.0, smooth_dr=1.0)(z, t)
    assert torch.allclose(dice_ignore_masked(logits, target, 1.0, 255), theirs, atol=1e-6)


@pytest.mark.parametrize("solution", [dice_ignore_masked, dice_ignore_selected])
def test_dice_ignore_correct_solutions_pass(solution, capsys):
    checks.check_dice_loss_ignore_index(solution)
    assert "✓ dice loss with ignore_index: passed" in capsys.readouterr().out


@pytest.mark.parametrize("wrong,hint", [
    (dice_ignore_p_unmasked, "ignored pixels were counted in the denominator"),
    (dice_ignore_as_background, "ignored pixels were scored as a real class"),
    (dice_ignore_unhandled, "F.one_hot cannot encode 255"),
    (dice_ignore_no_parameter, "add the parameter"),
])
def test_dice_ignore_mistakes_fail_with_expected_got_and_hint(wrong, hint):
    text = failure_message("dice loss with ignore_index", checks.check_dice_loss_ignore_index, wrong)
    assert hint in text
