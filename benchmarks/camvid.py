"""CamVid from scratch on a CPU: test mIoU, per-class IoU, pixel accuracy, training time, loading rate.

Each run goes through the public API, as a lesson's training cell would:

    train = CamVid(root, "train", size=LOAD, transforms=AUGMENT, cache=True)
    val, test = CamVid(root, "val", size=LOAD, cache=True), CamVid(root, "test", size=LOAD, cache=True)
    seed_everything(SEED); model = build_model(MODEL, 11, width=WIDTH)
    fit(model, train, epochs=E, batch_size=B, lr=LR, loss=CrossEntropyLoss(weight=W, ignore_index=255), seed=SEED)
    evaluate(model, val, 11, ignore_index=255); evaluate(model, test, 11, ignore_index=255)

A recipe is chosen on **val** (``--select``: the recipe with the best val mIoU among those run) and reported on
**test**. ``train_seconds`` is the wall time of the ``fit`` call alone, the cache already filled (the one-off decode
is ``decode_seconds``, reported beside it); ``train_cpu_seconds`` is the process CPU time of the same call
(``time.process_time``), which a machine shared with other jobs inflates less than wall time (an idle 2-core
machine gives wall ~ CPU / 2 when both threads are busy). The load average before and after each run is recorded.

Augmentation (``--augment``): ``none``; ``flip`` (random horizontal flip); ``scalecrop`` (random scale in
``--scale``, random crop of ``--crop``, flip); ``--jitter S`` adds a colour jitter of strength S. Class weights (``--weights``) from the train label frequencies
``f_c`` (share of labelled pixels): ``none``, ``median`` (SegNet's median-frequency balancing, ``median(f) / f_c``),
``sqrt`` (its square root), ``enet`` (ENet's ``1 / ln(1.02 + f_c)``).

Usage:
  python benchmarks/camvid.py --model deeplabv3plus --size 96x128 --epochs 20                  # the old calibration
  python benchmarks/camvid.py --model unet --size 144x192 --crop 96x128 --augment scalecrop --weights sqrt
  python benchmarks/camvid.py --loading                                   # decode rate with and without the cache
  options: --root DIR (default: segtutor.data.camvid.locate())  --seeds 0,1,2  --threads 2  --lr X  --width N
           --batch-size N  --schedule onecycle|poly  --device cuda

Output: one JSON line per run on stdout; a markdown summary (machine, load average, command) on stderr.

Calibration so far (2026-12-01, Intel Xeon, 2 cores SHARED with other jobs: load average 7-19, so wall times are
not idle figures; 1 torch thread, seed 0, DeepLab v3+ width 16, batch 16, flip, sqrt weights unless noted; CPU-s of
``fit`` alone). Target: >= 0.45 test mIoU in <= 60 s on an idle 2-core machine. Not reached yet:

| size | epochs | lr | other | val mIoU | test mIoU | test pixel acc | CPU-s |
|---|---:|---:|---|---:|---:|---:|---:|
| 96x128 | 20 | 0.02 | | 0.534 | 0.402 | 0.788 | 96 |
| 96x128 | 20 | 0.005 | | **0.552** | 0.409 | 0.791 | 99 |
| 96x128 | 20 | 0.01 | batch 8 | 0.541 | 0.406 | 0.783 | 105 |
| 96x128 | 20 | 0.005 | jitter 0.3, median weights | 0.502 | 0.371 | 0.701 | 105 |
| 96x128 | 20 | 0.005 | scale-crop 1.0-1.5, channels_last | 0.513 | 0.383 | 0.743 | 89 |
| 144x192 | 20 | 0.02 | crops 96x128, scale 0.75-1.25 | 0.441 | 0.373 | 0.754 | 102 |
| 120x160 | 16 | 0.005 | channels_last | 0.544 | **0.423** | 0.803 | 98 |
| 144x192 | 11 | 0.005 | channels_last | 0.536 | 0.418 | 0.798 | 98 |
| 96x128 U-Net w8 | 20 | 0.005 | | 0.436 | 0.387 | 0.812 | 144 |
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any

import torch
import torch.nn as nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
from benchmarks.machine import machine  # noqa: E402
from segtutor import runtime, train  # noqa: E402
from segtutor.data import transforms as T  # noqa: E402
from segtutor.data.camvid import CAMVID_CLASSES, CamVid, class_frequencies, class_weights, locate  # noqa: E402
from segtutor.models import build_model  # noqa: E402

K = len(CAMVID_CLASSES)
IGNORE = CamVid.ignore_index


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:  # pragma: no cover - not Linux
        return "n/a"


def parse_size(text: str) -> tuple[int, int]:
    h, _, w = text.lower().partition("x")
    return int(h), int(w)


class ColourJitter:
    """Photometric change of the image only (the mask is untouched): brightness and contrast factors in
    ``1 ± strength``, each channel's gain in ``1 ± strength / 3``; the global torch RNG, as fit seeds it."""

    def __init__(self, strength: float = 0.3) -> None:
        self.strength = float(strength)

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.strength
        brightness, contrast = (1 + s * (2 * torch.rand(2) - 1)).tolist()
        gains = 1 + (s / 3) * (2 * torch.rand(3, 1, 1) - 1)
        mean = image.mean()
        image = ((image - mean) * contrast + mean) * brightness * gains
        return image.clamp(0.0, 1.0), mask

    def __repr__(self) -> str:
        return f"ColourJitter({self.strength})"


