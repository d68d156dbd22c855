"""Checks for the exercises of ``notebooks/01_fcn.ipynb`` (fully convolutional networks).

- :func:`check_bilinear_kernel` — ``bilinear_kernel_2d(size)``, the ``(size, size)`` tent that makes a transposed
  convolution a bilinear upsampler; the oracle is :func:`segtutor.models.fcn.bilinear_kernel`.
- :func:`check_upsample_transpose` — ``upsample_transpose(x, factor)``, bilinear upsampling written as one
  transposed convolution; the oracle is :class:`segtutor.models.BilinearUpsample`, and in the interior of the
  image also ``F.interpolate(mode="bilinear", align_corners=False)``.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from . import _as_tensor, call_student, check_close, check_shape, fail, passed

__all__ = ["check_bilinear_kernel", "check_upsample_transpose"]

_KERNEL = "bilinear_kernel_2d"
_UPSAMPLE = "upsample_transpose"
_KERNEL_FORMULA = "t(i) = 1 - |i - c| / f with f = ceil(size / 2) and centre c = (size - 1) / 2; kernel = outer(t, t)"


def _reference_kernel(size: int) -> torch.Tensor:
    from ..models.fcn import bilinear_kernel

    return bilinear_kernel(1, 1, size)[0, 0]


def _tensor(exercise: str, got: object, what: str) -> torch.Tensor:
    if got is None:
        fail(exercise, expected=what, got="None", hint="did you forget to `return` the result?")
    try:
        return _as_tensor(got)
    except (TypeError, ValueError, RuntimeError):
        fail(exercise, expected=what, got=type(got).__name__)


def check_bilinear_kernel(fn: Callable[[int], torch.Tensor]) -> None:
    """Check ``fn(size)`` -> ``float (size, size)`` bilinear kernel for sizes 1..8 against segtutor's."""
    for size in (4, 2, 8, 3, 5, 1, 6, 7):
        got = _tensor(_KERNEL, call_student(_KERNEL, fn, size), f"a float tensor of shape ({size}, {size})")
        hint = ("a 2-D kernel: the outer product of the 1-D tent with itself, torch.outer(t, t)"
                if got.ndim == 1 else "one weight per kernel position: shape (size, size)")
        check_shape(_KERNEL, got, (size, size), hint=f"size={size}: {hint}")
        if not got.is_floating_point():
            fail(_KERNEL, expected="a floating-point tensor", got=f"dtype {got.dtype}",
                 hint="weights are fractions: build the tent with torch.arange(size, dtype=torch.float32)")
        expected = _reference_kernel(size)
        hint = _KERNEL_FORMULA
        if not torch.allclose(got.double(), got.double().flip(0, 1)):
            hint = "the kernel must be symmetric (it is not): centre the tent at c = (size - 1) / 2"
        check_close(_KERNEL, got, expected, atol=1e-6, hint=f"size={size}: {hint}")
    passed(_KERNEL, "sizes 1..8 equal segtutor.models.fcn.bilinear_kernel")


