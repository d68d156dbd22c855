"""Throughput of ``segtutor.metrics.ConfusionMatrix.update`` against torchmetrics and the source document's loop.

Same inputs for every implementation, measured in the same run, interleaved round by round; results as
ratios to torchmetrics' ``MulticlassJaccardIndex`` with default arguments. Every implementation's result is
checked against ours before any time is reported (the script fails otherwise).

Implementations
  segtutor          ConfusionMatrix(K).update(pred, target), input validation ON (always)
  tm default        torchmetrics MulticlassJaccardIndex(num_classes=K)            (validate_args=True)
  tm no-validate    torchmetrics MulticlassJaccardIndex(num_classes=K, validate_args=False)
  source loop       the source document's calculate_iou (NumPy, one pass per class), re-implemented below;
                    it returns one mIoU per call, so it is called once per batch (its argmax and the copy
                    to NumPy are part of its cost, as in the source's evaluation code)

Input modes
  scores            pred = float32 scores (N, K, H, W); each implementation takes the argmax itself
  labels            pred = int64 labels (N, H, W), argmax taken beforehand
  labels+void       labels with about 5% of target pixels set to 255, ignore_index=255 (no source loop:
                    it has no ignore label)

Usage:  python benchmarks/metrics.py [--device cuda] [--threads 1] [--batches 6] [--rounds 5]
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from typing import Callable

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.machine import cpu_name  # noqa: E402
from segtutor import metrics as M  # noqa: E402

import torchmetrics  # noqa: E402
from torchmetrics.classification import MulticlassJaccardIndex  # noqa: E402


def calculate_iou(pred_mask: np.ndarray, true_mask: np.ndarray, num_classes: int) -> float:
    """The source document's evaluation function, as written there (absent classes score 0)."""
    ious = []
    for class_id in range(num_classes):
        pred_binary = (pred_mask == class_id)
        true_binary = (true_mask == class_id)
        intersection = np.logical_and(pred_binary, true_binary).sum()
        union = np.logical_or(pred_binary, true_binary).sum()
        iou = intersection / union if union > 0 else 0
        ious.append(iou)
    return np.mean(ious)


def make_batches(n_batches: int, batch: int, k: int, size: int, device: torch.device, void: float = 0.0):
    """Scores that agree with the target on most pixels (a half-trained model), every class present."""
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n_batches):
        target = torch.randint(0, k, (batch, size, size), generator=g)
        scores = torch.randn(batch, k, size, size, generator=g)
        scores.scatter_add_(1, target[:, None], torch.full((batch, 1, size, size), 1.5))
        if void:
            target = target.masked_fill(torch.rand(target.shape, generator=g) < void, 255)
        out.append((scores.to(device), target.to(device)))
    return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_pass(fn: Callable[[torch.Tensor, torch.Tensor], None], batches, device) -> float:
    sync(device)
    start = time.perf_counter()
    for pred, target in batches:
        fn(pred, target)
    sync(device)
    return time.perf_counter() - start


def machine() -> dict[str, str]:
    model = cpu_name()
    info = {
        "date": datetime.date.today().isoformat(),
        "cpu": model,
        "cores": str(os.cpu_count()),
        "torch threads": str(torch.get_num_threads()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchmetrics": torchmetrics.__version__,
        "numpy": np.__version__,
        "load average (1 min) at start": f"{os.getloadavg()[0]:.2f}",
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def bench_mode(mode: str, batches, k: int, device: torch.device, rounds: int) -> list[tuple[str, float, str]]:
    ignore = 255 if mode == "labels+void" else None
    if mode != "scores":
        batches = [(scores.argmax(1), target) for scores, target in batches]

    ours = M.ConfusionMatrix(k, ignore_index=ignore)
    tm_default = MulticlassJaccardIndex(num_classes=k, ignore_index=ignore).to(device)
    tm_fast = MulticlassJaccardIndex(num_classes=k, ignore_index=ignore, validate_args=False).to(device)
    source_results: list[float] = []

    def source(pred: torch.Tensor, target: torch.Tensor) -> None:
        labels = pred.argmax(1) if pred.is_floating_point() else pred
        source_results.append(calculate_iou(labels.cpu().numpy(), target.cpu().numpy(), k))

    impls: dict[str, tuple[Callable, Callable]] = {
        "segtutor ConfusionMatrix": (ours.update, ours.reset),
        "torchmetrics default": (tm_default.update, tm_default.reset),
        "torchmetrics validate_args=False": (tm_fast.update, tm_fast.reset),
    }
    if ignore is None:
        impls["source calculate_iou (NumPy loop)"] = (source, source_results.clear)

    times: dict[str, list[float]] = {name: [] for name in impls}
    for r in range(rounds + 1):  # round 0 warms up and is checked, not timed
        for name, (update, reset) in impls.items():
            reset()
            elapsed = run_pass(update, batches, device)
            if r:
                times[name].append(elapsed)
        if r == 0:
            check_equal(ours, tm_default, tm_fast, source_results, batches, k, ignore)

    pixels = sum(t.numel() for _, t in batches)
    # best of the rounds (as timeit does): the machine's other work only ever adds time
    reference = min(times["torchmetrics default"])
    rows = []
    for name, ts in times.items():
        t = min(ts)
        rows.append((name, t / len(batches) * 1e3, f"{pixels / t / 1e6:.1f}", f"{reference / t:.2f}x"))
    return rows


def check_equal(ours, tm_default, tm_fast, source_results, batches, k, ignore) -> None:
    """Every implementation must give our numbers before its time means anything."""
    for tm in (tm_default, tm_fast):
        assert torch.equal(ours.matrix, tm.confmat), "confusion matrices differ from torchmetrics"
        assert abs(ours.compute().miou - float(tm.compute())) < 1e-6, "mIoU differs from torchmetrics"
    if ignore is None:
        assert len(source_results) == len(batches)
        for (pred, target), theirs in zip(batches, source_results):
            # every class is present in every batch, so the source's 0-for-absent convention agrees with ours
            assert bool(M.iou_per_class(pred, target, k).isnan().any()) is False
            assert abs(M.mean_iou(pred, target, k) - theirs) < 1e-12, "mIoU differs from the source loop"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--classes", type=int, default=21)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)

    info = machine()
    print(f"# ConfusionMatrix throughput on {device.type}\n")
    print(", ".join(f"{k}: {v}" for k, v in info.items()))
    print(f"\ninputs: {args.batches} batches of {args.batch_size}x{args.classes}x{args.size}x{args.size} "
          f"float32 scores / {args.batch_size}x{args.size}x{args.size} int64 labels; best of {args.rounds} "
          "interleaved rounds, each a full pass over the batches; speed-up = time of torchmetrics default / time\n")
    for mode in ("scores", "labels", "labels+void"):
        batches = make_batches(args.batches, args.batch_size, args.classes, args.size, device,
                               void=0.05 if mode == "labels+void" else 0.0)
        rows = bench_mode(mode, batches, args.classes, device, args.rounds)
        print(f"\n**{mode}** (equal results checked)\n")
        print("| implementation | ms / batch | Mpixel/s | speed-up vs torchmetrics default |")
        print("|---|---:|---:|---:|")
        for name, ms, mpx, ratio in rows:
            print(f"| {name} | {ms:.2f} | {mpx} | {ratio} |")
        del batches


if __name__ == "__main__":
    main()