def augmentation(kind: str, crop: tuple[int, int] | None, scale: tuple[float, float], jitter: float = 0.0) -> Any:
    steps: list[Any] = []
    if kind == "scalecrop":
        if crop is None:
            raise SystemExit("--augment scalecrop needs --crop HxW")
        steps += [T.RandomScale(*scale), T.RandomCrop(crop)]
    elif kind not in ("none", "flip"):
        raise ValueError(f"unknown --augment {kind!r}; expected none, flip or scalecrop")
    if kind != "none":
        steps.append(T.RandomHorizontalFlip())
    if jitter > 0:
        steps.append(ColourJitter(jitter))
    return T.Compose(steps) if steps else None


def fill(data: CamVid) -> tuple[float, float]:
    """Read every item once (filling the cache when it is on); return (wall seconds, CPU seconds)."""
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(len(data)):
        data[i]
    return time.perf_counter() - wall, time.process_time() - cpu


def loading_rates(root: str, size: tuple[int, int]) -> dict[str, Any]:
    """Images per second through ``CamVid(..., size)``: decoding every time, and from a filled cache."""
    plain = CamVid(root, "train", size=size)
    cached = CamVid(root, "train", size=size, cache=True)
    n = len(plain)
    (t_plain, c_plain), (t_first, c_first), (t_cached, c_cached) = fill(plain), fill(cached), fill(cached)
    return {"size": list(size), "images": n, "uncached_images_per_s": n / t_plain,
            "first_epoch_images_per_s": n / t_first, "cached_images_per_s": n / t_cached,
            "uncached_images_per_cpu_s": n / c_plain, "cached_images_per_cpu_s": n / max(c_cached, 1e-9),
            "cache_mb": sum(x.numel() * x.element_size() for pair in cached._cache for x in pair) / 2**20,
            "loadavg": loadavg()}


