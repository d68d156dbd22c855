"""Checks for the exercise of ``notebooks/03_deeplab.ipynb`` (DeepLab, atrous convolution).

- :func:`check_atrous_conv1d` — ``atrous_conv1d(x, w, r)``: the source's formula ``y[i] = sum_k x[i + r k] w[k]``
  in one dimension, without padding (``i`` runs over the positions where every tap is inside ``x``). The
  oracle is ``torch.nn.functional.conv1d(..., dilation=r)``, which computes exactly that (PyTorch's
  "convolution" is a cross-correlation: the kernel is not flipped); :func:`atrous_conv1d_reference` wraps it.
- :func:`check_aspp` — an ``ASPP(in_channels, out_channels, rates)`` module class (DeepLab v3's, kept by v3+):
  its branches, the rates used as dilations and paddings, the output shape, and its values against
  :class:`segtutor.models.ASPP` with the same weights copied in; a failure names the likely mistake (padding 1
  with dilation r, no projection, pooling not broadcast, wrong concatenation order, ...).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from torch import nn

from .._validation import check_int
from . import CheckFailed, _as_tensor, call_student, check_close, check_shape, fail, passed

__all__ = ["atrous_conv1d_reference", "check_atrous_conv1d", "check_aspp"]

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


# ------------------------------------------------------------------------------------------------ ASPP module

_ASPP = "ASPP"
_BRANCHES_HINT = ("self.branches = nn.ModuleList([1x1 conv branch, one 3x3 atrous branch per rate, image pooling]) "
                  "and self.project = the 1x1 conv -> BN -> ReLU after the concatenation")


def _convs_and_norms(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]


def _describe_layers(layers: list[nn.Module]) -> str:
    parts = []
    for m in layers:
        if isinstance(m, nn.Conv2d):
            parts.append(f"Conv2d({m.in_channels}->{m.out_channels}, {m.kernel_size[0]}x{m.kernel_size[1]}"
                         f"{', dilation ' + str(m.dilation[0]) if m.dilation[0] > 1 else ''}"
                         f"{', bias' if m.bias is not None else ''})")
        else:
            parts.append(f"BatchNorm2d({m.num_features})")
    return "[" + ", ".join(parts) + "]" if parts else "no Conv2d or BatchNorm2d"


def _copy_layers(exercise: str, where: str, student: nn.Module, reference: nn.Module, hint: str) -> None:
    """Copy the reference's conv / BN weights into the student's matching layers (same order, same shapes)."""
    got, want = _convs_and_norms(student), _convs_and_norms(reference)
    same = len(got) == len(want) and all(
        type(g) is type(w) and (not isinstance(g, nn.Conv2d) or (g.weight.shape == w.weight.shape))
        and (not isinstance(g, nn.BatchNorm2d) or g.num_features == w.num_features) for g, w in zip(got, want))
    if not same:
        fail(exercise, expected=f"{where}: {_describe_layers(want)}", got=_describe_layers(got), hint=hint)
    with torch.no_grad():
        for g, w in zip(got, want):
            if isinstance(g, nn.Conv2d):
                g.weight.copy_(w.weight)
                if w.bias is not None and g.bias is None:
                    fail(exercise, expected=f"{where}: a 1x1 conv with a bias", got="a conv without bias (bias=False)",
                         hint="the pooling branch has no BN after its conv (BN over a 1x1 map fails on a batch of one "
                              "image), so its conv keeps its bias")
                if g.bias is not None:
                    g.bias.copy_(w.bias if w.bias is not None else torch.zeros_like(g.bias))
            else:
                for name in ("weight", "bias", "running_mean", "running_var"):
                    getattr(g, name).copy_(getattr(w, name))


def check_aspp(aspp_class: Callable[..., nn.Module]) -> None:
    """Check an ASPP module class ``aspp_class(in_channels, out_channels, rates)`` (DeepLab v3's ASPP).

    It must have ``branches`` (a 1x1 conv -> BN -> ReLU, one 3x3 atrous conv -> BN -> ReLU per rate with
    ``dilation = padding = r``, and image pooling: global average -> 1x1 conv (bias) -> ReLU, broadcast) and
    ``project`` (1x1 conv -> BN -> ReLU on the concatenation). Checked on two settings: branch count, the rates
    used as dilations and paddings, the output shape ``(N, C_out, h, w)``, and, with the weights of
    :class:`segtutor.models.ASPP` copied in, the output values in eval mode.
    """
    from ..models import ASPP  # the models import nothing from checks; imported here to keep checks light

    generator = torch.Generator().manual_seed(0)
    for c_in, c_out, rates, size in ((8, 6, (1, 2, 3), (9, 11)), (5, 4, (2, 4, 6), (13, 10))):
        where = f"{aspp_class.__name__ if hasattr(aspp_class, '__name__') else 'your class'}({c_in}, {c_out}, rates={rates})"
        student = call_student(_ASPP, aspp_class, c_in, c_out, rates)
        if not isinstance(student, nn.Module):
            fail(_ASPP, expected="an nn.Module", got=type(student).__name__,
                 hint="pass the class itself (a subclass of nn.Module), not an instance or a function")
        branches, project = getattr(student, "branches", None), getattr(student, "project", None)
        if branches is None or project is None:
            fail(_ASPP, expected="attributes `branches` and `project`",
                 got=f"branches {'missing' if branches is None else 'present'}, "
                     f"project {'missing' if project is None else 'present'}", hint=_BRANCHES_HINT)
        branches = list(branches)
        if len(branches) != len(rates) + 2:
            fail(_ASPP, expected=f"{where}: {len(rates) + 2} branches (1x1, {len(rates)} rates, image pooling)",
                 got=f"{len(branches)} branches",
                 hint="one 1x1 branch, one 3x3 atrous branch per rate and one image-pooling branch" +
                      (": did you forget image pooling or the 1x1 branch?" if len(branches) < len(rates) + 2 else ""))
        for i, r in enumerate(rates, start=1):
            convs = [m for m in branches[i].modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
            if len(convs) != 1:
                fail(_ASPP, expected=f"{where}: branch {i} (rate {r}) with one 3x3 conv",
                     got=f"{len(convs)} 3x3 convs in branch {i}", hint=_BRANCHES_HINT)
            conv = convs[0]
            if conv.dilation != (r, r):
                fail(_ASPP, expected=f"branch {i}: dilation {r}", got=f"dilation {conv.dilation[0]}",
                     hint=f"{where}: use the rate you are given as the dilation, nn.Conv2d(..., dilation=r)"
                          + (" (are the rates hard-coded?)" if conv.dilation[0] in (6, 12, 18) else ""))
            if conv.padding != (r, r):
                fail(_ASPP, expected=f"branch {i}: padding {r} with dilation {r}", got=f"padding {conv.padding[0]}",
                     hint=f"your branches use padding {conv.padding[0]} with dilation r: a 3x3 kernel at rate r reaches "
                          f"r pixels to each side, so the output shrinks by 2(r - {conv.padding[0]}); use padding=r")

        x = torch.randn(2, c_in, *size, generator=generator)
        student.eval()
        try:
            with torch.no_grad():
                got = call_student(_ASPP, student, x)
        except CheckFailed as exc:
            if "Sizes of tensors must match" in str(exc):
                fail(_ASPP, expected=f"{where}: every branch (N, {c_out}, {size[0]}, {size[1]}) before torch.cat",
                     got="branches of different sizes (torch.cat failed)",
                     hint="the image-pooling branch gives an (N, C, 1, 1) map: broadcast it back to (h, w) "
                          "with .expand(-1, -1, h, w) or F.interpolate before concatenating")
            raise
        expected_shape = (2, c_out, *size)
        if not isinstance(got, torch.Tensor):
            fail(_ASPP, expected=f"a tensor of shape {expected_shape}", got=type(got).__name__,
                 hint="forward must return the projected feature map")
        if tuple(got.shape) != expected_shape:
            hint = "ASPP keeps the spatial size (padding=r) and ends with the 1x1 projection to out_channels"
            if got.shape[1] == (len(rates) + 2) * c_out:
                hint = (f"{got.shape[1]} = {len(rates) + 2} x {c_out} channels: the concatenation was not projected; "
                        "pass it through self.project")
            fail(_ASPP, expected=f"{where}: shape {expected_shape}", got=f"shape {tuple(got.shape)}", hint=hint)

        reference = ASPP(c_in, c_out, rates)
        with torch.no_grad():
            for m in reference.modules():
                if isinstance(m, nn.BatchNorm2d):  # running statistics that are not the identity
                    m.running_mean.normal_(0, 0.5, generator=generator)
                    m.running_var.uniform_(0.5, 2.0, generator=generator)
                    m.weight.uniform_(0.5, 1.5, generator=generator)
                    m.bias.normal_(0, 0.2, generator=generator)
        reference.eval()
        names = ["the 1x1 branch", *(f"branch {i} (rate {r})" for i, r in enumerate(rates, start=1)),
                 "the image-pooling branch"]
        layer_hints = ["1x1 conv (bias=False) -> BatchNorm2d -> ReLU",
                       *["3x3 conv (dilation=r, padding=r, bias=False) -> BatchNorm2d -> ReLU"] * len(rates),
                       "global average pool -> 1x1 conv (with bias, no BN: BN over a 1x1 map fails on a batch of one image) "
                       "-> ReLU, broadcast to (h, w)"]
        for name, hint, mine, ref in zip(names, layer_hints, branches, reference.branches):
            _copy_layers(_ASPP, name, mine, ref, hint)
        _copy_layers(_ASPP, "project", project, reference.project,
                     f"a 1x1 conv from {len(rates) + 2} x out_channels to out_channels (bias=False) -> BatchNorm2d -> ReLU")
        with torch.no_grad():
            got = call_student(_ASPP, student, x)
            want = reference(x)
        if torch.allclose(got, want, atol=1e-5):
            continue
        with torch.no_grad():  # which branch differs?
            for name, hint, mine, ref in zip(names, layer_hints, branches, reference.branches):
                try:
                    mine_out = mine(x)
                except Exception:  # a branch that only works inside the student's forward: not comparable alone
                    continue
                ref_out = ref(x)
                if isinstance(mine_out, torch.Tensor) and mine_out.shape[:2] == ref_out.shape[:2]:
                    mine_out = mine_out.expand_as(ref_out) if mine_out.shape[-2:] == (1, 1) else mine_out
                    if mine_out.shape == ref_out.shape and not torch.allclose(mine_out, ref_out, atol=1e-5):
                        fail(_ASPP, expected=f"{where}: {name} equal to segtutor.models.ASPP's (same weights)",
                             got=f"{name} differs by up to {float((mine_out - ref_out).abs().max()):.3g}",
                             hint=f"{name}: {hint}")
        fail(_ASPP, expected=f"{where}: the output of segtutor.models.ASPP with the same weights",
             got=f"a difference of up to {float((got - want).abs().max()):.3g} (every branch agrees)",
             hint="concatenate the branch outputs in the order [1x1, rates in order, image pooling] along the "
                  "channels (dim=1), then apply self.project (1x1 conv -> BN -> ReLU)")
    passed(_ASPP, "2 settings: branches, dilations and paddings, output shape, and the values of "
                  "segtutor.models.ASPP with its weights copied in")
