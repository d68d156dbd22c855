"""Checks of notebook 01 (segtutor.checks.fcn): correct bilinear kernels and transposed-conv upsamplers pass,
wrong ones fail with expected / got / a hint. The oracles are checked independently here too."""
import math

import pytest
import torch
import torch.nn.functional as F

from check_helpers import failure_message
from segtutor import checks
from segtutor.models.fcn import bilinear_kernel


def good_kernel(size):
    f = math.ceil(size / 2)
    c = (size - 1) / 2
    t = 1 - (torch.arange(size, dtype=torch.float32) - c).abs() / f
    return torch.outer(t, t)


def loop_kernel(size):  # the formula as the FCN paper's code writes it, element by element
    f = math.ceil(size / 2)
    c = f - 1 if size % 2 == 1 else f - 0.5
    return torch.tensor([[(1 - abs(i - c) / f) * (1 - abs(j - c) / f) for j in range(size)] for i in range(size)])


def kernel_1d(size):  # the 1-D tent only
    f = math.ceil(size / 2)
    return 1 - (torch.arange(size, dtype=torch.float32) - (size - 1) / 2).abs() / f


def off_centre(size):  # centre f - 1 for every size: asymmetric for even sizes
    f = math.ceil(size / 2)
    t = 1 - (torch.arange(size, dtype=torch.float32) - (f - 1)).abs() / f
    return torch.outer(t, t)


def divided_by_size(size):
    t = 1 - (torch.arange(size, dtype=torch.float32) - (size - 1) / 2).abs() / size
    return torch.outer(t, t)


def integer_kernel(size):
    return torch.ones(size, size, dtype=torch.int64)


def stub(*args):
    raise NotImplementedError()


