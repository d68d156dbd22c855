"""Checks for the exercise of ``notebooks/02_unet.ipynb`` (U-Net).

- :func:`check_unet_level_shapes` — ``unet_level_shapes(image_size, width, depth)``: the shape of every level
  of segtutor's U-Net, worked out by hand (the table the source document's author needed: its last decoder
  level doubles the resolution past the input and its last conv block expects 96 channels but gets 35).
  The oracle is :func:`unet_level_shapes_reference`, which *runs* :class:`segtutor.models.UNet` with forward
  hooks and records what actually flows through it.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from . import call_student, fail, passed

__all__ = ["unet_level_shapes_reference", "check_unet_level_shapes"]

_EXERCISE = "unet_level_shapes"
Shapes = dict[str, list[tuple[int, int, int]]]


def unet_level_shapes_reference(image_size: int, width: int = 16, depth: int = 4) -> Shapes:
    """What flows through ``UNet(num_classes=2, in_channels=3, width=width, depth=depth)`` on a square image.

    Runs the model once on zeros ``(1, 3, image_size, image_size)`` with forward hooks and returns
    ``{"encoder": [...], "decoder": [...]}``: ``encoder[i]`` is the ``(C, H, W)`` output of level ``i``
    (the first conv block, then each ``Down``), ``depth + 1`` entries; ``decoder[j]`` is the ``(C, H, W)``
    input of the conv block of the ``j``-th ``Up`` step (after the concatenation), deepest level first,
    ``depth`` entries.
    """
    from ..models import UNet

    model = UNet(2, 3, width=width, depth=depth).eval()
    encoder: list[tuple[int, int, int]] = []
    decoder: list[tuple[int, int, int]] = []
    hooks = [model.inc.register_forward_hook(lambda m, i, out: encoder.append(tuple(out.shape[1:])))]
    hooks += [down.register_forward_hook(lambda m, i, out: encoder.append(tuple(out.shape[1:])))
              for down in model.down]
    hooks += [up.conv.register_forward_pre_hook(lambda m, inputs: decoder.append(tuple(inputs[0].shape[1:])))
              for up in model.up]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, image_size, image_size))
    finally:
        for hook in hooks:
            hook.remove()
    return {"encoder": encoder, "decoder": decoder}


def _as_shapes(got: Any, key: str, length: int) -> list[tuple[int, ...]]:
    what = f'a dict with key "{key}" holding {length} (C, H, W) tuples'
    if not isinstance(got, dict) or key not in got:
        fail(_EXERCISE, expected=what,
             got="None" if got is None else f"{type(got).__name__}" + (f" with keys {sorted(got)}" if isinstance(got, dict) else ""),
             hint='return {"encoder": [...], "decoder": [...]}' if got is not None else "did you forget to `return`?")
    rows = got[key]
    try:
        shapes = [tuple(int(v) for v in row) for row in rows]
    except (TypeError, ValueError):
        fail(_EXERCISE, expected=what, got=repr(rows)[:200], hint="each entry is a tuple of three ints (C, H, W)")
    if any(len(s) != 3 for s in shapes):
        fail(_EXERCISE, expected=what, got=repr(rows)[:200], hint="each entry is (C, H, W): channels, height, width")
    if len(shapes) != length:
        hint = ("the encoder has depth + 1 levels: the first conv block (full resolution) and one per Down step"
                if key == "encoder" else "the decoder has one Up step per Down step: depth entries")
        fail(_EXERCISE, expected=f'{length} entries in "{key}"', got=f"{len(shapes)} entries", hint=hint)
    return shapes


def _diagnose(key: str, index: int, got: tuple[int, ...], expected: tuple[int, ...], size: int, width: int,
              depth: int) -> str:
    where = f"image_size={size}, width={width}, depth={depth}, {key}[{index}]"
    if got[1:] != expected[1:]:
        if got[0] == expected[0] and all(g == e - 1 or g == e for g, e in zip(got[1:], expected[1:])):
            return (f"{where}: each 2x2 max-pool has ceil_mode=True, so an odd side s becomes ceil(s / 2), "
                    "not s // 2 (no border row is dropped)")
        if key == "decoder":
            return (f"{where}: the decoder is listed deepest first; an Up step works at the resolution of the "
                    "skip it receives, one level up from where it starts")
        return f"{where}: level i has side ceil(image_size / 2**i)"
    if key == "decoder" and 2 * got[0] == expected[0]:
        return (f"{where}: the conv block of an Up step sees the upsampled map AND the skip, concatenated along "
                "the channels: twice the channels of that level (the source's dec1 forgot what it concatenates)")
    if key == "decoder":
        return f"{where}: level i has width * 2**i channels; the concatenation doubles them"
    return f"{where}: level i has width * 2**i channels"


def check_unet_level_shapes(fn: Callable[[int, int, int], Shapes]) -> None:
    """Check ``fn(image_size, width, depth)`` against the shapes recorded in a real :class:`UNet` forward pass."""
    for size, width, depth in ((64, 16, 4), (48, 8, 4), (50, 8, 3), (37, 4, 5), (33, 2, 1)):
        got = call_student(_EXERCISE, fn, size, width, depth)
        expected = unet_level_shapes_reference(size, width, depth)
        for key in ("encoder", "decoder"):
            shapes = _as_shapes(got, key, len(expected[key]))
            for index, (g, e) in enumerate(zip(shapes, expected[key])):
                if g != e:
                    fail(_EXERCISE, expected=f"{key}[{index}] = {e}", got=f"{key}[{index}] = {g}",
                         hint=_diagnose(key, index, g, e, size, width, depth))
    passed(_EXERCISE, "5 configurations, odd sizes included, equal what flows through segtutor's UNet")


# --- exercise 1 of 02_unet: one expanding step, written out (upsample, crop, concatenate, conv block) ----------
# check_up_forward(fn): fn(up, x, skip) must equal up(x, skip) for a segtutor.models.unet.Up, without calling it.
from . import CheckFailed, _as_tensor  # noqa: E402  (kept with the exercise it serves)

__all__ += ["check_up_forward"]

_UP = "up_forward"


def _up_cases():
    from ..models.unet import Up

    # (in_channels, out_channels, x (h, w), skip (H, W), mode): odd skip sizes make the crop matter
    for c_in, c_out, (h, w), (hs, ws), mode in ((8, 4, (3, 4), (5, 7), "transpose"), (6, 3, (4, 4), (8, 8), "transpose"),
                                               (8, 4, (4, 3), (7, 6), "bilinear")):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c_in * 100 + h)
            up = Up(c_in, c_out, mode=mode).eval()
            x, skip = torch.randn(2, c_in, h, w), torch.randn(2, c_out, hs, ws)
        yield up, x, skip


def _call_up(fn: Callable[..., Any], up: Any, x: torch.Tensor, skip: torch.Tensor) -> Any:
    called = []
    hook = up.register_forward_hook(lambda *args: called.append(True))
    try:
        with torch.no_grad():
            got = call_student(_UP, fn, up, x.clone(), skip.clone())
    except CheckFailed as exc:
        text = str(exc)
        c_out, (hs, ws) = skip.shape[1], skip.shape[-2:]
        if "Sizes of tensors must match" in text:
            hint = (f"the upsampled map is {2 * x.shape[-2]}x{2 * x.shape[-1]}, the skip {hs}x{ws}: crop the "
                    "upsampled map's bottom/right overhang to the skip's size (x[..., :H, :W]) before torch.cat")
        elif "channels" in text and "expected input" in text:
            hint = (f"up.conv expects {2 * c_out} channels: the skip ({c_out}) and the upsampled map ({c_out}), "
                    "concatenated along dim=1, the channel dimension")
        else:
            raise
        fail(_UP, expected=f"a tensor of shape {tuple(skip.shape)}", got=text.split("got:", 1)[-1].split("\n")[0].strip(),
             hint=hint)
    finally:
        hook.remove()
    if called:
        fail(_UP, expected="the step written out: up.up, a crop, torch.cat, up.conv", got="a call of up(x, skip)",
             hint="calling the module is what the check compares against; write its forward pass yourself")
    return got


def _diagnose_up(got: torch.Tensor, up: Any, x: torch.Tensor, skip: torch.Tensor) -> str:
    c_out, (hs, ws) = skip.shape[1], skip.shape[-2:]
    where = f"x {tuple(x.shape)}, skip {tuple(skip.shape)}"
    with torch.no_grad():
        upsampled = up.up(x)
        bottom_right = upsampled[..., :hs, :ws]
        top_left = upsampled[..., upsampled.shape[-2] - hs:, upsampled.shape[-1] - ws:]
        variants = {
            "up_first": up.conv(torch.cat([bottom_right, skip], dim=1)),
            "top_left": up.conv(torch.cat([skip, top_left], dim=1)),
            "no_conv": torch.cat([skip, bottom_right], dim=1),
        }
    for name, value in variants.items():
        if value.shape == got.shape and torch.allclose(got.float(), value, atol=1e-5):
            return {
                "up_first": f"{where}: you concatenated in the wrong order: expected the skip first, "
                            "torch.cat([skip, upsampled], dim=1) (up.conv's weights were trained for that order)",
                "top_left": f"{where}: you cropped the top/left; the overhang is the bottom/right row or column "
                            "(it lies past the image border after a ceil-mode pool): keep upsampled[..., :H, :W]",
                "no_conv": f"{where}: apply up.conv to the concatenation: the step ends with the conv block",
            }[name]
    if got.shape[-2:] != (hs, ws):
        return f"{where}: the step's output has the skip's size {hs}x{ws}: crop the upsampled map to it"
    if got.shape[1] != c_out:
        return f"{where}: the conv block returns {c_out} channels; return its output"
    return f"{where}: up.up(x), cropped to the skip's size, then up.conv(torch.cat([skip, upsampled], dim=1))"


def check_up_forward(fn: Callable[..., Any]) -> None:
    """Check ``fn(up, x (N, C_in, h, w), skip (N, C_out, H, W)) -> (N, C_out, H, W)`` against ``up(x, skip)``
    for three :class:`segtutor.models.unet.Up` steps (odd skip sizes, transposed and bilinear upsampling)."""
    for up, x, skip in _up_cases():
        with torch.no_grad():
            expected = up(x, skip)
        got = _call_up(fn, up, x, skip)
        if got is None:
            fail(_UP, expected=f"a tensor of shape {tuple(expected.shape)}", got="None",
                 hint="did you forget to `return` the result?")
        got = _as_tensor(got)
        if got.shape != expected.shape or not torch.allclose(got.float(), expected, atol=1e-5):
            fail(_UP, expected=f"up(x, skip), shape {tuple(expected.shape)}",
                 got=f"shape {tuple(got.shape)}" + ("" if got.shape != expected.shape else ", other values"),
                 hint=_diagnose_up(got, up, x, skip))
    passed(_UP, "3 steps, odd skip sizes, transposed and bilinear upsampling: equal to Up.forward")
