"""``python -m segtutor.train``: what a training cell of the course does, from a shell, a job script or ``torchrun``.

Taught in ``notebooks/06_end_to_end.ipynb`` ("Scaling out")::

    python -m segtutor.train --model unet --data synthetic --budget cpu
    torchrun --nproc_per_node=2 -m segtutor.train --model unet --data synthetic --budget ci --checkpoint run.pt
    python -m segtutor.train --model deeplabv3plus --data camvid --data-root ~/data/camvid --budget gpu

The data, image size, width, epochs and batch come from the budget (:func:`segtutor.runtime.budget`), as in the
notebooks; with ``--data camvid`` the model, width, size, epochs, batch, lr, augmentation and class-weighted loss
come from the CamVid recipe of the budget (:data:`segtutor.data.camvid.RECIPES`, taught in
``notebooks/08_real_photos.ipynb``); ``--epochs``, ``--lr`` and ``--model`` override. At the end rank 0 prints
the held-out mIoU and pixel accuracy (the synthetic validation set, or CamVid's test split) on one line that starts
with ``held-out``.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["main", "build_parser"]

_DATASETS = ("synthetic", "camvid")


def build_parser() -> argparse.ArgumentParser:
    from .models import MODEL_NAMES

    parser = argparse.ArgumentParser(prog="python -m segtutor.train",
                                     description="Train a segtutor model as a notebook training cell does "
                                                 "(also under torchrun, with DistributedDataParallel).")
    parser.add_argument("--model", default=None, choices=MODEL_NAMES,
                        help="model name (build_model); required for synthetic, default for camvid: the recipe's")
    parser.add_argument("--data", default="synthetic", choices=_DATASETS, help="dataset (default: synthetic)")
    parser.add_argument("--data-root", default=None, help="CamVid folder (default: found as the course finds it)")
    parser.add_argument("--budget", default=None, choices=("ci", "cpu", "gpu"),
                        help="training budget (default: SEGTUTOR_BUDGET, else gpu with CUDA, else cpu)")
    parser.add_argument("--epochs", type=int, default=None, help="override the budget's epochs")
    parser.add_argument("--lr", type=float, default=None,
                        help="peak learning rate (default: fit's for synthetic, the CamVid recipe's for camvid)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the data, the weights and the shuffling")
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    parser.add_argument("--checkpoint", default=None, help="save after every epoch; resume if the file exists")
    parser.add_argument("--sync-batchnorm", action="store_true", help="SyncBatchNorm under torchrun (CUDA only)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def _setup(args: argparse.Namespace, b: Any) -> dict[str, Any]:
    """What to train for ``args.data`` at budget ``b``: the datasets (train, val, held-out), num_classes,
    ignore_index, a description, and the model width, epochs, batch size, lr and loss of the run.

    Synthetic data takes them from the budget (:class:`segtutor.runtime.Budget`); CamVid from its recipe
    (:data:`segtutor.data.camvid.RECIPES`: model, width, size, epochs, batch, lr, augmentation, class weights).
    """
    if args.data == "synthetic":
        from .data import SyntheticShapes

        k = 4
        train = SyntheticShapes(b.train_samples, b.image_size, k, seed=args.seed)
        val = SyntheticShapes(b.val_samples, b.image_size, k, seed=args.seed + 1)
        return {"train": train, "val": val, "held_out": val, "k": k, "ignore_index": None,
                "what": f"synthetic shapes, {b.image_size} px", "model": args.model, "width": b.width,
                "epochs": b.epochs_for(args.model), "batch_size": b.batch_size, "lr": None, "loss": None}
    from .data import camvid

    setup = camvid.training_data(args.data_root, budget=b.name)
    r = setup.recipe
    weights = camvid.class_weights(setup.train, r.class_weighting)
    return {"train": setup.train, "val": setup.val, "held_out": setup.test, "k": camvid.NUM_CLASSES,
            "ignore_index": camvid.IGNORE_INDEX, "what": setup.description, "model": args.model or r.model,
            "width": r.width, "epochs": r.epochs, "batch_size": r.batch_size, "lr": r.lr, "loss": r.loss(weights)}


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), train, print the held-out scores; returns the exit status."""
    from . import distributed
    from .models import build_model
    from .runtime import budget, get_device, seed_everything
    from .train import evaluate, fit

    args = build_parser().parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        raise SystemExit(f"--epochs must be at least 1, got {args.epochs}")
    if args.model is None and args.data == "synthetic":
        raise SystemExit("--model is required with --data synthetic (e.g. --model unet); with --data camvid it "
                         "defaults to the CamVid recipe's model")
    b = budget(args.budget)
    device = get_device(args.device)
    ctx = distributed.context(device)
    run = _setup(args, b)
    train, val, held_out, k, ignore_index = run["train"], run["val"], run["held_out"], run["k"], run["ignore_index"]
    name = run["model"]
    epochs = args.epochs if args.epochs is not None else run["epochs"]
    lr = args.lr if args.lr is not None else run["lr"]
    if ctx.is_main:
        print(f"{name} on {run['what']}: budget {b.name}, {epochs} epochs, global batch {run['batch_size']}, "
              f"{ctx.world_size} process(es) on {device.type}", flush=True)
    seed_everything(args.seed)
    model = build_model(name, k, width=run["width"])
    options: dict[str, Any] = {} if lr is None else {"lr": lr}
    start = time.perf_counter()
    fit(model, train, val, epochs=epochs, batch_size=run["batch_size"], seed=args.seed, device=device,
        checkpoint=args.checkpoint, ignore_index=ignore_index, progress=not args.no_progress and ctx.is_main,
        sync_batchnorm=args.sync_batchnorm, loss=run["loss"], **options)
    seconds = time.perf_counter() - start
    result = evaluate(model, held_out, k, ignore_index=ignore_index)
    if ctx.is_main:
        print(f"held-out mIoU {float(result.miou):.4f}  pixel accuracy {float(result.pixel_accuracy):.4f}  "
              f"({len(held_out)} images, trained in {seconds:.1f} s)", flush=True)
    if ctx.enabled and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":  # pragma: no cover - python -m segtutor.cli
    sys.exit(main())
