"""Held-out quality per training budget: what a student gets from the course's training cells.

Each run goes through the public API exactly as a notebook does:

    b = segtutor.runtime.budget(NAME)
    train = SyntheticShapes(b.train_samples, b.image_size, 4, seed=SEED)
    held_out = SyntheticShapes(b.val_samples, b.image_size, 4, seed=HELD_OUT_SEED_OFFSET + SEED)
    seed_everything(SEED); model = build_model(MODEL, 4, width=b.width)
    fit(model, train, epochs=b.epochs_for(MODEL), batch_size=b.batch_size, seed=SEED, progress=False)
    evaluate(model, held_out, 4)

with ``fit``'s default learning rate (``segtutor.train.DEFAULT_LR``) and schedule. The held-out images come from
another seed, so none of them was trained on. ``seconds`` is the wall time of the ``fit`` call alone (building the
datasets and evaluating are reported separately); ``cpu_seconds`` is the process CPU time of the same call, which a
busy shared machine distorts less (it still counts threads spinning while they wait for each other).

Usage:
  python benchmarks/quality.py --budget cpu --models unet,deeplabv3plus,fcn8s            # 3 seeds, 2 torch threads
  python benchmarks/quality.py --budget ci --models unet,deeplabv3plus,fcn8s,fcn32s --seeds 0
  python benchmarks/quality.py --budget gpu --models unet,deeplabv3plus,fcn8s --device cuda
  python benchmarks/quality.py --budget cpu --models unet,fcn8s --step-times   # one training step per model, timed
  options: --seeds 0,1,2  --threads N (CPU; default 2)  --lr X / --epochs N (explorations: recorded in the output)

Output: one JSON line per (model, seed) on stdout; at the end a markdown summary (median over the seeds per model,
with the machine, versions, load average and the command) on stderr, ready for ``benchmarks/RESULTS.md``.
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
from segtutor import runtime, train  # noqa: E402
from benchmarks.machine import machine  # noqa: E402
from segtutor.data import SyntheticShapes  # noqa: E402
from segtutor.models import MODEL_NAMES, build_model  # noqa: E402

NUM_CLASSES = 4
#: held-out images of run ``seed`` come from ``SyntheticShapes(..., seed=HELD_OUT_SEED_OFFSET + seed)``
HELD_OUT_SEED_OFFSET = 10_000
DEFAULT_MODELS = ("unet", "deeplabv3plus", "fcn8s")


def run_one(model_name: str, budget: runtime.Budget | str, seed: int = 0, *, device: str | None = None,
            lr: float | None = None, epochs: int | None = None) -> dict[str, Any]:
    """Train ``model_name`` at ``budget`` with ``seed`` and score it on held-out images; returns one result row.

    ``lr=None`` and ``epochs=None`` use what a notebook uses: ``fit``'s default learning rate and
    ``budget.epochs_for(model_name)``. Row fields: ``budget``, ``model``, ``seed``, ``seconds`` (wall time of
    ``fit``), ``cpu_seconds``, ``miou`` and ``pixel_accuracy`` on the held-out set, ``params``, ``images_per_s``
    (training images processed per second of ``fit``), the sizes used, ``lr``, ``device``, ``torch_threads`` and
    the 1-minute load average before and after the run.
    """
    b = runtime.budget(budget) if isinstance(budget, str) else budget
    dev = runtime.get_device(device)
    n_epochs = b.epochs_for(model_name) if epochs is None else int(epochs)
    load_before = os.getloadavg()[0]

    start = time.perf_counter()
    train_set = SyntheticShapes(b.train_samples, b.image_size, NUM_CLASSES, seed=seed)
    held_out = SyntheticShapes(b.val_samples, b.image_size, NUM_CLASSES, seed=HELD_OUT_SEED_OFFSET + seed)
    data_seconds = time.perf_counter() - start

    runtime.seed_everything(seed)
    model = build_model(model_name, NUM_CLASSES, width=b.width)
    params = sum(p.numel() for p in model.parameters())
    kwargs: dict[str, Any] = {} if lr is None else {"lr": lr}
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    history = train.fit(model, train_set, epochs=n_epochs, batch_size=b.batch_size, seed=seed, device=dev,
                        progress=False, **kwargs)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds, cpu_seconds = time.perf_counter() - wall0, time.process_time() - cpu0

    start = time.perf_counter()
    scores = train.evaluate(model, held_out, NUM_CLASSES)
    eval_seconds = time.perf_counter() - start

    # fit drops the last incomplete batch when there is at least one full batch
    steps = b.train_samples // b.batch_size if b.train_samples > b.batch_size else 1
    images_seen = n_epochs * (steps * b.batch_size if b.train_samples > b.batch_size else b.train_samples)
    return {
        "budget": b.name, "model": model_name, "seed": seed,
        "seconds": round(seconds, 3), "cpu_seconds": round(cpu_seconds, 3),
        "miou": round(float(scores.miou), 4), "pixel_accuracy": round(float(scores.pixel_accuracy), 4),
        "iou": [round(float(v), 4) for v in scores.iou.tolist()],
        "params": params, "images_per_s": round(images_seen / seconds, 1),
        "epochs": n_epochs, "steps": n_epochs * steps, "batch_size": b.batch_size, "image_size": b.image_size,
        "width": b.width, "train_samples": b.train_samples, "val_samples": b.val_samples,
        "lr": train.DEFAULT_LR if lr is None else lr, "default_lr": lr is None,
        "final_train_loss": round(history[-1].train_loss, 4),
        "data_seconds": round(data_seconds, 3), "eval_seconds": round(eval_seconds, 3),
        "device": str(dev), "torch_threads": torch.get_num_threads(),
        "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
    }


def step_times(model_name: str, budget: runtime.Budget | str, *, repeats: int = 10, device: str | None = None
               ) -> dict[str, Any]:
    """Median wall and CPU time of one training step (forward, cross-entropy, backward, AdamW) on one batch of the
    budget's size, after two warm-up steps: what ``Budget.model_epochs`` is sized from (``--step-times``)."""
    b = runtime.budget(budget) if isinstance(budget, str) else budget
    dev = runtime.get_device(device)
    images, masks = SyntheticShapes(b.batch_size, b.image_size, NUM_CLASSES, seed=0).tensors()
    images, masks = images.to(dev), masks.to(dev).long()
    runtime.seed_everything(0)
    model = build_model(model_name, NUM_CLASSES, width=b.width).to(dev).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    walls, cpus = [], []
    for i in range(repeats + 2):
        cpu0, wall0 = time.process_time(), time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(images), masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        if i >= 2:
            walls.append(time.perf_counter() - wall0)
            cpus.append(time.process_time() - cpu0)
    return {"budget": b.name, "model": model_name, "step_ms": round(1e3 * statistics.median(walls), 1),
            "step_cpu_ms": round(1e3 * statistics.median(cpus), 1), "batch_size": b.batch_size,
            "image_size": b.image_size, "width": b.width, "device": str(dev), "torch_threads": torch.get_num_threads(),
            "load": round(os.getloadavg()[0], 2)}


