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
  and :class:`EpochStats` come from :mod:`segtutor.history`, the dataset and model checks from
  :mod:`segtutor._validation`, and the per-epoch machinery (one training epoch, one evaluation pass) from
  :mod:`segtutor.loop`. Under ``torchrun`` the same calls train on several processes (:mod:`segtutor.distributed`);
  ``python -m segtutor.train`` is the command line (:mod:`segtutor.cli`).

Reproducibility: every epoch starts from seeds derived from ``(seed, epoch)`` — the shuffling order and
Python's, NumPy's and torch's global generators (augmentations, dropout). So two runs with the same seed and the
same number of CPU threads give identical histories on the CPU (``fit`` picks the thread count from the machine's
load, :func:`segtutor.runtime.choose_threads`; pin it with ``SEGTUTOR_THREADS=N`` for bit-identical reruns), and a run resumed from a checkpoint continues exactly as if never stopped,
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
from contextlib import closing
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from . import distributed
from ._validation import (IndexedPairs, check_channels, check_finite_images, check_ignore_index, check_int, check_labels,
                          check_num_classes, collate_pairs, first_pair, forward_checked, model_device, model_name)
from .checkpoint import CheckpointError, check_writable, data_fingerprint, load_checkpoint, resume_fit, save_checkpoint
from .history import EpochStats, History
from .loop import LossFn, Loop, autocast_dtype, epoch_seeds, live_curves, make_scheduler, progress_bar, run_eval, train_epoch
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
    ``ignore_index``, and ``epochs`` / ``batch_size`` below 1 raise errors that say what was expected. Every
    batch is checked on the CPU before it reaches the device: items that cannot be stacked (other sizes, channel
    counts, dtypes, (H, W, C) images) are named, non-finite images refused; float64 images are converted to
    float32. A checkpoint folder that cannot be written is refused before the first epoch, and a checkpoint of a
    different training set (same length, other items: a fingerprint of two items is stored) is not resumed.

    A batch whose pixels are all ``ignore_index`` (no labelled pixel: cross-entropy would be 0/0 = NaN) is
    skipped: no forward pass, no optimiser step (the schedule still advances), counted in
    ``EpochStats.skipped_batches``. Under ``torchrun`` a rank whose share has no labelled pixel contributes a
    zero loss instead (every rank must take part in each step), counted the same way.

    The loss is checked after every step's forward pass, before ``backward()``: the first non-finite training
    loss stops training with a :class:`FloatingPointError` naming the epoch and batch, and the model still holds
    the weights of the last finite step. This reads one value per step from the device (a sync, negligible on
    the CPU; on CUDA it costs a little overlap of host and device, accepted so that no step ever applies a NaN);
    under ``torchrun`` the ranks agree on it with one all-reduce of a flag, so every rank stops at the same step.
    A non-finite validation loss also stops training, before that epoch's checkpoint is written.
    """
    epochs = check_int(epochs, "epochs")
    batch_size = check_int(batch_size, "batch_size")
    seed = check_int(seed, "seed", minimum=0)
    if not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if not isinstance(weight_decay, (int, float)) or isinstance(weight_decay, bool) or not math.isfinite(weight_decay) \
            or weight_decay < 0:
        raise ValueError(f"weight_decay must be a finite number >= 0 (AdamW's decoupled decay, e.g. 1e-4), got {weight_decay!r}")
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
    amp_dtype = autocast_dtype(device, amp)
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
    loop = Loop(device, k, ignore_index, amp_dtype, channels_last, scaler, ctx)

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
        train_loader = DataLoader(IndexedPairs(train_data), batch_size=batch_size // ctx.world_size, sampler=sampler,
                                  generator=shuffle_generator, num_workers=0, pin_memory=pin,
                                  collate_fn=collate_pairs("train_data"))
        if val_data is not None:
            val_data = Subset(val_data, distributed.shard_indices(len(val_data), ctx))
    else:
        train_loader = DataLoader(IndexedPairs(train_data), batch_size=batch_size, shuffle=True,
                                  generator=shuffle_generator, num_workers=0, pin_memory=pin, drop_last=drop_last,
                                  collate_fn=collate_pairs("train_data"))
    val_loader = None if val_data is None else DataLoader(IndexedPairs(val_data), batch_size=batch_size, shuffle=False,
                                                          num_workers=0, pin_memory=pin,
                                                          collate_fn=collate_pairs("val_data"))
    steps_per_epoch = len(train_loader)
    trained = distributed.wrap_model(model, ctx, device, sync_batchnorm=sync_batchnorm)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = make_scheduler(schedule, optimizer, float(lr), epochs * steps_per_epoch)
    plan = {"epochs": epochs, "batch_size": batch_size, "lr": float(lr), "weight_decay": float(weight_decay),
            "schedule": schedule, "seed": seed, "train_samples": len(train_data), "num_classes": k,
            "ignore_index": ignore_index}

    plan["train_fingerprint"] = data_fingerprint(train_data)

    history = History()
    if checkpoint is not None and Path(checkpoint).exists():
        history = resume_fit(checkpoint, model, optimizer, scheduler, scaler, plan)
    if checkpoint is not None and ctx.is_main and len(history) < epochs:
        check_writable(checkpoint)  # a read-only folder is found now, not after an epoch of training

    if progress not in (True, False, "curves"):
        raise ValueError(f"progress must be True, False or 'curves', got {progress!r}")
    callbacks = [c for c in (on_epoch, live_curves() if progress == "curves" and ctx.is_main else None) if c]
    progress = bool(progress) and ctx.is_main
    epoch_bar = progress_bar(progress, total=epochs, initial=len(history), desc="epochs", unit="epoch")
    # one batch bar for the whole run, reset each epoch: every new notebook bar is a new widget on the page
    batch_bar = progress_bar(progress, total=steps_per_epoch, unit="batch", leave=False)
    with training_threads(device) as threads, model_mode(model, training=True), closing(epoch_bar), closing(batch_bar):
        if threads is not None:  # the CPU threads chosen for this machine's load: runtime.choose_threads
            epoch_bar.set_description(f"epochs ({threads.threads} of {threads.cores} CPU threads)", refresh=False)
        for epoch in range(len(history), epochs):
            global_seed, shuffle_seed = epoch_seeds(int(seed), epoch)
            seed_everything(global_seed % 2**63)
            shuffle_generator.manual_seed(shuffle_seed)
            start = time.perf_counter()
            train_loss, last_lr, skipped = train_epoch(trained, train_loader, loop, loss, optimizer, scheduler,
                                                        batch_bar, f"epoch {epoch + 1}/{epochs}")
            val_loss = val_miou = val_acc = None
            if val_loader is not None:
                val_loss, result = run_eval(model, val_loader, loop, "val_data", loss)
                val_miou, val_acc = float(result.miou), float(result.pixel_accuracy)
                if val_loss is not None and not math.isfinite(val_loss):
                    raise FloatingPointError(
                        f"validation loss is {val_loss} after epoch {epoch + 1}/{epochs} (training loss {train_loss:.4g}); "
                        "the validation images are finite, so the model's outputs overflowed: lower the learning rate "
                        "(lr) or use amp=False. This epoch was not saved"
                        + (f"; {str(checkpoint)!r} still holds the previous epoch, if any" if checkpoint else ""))
            history.append(EpochStats(epoch=epoch + 1, train_loss=train_loss, val_loss=val_loss, val_miou=val_miou,
                                      val_pixel_accuracy=val_acc, lr=last_lr, seconds=time.perf_counter() - start,
                                      skipped_batches=skipped))
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
    num_classes = check_num_classes(num_classes)
    ignore_index = check_ignore_index(ignore_index, num_classes)
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
    loader = DataLoader(IndexedPairs(data), batch_size=batch_size, shuffle=False, num_workers=0,
                        collate_fn=collate_pairs("data"))
    channels_last = next((p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
                          for p in model.parameters() if p.ndim == 4), False)
    _, result = run_eval(model, loader, Loop(device, num_classes, ignore_index, autocast_dtype(device, amp),
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
    check_channels("predict", batch.shape[1], model, shape=tuple(batch.shape[1:]))
    device = model_device(model)
    labels = []
    with model_mode(model), torch.no_grad():
        for start, chunk in zip(range(0, len(batch), batch_size), batch.split(batch_size)):
            check_finite_images(chunk, f"predict images {start}..{start + len(chunk) - 1}")
            labels.append(forward_checked(model, chunk.to(device), "predict").argmax(1).to(images.device))
    out = torch.cat(labels) if labels else torch.empty((0, *batch.shape[2:]), dtype=torch.long, device=images.device)
    return out[0] if single else out


# ------------------------------------------------------------------------------------------- helpers

def _resolve_num_classes(model: nn.Module, num_classes: int | None, image: torch.Tensor, device: torch.device,
                         name: str) -> int:
    """Number of classes K = the model's output channels, found with one small forward pass (eval mode, no grad),
    which also checks that the model returns ``(N, K, H, W)`` at the input's resolution."""
    with model_mode(model), torch.no_grad():
        logits = forward_checked(model, image[None].to(device, torch.float32 if image.dtype == torch.float64
                                                         else image.dtype), name)
    k = int(logits.shape[1])
    if num_classes is not None and check_int(num_classes, "num_classes") != k:
        raise ValueError(f"num_classes={num_classes} but the model ({model_name(model)}) outputs {k} class channels")
    if k < 2:
        raise ValueError(f"the model outputs {k} class channel(s); segmentation with cross-entropy needs K >= 2 "
                         "(use K=2 for foreground/background)")
    return k


if __name__ == "__main__":  # python -m segtutor.train ...: the command-line entry point (segtutor/cli.py)
    import sys

    from segtutor.cli import main

    sys.exit(main())
