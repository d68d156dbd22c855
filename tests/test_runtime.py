"""segtutor.runtime: budget selection, device choice, seeding."""
import random

import numpy as np
import pytest
import torch

from segtutor import runtime


def test_budget_from_argument_and_environment(monkeypatch):
    monkeypatch.setenv("SEGTUTOR_BUDGET", "cpu")
    assert runtime.budget().name == "cpu"
    assert runtime.budget("gpu").name == "gpu"  # an argument wins over the environment
    monkeypatch.setenv("SEGTUTOR_BUDGET", " CI ")
    assert runtime.budget().name == "ci"


def test_budget_default_follows_cuda(monkeypatch):
    monkeypatch.delenv("SEGTUTOR_BUDGET", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.budget().name == "gpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert runtime.budget().name == "cpu"


def test_test_suite_runs_at_ci_budget():
    assert runtime.budget().name == "ci"


def test_unknown_budget_is_a_clear_error(monkeypatch):
    with pytest.raises(ValueError, match=r"unknown budget 'laptop'.*ci, cpu, gpu"):
        runtime.budget("laptop")
    monkeypatch.setenv("SEGTUTOR_BUDGET", "huge")
    with pytest.raises(ValueError, match="SEGTUTOR_BUDGET"):
        runtime.budget()


def test_budgets_grow_from_ci_to_gpu():
    ci, cpu, gpu = (runtime.BUDGETS[k] for k in ("ci", "cpu", "gpu"))
    for field in ("image_size", "train_samples", "val_samples", "width"):
        assert getattr(ci, field) <= getattr(cpu, field) <= getattr(gpu, field), field
    for b in (ci, cpu, gpu):
        assert b.image_size >= 32 and b.epochs >= 1 and b.batch_size >= 1
        assert set(b.as_dict()) >= {"name", "image_size", "train_samples", "val_samples", "epochs", "batch_size"}


def test_get_device_defaults_to_cpu_without_accelerators(monkeypatch):
    monkeypatch.delenv("SEGTUTOR_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(runtime, "_mps_available", lambda: False)
    assert runtime.get_device() == torch.device("cpu")
    monkeypatch.setattr(runtime, "_mps_available", lambda: True)
    assert runtime.get_device() == torch.device("mps")


def test_get_device_override_and_errors(monkeypatch):
    monkeypatch.setenv("SEGTUTOR_DEVICE", "cpu")
    assert runtime.get_device() == torch.device("cpu")
    assert runtime.get_device(torch.device("cpu")) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA GPU"):
        runtime.get_device("cuda")
    monkeypatch.setenv("SEGTUTOR_DEVICE", "tpu")
    with pytest.raises(ValueError, match="SEGTUTOR_DEVICE"):
        runtime.get_device()
    with pytest.raises(ValueError, match="unknown device"):
        runtime.get_device("gpu0")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_get_device_picks_cuda_when_present(monkeypatch):
    monkeypatch.delenv("SEGTUTOR_DEVICE", raising=False)
    assert runtime.get_device().type == "cuda"


def test_seed_everything_makes_all_generators_repeat():
    def draw():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    runtime.seed_everything(123)
    first = draw()
    runtime.seed_everything(123)
    assert draw() == first
    runtime.seed_everything(124)
    assert draw() != first
    with pytest.raises(TypeError):
        runtime.seed_everything("7")


def test_environment_report_names_device_and_budget():
    report = runtime.environment_report()
    assert report["torch"] == torch.__version__
    assert report["budget"] == "ci"
    assert report["device"] in {"cpu", "cuda", "mps"}


@pytest.mark.parametrize("start", [True, False])
@pytest.mark.parametrize("inside", [True, False])
def test_model_mode_sets_the_mode_and_restores_it_even_on_error(start, inside):
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout())
    model.train(start)
    with runtime.model_mode(model, training=inside) as same:
        assert same is model
        assert model.training is inside and model[1].training is inside
    assert model.training is start and model[1].training is start
    with pytest.raises(RuntimeError, match="boom"):
        with runtime.model_mode(model, training=inside):
            raise RuntimeError("boom")
    assert model.training is start and model[1].training is start
    with runtime.model_mode(model):          # the default is eval mode
        assert not model.training
