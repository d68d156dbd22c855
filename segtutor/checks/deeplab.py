"""Checks for the exercise of ``notebooks/03_deeplab.ipynb`` (DeepLab, atrous convolution).

- :func:`check_atrous_conv1d` — ``atrous_conv1d(x, w, r)``: the source's formula ``y[i] = sum_k x[i + r k] w[k]``
  in one dimension, without padding (``i`` runs over the positions where every tap is inside ``x``). The
  oracle is ``torch.nn.functional.conv1d(..., dilation=r)``, which computes exactly that (PyTorch's
  "convolution" is a cross-correlation: the kernel is not flipped); :func:`atrous_conv1d_reference` wraps it.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .._validation import check_int
from . import _as_tensor, call_student, check_close, check_shape, fail, passed

__all__ = ["atrous_conv1d_reference", "check_atrous_conv1d"]

_EXERCISE = "atrous_conv1d"


def atrous_conv1d_reference(x: torch.Tensor, w: torch.Tensor, r: int) -> torch.Tensor:
    """``y[i] = sum_k x[i + r k] w[k]`` for 1-D ``x (N,)``, ``w (K,)``: ``(N - r (K - 1),)``, by ``F.conv1d``."""
    if x.ndim != 1 or w.ndim != 1:
        raise ValueError(f"x and w must be 1-D tensors (N,) and (K,), got shapes {tuple(x.shape)} and {tuple(w.shape)}")
    r = check_int(r, "the rate r")
    if r * (w.numel() - 1) + 1 > x.numel():
        raise ValueError(f"a kernel of {w.numel()} taps at rate {r} spans {r * (w.numel() - 1) + 1} samples, "
                         f"more than the {x.numel()} of x")
    return F.conv1d(x[None, None], w.to(x.dtype)[None, None], dilation=r)[0, 0]


def check_atrous_conv1d(fn: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]) -> None:
    """Check ``fn(x, w, r)`` for several lengths, kernels and rates against ``F.conv1d(dilation=r)``."""
    generator = torch.Generator().manual_seed(0)
    cases = [(12, torch.tensor([1.0, 0.0, -1.0]), 2), (20, None, 1), (20, None, 3), (17, None, 5),
             (9, torch.tensor([2.0]), 4), (16, None, 2)]
    for n, w, r in cases:
        if w is None:
            w = torch.randn(4 if n == 16 else 3, generator=generator)  # one even-length kernel
        x = torch.randn(n, generator=generator)
        k = w.numel()
        out_len = n - r * (k - 1)
        got = call_student(_EXERCISE, fn, x.clone(), w.clone(), r)
        if got is None:
            fail(_EXERCISE, expected=f"a tensor of shape ({out_len},)", got="None",
                 hint="did you forget to `return` y?")
        try:
            got_t = _as_tensor(got).double()
        except (TypeError, ValueError, RuntimeError):
            fail(_EXERCISE, expected=f"a tensor of shape ({out_len},)", got=type(got).__name__)
        where = f"len(x)={n}, w of {k} taps, r={r}"
        if got_t.shape == (n,):
            hint = (f"{where}: no padding here: y[i] exists only where every tap x[i + r*k] is inside x, so "
                    "len(y) = len(x) - r*(len(w) - 1)")
        else:
            hint = f"{where}: len(y) = len(x) - r*(len(w) - 1), the positions where all taps fit"
        check_shape(_EXERCISE, got_t, (out_len,), hint=hint)
        expected = atrous_conv1d_reference(x.double(), w.double(), r)
        hint = f"{where}: y[i] = sum over k of x[i + r*k] * w[k]"
        if k > 1 and torch.allclose(got_t, atrous_conv1d_reference(x.double(), w.double().flip(0), r), atol=1e-5):
            hint = (f"{where}: your kernel runs backwards (a textbook convolution flips it); the formula, like "
                    "F.conv1d, uses w[k] with x[i + r*k]")
        elif r > 1 and torch.allclose(got_t, atrous_conv1d_reference(x.double(), w.double(), 1)[:out_len], atol=1e-5):
            hint = f"{where}: the taps must be r = {r} samples apart: x[i + r*k], not x[i + k]"
        check_close(_EXERCISE, got_t, expected, atol=1e-5, hint=hint)
    passed(_EXERCISE, "6 cases (rates 1 to 5, odd and even kernels) equal F.conv1d(dilation=r)")
