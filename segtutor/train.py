"""Training, evaluation and prediction: the one loop the whole course shares.

Taught in ``notebooks/06_end_to_end.ipynb`` (the source's demo done right: a held-out set, metrics from
:mod:`segtutor.metrics`, checkpoints that survive a crash); every other notebook trains through :func:`fit`.

- :func:`fit` trains a model on a dataset of ``(image, mask)`` pairs — image ``float (C, H, W)``, mask
  ``int (H, W)`` — with AdamW and a one-cycle learning-rate schedule stepped per batch, and returns a
  :class:`History` (one :class:`EpochStats` per epoch).
- :func:`evaluate` scores a model on a dataset with :class:`segtutor.metrics.ConfusionMatrix`.
- :func:`predict` turns images ``(N, C, H, W)`` (or one ``(C, H, W)``) into labels ``(N, H, W)`` (or ``(H, W)``).
- :func:`save_checkpoint` / :func:`load_checkpoint` (from :mod:`segtutor.checkpoint`, re-exported here) write
  atomically and read with ``weights_only=True``, so loading a file never runs code from it; :class:`History`
  and :class:`EpochStats` come from :mod:`segtutor.history`, and the dataset and model checks from
  :mod:`segtutor._validation`.

Reproducibility: every epoch starts from seeds derived from ``(seed, epoch)`` — the shuffling order and
Python's, NumPy's and torch's global generators (augmentations, dropout). So two runs with the same seed give
identical histories on the CPU, and a run resumed from a checkpoint continues exactly as if never stopped,
without any generator state in the file. On CUDA, bilinear upsampling has no deterministic backward, so GPU
runs agree only approximately.

Mixed precision (``amp``): ``None`` means on for CUDA (bfloat16 where the GPU supports it, else float16 with
a gradient scaler) and off elsewhere. ``amp=True`` on the CPU uses bfloat16 autocast (it works, but is only
fast on CPUs with native bfloat16); on Apple MPS it is refused with an error.
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from contextlib import closing, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from . import distributed
from ._validation import (check_batch, check_channels, check_ignore_index, check_int, check_labels, first_pair,
                          forward_checked, model_device, model_name)
from .checkpoint import CheckpointError, apply_checkpoint, load_checkpoint, read_checkpoint, save_checkpoint
from .history import EpochStats, History
from .runtime import get_device, model_mode, seed_everything, training_threads

__all__ = [
    "DEFAULT_LR",
    "CheckpointError",
    "EpochStats",
    "History",
    "fit",
    "evaluate",
    "predict",
    "save_checkpoint",
    "load_checkpoint",
]

#: fit's default peak learning rate for AdamW + one-cycle; the sweep that chose it: ``benchmarks/RESULTS.md``.
DEFAULT_LR = 2e-2

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def fit(model: nn.Module, train_data: Dataset, val_data: Dataset | None = None, *, loss: LossFn | None = None,
        epochs: int, batch_size: int, lr: float = DEFAULT_LR, weight_decay: float = 1e-4,
        schedule: str = "onecycle", device: str | torch.device | None = None, amp: bool | None = None,
        channels_last: bool | None = None, progress: bool | str = True, seed: int = 0,
        checkpoint: str | os.PathLike | None = None, num_classes: int | None = None,
        ignore_index: int | None = None, sync_batchnorm: bool = False,
        on_epoch: Callable[[History], Any] | None = None) -> History:
    """Train ``model`` in place on ``train_data`` and return the :class:`History` of the run.

    Datasets hold ``(image float (C, H, W), mask int (H, W))`` pairs; the model maps ``(N, C, H, W)`` to
    logits ``(N, K, H, W)``. Optimiser: AdamW (``lr`` is the peak rate, ``weight_decay``) with a learning-rate
    ``schedule`` stepped after every batch: ``"onecycle"`` (default: warm-up then cosine decay), ``"poly"``
    (DeepLab's) or ``"constant"``. ``loss=None`` is cross-entropy (honouring ``ignore_index``); any
    ``loss(logits (N, K, H, W), target (N, H, W)) -> scalar`` can be given, e.g. from :mod:`segtutor.losses`.

    ``device`` defaults to :func:`segtutor.runtime.get_device`; the model is moved there. ``amp=None`` turns
    mixed precision on for CUDA only (see the module docstring); ``channels_last=None`` likewise. With
    ``val_data``, every epoch ends with the validation loss, mIoU and pixel accuracy
    (:class:`segtutor.metrics.ConfusionMatrix`). ``progress`` shows tqdm bars; ``progress="curves"`` also
    redraws the loss and validation curves after each epoch (:class:`segtutor.viz.LiveCurves`, at most one redraw a
    second). ``on_epoch(history)``, if given, is called after every epoch (and its ``close()``, if any, at the end). ``seed`` fixes shuffling and
    every random draw during training (not the model's initial weights: seed before building the model); each
    epoch reseeds Python's, NumPy's and torch's global generators from ``(seed, epoch)``.

    ``checkpoint``: a path saved after every completed epoch. If the file exists when ``fit`` starts, training
    resumes after its last completed epoch (weights, optimiser, schedule, history); a run that already finished
    returns its history at once. The other arguments must match those of the run that wrote it.

    Under ``torchrun --nproc_per_node=N`` the same call trains on N processes with DistributedDataParallel
    (:mod:`segtutor.distributed`): ``batch_size`` is the global batch, split evenly over the ranks (a multiple of
    N), so ``lr`` needs no rescaling; each epoch's global batches are those of a one-process run; validation metrics
    are summed over ranks; only rank 0 draws progress and writes the checkpoint. ``sync_batchnorm=True`` (CUDA
    only) replaces the model's BatchNorm layers by SyncBatchNorm, in place, so that statistics cover the global batch.

    Inputs are checked before any step: empty datasets, images whose channel count differs from the model's,
    masks of the wrong shape, labels outside ``0..K-1`` (``K`` = the model's output channels) that are not
    ``ignore_index``, and ``epochs`` / ``batch_size`` below 1 raise errors that say what was expected.
    """
    epochs = check_int(epochs, "epochs")
    batch_size = check_int(batch_size, "batch_size")
    seed = check_int(seed, "seed", minimum=0)
    if not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    image, mask = first_pair("train_data", train_data)
    check_channels("train_data", image.shape[0], model)
    if val_data is not None:
        val_image, val_mask = first_pair("val_data", val_data)
        check_channels("val_data", val_image.shape[0], model)
        if val_image.shape[0] != image.shape[0]:
            raise ValueError(f"val_data images have {val_image.shape[0]} channels, train_data images {image.shape[0]}")

    device = get_device(device)
    ctx = distributed.context(device)
    device = distributed.device_for(ctx, device)
    if ctx.enabled and batch_size % ctx.world_size:
        raise ValueError(f"batch_size is the global batch, split over {ctx.world_size} processes: it must be a multiple "
                         f"of {ctx.world_size}, got {batch_size}")
    if sync_batchnorm and ctx.enabled and device.type != "cuda":
        raise ValueError("sync_batchnorm=True needs CUDA (torch's SyncBatchNorm has no CPU kernel); on the CPU each "
                         "process normalises its own share of the batch: use sync_batchnorm=False")
    amp_dtype = _autocast_dtype(device, amp)
    if channels_last is None:
        channels_last = device.type == "cuda"
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    k = _resolve_num_classes(model, num_classes, image, device, "train_data")
    ignore_index = check_ignore_index(ignore_index, k)
    check_labels(mask, k, ignore_index, name="train_data[0] mask")
    if val_data is not None:
        check_labels(val_mask, k, ignore_index, name="val_data[0] mask")

    if loss is None:
        loss = nn.CrossEntropyLoss(ignore_index=-100 if ignore_index is None else ignore_index)
    if isinstance(loss, nn.Module):
        loss.to(device)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 and device.type == "cuda" else None
    loop = _Loop(device, k, ignore_index, amp_dtype, channels_last, scaler, ctx)

    shuffle_generator = torch.Generator()
    # The last, incomplete batch is dropped when there is at least one full batch: a batch of one image can
    # break BatchNorm (one value per channel at the deepest level), and shuffling uses every image over epochs.
    drop_last = len(train_data) > batch_size
    pin = device.type == "cuda"
    if ctx.enabled:
        sampler = distributed.ShardedSampler(train_data, ctx, shuffle_generator, batch_size=batch_size,
                                             drop_last=drop_last)
        # the loader draws its base seed from the generator before the sampler draws the permutation, as in the
        # one-process loader below: same generator, same draws, same permutation
        train_loader = DataLoader(train_data, batch_size=batch_size // ctx.world_size, sampler=sampler,
                                  generator=shuffle_generator, num_workers=0, pin_memory=pin)
        if val_data is not None:
            val_data = Subset(val_data, distributed.shard_indices(len(val_data), ctx))
    else:
        train_loader = DataLoader(train_data, batch_size=batch_size, shuffle=True, generator=shuffle_generator,
                                  num_workers=0, pin_memory=pin, drop_last=drop_last)
    val_loader = None if val_data is None else DataLoader(val_data, batch_size=batch_size, shuffle=False,
                                                          num_workers=0, pin_memory=pin)
    steps_per_epoch = len(train_loader)
    trained = distributed.wrap_model(model, ctx, device, sync_batchnorm=sync_batchnorm)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = _make_scheduler(schedule, optimizer, float(lr), epochs * steps_per_epoch)
    plan = {"epochs": epochs, "batch_size": batch_size, "lr": float(lr), "weight_decay": float(weight_decay),
            "schedule": schedule, "seed": seed, "train_samples": len(train_data), "num_classes": k,
            "ignore_index": ignore_index}

    history = History()
    if checkpoint is not None and Path(checkpoint).exists():
        history = _resume(checkpoint, model, optimizer, scheduler, scaler, plan)

    if progress not in (True, False, "curves"):
        raise ValueError(f"progress must be True, False or 'curves', got {progress!r}")
    callbacks = [c for c in (on_epoch, _live_curves() if progress == "curves" and ctx.is_main else None) if c]
    progress = bool(progress) and ctx.is_main
    epoch_bar = _progress(progress, total=epochs, initial=len(history), desc="epochs", unit="epoch")
    # one batch bar for the whole run, reset each epoch: every new notebook bar is a new widget on the page
    batch_bar = _progress(progress, total=steps_per_epoch, unit="batch", leave=False)
    with training_threads(device) as threads, model_mode(model, training=True), closing(epoch_bar), closing(batch_bar):
        if threads is not None:  # the CPU threads chosen for this machine's load: runtime.choose_threads
            epoch_bar.set_description(f"epochs ({threads.threads} of {threads.cores} CPU threads)", refresh=False)
        for epoch in range(len(history), epochs):
            global_seed, shuffle_seed = _epoch_seeds(int(seed), epoch)
            seed_everything(global_seed % 2**63)
            shuffle_generator.manual_seed(shuffle_seed)
            start = time.perf_counter()
            train_loss, last_lr = _train_epoch(trained, train_loader, loop, loss, optimizer, scheduler, batch_bar,
                                               f"epoch {epoch + 1}/{epochs}")
            val_loss = val_miou = val_acc = None
            if val_loader is not None:
                val_loss, result = _run_eval(model, val_loader, loop, "val_data", loss)
                val_miou, val_acc = float(result.miou), float(result.pixel_accuracy)
            history.append(EpochStats(epoch=epoch + 1, train_loss=train_loss, val_loss=val_loss, val_miou=val_miou,
                                      val_pixel_accuracy=val_acc, lr=last_lr, seconds=time.perf_counter() - start))
            if checkpoint is not None and ctx.is_main:
                save_checkpoint(checkpoint, model, optimizer, epoch=epoch + 1, history=history,
                                fit={"plan": plan, "scheduler": scheduler.state_dict(),
                                     "scaler": scaler.state_dict() if scaler is not None else None})
            distributed.barrier(ctx)  # no rank runs ahead of the checkpoint (a resume reads what rank 0 wrote)
            epoch_bar.update(1)
            postfix = {"loss": f"{train_loss:.4f}"}
            if val_miou is not None:
                postfix["val_mIoU"] = f"{val_miou:.3f}"
            epoch_bar.set_postfix(postfix)
            for callback in callbacks:
                callback(history)
    for callback in callbacks:
        getattr(callback, "close", lambda: None)()
    return history


def _train_epoch(model: nn.Module, loader: DataLoader, loop: _Loop, loss_fn: LossFn,
                 optimizer: torch.optim.Optimizer, scheduler: Any, bar: Any, desc: str) -> tuple[float, float]:
    """One pass over ``loader`` in train mode, counted on ``bar`` (a tqdm bar, possibly disabled); returns (mean
    training loss per image, learning rate of the last step)."""
    total = torch.zeros((), dtype=torch.float64, device=loop.device)  # summed on the device: no sync per batch
    count, last_lr = 0, optimizer.param_groups[0]["lr"]
    refresh = max(1, len(loader) // 20)
    bar.reset(total=len(loader))
    bar.set_description(desc, refresh=False)
    for index, x, y in loop.batches(loader, "train_data"):
        with loop.autocast():
            try:
                logits = model(x)
            except ValueError as exc:
                if "more than 1 value per channel" not in str(exc):
                    raise
                raise ValueError(f"{desc}, batch {index}: {len(x)} image(s) of {tuple(x.shape[2:])} px leave "
                                 "one value per channel at the model's deepest level, and BatchNorm cannot train on "
                                 "that; use batch_size >= 2 (and at least 2 training images) or larger images") from exc
            loss = loss_fn(logits, y)
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
        total += loss.detach().double() * len(x)
        count += len(x)
        if not bar.disable and (index % refresh == 0 or index == len(loader) - 1):
            # the loss sum stays on the device; read it only when the bar will show it (a sync)
            bar.set_postfix(loss=f"{total.item() / count:.4f}", refresh=False)
        bar.update(1)             # redraws at most every mininterval seconds, postfix included
    bar.refresh()
    sums = distributed.all_reduce_sum(torch.stack([total, total.new_tensor(count)]), loop.ctx)
    mean = (sums[0] / sums[1]).item()
    if not math.isfinite(mean):
        raise FloatingPointError(f"training loss became {mean} ({desc}); lower the learning rate (lr), check the "
                                 "inputs for NaN, or use amp=False")
    return mean, float(last_lr)


def evaluate(model: nn.Module, data: Dataset, num_classes: int, *, device: str | torch.device | None = None,
             ignore_index: int | None = None, batch_size: int = 32, amp: bool = False):
    """Score ``model`` on ``data`` (a dataset of ``(image (C, H, W), mask (H, W))`` pairs).

    Pixels are accumulated over the whole dataset into one ``(K, K)`` confusion matrix
    (:class:`segtutor.metrics.ConfusionMatrix`, ``K = num_classes``), whose ``compute()`` result is returned
    (``iou``, ``miou``, ``pixel_accuracy``, …). Runs in eval mode without gradients and restores the model's
    train/eval mode. ``device=None`` runs where the model's parameters are; a device given moves the model there.
    Under ``torchrun`` every rank must call it: each scores its share of ``data`` and the matrices are summed, so
    every rank gets the metrics of the whole dataset.
    """
    num_classes = check_int(num_classes, "num_classes")
    batch_size = check_int(batch_size, "batch_size")
    image, mask = first_pair("data", data)
    check_channels("data", image.shape[0], model)
    check_labels(mask, num_classes, ignore_index, name="data[0] mask")
    if device is None:
        device = model_device(model)
    else:
        device = get_device(device)
        model.to(device)
    ctx = distributed.current()
    if ctx.enabled:
        data = Subset(data, distributed.shard_indices(len(data), ctx))
    loader = DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=0)
    channels_last = next((p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
                          for p in model.parameters() if p.ndim == 4), False)
    _, result = _run_eval(model, loader, _Loop(device, num_classes, ignore_index, _autocast_dtype(device, amp),
                                               channels_last, ctx=ctx), "data")
    return result


def predict(model: nn.Module, images: torch.Tensor, *, batch_size: int = 64) -> torch.Tensor:
    """Labels ``int64 (N, H, W)`` for images ``float (N, C, H, W)``; a single image ``(C, H, W)`` gives ``(H, W)``.

    The argmax over the model's logits ``(N, K, H, W)``, computed in eval mode without gradients on the model's
    device, in chunks of ``batch_size``; the model's train/eval mode is restored and the labels come back on
    the device of ``images``.
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor of shape (N, C, H, W) or (C, H, W), got {type(images).__name__}")
    if images.ndim not in (3, 4):
        raise ValueError(f"images must have shape (N, C, H, W) or a single (C, H, W), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"images must be floating point (N, C, H, W), got {images.dtype}"
                        + ("; convert uint8 images with .float() / 255" if images.dtype == torch.uint8 else ""))
    batch_size = check_int(batch_size, "batch_size")
    single = images.ndim == 3
    batch = images[None] if single else images
    check_channels("predict", batch.shape[1], model)
    device = model_device(model)
    with model_mode(model), torch.no_grad():
        labels = [forward_checked(model, chunk.to(device), "predict").argmax(1).to(images.device)
                  for chunk in batch.split(batch_size)]
    out = torch.cat(labels) if labels else torch.empty((0, *batch.shape[2:]), dtype=torch.long, device=images.device)
    return out[0] if single else out


# ------------------------------------------------------------------------------------------- helpers

@dataclass(frozen=True)
class _Loop:
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

    def batches(self, loader: DataLoader, name: str) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        """``(index, images (N, C, H, W), masks int64 (N, H, W))`` on the device, each batch checked on the CPU
        first (no device-side asserts)."""
        for index, (images, masks) in enumerate(loader):
            check_batch(name, index, images, masks, self.num_classes, self.ignore_index)
            x = images.to(self.device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield index, x, masks.to(self.device, non_blocking=True).long()

    def autocast(self):
        """Mixed precision at ``amp_dtype``, or nothing."""
        return torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype is not None else nullcontext()


def _run_eval(model: nn.Module, loader: DataLoader, loop: _Loop, name: str,
              loss_fn: LossFn | None = None) -> tuple[float | None, Any]:
    """Mean loss (if ``loss_fn``) and the metrics of :class:`segtutor.metrics.ConfusionMatrix` over ``loader``,
    in eval mode without gradients (the model's mode is restored). Under DDP each rank scores its own shard with the
    bare model (no collective per batch, so shards of unequal length are fine) and the sums are reduced at the end."""
    from .metrics import ConfusionMatrix, SegmentationMetrics

    matrix = ConfusionMatrix(loop.num_classes, ignore_index=loop.ignore_index)
    total, count = 0.0, 0
    with model_mode(model), torch.no_grad():
        for index, x, y in loop.batches(loader, name):
            with loop.autocast():
                logits = forward_checked(model, x, name) if index == 0 else model(x)
                if loss_fn is not None:
                    total += float(loss_fn(logits, y)) * len(x)
                    count += len(x)
            if logits.shape[1] != loop.num_classes:
                raise ValueError(f"{name}: the model outputs {logits.shape[1]} class channels but "
                                 f"num_classes={loop.num_classes}")
            matrix.update(logits.argmax(1), y)
    if not loop.ctx.enabled:
        return (total / count if loss_fn is not None else None), matrix.compute()
    counts = distributed.all_reduce_sum(matrix.matrix.to(loop.device, copy=True), loop.ctx)
    sums = distributed.all_reduce_sum(torch.tensor([total, count], dtype=torch.float64, device=loop.device), loop.ctx)
    mean_loss = float(sums[0] / sums[1]) if loss_fn is not None else None
    return mean_loss, SegmentationMetrics.from_confusion(counts.cpu())


def _make_scheduler(schedule: str, optimizer: torch.optim.Optimizer, lr: float, total_steps: int):
    if schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps)
    if schedule == "poly":  # DeepLab's "poly": lr · (1 − step / total)^0.9
        return torch.optim.lr_scheduler.PolynomialLR(optimizer, total_iters=total_steps, power=0.9)
    if schedule == "constant":
        return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    raise ValueError(f"unknown schedule {schedule!r}; expected 'onecycle', 'poly' or 'constant'")


def _live_curves():
    from .viz import LiveCurves

    return LiveCurves()


def _progress(enabled: bool, **kwargs: Any):
    from tqdm.auto import tqdm

    # at most ~2 redraws a second: each widget redraw is a kernel message, and a flood of them slows notebooks
    return tqdm(disable=not enabled, mininterval=0.5, **kwargs)


def _resolve_num_classes(model: nn.Module, num_classes: int | None, image: torch.Tensor, device: torch.device,
                         name: str) -> int:
    """Number of classes K = the model's output channels, found with one small forward pass (eval mode, no grad),
    which also checks that the model returns ``(N, K, H, W)`` at the input's resolution."""
    with model_mode(model), torch.no_grad():
        logits = forward_checked(model, image[None].to(device), name)
    k = int(logits.shape[1])
    if num_classes is not None and check_int(num_classes, "num_classes") != k:
        raise ValueError(f"num_classes={num_classes} but the model ({model_name(model)}) outputs {k} class channels")
    if k < 2:
        raise ValueError(f"the model outputs {k} class channel(s); segmentation with cross-entropy needs K >= 2 "
                         "(use K=2 for foreground/background)")
    return k


def _autocast_dtype(device: torch.device, amp: bool | None) -> torch.dtype | None:
    if amp is None:
        amp = device.type == "cuda"
    if not amp:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu":
        return torch.bfloat16
    raise ValueError(f"amp=True is not supported on {device.type} by segtutor.train; use amp=False (or None)")


def _epoch_seeds(seed: int, epoch: int) -> tuple[int, int]:
    """Two independent 63-bit seeds for epoch ``epoch`` of a run seeded ``seed``: (global RNGs, shuffling)."""
    state = np.random.SeedSequence([seed, epoch]).generate_state(4, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1]), (int(state[2]) << 31) ^ int(state[3])


def _resume(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
            scaler: Any, plan: dict) -> History:
    payload = read_checkpoint(path)
    state = (payload.get("extra") or {}).get("fit")
    if not isinstance(state, dict) or "plan" not in state:
        raise CheckpointError(f"checkpoint {str(path)!r} was not written by fit, so fit cannot resume from it; "
                              "pass another checkpoint path (or load it with load_checkpoint)")
    saved_plan = state["plan"]
    differ = {key: (saved_plan.get(key), value) for key, value in plan.items() if saved_plan.get(key) != value}
    if differ:
        details = ", ".join(f"{key}: checkpoint {old!r} vs now {new!r}" for key, (old, new) in differ.items())
        raise CheckpointError(f"checkpoint {str(path)!r} belongs to a different fit ({details}); resume with the same "
                              "arguments, or pass a new checkpoint path to start over")
    apply_checkpoint(payload, path, model, optimizer)
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler") is not None:
        scaler.load_state_dict(state["scaler"])
    history = History.from_dict(payload["history"])
    if len(history) != payload.get("epoch"):
        raise CheckpointError(f"checkpoint {str(path)!r} is inconsistent: epoch={payload.get('epoch')} but its history "
                              f"has {len(history)} epochs")
    return history


if __name__ == "__main__":  # python -m segtutor.train ...: the command-line entry point (segtutor/cli.py)
    import sys

    from segtutor.cli import main

    sys.exit(main())