def good_upsample(x, factor):
    c = x.shape[1]
    weight = torch.zeros(c, c, 2 * factor, 2 * factor)
    weight[range(c), range(c)] = good_kernel(2 * factor)
    return F.conv_transpose2d(x, weight, stride=factor, padding=factor // 2)


def grouped_upsample(x, factor):
    c = x.shape[1]
    weight = good_kernel(2 * factor).expand(c, 1, 2 * factor, 2 * factor)
    return F.conv_transpose2d(x, weight, stride=factor, padding=factor // 2, groups=c)


def no_padding(x, factor):
    c = x.shape[1]
    weight = torch.zeros(c, c, 2 * factor, 2 * factor)
    weight[range(c), range(c)] = good_kernel(2 * factor)
    return F.conv_transpose2d(x, weight, stride=factor)


def mixes_channels(x, factor):  # the kernel in every (in, out) pair: sums the channels
    c = x.shape[1]
    weight = good_kernel(2 * factor).expand(c, c, 2 * factor, 2 * factor)
    return F.conv_transpose2d(x, weight, stride=factor, padding=factor // 2)


def interpolate(x, factor):  # right in the interior, wrong at the border (it repeats the edge)
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


def test_reference_kernel_is_the_textbook_formula():
    for size in range(1, 9):
        assert torch.allclose(bilinear_kernel(1, 1, size)[0, 0], loop_kernel(size))


def test_reference_kernel_as_transposed_conv_equals_interpolation_in_the_interior():
    x = torch.rand(1, 1, 6, 6, dtype=torch.float64)
    for factor in (2, 4):
        weight = bilinear_kernel(1, 1, 2 * factor).double()
        up = F.conv_transpose2d(x, weight, stride=factor, padding=factor // 2)
        ref = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
        inner = slice(factor // 2, -(factor // 2))
        assert torch.allclose(up[..., inner, inner], ref[..., inner, inner])
        assert not torch.allclose(up, ref)  # the border differs: that is why the check compares the interior


@pytest.mark.parametrize("fn", [good_kernel, loop_kernel])
def test_correct_kernels_pass(fn, capsys):
    checks.check_bilinear_kernel(fn)
    assert "✓ bilinear_kernel_2d: passed" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (kernel_1d, "outer product"),
    (off_centre, "symmetric"),
    (divided_by_size, "ceil(size / 2)"),
    (integer_kernel, "floating-point"),
])
def test_wrong_kernels_fail_with_a_hint(wrong, hint):
    text = failure_message("bilinear_kernel_2d", checks.check_bilinear_kernel, wrong)
    assert hint in text


@pytest.mark.parametrize("fn", [good_upsample, grouped_upsample])
def test_correct_upsamplers_pass(fn, capsys):
    checks.check_upsample_transpose(fn)
    assert "✓ upsample_transpose: passed" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (no_padding, "(in - 1)*stride - 2*padding + kernel_size"),
    (mixes_channels, "diagonal"),
    (interpolate, "at the border a transposed convolution sees zeros"),
])
def test_wrong_upsamplers_fail_with_a_hint(wrong, hint):
    text = failure_message("upsample_transpose", checks.check_upsample_transpose, wrong)
    assert hint in text


@pytest.mark.parametrize("check", [checks.check_bilinear_kernel, checks.check_upsample_transpose])
def test_unfinished_stub_says_so(check):
    with pytest.raises(checks.CheckFailed, match="not done yet"):
        check(stub)


# --- exercise 3: a strided convolution as a matrix (checks.check_conv_matrix) ---------------------------------

def good_matrix(kernel, length, stride):
    k = kernel.numel()
    rows = (length - k) // stride + 1
    C = torch.zeros(rows, length)
    for j in range(rows):
        C[j, j * stride: j * stride + k] = kernel
    return C


def autograd_matrix(kernel, length, stride):  # another right answer: the Jacobian of conv1d
    return torch.autograd.functional.jacobian(
        lambda x: F.conv1d(x.view(1, 1, -1), kernel.view(1, 1, -1), stride=stride).flatten(), torch.zeros(length))


def transposed_matrix(kernel, length, stride):
    return good_matrix(kernel, length, stride).T


def flipped_matrix(kernel, length, stride):  # a true convolution, not PyTorch's cross-correlation
    return good_matrix(kernel.flip(0), length, stride)


def stride_ignored(kernel, length, stride):  # rows shift by 1, not by the stride
    k = kernel.numel()
    rows = (length - k) // stride + 1
    C = torch.zeros(rows, length)
    for j in range(rows):
        C[j, j: j + k] = kernel
    return C


def one_row_short(kernel, length, stride):  # L_out off by one
    return good_matrix(kernel, length, stride)[:-1]


def vector(kernel, length, stride):
    return kernel


def test_conv_matrix_oracle_against_a_hand_written_matrix():
    expected = torch.tensor([[1.0, 2, 3, 0, 0, 0, 0], [0, 0, 1, 2, 3, 0, 0], [0, 0, 0, 0, 1, 2, 3]], dtype=torch.float64)
    assert torch.equal(checks.conv_matrix_reference(torch.tensor([1.0, 2.0, 3.0]), 7, 2), expected)
    x = torch.rand(7, dtype=torch.float64)
    assert torch.allclose(expected @ x, F.conv1d(x.view(1, 1, -1), torch.tensor([[[1.0, 2, 3]]], dtype=torch.float64),
                                                 stride=2).flatten())


@pytest.mark.parametrize("fn", [good_matrix, autograd_matrix])
def test_correct_conv_matrices_pass(fn, capsys):
    checks.check_conv_matrix(fn)
    assert "✓ conv_matrix: passed" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (transposed_matrix, "your matrix is transposed"),
    (flipped_matrix, "your kernel is flipped"),
    (stride_ignored, "row j must start at column j * stride"),
    (one_row_short, "L_out = (length - k) // stride + 1 = 3"),
    (vector, "one row per output, one column per input"),
])
def test_wrong_conv_matrices_fail_with_a_hint(wrong, hint):
    text = failure_message("conv_matrix", checks.check_conv_matrix, wrong)
    assert hint in text


def test_conv_matrix_stub_says_so():
    with pytest.raises(checks.CheckFailed, match="not done yet"):
        checks.check_conv_matrix(stub)
