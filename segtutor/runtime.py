"""Where the course runs: device choice, seeding, the training budget, and a model's train/eval mode.

Taught in ``notebooks/00_task_and_data.ipynb`` (the environment cell); every training cell of the
course reads :func:`budget` so that it fits the machine it runs on. :func:`model_mode` is the one home of
"switch the mode, restore it afterwards", used by training, evaluation, visualisation and the checks.
"""
from __future__ import annotations

import os
import platform
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, asdict
from typing import Any

import numpy as np
import torch

__all__ = ["Budget", "BUDGETS", "budget", "get_device", "seed_everything", "environment_report", "model_mode",
           "ThreadChoice", "choose_threads", "usable_cores"]


@dataclass(frozen=True)
class Budget:
    """How much training a machine can afford in one notebook cell.

    ``image_size`` is the side of the synthetic images, ``train_samples`` / ``val_samples`` the dataset
    sizes, ``epochs`` and ``batch_size`` what :func:`segtutor.train.fit` is given, and ``width`` the
    base channel count the models are built with (``build_model(..., width=budget.width)``).

    ``epochs`` is sized for the slowest model of the course, U-Net (about three times the cost of a training step
    of the FCNs or DeepLabs at the same width). The faster models get more epochs, listed in ``model_epochs`` as
    ``(model name, epochs)`` pairs, so that every model trains for about the same time: a training cell asks for
    ``budget.epochs_for(name)``, and so does ``benchmarks/quality.py``.
    """

    name: str
    image_size: int
    train_samples: int
    val_samples: int
    epochs: int
    batch_size: int
    width: int
    description: str = ""
    model_epochs: tuple[tuple[str, int], ...] = ()

    def epochs_for(self, model: str) -> int:
        """Epochs to train the model called ``model`` (a ``segtutor.models.build_model`` name) at this budget:
        its entry in ``model_epochs``, else ``epochs``."""
        if not isinstance(model, str):
            raise TypeError(f"model must be a model name such as 'unet' or 'fcn8s', got {type(model).__name__}")
        return dict(self.model_epochs).get(model.strip().lower(), self.epochs)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


#: The three budgets. ``ci`` keeps the whole test suite fast on 2 cores; ``cpu`` is a student laptop
#: (under a minute per training run on 2 cores); ``gpu`` uses a CUDA card well. How each was sized, and what it
#: measures, is in ``benchmarks/RESULTS.md`` (``python benchmarks/quality.py --budget NAME``).
BUDGETS: dict[str, Budget] = {
    "ci": Budget("ci", image_size=48, train_samples=256, val_samples=64, epochs=12, batch_size=8, width=8,
                 description="test suite: about 10 s per training run on one CPU thread"),
    "cpu": Budget("cpu", image_size=64, train_samples=800, val_samples=200, epochs=8, batch_size=16, width=16,
                  description="laptop CPU: under a minute per training run on 2 cores",
                  model_epochs=(("deeplabv3plus", 20), ("deeplabv2", 18), ("deeplabv1", 20), ("fcn32s", 22),
                                ("fcn16s", 28), ("fcn8s", 30))),
    "gpu": Budget("gpu", image_size=128, train_samples=4000, val_samples=500, epochs=12, batch_size=64, width=32,
                  description="CUDA GPU: larger images, more data, wider models"),
}