def background_only_miou(budget: runtime.Budget | str, seed: int = 0) -> float:
    """Held-out mIoU of a model that predicts background everywhere: the floor 'learns' is compared with."""
    from segtutor.metrics import ConfusionMatrix

    b = runtime.budget(budget) if isinstance(budget, str) else budget
    _, masks = SyntheticShapes(b.val_samples, b.image_size, NUM_CLASSES, seed=HELD_OUT_SEED_OFFSET + seed).tensors()
    matrix = ConfusionMatrix(NUM_CLASSES)
    matrix.update(torch.zeros_like(masks), masks)
    return float(matrix.compute().miou)


def summarize(rows: list[dict[str, Any]], info: dict[str, Any], command: str, floor: float | None) -> str:
    """Markdown: one row per model with the median over its seeds."""
    by_model: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_model.setdefault(row["model"], []).append(row)
    first = rows[0]
    gpu = f", GPU {info['gpu']} (CUDA {info['cuda']})" if "gpu" in info else ""
    loads = [r["load_before"] for r in rows] + [r["load_after"] for r in rows]
    lines = [f"{info['date']} · {info['cpu']}, {info['cores']} cores, torch threads {info['torch_threads']}{gpu} · "
             f"Python {info['python']}, torch {info['torch']} · load average {min(loads):.1f}–{max(loads):.1f} · "
             f"`{command}`",
             f"Budget `{first['budget']}`: {first['train_samples']} training images of {first['image_size']} px, "
             f"{first['val_samples']} held-out, batch {first['batch_size']}, width {first['width']}, "
             f"lr {first['lr']:g}{' (fit default)' if first['default_lr'] else ''}; median over seeds "
             f"{','.join(str(s) for s in sorted({r['seed'] for r in rows}))}"
             + (f"; predicting background everywhere scores mIoU {floor:.3f}." if floor is not None else "."),
             "",
             "| model | params | epochs | fit seconds | fit CPU seconds | held-out mIoU | (min–max) | pixel acc | images/s |",
             "|---|---:|---:|---:|---:|---:|---|---:|---:|"]
    for name, group in by_model.items():
        med = lambda key: statistics.median(r[key] for r in group)  # noqa: E731
        mious = [r["miou"] for r in group]
        lines.append(f"| {name} | {group[0]['params']:,} | {group[0]['epochs']} | {med('seconds'):.1f} | "
                     f"{med('cpu_seconds'):.1f} | **{med('miou'):.3f}** | {min(mious):.3f}–{max(mious):.3f} | "
                     f"{med('pixel_accuracy'):.3f} | {med('images_per_s'):.0f} |")
    return "\n".join(lines)


def _int_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", default=None, choices=tuple(runtime.BUDGETS),
                        help="training budget (default: SEGTUTOR_BUDGET, else gpu with CUDA, else cpu)")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS),
                        help=f"comma-separated, from {', '.join(MODEL_NAMES)} (default {','.join(DEFAULT_MODELS)})")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: segtutor.runtime.get_device())")
    parser.add_argument("--threads", type=int, default=2, help="torch threads on the CPU (default 2)")
    parser.add_argument("--lr", type=float, default=None, help="override fit's default lr (exploration only)")
    parser.add_argument("--epochs", type=int, default=None, help="override budget.epochs_for(model) (exploration only)")
    parser.add_argument("--step-times", action="store_true",
                        help="only time one training step per model (median of 10) instead of training")
    args = parser.parse_args(argv)

    models = [m.strip().lower() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODEL_NAMES]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; expected names from {', '.join(MODEL_NAMES)}")
    device = runtime.get_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    budget = runtime.budget(args.budget)
    command = "python benchmarks/quality.py " + " ".join(sys.argv[1:] if argv is None else argv)

    if args.step_times:
        for model_name in models:
            print(json.dumps(step_times(model_name, budget, device=args.device)), flush=True)
        return
    rows = []
    for model_name in models:
        for seed in _int_list(args.seeds):
            row = run_one(model_name, budget, seed, device=args.device, lr=args.lr, epochs=args.epochs)
            rows.append(row)
            print(json.dumps(row), flush=True)
    floor = background_only_miou(budget, _int_list(args.seeds)[0])
    print(summarize(rows, machine(device), command.strip(), floor), file=sys.stderr)


if __name__ == "__main__":
    main()
