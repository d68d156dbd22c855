"""benchmarks/quality.py on a tiny setting: its result rows are complete and consistent, and Budget.epochs_for;
and the ci budget's promise that every model learns (seed 0, a quality floor, never a time).

Not timed: the benchmark's figures are measured by running the script, never asserted here. Oracles: a freshly
built model's parameter count, fit's default learning rate, the held-out masks counted by hand, and a second run
with the same seed (CPU training is deterministic).
"""
import importlib.util
import json
import math
import os

import pytest
import torch

from segtutor import runtime, train
from segtutor.data import SyntheticShapes
from segtutor.models import MODEL_NAMES, build_model
from segtutor.runtime import Budget

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = Budget("tiny", image_size=32, train_samples=20, val_samples=6, epochs=1, batch_size=8, width=4,
              model_epochs=(("fcn8s", 2),))


@pytest.fixture(autouse=True)
def one_thread():
    # Steps this small gain nothing from intra-op threads, and on a busy machine two threads waiting for each
    # other at every op made this file 30x slower (measured: 37 s vs 1.2 s for one test at load 12 on 2 cores).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def quality():
    spec = importlib.util.spec_from_file_location("quality", os.path.join(ROOT, "benchmarks", "quality.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_epochs_for_uses_the_per_model_entry_else_epochs():
    assert TINY.epochs_for("fcn8s") == 2
    assert TINY.epochs_for(" FCN8s ") == 2
    assert TINY.epochs_for("unet") == 1
    with pytest.raises(TypeError, match="model name"):
        TINY.epochs_for(build_model("unet", 4, width=4))
    for b in runtime.BUDGETS.values():
        assert all(epochs >= b.epochs for _, epochs in b.model_epochs), b.name  # only faster models get more
        assert len({name for name, _ in b.model_epochs}) == len(b.model_epochs), b.name


def test_run_one_row_is_complete_and_consistent(quality):
    row = quality.run_one("fcn8s", TINY, seed=3, device="cpu")
    json.dumps(row)  # one JSON line per run
    assert (row["budget"], row["model"], row["seed"]) == ("tiny", "fcn8s", 3)
    assert row["params"] == sum(p.numel() for p in build_model("fcn8s", 4, width=4).parameters())
    assert row["epochs"] == 2 and row["steps"] == 2 * (20 // 8)  # epochs_for; fit drops the incomplete batch
    assert row["lr"] == train.DEFAULT_LR and row["default_lr"] is True
    assert row["seconds"] > 0 and row["cpu_seconds"] >= 0
    assert row["images_per_s"] == pytest.approx(row["steps"] * 8 / row["seconds"], rel=0.02)
    assert 0 <= row["pixel_accuracy"] <= 1 and len(row["iou"]) == 4
    present = [v for v in row["iou"] if not math.isnan(v)]
    assert row["miou"] == pytest.approx(sum(present) / len(present), abs=1e-3)
    assert (row["image_size"], row["width"], row["train_samples"], row["val_samples"]) == (32, 4, 20, 6)


def test_run_one_is_reproducible_and_overrides_are_recorded(quality):
    a = quality.run_one("unet", TINY, seed=1, device="cpu", lr=1e-3, epochs=2)
    b = quality.run_one("unet", TINY, seed=1, device="cpu", lr=1e-3, epochs=2)
    assert (a["lr"], a["default_lr"], a["epochs"]) == (1e-3, False, 2)
    assert (a["miou"], a["final_train_loss"], a["iou"]) == (b["miou"], b["final_train_loss"], b["iou"])


def test_background_floor_matches_a_hand_count(quality):
    _, masks = SyntheticShapes(6, 32, 4, seed=quality.HELD_OUT_SEED_OFFSET + 5).tensors()
    present = torch.unique(masks).numel()  # classes in the held-out masks: IoU 0 except background's
    expected = (masks == 0).float().mean().item() / present
    assert quality.background_only_miou(TINY, seed=5) == pytest.approx(expected, abs=1e-6)


def test_summary_reports_the_median_over_seeds(quality):
    base = {"budget": "tiny", "model": "unet", "params": 10, "epochs": 1, "train_samples": 20, "val_samples": 6,
            "image_size": 32, "batch_size": 8, "width": 4, "lr": 0.02, "default_lr": True, "pixel_accuracy": 0.9,
            "images_per_s": 100.0, "cpu_seconds": 1.0, "load_before": 0.5, "load_after": 0.7}
    rows = [{**base, "seed": s, "miou": m, "seconds": t} for s, m, t in ((0, 0.91, 50.0), (1, 0.95, 40.0),
                                                                           (2, 0.80, 70.0))]
    info = {"date": "2026-11-24", "cpu": "test CPU", "cores": 2, "torch_threads": 2, "python": "3", "torch": "2"}
    text = quality.summarize(rows, info, "python benchmarks/quality.py --budget tiny", floor=0.21)
    line = next(l for l in text.splitlines() if l.startswith("| unet"))
    assert "**0.910**" in line and "0.800–0.950" in line and "| 50.0 |" in line
    assert "test CPU, 2 cores" in text and "`python benchmarks/quality.py --budget tiny`" in text
    assert "0.210" in text and "0.5–0.7" in text


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_run_one_on_cuda(quality):
    row = quality.run_one("unet", TINY, seed=0, device="cuda")
    assert row["device"].startswith("cuda") and 0 <= row["miou"] <= 1 and row["seconds"] > 0


def test_step_times_row(quality):
    row = quality.step_times("fcn8s", TINY, repeats=2, device="cpu")
    assert (row["model"], row["batch_size"], row["image_size"], row["torch_threads"]) == ("fcn8s", 8, 32, 1)
    assert row["step_ms"] > 0 and row["step_cpu_ms"] >= 0


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_learns_at_the_ci_budget(quality, name):
    # The ci budget's promise (benchmarks/RESULTS.md): every model ends clearly above predicting background
    # everywhere, through the public API and fit's defaults. One seed, one thread: CPU training is deterministic,
    # so this fails only when the budget, fit, the data or a model changed. Measured at 1d0cc5a (seed 0):
    # FCN-32s 0.280 is the lowest, against a floor of 0.214; the margin asked here is 0.04.
    row = quality.run_one(name, "ci", seed=0, device="cpu")
    floor = quality.background_only_miou("ci", seed=0)
    assert row["miou"] > floor + 0.04, (name, row["miou"], floor)
