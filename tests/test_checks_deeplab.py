"""Checks of notebook 03 (segtutor.checks.deeplab): a correct atrous_conv1d passes, wrong ones fail with
expected / got / a hint; the oracle is checked against the formula written out by hand."""
import pytest
import torch

from check_helpers import failure_message
from segtutor import checks
from segtutor.checks.deeplab import atrous_conv1d_reference


def loop(x, w, r):
    n_out = len(x) - r * (len(w) - 1)
    return torch.tensor([sum(float(x[i + r * k]) * float(w[k]) for k in range(len(w))) for i in range(n_out)])


def vectorised(x, w, r):
    n_out = x.numel() - r * (w.numel() - 1)
    return sum(w[k] * x[r * k: r * k + n_out] for k in range(w.numel()))


def unfolded(x, w, r):
    span = r * (w.numel() - 1) + 1
    return x.unfold(0, span, 1)[:, ::r] @ w


def flipped(x, w, r):  # a textbook convolution: the kernel runs backwards
    return vectorised(x, w.flip(0), r)


def ignores_rate(x, w, r):  # taps next to each other, output length right
    n_out = x.numel() - r * (w.numel() - 1)
    return vectorised(x, w, 1)[:n_out]


def same_padding(x, w, r):  # pads so the output is as long as the input
    pad = r * (w.numel() - 1)
    return vectorised(torch.cat([x, x.new_zeros(pad)]), w, r)


def stub(x, w, r):
    raise NotImplementedError()


def no_return(x, w, r):
    vectorised(x, w, r)


def test_reference_matches_the_formula_by_hand():
    x = torch.arange(8.0)
    w = torch.tensor([1.0, 0.0, -1.0])
    # y[i] = x[i] - x[i + 4] = -4 for i = 0..3
    assert atrous_conv1d_reference(x, w, 2).tolist() == [-4.0, -4.0, -4.0, -4.0]
    x = torch.randn(15, dtype=torch.float64)
    w = torch.randn(4, dtype=torch.float64)
    torch.testing.assert_close(atrous_conv1d_reference(x, w, 3), loop(x, w, 3).double())


@pytest.mark.parametrize("bad, match", [
    (lambda: atrous_conv1d_reference(torch.zeros(1, 5), torch.ones(3), 1), "1-D"),
    (lambda: atrous_conv1d_reference(torch.zeros(5), torch.ones(3), 0), "positive int"),
    (lambda: atrous_conv1d_reference(torch.zeros(5), torch.ones(3), 3), "spans 7"),
])
def test_reference_refuses_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        bad()


@pytest.mark.parametrize("fn", [loop, vectorised, unfolded])
def test_correct_answers_pass(fn, capsys):
    checks.check_atrous_conv1d(fn)
    assert "passed" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint", [
    (flipped, "backwards"),
    (ignores_rate, "r = 2 samples apart"),
    (same_padding, "no padding"),
    (stub, "not done yet"),
    (no_return, "return"),
])
def test_wrong_answers_fail_with_expected_got_and_hint(fn, hint):
    text = failure_message("atrous_conv1d", checks.check_atrous_conv1d, fn)
    assert hint in text
