"""Generation rate of ``segtutor.data.SyntheticShapes`` at the course's image sizes.

Measured as CPU time of this process (robust on a shared machine), best of ``--rounds`` runs each:

  construct         SyntheticShapes(N, size) with cache=True: draws and stores every sample (uint8);
                    N and size are the budgets' training sets (``segtutor.runtime.BUDGETS``)
  getitem cached    ds[i] for every i of a cached dataset (uint8 → float32 conversion only)
  getitem lazy      ds[i] for every i of a cache=False dataset (draws the sample on each access)
  reference         the source document's generator, re-implemented: a pure-noise image (np.random.rand)
                    plus circles and rectangles in the mask only (no triangles, nothing visible). It is
                    the floor for "random image + mask" in NumPy; ratios are our time / its time.

Also prints the pixel frequency of each class for the default and the imbalanced (``.imbalanced``)
datasets at 64 px, which notebook 04 relies on.

Usage:  python benchmarks/data.py [--rounds 3]
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
from segtutor.data import SyntheticShapes  # noqa: E402
from segtutor.runtime import BUDGETS  # noqa: E402

#: (budget, training images, image size) of every budget
SETTINGS = [(b.name, b.train_samples, b.image_size) for b in BUDGETS.values()]


def reference_generator(num_samples: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """What the source document's generator does (noise image, shapes only in the mask), for timing."""
    rng = np.random.default_rng(seed)
    images = np.empty((num_samples, size, size, 3))
    masks = np.zeros((num_samples, size, size), dtype=np.uint8)
    y, x = np.ogrid[:size, :size]
    for n in range(num_samples):
        images[n] = rng.random((size, size, 3))
        for _ in range(rng.integers(2, 6)):
            label = rng.integers(1, 3)
            if rng.random() < 0.5:
                cy, cx, r = rng.integers(size // 6, size - size // 6, 2).tolist() + [rng.integers(size // 12, size // 4)]
                masks[n][(x - cx) ** 2 + (y - cy) ** 2 <= r ** 2] = label
            else:
                y0, x0 = rng.integers(0, size // 2, 2)
                h, w = rng.integers(size // 6, size // 3, 2)
                masks[n, y0:y0 + h, x0:x0 + w] = label
    return images, masks


def best_time(fn: Callable[[], object], rounds: int) -> float:
    """Least CPU time of this process over ``rounds`` calls (CPU time, not wall time: the course's
    machines are often shared, and generation runs on one thread)."""
    times = []
    for _ in range(rounds):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times)


def machine() -> str:
    return f"{cpu_name()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    print(f"date {datetime.date.today()}  machine: {machine()}")
    print(f"python {platform.python_version()}  torch {torch.__version__}  numpy {np.__version__}")
    print(f"load average {os.getloadavg()[0]:.1f}; rates are images per CPU-second of this process")
    print(f"command: python benchmarks/data.py --rounds {args.rounds}\n")
    print("| budget | samples × size | construct (img/s) | getitem cached (img/s) | getitem lazy (img/s) "
          "| reference (img/s) | construct / reference time |")
    print("|---|---|---|---|---|---|---|")
    for name, n, size in SETTINGS:
        t_build = best_time(lambda: SyntheticShapes(n, size, seed=0), args.rounds)
        cached = SyntheticShapes(n, size, seed=0)
        lazy = SyntheticShapes(n, size, seed=0, cache=False)
        m = min(n, 400)
        t_cached = best_time(lambda: [cached[i] for i in range(n)], args.rounds)
        t_lazy = best_time(lambda: [lazy[i] for i in range(m)], args.rounds)
        t_ref = best_time(lambda: reference_generator(n, size), args.rounds)
        print(f"| {name} | {n} × {size} px | {n / t_build:,.0f} | {n / t_cached:,.0f} | {m / t_lazy:,.0f} "
              f"| {n / t_ref:,.0f} | {t_build / t_ref:.2f} |")

    print("\nclass pixel frequency at 64 px, 800 samples (background, circle, rectangle, triangle):")
    for label, ds in [("default", SyntheticShapes(800, 64, seed=0)),
                      ("imbalanced", SyntheticShapes.imbalanced(800, 64, seed=0))]:
        _, masks = ds.tensors()
        freq = torch.bincount(masks.flatten(), minlength=ds.num_classes).double() / masks.numel()
        print(f"  {label:11s} " + "  ".join(f"{name} {100 * f:.2f}%" for name, f in zip(ds.class_names, freq)))


if __name__ == "__main__":
    main()
