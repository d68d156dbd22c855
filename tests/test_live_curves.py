"""viz.LiveCurves and fit(progress="curves"): training curves redrawn in place, with bounded display traffic."""
from __future__ import annotations

import pytest
import torch

from segtutor import viz
from segtutor.data import SyntheticShapes
from segtutor.history import EpochStats, History
from segtutor.models import build_model
from segtutor.train import fit


def _history(n: int) -> History:
    return History([EpochStats(epoch=i + 1, train_loss=1.0 / (i + 1), val_loss=1.2 / (i + 1), val_miou=0.1 * i,
                               val_pixel_accuracy=0.5, lr=1e-3, seconds=1.0) for i in range(n)])


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_redraws_are_rate_limited_and_the_last_epoch_is_drawn():
    clock = FakeClock()
    live = viz.LiveCurves(min_interval=1.0, clock=clock)
    drawn = []
    live.draw = lambda history, _draw=live.draw: drawn.append(len(history)) or _draw(history)
    for epoch in range(1, 51):  # 50 epochs in 10 s: 0.2 s apart
        clock.now = 0.2 * epoch
        live(_history(epoch))
    live.close()
    assert drawn[0] == 1 and drawn[-1] == 50  # the first epoch at once, the final curve at the end
    assert len(drawn) <= 10 / 1.0 + 2
    assert all(b > a for a, b in zip(drawn, drawn[1:]))


def test_draw_renders_the_history_as_a_png():
    png = viz.LiveCurves().draw(_history(3))
    assert png.startswith(b"\x89PNG")


def test_updates_one_display_handle(monkeypatch):
    """In IPython: one display() with a display id, then updates of that same handle (no new outputs)."""
    IPython = pytest.importorskip("IPython")
    import IPython.display as display_module

    calls = {"display": 0, "update": 0}

    class Handle:
        def update(self, obj):
            calls["update"] += 1

    def fake_display(obj, display_id=False):
        assert display_id is True
        calls["display"] += 1
        return Handle()

    monkeypatch.setattr(IPython, "get_ipython", lambda: object())
    monkeypatch.setattr(display_module, "display", fake_display)
    live = viz.LiveCurves(min_interval=0)
    for n in range(1, 5):
        live(_history(n))
    assert calls == {"display": 1, "update": 3}


def test_min_interval_is_checked():
    with pytest.raises(ValueError, match="min_interval"):
        viz.LiveCurves(min_interval=-1)


def test_fit_calls_on_epoch_and_close_and_accepts_curves():
    train = SyntheticShapes(16, image_size=32, num_classes=4, seed=0)
    seen, closed = [], []

    class Recorder:
        def __call__(self, history):
            seen.append(len(history))

        def close(self):
            closed.append(True)

    torch.manual_seed(0)
    model = build_model("fcn8s", 4, width=4)
    fit(model, train, train, epochs=3, batch_size=8, progress=False, on_epoch=Recorder(), device="cpu")
    assert seen == [1, 2, 3] and closed == [True]
    fit(build_model("fcn8s", 4, width=4), train, epochs=1, batch_size=8, progress="curves", device="cpu")
    with pytest.raises(ValueError, match="progress"):
        fit(model, train, epochs=1, batch_size=8, progress="bars", device="cpu")
