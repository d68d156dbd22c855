"""Exercise checks: what the check cells after each exercise call (COURSE.md §5).

A check raises :class:`CheckFailed` with three things a student can act on: what was expected, what
came back, and a hint. Each notebook's checks live in a submodule named after its topic
(``checks/fcn.py`` for ``01_fcn.ipynb``, …); every public name of those submodules is re-exported here by
an explicit import (a name two submodules define cannot silently replace the other), so notebooks write
``from segtutor import checks; checks.check_bilinear_kernel(my_fn)``.

When an exercise is unfinished, later cells should not all break: :func:`solution_or_reference`
returns the student's function when its check passes and segtutor's reference otherwise, and says so.
"""
from __future__ import annotations

import contextlib
import io
import math
from typing import Any, Callable, NoReturn, TypeVar

import numpy as np
import torch

from . import _limits
from ._limits import DEFAULT_TIME_LIMIT

__all__ = [
    "CheckFailed",
    "fail",
    "passed",
    "call_student",
    "DEFAULT_TIME_LIMIT",
    "check_close",
    "check_equal",
    "check_shape",
    "solution_or_reference",
]

F = TypeVar("F", bound=Callable[..., Any])


class CheckFailed(AssertionError):
    """An exercise check that did not pass."""


def _fmt(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        if value.numel() <= 12:
            return f"tensor {value.detach().cpu().tolist()} (shape {tuple(value.shape)}, {value.dtype})"
        return f"tensor of shape {tuple(value.shape)}, dtype {value.dtype}"
    if isinstance(value, np.ndarray):
        if value.size <= 12:
            return f"array {value.tolist()} (shape {value.shape}, {value.dtype})"
        return f"array of shape {value.shape}, dtype {value.dtype}"
    if isinstance(value, float):
        return f"{value:.6g}"
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def fail(exercise: str, *, expected: Any, got: Any, hint: str = "") -> NoReturn:
    """Raise :class:`CheckFailed` naming the exercise, the expected and the returned value, and a hint."""
    lines = [f"{exercise}: not right yet.", f"  expected: {expected if isinstance(expected, str) else _fmt(expected)}",
             f"  got:      {got if isinstance(got, str) else _fmt(got)}"]
    if hint:
        lines.append(f"  hint:     {hint}")
    raise CheckFailed("\n".join(lines))


def passed(exercise: str, detail: str = "") -> None:
    """Print the one-line success message of a check."""
    print(f"✓ {exercise}: passed" + (f" ({detail})" if detail else ""))


def call_student(exercise: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a student's function; an unfinished stub, a crash, a hang or a ``sys.exit()`` becomes a readable
    :class:`CheckFailed`.

    The call may take ``SEGTUTOR_CHECK_TIME_LIMIT`` seconds (default :data:`DEFAULT_TIME_LIMIT`, 60; ``0``: no
    limit); see :mod:`segtutor.checks._limits` for how it is stopped. ``KeyboardInterrupt`` still interrupts.
    """
    if not callable(fn):
        fail(exercise, expected="a function", got=f"{type(fn).__name__}", hint="pass the function itself, not its result")
    seconds = _limits.time_limit_seconds()
    try:
        with _limits.time_limit(seconds):
            return fn(*args, **kwargs)
    except _limits.TimeLimitExceeded:
        fail(exercise, expected=f"a result within the time limit of {seconds:g} s",
             got=f"still running after {seconds:g} s (stopped)",
             hint="look for a loop that never ends (a `while` whose condition never changes, an index never "
                  "increased); a slow but correct function can get more time: SEGTUTOR_CHECK_TIME_LIMIT=<seconds>")
    except SystemExit as exc:  # sys.exit() / exit() in a grader would end grading, with status 0 for exit(0)
        fail(exercise, expected="a value", got=f"SystemExit({exc.code!r}): the function called sys.exit() or exit()",
             hint="return the result instead of calling sys.exit(); a check must not end the program")
    except NotImplementedError:
        fail(exercise, expected="a finished implementation", got="NotImplementedError (the exercise is not done yet)",
             hint="replace `raise NotImplementedError()` with your code")
    except CheckFailed:
        raise
    except Exception as exc:  # the student's code crashed: show how
        fail(exercise, expected="a value", got=f"{type(exc).__name__}: {exc}", hint="run your function on a small input and read the traceback")


def _as_tensor(value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    return torch.as_tensor(np.asarray(value))


def check_shape(exercise: str, got: Any, shape: tuple[int, ...], hint: str = "") -> None:
    """Fail unless ``got`` is a tensor/array of exactly ``shape``."""
    actual = tuple(getattr(got, "shape", ()))
    if not hasattr(got, "shape") or actual != tuple(shape):
        fail(exercise, expected=f"shape {tuple(shape)}", got=f"shape {actual}" if hasattr(got, "shape") else type(got).__name__,
             hint=hint or "check which dimensions you reduced over")


def check_close(exercise: str, got: Any, expected: Any, *, atol: float = 1e-5, rtol: float = 1e-4, hint: str = "") -> None:
    """Fail unless ``got`` matches ``expected`` numerically (shape first, then values; NaNs must match)."""
    if got is None:
        fail(exercise, expected=expected, got="None", hint="did you forget to `return` the result?")
    exp_t = _as_tensor(expected).double()
    try:
        got_t = _as_tensor(got).double()
    except (TypeError, ValueError, RuntimeError):
        fail(exercise, expected=expected, got=f"{type(got).__name__} (not a number or array)", hint=hint)
    if tuple(got_t.shape) != tuple(exp_t.shape):
        fail(exercise, expected=f"shape {tuple(exp_t.shape)}", got=f"shape {tuple(got_t.shape)}",
             hint=hint or "check which dimensions you reduced over")
    if not torch.allclose(got_t, exp_t, atol=atol, rtol=rtol, equal_nan=True):
        fail(exercise, expected=expected, got=got, hint=hint)


def check_equal(exercise: str, got: Any, expected: Any, hint: str = "") -> None:
    """Fail unless ``got == expected`` (tensors and arrays compared element-wise, shapes included)."""
    if isinstance(expected, (torch.Tensor, np.ndarray)):
        exp_t, got_t = _as_tensor(expected), _as_tensor(got)
        if got_t.shape != exp_t.shape or not torch.equal(got_t.to(exp_t.dtype), exp_t):
            fail(exercise, expected=expected, got=got, hint=hint)
    elif isinstance(expected, float) and isinstance(got, float) and math.isnan(expected) and math.isnan(got):
        return
    elif got != expected:
        fail(exercise, expected=expected, got=got, hint=hint)


def solution_or_reference(student: F, reference: F, check: Callable[[F], None], *, name: str) -> F:
    """The student's function if ``check(student)`` passes, else ``reference`` — saying so.

    Cells after an exercise use this so that one unfinished exercise does not stop the rest of a
    notebook: they run on segtutor's reference implementation until the exercise is done. The check's own
    "passed" line is not printed again (the check cell above already showed it).
    """
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            check(student)
    except CheckFailed as exc:
        first = str(exc).splitlines()[0]
        print(f"Note: {first} The cells below use segtutor's reference `{name}` instead; "
              "come back to the exercise and re-run them.")
        return reference
    return student


# Each notebook's checks, re-exported by name. Explicit imports, so that a name defined in two submodules is an
# error someone sees (tests/test_checks_core.py checks this list against every submodule's __all__), never one
# silently replacing the other. They come last: the submodules import the helpers above from this package.
from .task import check_mask_to_boxes  # noqa: E402  (00_task_and_data)
from .fcn import (check_bilinear_kernel, check_conv_matrix, check_upsample_transpose,  # noqa: E402  (01_fcn)
                  conv_matrix_reference)
from .unet import check_unet_level_shapes, check_up_forward, unet_level_shapes_reference  # noqa: E402  (02_unet)
from .deeplab import atrous_conv1d_reference, check_aspp, check_atrous_conv1d  # noqa: E402  (03_deeplab)
from .losses import check_dice_loss, check_dice_loss_ignore_index, check_focal_loss  # noqa: E402  (04_losses)
from .metrics import (check_confusion_matrix, check_iou_from_confusion,  # noqa: E402  (05_metrics)
                      check_streaming_confusion_matrix)
from .end_to_end import (check_evaluate_by_hand, check_worst_images, evaluate_by_hand_reference,  # noqa: E402
                         worst_images_reference)  # (06_end_to_end)
from .end_to_end import (check_keep_best, check_predict_and_colorize, keep_best_reference,  # noqa: E402
                         predict_and_colorize_reference)  # (06_end_to_end, second pair)
from .real_data import (check_labelids_to_trainids, check_random_crop,  # noqa: E402  (07_real_data)
                        labelids_to_trainids_reference, random_crop_reference)
from .scaling import check_shard, shard_reference  # noqa: E402  (09_scaling_out)
from .real_photos import check_median_frequency_weights, median_frequency_weights_reference  # noqa: E402  (08)

__all__ += [
    "check_mask_to_boxes",
    "check_bilinear_kernel", "check_upsample_transpose", "check_conv_matrix", "conv_matrix_reference",
    "check_unet_level_shapes", "unet_level_shapes_reference", "check_up_forward",
    "atrous_conv1d_reference", "check_aspp", "check_atrous_conv1d",
    "check_dice_loss", "check_dice_loss_ignore_index", "check_focal_loss",
    "check_confusion_matrix", "check_iou_from_confusion", "check_streaming_confusion_matrix",
    "check_evaluate_by_hand", "check_worst_images", "evaluate_by_hand_reference", "worst_images_reference",
    "check_keep_best", "check_predict_and_colorize", "keep_best_reference", "predict_and_colorize_reference",
    "check_labelids_to_trainids", "labelids_to_trainids_reference", "check_random_crop", "random_crop_reference",
    "check_shard", "shard_reference",
    "check_median_frequency_weights", "median_frequency_weights_reference",
]