def budget(name: str | None = None) -> Budget:
    """Return the training budget for this machine.

    Chosen by ``name`` if given, else by the ``SEGTUTOR_BUDGET`` environment variable, else ``gpu`` when
    CUDA is available and ``cpu`` otherwise. The test suite runs with ``SEGTUTOR_BUDGET=ci``.
    """
    source = "argument"
    if name is None:
        name = os.environ.get("SEGTUTOR_BUDGET") or None
        source = "SEGTUTOR_BUDGET"
    if name is None:
        return BUDGETS["gpu" if torch.cuda.is_available() else "cpu"]
    key = name.strip().lower()
    if key not in BUDGETS:
        raise ValueError(f"unknown budget {name!r} (from {source}); expected one of {', '.join(BUDGETS)}")
    return BUDGETS[key]


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def get_device(name: str | torch.device | None = None) -> torch.device:
    """The device to train on: ``name`` if given, else ``SEGTUTOR_DEVICE``, else cuda → mps → cpu.

    A device that is asked for but not present (``cuda`` on a machine without a GPU) is an error, not a
    silent fall-back to the CPU.
    """
    if isinstance(name, torch.device):
        requested: str | None = str(name)
        source = "argument"
    else:
        requested, source = name, "argument"
        if requested is None:
            requested, source = os.environ.get("SEGTUTOR_DEVICE") or None, "SEGTUTOR_DEVICE"
    if requested is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(requested.strip().lower())
    except (RuntimeError, AttributeError) as exc:
        raise ValueError(f"unknown device {requested!r} (from {source}); expected 'cpu', 'cuda', 'cuda:N' or 'mps'") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {requested!r} (from {source}) asked for CUDA, but no CUDA GPU is available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {requested!r} (from {source}): only {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps":
        if not _mps_available():
            raise ValueError(f"device {requested!r} (from {source}) asked for Apple MPS, which is not available here")
    elif device.type != "cpu":
        raise ValueError(f"unsupported device {requested!r} (from {source}); expected 'cpu', 'cuda', 'cuda:N' or 'mps'")
    return device


def seed_everything(seed: int = 0, *, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (all devices). ``deterministic=True`` also asks torch for
    deterministic kernels (warn-only: bilinear upsampling has no deterministic CUDA backward)."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    torch.manual_seed(int(seed))
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(int(seed))
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


def environment_report() -> dict[str, str]:
    """Versions, device and budget of this machine, for the environment cell of notebook 00."""
    device = get_device()
    report = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "device": str(device),
        "threads": str(torch.get_num_threads()),
        "budget": budget().name,
    }
    if device.type == "cuda":
        report["gpu"] = torch.cuda.get_device_name(device)
    return report


@contextmanager
def model_mode(model: torch.nn.Module, training: bool = False) -> Iterator[torch.nn.Module]:
    """``with model_mode(model):`` runs the block with the model in eval mode (``training=True``: train mode)
    and restores the mode it had before, even if the block raises. Gradients are untouched: an evaluation
    adds ``torch.no_grad()`` itself."""
    was_training = model.training
    model.train(training)
    try:
        yield model
    finally:
        model.train(was_training)


# ------------------------------------------------------------------------------------------ CPU threads

def usable_cores() -> int:
    """CPU cores this process may run on: its affinity mask, capped by a cgroup CPU quota (containers)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS, Windows
        cores = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


@dataclass(frozen=True)
class ThreadChoice:
    """What :func:`choose_threads` decided: ``threads`` out of ``cores`` usable, with the step times it measured
    (``seconds[n]`` = best time of the probe with ``n`` threads) and the 1-minute load average (``None`` where
    the OS has none)."""

    threads: int
    cores: int
    seconds: dict
    load: float | None

    def __str__(self) -> str:
        load = "" if self.load is None else f", load {self.load:.1f}"
        return f"{self.threads} torch thread(s) of {self.cores} core(s){load}"


def _probe(threads: int, a: torch.Tensor, repeats: int = 3) -> float:
    """Best wall time of a few convolutions shaped like a small training step, on ``threads`` threads."""
    import time

    torch.set_num_threads(threads)
    best = float("inf")
    weight = a.new_ones(32, 32, 3, 3) / 288
    for _ in range(repeats):
        start = time.perf_counter()
        torch.nn.functional.conv2d(a, weight, padding=1).relu_().sum().item()
        best = min(best, time.perf_counter() - start)
    return best


def choose_threads(limit: int | None = None) -> ThreadChoice:
    """Pick torch's CPU thread count from what the machine can give now, and set it (``torch.set_num_threads``).

    Candidates are 1 and every count up to ``min(limit, usable cores)`` (``limit`` defaults to the current
    ``torch.get_num_threads()``, so a cap the user set is kept). Each is timed on the same small convolution,
    interleaved, best of 3 (a few tenths of a second in all), and the fastest wins, ties going to fewer threads.
    On an idle machine that is every core; beside a busy process, threads that would wait for a shared core
    lose (two threads on two cores with one core taken were 3-15x slower per step: ``benchmarks/RESULTS.md``).
    """
    cores = usable_cores()
    cap = max(1, min(limit if limit is not None else torch.get_num_threads(), cores))
    try:
        load: float | None = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = None
    if cap == 1:
        torch.set_num_threads(1)
        return ThreadChoice(1, cores, {}, load)
    a = torch.randn(8, 32, 48, 48)
    _probe(cap, a, repeats=1)  # warm-up: the first convolution pays for allocations and kernel selection
    candidates = sorted({1, cap} | set(range(2, cap + 1, max(1, cap // 4))))
    seconds = {n: float("inf") for n in candidates}
    for _ in range(2):  # interleaved rounds: a burst of load hits every candidate alike
        for n in candidates:
            seconds[n] = min(seconds[n], _probe(n, a))
    best = min(candidates, key=lambda n: (seconds[n] / (1.0 if n == 1 else 0.9), n))  # 10 % margin for more threads
    torch.set_num_threads(best)
    return ThreadChoice(best, cores, seconds, load)


@contextmanager
def training_threads(device: torch.device) -> Iterator[ThreadChoice | None]:
    """Around a CPU training run: torch's thread count chosen by :func:`choose_threads` (or ``SEGTUTOR_THREADS=N``),
    restored afterwards. Yields the choice (``None`` on other devices). The probe is skipped when only one
    thread is allowed (``OMP_NUM_THREADS=1``, one core, ``torch.set_num_threads(1)`` before the run)."""
    if device.type != "cpu":
        yield None
        return
    before = torch.get_num_threads()
    forced = os.environ.get("SEGTUTOR_THREADS", "").strip()
    try:
        if forced:
            try:
                n = int(forced)
            except ValueError:
                raise ValueError(f"SEGTUTOR_THREADS={forced!r} must be a positive integer") from None
            if n < 1:
                raise ValueError(f"SEGTUTOR_THREADS={forced!r} must be a positive integer")
            torch.set_num_threads(n)
            choice = ThreadChoice(n, usable_cores(), {}, None)
        else:
            choice = choose_threads(before)
        yield choice
    finally:
        torch.set_num_threads(before)
