"""Receptive fields, computed two ways: by the layer formula and by back-propagating from one output pixel.

Taught in ``03_deeplab.ipynb`` (receptive field vs parameters; why atrous convolution widens the view of a
3x3 kernel for free; gridding), with the dilation widget of :mod:`segtutor.widgets`.

Analytic: a layer with kernel ``k``, stride ``s`` and dilation ``d`` spans ``k_eff = d (k - 1) + 1`` of its
input's positions, and one input position is ``j`` pixels apart, ``j`` the product of the strides before
it. Layer by layer::

    r_out = r_in + (k_eff - 1) * j_in        j_out = j_in * s        (r_0 = 1, j_0 = 1)

Empirical: the gradient of one output pixel with respect to the input is nonzero exactly on the pixels that
pixel can see. :func:`empirical_receptive_field` measures that support on a copy of the model in which no
path is switched off, and also returns the gradient magnitude of the real model, whose mass concentrates
in the middle: the *effective* receptive field (Luo et al., 2016) is much smaller than the theoretical one.

Inside the field: a ``k x k`` convolution at rate ``r`` reads the input at offsets ``r * (-(k-1)/2 .. (k-1)/2)``
along each axis. Stacking layers composes those offsets, so one output pixel of a stack with rates
``r_1 .. r_L`` depends on input pixel ``p`` through as many paths as there are ways to write ``p`` as a sum
of one tap per layer. :func:`sampling_pattern` counts them (the full convolution of the layers' dilated
ones-kernels, i.e. the gradient of the centre output of a stack of all-ones convolutions) and
:func:`dilation_stats` summarises it; zeros inside the field are the pixels a gridded stack never reads.
The dilation widget (:mod:`segtutor.widgets.dilation`) draws them.

When is the box filled? Along one axis the pattern is the set of sums of one tap per layer, which does not
depend on the order of the layers. Sort the rates; if the layers so far read every one of their ``R``
positions, a next layer at rate ``r`` adds copies shifted by multiples of ``r``, and they join up exactly when
``r <= R``. :func:`gap_free` applies that rule layer by layer (``(1, 2, 5)``: 1 <= 1, 2 <= 3, 5 <= 7;
``(1, 3, 9)``: 1, 3 <= 3, 9 <= 9). :func:`hdc_max_distance` is the design rule of "hybrid dilated
convolution" (Wang et al., 2018, "Understanding Convolution for Semantic Segmentation"): rates without a
common factor > 1 and ``M_2 <= k``, with ``M_n = r_n``, ``M_i = max(M_{i+1} - 2 r_i, M_{i+1} - 2 (M_{i+1} - r_i), r_i)``.
A common factor alone decides nothing: ``(1, 5, 9)`` has none and reads 55 % of its box.
"""
from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Mapping
from typing import Any, Iterable, NamedTuple, Sequence, Union

import numpy as np
import torch
from torch import nn

from ._validation import check_int, is_int

__all__ = ["LayerSpec", "TraceRow", "receptive_field_trace", "analytic_receptive_field", "layers_from_module",
           "empirical_receptive_field", "DilationStats", "sampling_pattern", "dilation_stats", "gap_free",
           "hdc_max_distance", "hdc_rule"]


class LayerSpec(NamedTuple):
    """One spatial layer: ``kernel`` size, ``stride`` and ``dilation`` (square, along one axis)."""

    kernel: int
    stride: int = 1
    dilation: int = 1

    @property
    def effective_kernel(self) -> int:
        """The span ``d (k - 1) + 1`` of the kernel on its input."""
        return self.dilation * (self.kernel - 1) + 1


class TraceRow(NamedTuple):
    """The receptive field after one layer: ``size`` in input pixels, ``jump`` = input pixels between outputs."""

    layer: LayerSpec
    jump: int
    size: int


LayerLike = Union[LayerSpec, Sequence[int], nn.Module]


def _as_spec(layer: Sequence[int], index: int) -> LayerSpec:
    values = tuple(layer)
    if not 1 <= len(values) <= 3 or any(not is_int(v) or v < 1 for v in values):
        raise ValueError(f"layer {index} must be (kernel, stride, dilation) with positive integers "
                         f"(stride and dilation optional, default 1), got {layer!r}")
    return LayerSpec(*(int(v) for v in values))


