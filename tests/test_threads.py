"""runtime.choose_threads / training_threads: torch's CPU thread count from what the machine gives now."""
from __future__ import annotations

import pytest
import torch

from segtutor import runtime


@pytest.fixture
def keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_fastest_candidate_wins_and_ties_go_to_fewer(monkeypatch, keep_threads):
    monkeypatch.setattr(runtime, "usable_cores", lambda: 4)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    times = {1: 0.010, 2: 0.0052, 3: 0.0060, 4: 0.0054}  # 4 threads slightly slower than 2: contention
    monkeypatch.setattr(runtime, "_probe", lambda n, a, repeats=3: times[n])
    choice = runtime.choose_threads()
    assert choice.threads == 2 and choice.cores == 4
    times.update({2: 0.0095})  # more threads not 10 % faster than one: one thread
    times.update({3: 0.0095, 4: 0.0094})
    assert runtime.choose_threads().threads == 1


def test_a_cap_of_one_skips_the_probe(monkeypatch, keep_threads):
    monkeypatch.setattr(runtime, "_probe", lambda *a, **k: pytest.fail("probed although only one thread is allowed"))
    assert runtime.choose_threads(limit=1).threads == 1


def test_busy_core_picks_fewer_threads_than_idle(monkeypatch, keep_threads):
    """The decision follows the measured probe: idle -> all cores; a busy core -> one thread."""
    monkeypatch.setattr(runtime, "usable_cores", lambda: 2)
    idle = {1: 0.010, 2: 0.0055}
    busy = {1: 0.011, 2: 0.090}  # the second thread waits for a core another process holds
    monkeypatch.setattr(runtime, "_probe", lambda n, a, repeats=3: idle[n])
    assert runtime.choose_threads(limit=2).threads == 2
    monkeypatch.setattr(runtime, "_probe", lambda n, a, repeats=3: busy[n])
    assert runtime.choose_threads(limit=2).threads == 1


def test_training_threads_restores_and_honours_the_environment(monkeypatch, keep_threads):
    torch.set_num_threads(1)
    monkeypatch.setenv("SEGTUTOR_THREADS", "2")
    with runtime.training_threads(torch.device("cpu")) as choice:
        assert choice.threads == 2 and torch.get_num_threads() == 2
    assert torch.get_num_threads() == 1
    monkeypatch.setenv("SEGTUTOR_THREADS", "zero")
    with pytest.raises(ValueError, match="SEGTUTOR_THREADS"):
        with runtime.training_threads(torch.device("cpu")):
            pass
    with runtime.training_threads(torch.device("meta")) as choice:
        assert choice is None


def test_real_probe_sets_a_valid_count(keep_threads):
    choice = runtime.choose_threads()
    assert 1 <= choice.threads <= runtime.usable_cores() and torch.get_num_threads() == choice.threads
    assert str(choice).startswith(f"{choice.threads} torch thread")
