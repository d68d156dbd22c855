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