def _as_specs(layers: Iterable[LayerLike] | nn.Module) -> list[LayerSpec]:
    if isinstance(layers, nn.Module):
        return layers_from_module(layers)
    specs: list[LayerSpec] = []
    for i, layer in enumerate(layers):
        if isinstance(layer, nn.Module):
            specs.extend(layers_from_module(layer))
        elif isinstance(layer, (tuple, list, LayerSpec)):
            specs.append(_as_spec(layer, i))
        else:
            raise TypeError(f"layer {i} must be a (kernel, stride, dilation) tuple or an nn.Module, "
                            f"got {type(layer).__name__}")
    return specs


def receptive_field_trace(layers: Iterable[LayerLike] | nn.Module) -> list[TraceRow]:
    """The receptive field after each layer of a chain.

    ``layers``: ``(kernel, stride, dilation)`` tuples (stride and dilation may be left out), or modules
    (see :func:`layers_from_module`). Returns one :class:`TraceRow` per spatial layer, in order.
    """
    rows, size, jump = [], 1, 1
    for spec in _as_specs(layers):
        size += (spec.effective_kernel - 1) * jump
        jump *= spec.stride
        rows.append(TraceRow(spec, jump, size))
    return rows


def analytic_receptive_field(layers: Iterable[LayerLike] | nn.Module) -> int:
    """Side, in input pixels, of the receptive field of one output of a chain of layers (1 for no layer).

    >>> analytic_receptive_field([(3, 1, 1), (3, 1, 1)])   # two 3x3 convs
    5
    >>> analytic_receptive_field([(3, 1, 4)])              # one 3x3 conv at rate 4: 2 * 4 + 1
    9
    >>> analytic_receptive_field([(3, 2), (3,)])           # a stride-2 conv, then a 3x3 conv
    7
    """
    rows = receptive_field_trace(layers)
    return rows[-1].size if rows else 1


# Layers that act on each pixel on its own: they leave the receptive field as it is.
_POINTWISE = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.Identity, nn.Dropout, nn.Dropout2d,
              nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardtanh,
              nn.Softmax, nn.LogSoftmax)


def _pair(value: int | tuple[int, ...], what: str, module: nn.Module) -> int:
    if isinstance(value, int):
        return value
    if len(set(value)) != 1:
        raise ValueError(f"{type(module).__name__} has a non-square {what} {value}: the analytic receptive field "
                         "here is for square layers; pass (kernel, stride, dilation) per axis yourself")
    return int(value[0])


def layers_from_module(module: nn.Module) -> list[LayerSpec]:
    """The ``(kernel, stride, dilation)`` chain of a module, where it is a chain.

    Understood: ``nn.Conv2d``, ``nn.MaxPool2d``, ``nn.AvgPool2d``, pointwise layers (BatchNorm, ReLU, Dropout, …,
    which are skipped), ``nn.Sequential`` (read in order) and any module with a ``receptive_field_path()``
    method returning the modules on its widest path in order (the course's ResNet and its residual blocks,
    whose 1x1 shortcut never widens the field). Anything else raises: a module with a forward of its own may
    branch (ASPP runs its rates side by side), and reading its layers in order would give a wrong number.
    """
    if isinstance(module, nn.Conv2d):
        return [LayerSpec(_pair(module.kernel_size, "kernel", module), _pair(module.stride, "stride", module),
                          _pair(module.dilation, "dilation", module))]
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        dilation = getattr(module, "dilation", 1)
        return [LayerSpec(_pair(module.kernel_size, "kernel", module),
                          _pair(module.stride if module.stride is not None else module.kernel_size, "stride", module),
                          _pair(dilation, "dilation", module))]
    if isinstance(module, _POINTWISE):
        return []
    path = getattr(module, "receptive_field_path", None)
    children = list(path()) if callable(path) else list(module) if isinstance(module, nn.Sequential) else None
    if children is None:
        raise ValueError(f"cannot read a chain of layers from {type(module).__name__}: it is not an nn.Sequential, a "
                         "Conv2d/MaxPool2d/AvgPool2d or a pointwise layer, and has no receptive_field_path(); "
                         "pass its (kernel, stride, dilation) list instead")
    return [spec for child in children for spec in layers_from_module(child)]