def run_one(args: argparse.Namespace, seed: int, data: dict[str, CamVid], weights: torch.Tensor | None) -> dict[str, Any]:
    runtime.seed_everything(seed)
    model = build_model(args.model, K, width=args.width)
    loss = nn.CrossEntropyLoss(weight=weights, ignore_index=IGNORE)
    load_before = loadavg()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    history = train.fit(model, data["train"], epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                        schedule=args.schedule, loss=loss, seed=seed, progress=False, device=args.device,
                        ignore_index=IGNORE, channels_last=args.channels_last or None)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    row: dict[str, Any] = {"model": args.model, "seed": seed, "size": list(data["val"].size), "epochs": args.epochs,
                           "batch_size": args.batch_size, "width": args.width, "lr": args.lr,
                           "schedule": args.schedule, "channels_last": args.channels_last, "augment": args.augment, "jitter": args.jitter,
                           "crop": list(args.crop) if args.crop else None, "scale": list(args.scale),
                           "weights": args.weights, "train_seconds": round(wall, 1), "train_cpu_seconds": round(cpu, 1),
                           "loadavg_before": load_before, "loadavg_after": loadavg(),
                           "final_train_loss": round(history[-1].train_loss, 4),
                           "params": sum(p.numel() for p in model.parameters()), "torch_threads": torch.get_num_threads(),
                           "device": str(args.device or "cpu")}
    for split in ("val", "test"):
        result = train.evaluate(model, data[split], K, ignore_index=IGNORE, device=args.device)
        row[f"{split}_miou"] = round(float(result.miou), 4)
        row[f"{split}_pixel_accuracy"] = round(float(result.pixel_accuracy), 4)
        if split == "test":
            row["test_iou"] = {name: round(float(v), 4) for name, v in zip(CAMVID_CLASSES, result.iou)}
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=None)
    parser.add_argument("--model", default="deeplabv3plus")
    parser.add_argument("--size", type=parse_size, default=(96, 128), help="HxW the photos are loaded at")
    parser.add_argument("--crop", type=parse_size, default=None, help="HxW training crops (--augment scalecrop)")
    parser.add_argument("--scale", type=lambda s: tuple(float(v) for v in s.split(",")), default=(0.75, 1.25))
    parser.add_argument("--augment", default="none", choices=("none", "flip", "scalecrop"))
    parser.add_argument("--jitter", type=float, default=0.0, help="colour jitter strength (0: off)")
    parser.add_argument("--weights", default="none", choices=("none", "median", "sqrt", "enet"))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--lr", type=float, default=train.DEFAULT_LR)
    parser.add_argument("--schedule", default="onecycle")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default=None)
    parser.add_argument("--channels-last", action="store_true", help="fit(channels_last=True) (about 17 %% fewer "
                        "CPU-s per DeepLab v3+ step on the Xeon measured)")
    parser.add_argument("--loading", action="store_true", help="measure loading rates only")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    root = str(locate(args.root))
    info = machine(args.device or "cpu")
    command = "python benchmarks/camvid.py " + " ".join(sys.argv[1:] if argv is None else argv)

    if args.loading:
        rates = [loading_rates(root, size) for size in ((96, 128), (144, 192), (360, 480))]
        for r in rates:
            print(json.dumps(r), flush=True)
        lines = [f"CamVid loading ({info['cpu']}, {info['torch_threads']} threads, {info['date']}; `{command}`)", "",
                 "| size (H x W) | decode every time: img/s (per CPU-s) | first epoch with cache | cached: img/s "
                 "(per CPU-s) | cache MB | load avg |",
                 "|---|---:|---:|---:|---:|---|"]
        lines += [f"| {r['size'][0]} x {r['size'][1]} | {r['uncached_images_per_s']:.0f} ({r['uncached_images_per_cpu_s']:.0f}) "
                  f"| {r['first_epoch_images_per_s']:.0f} | {r['cached_images_per_s']:.0f} ({r['cached_images_per_cpu_s']:.0f}) "
                  f"| {r['cache_mb']:.0f} | {r['loadavg']} |" for r in rates]
        print("\n".join(lines), file=sys.stderr)
        return 0

    augment = augmentation(args.augment, args.crop, args.scale, args.jitter)
    data = {"train": CamVid(root, "train", size=args.size, transforms=augment, cache=True),
            "val": CamVid(root, "val", size=args.size, cache=True),
            "test": CamVid(root, "test", size=args.size, cache=True)}
    decode = {split: round(fill(d)[0], 1) for split, d in data.items()}
    weights = class_weights(class_frequencies(data["train"]), args.weights)
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        row = run_one(args, seed, data, weights)
        row["decode_seconds"] = decode
        rows.append(row)
        print(json.dumps(row), flush=True)

    def med(key: str) -> str:
        values = [r[key] for r in rows]
        text = f"{statistics.median(values):.3f}" if key.endswith(("miou", "accuracy")) else f"{statistics.median(values):.0f}"
        return text + (f" ({min(values):.3f}-{max(values):.3f})" if len(values) > 1 and "miou" in key else "")

    per_class = ", ".join(f"{name} {statistics.median(r['test_iou'][name] for r in rows):.2f}" for name in CAMVID_CLASSES)
    print("\n".join([
        f"CamVid, {args.model} width {args.width}, {args.size[0]}x{args.size[1]}, {args.epochs} epochs, batch "
        f"{args.batch_size}, lr {args.lr}, {args.schedule}{', channels_last' if args.channels_last else ''}, augment {args.augment}"
        + (f" (crop {args.crop[0]}x{args.crop[1]}, scale {args.scale})" if args.augment == "scalecrop" else "")
        + (f", colour jitter {args.jitter}" if args.jitter else "") + f", weights {args.weights}; seeds {args.seeds}",
        f"machine: {info['cpu']}, {info['cores']} cores, {info['torch_threads']} torch threads, torch {info['torch']}, "
        f"{info['date']}; load average before/after: " + "; ".join(f"{r['loadavg_before']} / {r['loadavg_after']}" for r in rows),
        f"val mIoU {med('val_miou')}, test mIoU {med('test_miou')}, test pixel accuracy {med('test_pixel_accuracy')}",
        f"train {med('train_seconds')} s wall, {med('train_cpu_seconds')} CPU-s (decode once, cached: {decode} s)",
        f"test IoU per class: {per_class}",
        f"command: `{command}`",
    ]), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
