"""Checks for the exercise of ``notebooks/08_real_photos.ipynb`` (CamVid, real road scenes).

- :func:`check_median_frequency_weights` — ``median_frequency_weights(masks, num_classes, ignore_index=255)``:
  SegNet's median-frequency class weights ``w_c = median(f) / f_c`` from training label maps ``int64 (N, H, W)``,
  where ``f_c`` is class c's share of the **labelled** pixels (void excluded) pooled over all images. The oracle
  is :func:`segtutor.data.camvid.class_weights` (``method="median"``) on counts taken with ``torch.bincount``.
  The hints name the usual mistakes: void counted (as class 0 or as a class of its own), the mean instead of the
  median, the ratio inverted, and frequencies counted over images (how many images show a class, or the mean of
  per-image shares) instead of over pixels.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from . import call_student, fail, passed

__all__ = ["check_median_frequency_weights", "median_frequency_weights_reference"]

_EXERCISE = "median_frequency_weights"


def median_frequency_weights_reference(masks: torch.Tensor, num_classes: int = 11,
                                       ignore_index: int = 255) -> torch.Tensor:
    """segtutor's answer: ``median(f) / f_c`` over labelled pixels, ``float32 (K,)`` (weight 0 for an absent class)."""
    from ..data.camvid import class_weights

    labelled = masks[masks != ignore_index].long()
    return class_weights(torch.bincount(labelled, minlength=num_classes)[:num_classes], "median")


def _weights(f: torch.Tensor) -> torch.Tensor:
    return (f.median() / f).float()


def _mistakes(masks: torch.Tensor, k: int, ignore: int) -> dict[str, tuple[torch.Tensor, str]]:
    """What each usual mistake returns on ``masks``, with the hint that names it."""
    void = masks == ignore
    pixels = torch.bincount(masks[~void], minlength=k)[:k].double()
    f = pixels / pixels.sum()
    as_zero = torch.bincount(masks.masked_fill(void, 0).flatten(), minlength=k)[:k].double()
    with_void = torch.cat([pixels, void.sum().double()[None]])
    images = torch.stack([torch.bincount(m[m != ignore], minlength=k)[:k] > 0 for m in masks]).double().sum(0)
    shares = torch.stack([torch.bincount(m[m != ignore], minlength=k)[:k].double() / (m != ignore).sum()
                          for m in masks]).mean(0)
    return {
        "void as class 0": (_weights(as_zero / as_zero.sum()),
                            f"void pixels ({ignore}) were counted as class 0: leave them out (masks != {ignore}) "
                            "before counting, they are not a class"),
        "void as a class": (_weights(with_void / with_void.sum())[:k],
                            f"void ({ignore}) took part in the median as a class of its own: count only the "
                            f"labels 0..{k - 1}, and take the median over those {k} frequencies"),
        "mean": (((f.mean()) / f).float(), "that is mean(f) / f_c: SegNet divides the MEDIAN frequency, "
                                           "which a few huge classes (road, building) do not pull up"),
        "inverted": ((f / f.median()).float(), "the ratio is upside down: f_c / median(f) gives the FREQUENT classes "
                                               "the large weights; it is median(f) / f_c"),
        "images": (_weights(images / images.sum()), "you counted images that contain each class; count PIXELS: "
                                                    "f_c = labelled pixels of class c / all labelled pixels"),
        "per-image shares": (_weights(shares), "you averaged each image's class shares; pool the pixels of all "
                                               "images first (one bincount over every labelled pixel), then divide"),
    }


def _cases() -> list[tuple[str, torch.Tensor, int]]:
    g = torch.Generator().manual_seed(8)
    k = 5
    masks = torch.zeros(4, 12, 16, dtype=torch.int64)
    masks[:, 6:] = 1                                       # class 0 on top, class 1 below, in every image
    masks[0, 2:5, 3:9] = 2                                 # class 2: big, in one image only
    masks[1, 8:10, 2:4] = 3                                # class 3: small, in three images
    masks[2, 7:9, 10:12] = 3
    masks[3, 9:11, 5:7] = 3
    masks[1:, 0:2, 0:5] = 4                                # class 4: in three images
    masks[0, 0, :6] = 255                                  # a little void (fewer pixels than the median class:
    masks[2, 3, 4:8] = 255                                 # counted as a class, it would move the median)
    hard = torch.randint(0, 11, (3, 20, 24), generator=g)
    hard[torch.rand(hard.shape, generator=g) < 0.2] = 255
    hard[hard == 9] = 2                                    # pedestrian and bicyclist absent: weight 0; the
    hard[hard == 10] = 3                                   # 9 classes present have one middle value (no tie)
    return [(f"{k} classes, 4 images (N, H, W) = (4, 12, 16) with void", masks, k),
            ("11 classes, 3 random 20x24 label maps, 20 % void, classes 9 and 10 absent", hard, 11)]


def check_median_frequency_weights(fn: Callable[..., Any]) -> None:
    """Check ``fn(masks int64 (N, H, W), num_classes, ignore_index=255) -> float weights (K,)``: ``median(f) / f_c``."""
    for what, masks, k in _cases():
        before = masks.clone()
        got = call_student(_EXERCISE, fn, masks, k, 255)
        if not torch.equal(masks, before):
            fail(_EXERCISE, expected="the masks left unchanged", got="the input masks were modified in place",
                 hint="work on masks[masks != ignore_index] (a new tensor) instead of writing into masks")
        if got is None:
            fail(_EXERCISE, expected=f"a tensor of {k} weights", got="None", hint="did you forget to `return`?")
        try:
            got_t = torch.as_tensor(got).detach().cpu()
        except (TypeError, ValueError, RuntimeError):
            fail(_EXERCISE, expected=f"a tensor of {k} weights", got=type(got).__name__, hint="return a torch tensor")
        if not got_t.is_floating_point():
            fail(_EXERCISE, expected="floating-point weights", got=f"dtype {got_t.dtype}",
                 hint="frequencies are fractions: convert the counts with .double() or .float() before dividing")
        expected = median_frequency_weights_reference(masks, k, 255)
        if tuple(got_t.shape) != (k,):
            hint = f"one weight per class: {k} values"
            if tuple(got_t.shape) in ((k + 1,), (256,)):
                hint += f"; void ({255}) is not a class: count only labels 0..{k - 1}"
            fail(_EXERCISE, expected=f"shape ({k},) ({what})", got=f"shape {tuple(got_t.shape)}", hint=hint)
        got_d = got_t.double()
        absent = expected == 0
        if absent.any() and not torch.allclose(got_d[absent], torch.zeros(int(absent.sum()), dtype=torch.float64)):
            fail(_EXERCISE, expected=f"weight 0 for a class with no labelled pixel ({what})",
                 got=got_t, hint="a class that never occurs gets weight 0 (it never appears as a target); take the "
                                 "median over the classes present: f = f[f > 0]")
        if torch.allclose(got_d, expected.double(), rtol=1e-4, atol=1e-6):
            continue
        hint = ("w_c = median(f) / f_c with f_c = labelled pixels of class c / all labelled pixels (void excluded, "
                "pixels pooled over all images)")
        for wrong, why in _mistakes(masks, k, 255).values():
            if torch.allclose(got_d[~absent], wrong.double()[~absent], rtol=1e-4, atol=1e-6):
                hint = why
                break
        fail(_EXERCISE, expected=f"{expected} ({what})", got=got_t, hint=hint)
    passed(_EXERCISE, "median(f) / f_c over labelled pixels: void left out, pixels pooled over images")