def _linearized(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in which no path can be switched off: activations -> identity, max-pool -> avg-pool."""
    model = copy.deepcopy(model)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Hardtanh)):
                setattr(parent, name, nn.Identity())
            elif isinstance(child, nn.MaxPool2d):
                if _pair(child.dilation, "dilation", child) != 1:
                    raise ValueError("a dilated MaxPool2d has no average-pool twin; measure this model without linearize")
                setattr(parent, name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding, child.ceil_mode))
    return model


def _centre_gradient(model: nn.Module, x: torch.Tensor, channel: int | None) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    out = model(x)
    if isinstance(out, Mapping):  # a backbone returning named feature maps: take the last (deepest) one
        out = list(out.values())[-1]
    if not isinstance(out, torch.Tensor) or out.ndim != 4:
        raise ValueError(f"the model must return a map of shape (N, C, H', W'), got {getattr(out, 'shape', type(out))}")
    if channel is not None and not 0 <= channel < out.shape[1]:
        raise ValueError(f"channel={channel} is out of range for an output with {out.shape[1]} channels")
    centre = out[0, :, out.shape[2] // 2, out.shape[3] // 2]
    (centre.sum() if channel is None else centre[channel]).backward()
    return x.grad[0].abs().sum(dim=0)


def empirical_receptive_field(model: nn.Module, input_size: int | tuple[int, int], in_channels: int = 3,
                              channel: int | None = None, *, samples: int = 4, linearize: bool = True,
                              seed: int = 0) -> tuple[int | tuple[int, int], torch.Tensor]:
    """Measure a model's receptive field from the input gradient of its centre output pixel.

    The model (a copy: the original is left untouched) runs in eval mode and double precision on inputs
    ``(1, in_channels, H, W)``, ``input_size = H`` or ``(H, W)``; ``channel`` picks one output channel
    (``None``: their sum). The model may return a tensor ``(N, C, H', W')`` or a dict of them (the last is used).

    Returns ``(size, gradient_map)``:

    - ``size``: side of the box around the pixels whose gradient is nonzero, i.e. the theoretical
      receptive field (an ``(h, w)`` pair when the two differ). With ``linearize=True`` it is measured on a
      copy with activations replaced by the identity and max-pools by average-pools, so that no ReLU or pool
      hides a pixel the output depends on for some input (with ``linearize=False`` it is a lower bound).
      A warning says when the box reaches the border of the input (the field is then larger than measured).
    - ``gradient_map``: ``float32 (H, W)``, ``|d y / d x|`` of the real model summed over input channels and
      averaged over ``samples`` random inputs: the effective receptive field, for plotting.
    """
    size_hw = (input_size, input_size) if is_int(input_size) else tuple(input_size)
    if len(size_hw) != 2 or any(not is_int(v) or v < 1 for v in size_hw):
        raise ValueError(f"input_size must be a positive int or an (H, W) pair, got {input_size!r}")
    size_hw = tuple(int(v) for v in size_hw)
    in_channels = check_int(in_channels, "in_channels")
    samples = check_int(samples, "samples")
    generator = torch.Generator().manual_seed(seed)
    inputs = [torch.rand(1, in_channels, *size_hw, generator=generator, dtype=torch.float64) for _ in range(samples)]

    real = copy.deepcopy(model).double().eval()
    gradient = torch.stack([_centre_gradient(real, x, channel) for x in inputs]).mean(dim=0)
    support_model = _linearized(real) if linearize else real
    support = torch.stack([_centre_gradient(support_model, x, channel) for x in inputs[: 1 if linearize else samples]])
    support = support.sum(dim=0) != 0

    if not bool(support.any()):
        raise ValueError("the gradient of the centre output pixel is zero everywhere: the output does not depend on "
                         "the input (zero weights?)")
    rows, cols = support.any(dim=1).nonzero().flatten(), support.any(dim=0).nonzero().flatten()
    h, w = int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)
    if rows[0] == 0 or cols[0] == 0 or rows[-1] == size_hw[0] - 1 or cols[-1] == size_hw[1] - 1:
        warnings.warn(f"the receptive field reaches the border of the {size_hw[0]}x{size_hw[1]} input, so it is at "
                      f"least {h}x{w} and may be larger: measure on a larger input_size", stacklevel=2)
    return (h if h == w else (h, w)), gradient.float()


# -------------------------------------------------------------------------- which pixels a dilated stack reads

class DilationStats(NamedTuple):
    """What a stack of ``k x k`` convolutions at ``rates`` (stride 1) reads of its input.

    ``receptive_field``: side of the box around the centre output's inputs, ``1 + sum(r (k - 1))``;
    ``pixels_read``: input pixels with at least one path to the centre output (of ``receptive_field**2``);
    ``coverage``: their fraction of the box; ``max_multiplicity``: the most paths into one pixel;
    ``parameters``: weights of the stack for ``channels`` input and output channels and no bias,
    ``len(rates) * k**2 * channels**2`` (independent of the rates).
    """

    kernel_size: int
    rates: tuple[int, ...]
    channels: int
    receptive_field: int
    pixels_read: int
    coverage: float
    max_multiplicity: int
    parameters: int


def _check_kernel(kernel_size: Any) -> int:
    k = check_int(kernel_size, "kernel_size")
    if k % 2 == 0:
        raise ValueError(f"kernel_size must be odd (a kernel centred on its output pixel: 1, 3, 5, ...), got {k}")
    return k


def _check_rates(rates: Any) -> tuple[int, ...]:
    if is_int(rates):
        rates = (rates,)
    if not isinstance(rates, (tuple, list)) or not rates:
        raise ValueError(f"rates must be a non-empty sequence of positive integers (one rate per layer), got {rates!r}")
    return tuple(check_int(r, f"rates[{i}]") for i, r in enumerate(rates))


def _pattern_1d(kernel_size: int, rates: tuple[int, ...]) -> np.ndarray:
    """Paths from the centre output to each input position along one axis: the product of the polynomials
    ``sum_j z^(r j)``, ``j = 0 .. k-1``, one per layer."""
    counts = np.ones(1, dtype=np.int64)
    for r in rates:
        taps = np.zeros(r * (kernel_size - 1) + 1, dtype=np.int64)
        taps[::r] = 1
        counts = np.convolve(counts, taps)
    return counts


def sampling_pattern(kernel_size: int, rates: int | Sequence[int]) -> np.ndarray:
    """How often each input pixel feeds the centre output of a stack of ``k x k`` atrous convolutions.

    ``rates``: one dilation rate per layer (an int for a single layer); stride 1 throughout. Returns an
    ``int64`` array ``(S, S)``, ``S = 1 + sum_l r_l (k - 1)`` the receptive field, centred on the output
    pixel: entry ``[i, j]`` is the number of paths from input pixel ``(i, j)`` to the output, which is
    ``d y / d x[i, j]`` when every weight is 1. Zero entries are pixels inside the receptive field that
    the stack never reads (gridding). A 2-D kernel of ones is the outer product of two 1-D ones, so the
    pattern is the outer product of the 1-D one.
    """
    line = _pattern_1d(_check_kernel(kernel_size), _check_rates(rates))
    return np.outer(line, line)


def dilation_stats(kernel_size: int, rates: int | Sequence[int], channels: int = 64) -> DilationStats:
    """The :class:`DilationStats` of ``k x k`` convolutions at ``rates`` with ``channels`` in and out."""
    k, rates, channels = _check_kernel(kernel_size), _check_rates(rates), check_int(channels, "channels")
    pattern = sampling_pattern(k, rates)
    size = analytic_receptive_field([(k, 1, r) for r in rates])
    assert size == pattern.shape[0]  # two derivations of the same number
    read = int(np.count_nonzero(pattern))
    return DilationStats(k, rates, channels, size, read, read / size**2, int(pattern.max()),
                         len(rates) * k * k * channels * channels)


def gap_free(kernel_size: int, rates: int | Sequence[int]) -> bool:
    """Whether ``k x k`` convolutions at ``rates`` read every pixel of their receptive field (no gridding).

    The rule of the module docstring: with the rates sorted, each rate is at most the receptive field of
    the smaller ones, ``r_(l) <= 1 + (k - 1) (r_(1) + ... + r_(l-1))`` (so the smallest rate is 1 unless
    ``k == 1``). Equal to ``dilation_stats(k, rates).coverage == 1`` (tested over all small stacks).
    """
    k, rates = _check_kernel(kernel_size), _check_rates(rates)
    if k == 1:
        return True
    covered = 1
    for r in sorted(rates):
        if r > covered:
            return False
        covered += r * (k - 1)
    return True


def hdc_max_distance(rates: int | Sequence[int]) -> int:
    """Wang et al.'s (2018) ``M_2``, the "maximum distance between two nonzero values" after layers 2..n.

    ``M_n = r_n`` and ``M_i = max(M_(i+1) - 2 r_i, M_(i+1) - 2 (M_(i+1) - r_i), r_i)`` for ``i = n-1 .. 2``,
    the rates in layer order (for 3x3 kernels). One layer: ``r_1``.
    """
    rates = _check_rates(rates)
    m = rates[-1]
    for r in reversed(rates[1:-1]):
        m = max(m - 2 * r, m - 2 * (m - r), r)
    return m


def hdc_rule(kernel_size: int, rates: int | Sequence[int]) -> bool:
    """The hybrid-dilated-convolution rule: ``gcd(rates) == 1`` and :func:`hdc_max_distance` ``<= kernel_size``."""
    k, rates = _check_kernel(kernel_size), _check_rates(rates)
    return math.gcd(*rates) == 1 and hdc_max_distance(rates) <= k