def check_upsample_transpose(fn: Callable[[torch.Tensor, int], torch.Tensor]) -> None:
    """Check ``fn(x, factor)``: ``(N, C, h, w) -> (N, C, factor*h, factor*w)`` for even factors, against
    :class:`segtutor.models.BilinearUpsample` everywhere and ``F.interpolate`` away from the border."""
    from ..models import BilinearUpsample

    generator = torch.Generator().manual_seed(0)
    for factor, shape in ((2, (2, 3, 5, 7)), (4, (1, 2, 6, 4)), (8, (1, 1, 3, 3))):
        x = torch.rand(shape, generator=generator)
        n, c, h, w = shape
        out_shape = (n, c, factor * h, factor * w)
        got = _tensor(_UPSAMPLE, call_student(_UPSAMPLE, fn, x.clone(), factor), f"a tensor of shape {out_shape}")
        check_shape(_UPSAMPLE, got, out_shape,
                    hint=f"factor={factor}: the output side is (in - 1)*stride - 2*padding + kernel_size; with "
                         "kernel_size = 2*factor, stride = factor and padding = factor // 2 it is factor * in")
        with torch.no_grad():
            expected = BilinearUpsample(c, factor)(x)
        got = got.detach().float()
        inner = slice(factor // 2, -(factor // 2))
        interp = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
        if not torch.allclose(got[..., inner, inner], interp[..., inner, inner], atol=1e-5):
            hint = (f"factor={factor}: away from the border the result must equal bilinear interpolation. "
                    "Each channel is upsampled on its own: the weight (C, C, k, k) holds the kernel on its "
                    "diagonal (weight[i, i] = kernel) and zeros elsewhere, or use groups=C with weight (C, 1, k, k)")
            check_close(_UPSAMPLE, got[..., inner, inner], interp[..., inner, inner], atol=1e-5, hint=hint)
        check_close(_UPSAMPLE, got, expected, atol=1e-5,
                    hint=f"factor={factor}: at the border a transposed convolution sees zeros; use padding = "
                         "factor // 2 and no bias, nothing else")
    passed(_UPSAMPLE, "factors 2, 4 and 8 equal BilinearUpsample, and F.interpolate in the interior")


# --- exercise 3 of 01_fcn: a strided convolution as a matrix, and its transpose --------------------------------

# conv_matrix_reference(kernel, length, stride): the oracle, built by running conv1d on unit vectors.
# check_conv_matrix(fn): the check of exercise 3 (``conv_matrix``); also checks that C.T is conv_transpose1d.
__all__ += ["conv_matrix_reference", "check_conv_matrix"]

_MATRIX = "conv_matrix"


def conv_matrix_reference(kernel: torch.Tensor, length: int, stride: int = 1) -> torch.Tensor:
    """The matrix ``C`` ``(L_out, length)`` with ``C @ x == F.conv1d(x[None, None], kernel[None, None], stride=stride)``.

    ``kernel`` ``(k,)``; ``L_out = (length - k) // stride + 1`` (no padding). Built independently of any loop a
    student writes: ``conv1d`` applied to each unit vector of ``R^length`` gives one column of ``C``.
    """
    kernel = torch.as_tensor(kernel, dtype=torch.float64)
    basis = torch.eye(length, dtype=torch.float64)[:, None, :]                 # (length, 1, length)
    columns = F.conv1d(basis, kernel.view(1, 1, -1), stride=stride)[:, 0, :]     # (length, L_out)
    return columns.T.contiguous()


def _diagnose_conv_matrix(got: torch.Tensor, kernel: torch.Tensor, length: int, stride: int) -> str:
    where = f"kernel {kernel.tolist()}, length={length}, stride={stride}"
    k = kernel.numel()
    expected = conv_matrix_reference(kernel, length, stride)
    if got.shape == expected.shape[::-1] and torch.allclose(got.double(), expected.T, atol=1e-6):
        return (f"{where}: your matrix is transposed: C has one ROW per output (L_out = (length - k) // stride + 1"
                f" = {expected.shape[0]}) and one column per input; C.T is the transposed convolution")
    if got.shape != expected.shape:
        return (f"{where}: C has shape (L_out, length) with L_out = (length - k) // stride + 1 = "
                f"{expected.shape[0]} (no padding)")
    if torch.allclose(got.double(), conv_matrix_reference(kernel.flip(0), length, stride), atol=1e-6):
        return (f"{where}: your kernel is flipped: PyTorch's conv1d is a cross-correlation, "
                "y[j] = sum_i w[i] x[j*stride + i], so row j holds w[0], ..., w[k-1] in that order")
    if stride > 1:
        step1 = conv_matrix_reference(kernel, length, 1)
        if torch.allclose(got.double(), step1[: expected.shape[0]], atol=1e-6):
            return f"{where}: row j must start at column j * stride = {stride} * j, not at column j"
    for j in range(expected.shape[0]):
        if not torch.allclose(got[j].double(), expected[j], atol=1e-6):
            return (f"{where}: row {j} is wrong: it should hold the kernel in columns {j * stride}.."
                    f"{j * stride + k - 1} and zeros elsewhere")
    return where


def check_conv_matrix(fn: Callable[[torch.Tensor, int, int], torch.Tensor]) -> None:
    """Check ``fn(kernel (k,), length, stride) -> C (L_out, length)`` with ``C @ x == conv1d(x)``, against
    :func:`conv_matrix_reference`, and that ``C.T @ y`` is ``F.conv_transpose1d(y)`` (so C.T is the transposed
    convolution)."""
    generator = torch.Generator().manual_seed(0)
    cases = ((torch.tensor([1.0, 2.0, 3.0]), 7, 2), (torch.tensor([1.0, -1.0]), 6, 1),
             (torch.tensor([0.5, 1.0, 2.0, 4.0]), 10, 2), (torch.tensor([3.0, 1.0, 2.0]), 11, 3))
    for kernel, length, stride in cases:
        expected = conv_matrix_reference(kernel, length, stride)
        got = _tensor(_MATRIX, call_student(_MATRIX, fn, kernel.clone(), length, stride),
                      f"a tensor of shape {tuple(expected.shape)}")
        if got.ndim != 2:
            fail(_MATRIX, expected=f"a 2-D matrix of shape {tuple(expected.shape)}", got=f"shape {tuple(got.shape)}",
                 hint="C is (L_out, length): one row per output, one column per input")
        if got.shape != expected.shape or not torch.allclose(got.double(), expected, atol=1e-6):
            fail(_MATRIX, expected=f"C of shape {tuple(expected.shape)} with C @ x == F.conv1d(x, kernel, "
                                   f"stride={stride})",
                 got=f"shape {tuple(got.shape)}, first row {[round(v, 4) for v in got[0].double().tolist()]}",
                 hint=_diagnose_conv_matrix(got, kernel, length, stride))
        # the point of the exercise: C.T is the transposed convolution (inputs the conv never read get 0)
        y = torch.rand(expected.shape[0], dtype=torch.float64, generator=generator)
        transposed = F.conv_transpose1d(y.view(1, 1, -1), kernel.double().view(1, 1, -1), stride=stride).flatten()
        transposed = F.pad(transposed, (0, length - transposed.numel()))
        check_close(_MATRIX, got.double().T @ y, transposed, atol=1e-6,
                    hint="C.T @ y must equal F.conv_transpose1d(y, kernel, stride): C must equal the convolution")
    passed(_MATRIX, "4 kernels and strides: C @ x is conv1d(x), and C.T @ y is conv_transpose1d(y)")
