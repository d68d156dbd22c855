"""The machinery under :func:`segtutor.train.fit` and :func:`~segtutor.train.evaluate`: one epoch of training, one
pass of evaluation, and what every batch of a run shares.

Taught with the training loop in ``notebooks/06_end_to_end.ipynb``; ``fit`` wires these parts together:

- :class:`Loop` holds the device, autocast dtype, memory layout, gradient scaler, valid labels and the ``torchrun``
  context, and turns loader batches into checked device tensors (:meth:`Loop.batches`);
- :func:`train_epoch` runs one epoch (the loss checked finite before every ``backward()``), :func:`run_eval` one
  evaluation pass (confusion matrices summed over ranks under DDP);
- :func:`make_scheduler`, :func:`autocast_dtype`, :func:`epoch_seeds`, :func:`progress_bar`: the small choices
  ``fit`` makes once per run or per epoch.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from . import distributed
from ._validation import check_batch, forward_checked, ignored_pixels
from .runtime import model_mode

__all__ = ["Loop", "train_epoch", "check_finite_loss", "run_eval", "make_scheduler", "autocast_dtype", "epoch_seeds",
           "progress_bar", "live_curves"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Loop:
    """What every batch of a run shares: the device, the autocast dtype (``None``: float32), the memory layout,
    the float16 gradient scaler (``None`` unless CUDA float16), the valid labels ``0..num_classes-1``, and where the
    process stands in a ``torchrun`` job (``ctx``)."""

    device: torch.device
    num_classes: int
    ignore_index: int | None = None
    amp_dtype: torch.dtype | None = None
    channels_last: bool = False
    scaler: torch.amp.GradScaler | None = None
    ctx: distributed.DistContext = distributed.DistContext()

    def batches(self, loader: DataLoader, name: str) -> Iterator[tuple[int, torch.Tensor, torch.Tensor, bool]]:
        """``(index, images (N, C, H, W), masks int64 (N, H, W), void)`` on the device, each batch checked on the CPU
        first (no device-side asserts, no non-finite image); ``void``: no pixel of the batch is labelled."""
        for index, (images, masks) in enumerate(loader):
            check_batch(name, index, images, masks, self.num_classes, self.ignore_index)
            ignored = ignored_pixels(masks, self.ignore_index)
            void = ignored is not None and bool(ignored.all())
            x = images.to(self.device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield index, x, masks.to(self.device, non_blocking=True).long(), void

    def autocast(self):
        """Mixed precision at ``amp_dtype``, or nothing."""
        return torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype is not None else nullcontext()


def train_epoch(model: nn.Module, loader: DataLoader, loop: Loop, loss_fn: LossFn,
                 optimizer: torch.optim.Optimizer, scheduler: Any, bar: Any, desc: str) -> tuple[float, float, int]:
    """One pass over ``loader`` in train mode, counted on ``bar`` (a tqdm bar, possibly disabled); returns (mean
    training loss per image, learning rate of the last step, batches skipped for having no labelled pixel)."""
    total = torch.zeros((), dtype=torch.float64, device=loop.device)  # summed on the device: no sync per batch
    count, skipped, last_lr = 0, 0, optimizer.param_groups[0]["lr"]
    refresh = max(1, len(loader) // 20)
    bar.reset(total=len(loader))
    bar.set_description(desc, refresh=False)
    for index, x, y, void in loop.batches(loader, "train_data"):
        if void and not loop.ctx.enabled:  # no labelled pixel: nothing to learn, and cross-entropy would be NaN
            skipped += 1
            last_lr = optimizer.param_groups[0]["lr"]
            with warnings.catch_warnings():  # the schedule advances as if the batch had been trained on
                warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
                scheduler.step()
            bar.update(1)
            continue
        with loop.autocast():
            try:
                logits = model(x)
            except ValueError as exc:
                if "more than 1 value per channel" not in str(exc):
                    raise
                raise ValueError(f"{desc}, batch {index}: {len(x)} image(s) of {tuple(x.shape[2:])} px leave "
                                 "one value per channel at the model's deepest level, and BatchNorm cannot train on "
                                 "that; use batch_size >= 2 (and at least 2 training images) or larger images") from exc
            loss = logits.sum() * 0.0 if void else loss_fn(logits, y)  # void under DDP: take part, add nothing
        check_finite_loss(loss, model, loop, desc, index, len(loader))
        optimizer.zero_grad(set_to_none=True)
        if loop.scaler is not None:
            loop.scaler.scale(loss).backward()
            loop.scaler.step(optimizer)
            loop.scaler.update()
        else:
            loss.backward()
            optimizer.step()
        last_lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        if void:
            skipped += 1
        else:
            total += loss.detach().double() * len(x)
            count += len(x)
        if not bar.disable and count and (index % refresh == 0 or index == len(loader) - 1):
            # the loss sum stays on the device; read it only when the bar will show it (a sync)
            bar.set_postfix(loss=f"{total.item() / count:.4f}", refresh=False)
        bar.update(1)             # redraws at most every mininterval seconds, postfix included
    bar.refresh()
    sums = distributed.all_reduce_sum(torch.stack([total, total.new_tensor(count), total.new_tensor(skipped)]), loop.ctx)
    if float(sums[1]) == 0:
        raise ValueError(f"{desc}: no training batch had a labelled pixel (every pixel of every batch is "
                         f"ignore_index={loop.ignore_index}); check the masks and the ignore_index")
    return (sums[0] / sums[1]).item(), float(last_lr), int(sums[2])


def check_finite_loss(loss: torch.Tensor, model: nn.Module, loop: Loop, desc: str, index: int, batches: int) -> None:
    """Raise if the loss of this step is not finite on any rank: before backward(), so no weight is touched.

    One read from the device per step; under DDP one all-reduce of a flag, so that every rank stops together."""
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise TypeError(f"the loss must return a scalar tensor, got "
                        f"{tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__}")
    bad = ~torch.isfinite(loss.detach().reshape(1))
    if loop.ctx.enabled:
        flag = distributed.all_reduce_sum(bad.to(torch.float32), loop.ctx)
        if not bool(flag.item()):
            return
    elif not bool(bad.item()):
        return
    where = "" if not loop.ctx.enabled else (f" on rank {loop.ctx.rank}" if bool(bad.item()) else " on another rank")
    buffers = [b for b in model.buffers() if b.is_floating_point()]
    stats_ok = all(bool(torch.isfinite(b).all()) for b in buffers)
    state = ("the model still holds the weights of the last finite step (this loss never reached backward() or the "
             "optimiser)" + ("" if stats_ok else "; but this forward pass made BatchNorm running statistics "
                             "non-finite: reload the last checkpoint (load_checkpoint) to restore them"))
    raise FloatingPointError(
        f"training loss is {float(loss.detach()) if not loop.ctx.enabled or bool(bad.item()) else 'not finite'}{where} "
        f"at {desc}, batch {index + 1} of {batches}: training stopped; {state}. The batch's images and labels are "
        "finite (checked), so training diverged: lower the learning rate (lr), use amp=False, or check the loss function")


def run_eval(model: nn.Module, loader: DataLoader, loop: Loop, name: str,
              loss_fn: LossFn | None = None) -> tuple[float | None, Any]:
    """Mean loss (if ``loss_fn``) and the metrics of :class:`segtutor.metrics.ConfusionMatrix` over ``loader``,
    in eval mode without gradients (the model's mode is restored). Under DDP each rank scores its own shard with the
    bare model (no collective per batch, so shards of unequal length are fine) and the sums are reduced at the end."""
    from .metrics import ConfusionMatrix, SegmentationMetrics

    matrix = ConfusionMatrix(loop.num_classes, ignore_index=loop.ignore_index)
    total, count = 0.0, 0
    with model_mode(model), torch.no_grad():
        for index, x, y, void in loop.batches(loader, name):
            with loop.autocast():
                logits = forward_checked(model, x, name) if index == 0 else model(x)
                if loss_fn is not None and not void:  # a batch without labelled pixels has no loss (0/0)
                    total += float(loss_fn(logits, y)) * len(x)
                    count += len(x)
            if logits.shape[1] != loop.num_classes:
                raise ValueError(f"{name}: the model outputs {logits.shape[1]} class channels but "
                                 f"num_classes={loop.num_classes}")
            matrix.update(logits.argmax(1), y)
    if not loop.ctx.enabled:
        _check_labelled(count, loss_fn, name, loop)
        return (total / count if loss_fn is not None else None), matrix.compute()
    counts = distributed.all_reduce_sum(matrix.matrix.to(loop.device, copy=True), loop.ctx)
    sums = distributed.all_reduce_sum(torch.tensor([total, count], dtype=torch.float64, device=loop.device), loop.ctx)
    _check_labelled(float(sums[1]), loss_fn, name, loop)
    mean_loss = float(sums[0] / sums[1]) if loss_fn is not None else None
    return mean_loss, SegmentationMetrics.from_confusion(counts.cpu())


def _check_labelled(count: float, loss_fn: LossFn | None, name: str, loop: Loop) -> None:
    """A validation loss needs one batch with a labelled pixel (the same on every rank: ``count`` is reduced)."""
    if loss_fn is not None and count == 0:
        raise ValueError(f"{name} has no labelled pixel: every pixel of every batch is ignore_index={loop.ignore_index}, "
                         "so there is no validation loss to measure; check the masks and the ignore_index")


def make_scheduler(schedule: str, optimizer: torch.optim.Optimizer, lr: float, total_steps: int):
    if schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps)
    if schedule == "poly":  # DeepLab's "poly": lr · (1 − step / total)^0.9
        return torch.optim.lr_scheduler.PolynomialLR(optimizer, total_iters=total_steps, power=0.9)
    if schedule == "constant":
        return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    raise ValueError(f"unknown schedule {schedule!r}; expected 'onecycle', 'poly' or 'constant'")


def live_curves():
    from .viz import LiveCurves

    return LiveCurves()


def progress_bar(enabled: bool, **kwargs: Any):
    from tqdm.auto import tqdm

    # at most ~2 redraws a second: each widget redraw is a kernel message, and a flood of them slows notebooks
    return tqdm(disable=not enabled, mininterval=0.5, **kwargs)


def autocast_dtype(device: torch.device, amp: bool | None) -> torch.dtype | None:
    if amp is None:
        amp = device.type == "cuda"
    if not amp:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu":
        return torch.bfloat16
    raise ValueError(f"amp=True is not supported on {device.type} by segtutor.train; use amp=False (or None)")


def epoch_seeds(seed: int, epoch: int) -> tuple[int, int]:
    """Two independent 63-bit seeds for epoch ``epoch`` of a run seeded ``seed``: (global RNGs, shuffling)."""
    state = np.random.SeedSequence([seed, epoch]).generate_state(4, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1]), (int(state[2]) << 31) ^ int(state[3])
