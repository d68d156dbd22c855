"""fit and evaluate under torchrun (DistributedDataParallel, gloo on the CPU): segtutor/distributed.py, cli.py.

Two processes train a BatchNorm-free network on the same global batches as one process does, so their weights
agree to float32 rounding (DDP averages the two halves' gradients; one process averages the whole batch's
losses: the same number summed in another order). The validation confusion matrix, accumulated on shards and
summed over ranks, equals the one-process matrix exactly. A rank that dies ends the job with an error in bounded
time. These launch real ``torchrun`` jobs (a few seconds each, most of it importing torch twice).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from segtutor import distributed
from segtutor.data import SyntheticShapes

REPO = Path(__file__).resolve().parents[1]
WORKER = REPO / "tests" / "ddp_worker.py"
pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without distributed")

#: Weights of the 2-process run vs the 1-process run after 2 epochs (12 AdamW steps): float32 reassociation only.
WEIGHT_ATOL = 1e-5


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                            "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), SEGTUTOR_DIST_TIMEOUT="30")
    return env


def _torchrun(args: list[str], timeout: float = 240, **env: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    return subprocess.run(command, cwd=REPO, env={**_env(), **env}, capture_output=True, text=True, timeout=timeout)


def _single(args: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, env=_env(), capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
def test_two_processes_match_one_process(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    single = _single([str(WORKER), "train", str(one)])
    assert single.returncode == 0, single.stderr[-3000:]
    job = _torchrun([str(WORKER), "train", str(two)])
    assert job.returncode == 0, job.stderr[-3000:]
    w1, w2 = torch.load(one / "weights.pt"), torch.load(two / "weights.pt")
    assert w1.keys() == w2.keys()
    for key in w1:
        torch.testing.assert_close(w2[key], w1[key], atol=WEIGHT_ATOL, rtol=0, msg=f"{key} differs")
    m1 = torch.load(one / "matrix-0.pt")
    for rank in (0, 1):
        assert torch.equal(torch.load(two / f"matrix-{rank}.pt"), m1), f"rank {rank}'s reduced matrix differs"
    assert int(m1.sum()) == 13 * 32 * 32  # every validation pixel counted exactly once


@pytest.mark.slow
def test_a_dead_rank_ends_the_job_with_an_error(tmp_path):
    started = time.monotonic()
    job = _torchrun([str(WORKER), "die", str(tmp_path)], timeout=180)
    elapsed = time.monotonic() - started
    assert job.returncode != 0
    assert "exitcode" in job.stderr and "3" in job.stderr, job.stderr[-2000:]
    assert elapsed < 120, f"the job took {elapsed:.0f} s to fail"


@pytest.mark.slow
def test_a_job_killed_mid_run_resumes_to_the_uninterrupted_weights(tmp_path):
    """Rank 1 dies in epoch 2 (after rank 0 saved epoch 1); the same job started again resumes from the checkpoint
    and ends with exactly the weights of a 2-process run that was never interrupted."""
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    killed.mkdir(), whole.mkdir()
    first = _torchrun([str(WORKER), "resume", str(killed)], SEGTUTOR_TEST_DIE_AT="40")  # 24 reads per epoch and rank
    assert first.returncode != 0 and (killed / "run.pt").exists(), first.stderr[-2000:]
    assert not (killed / "weights.pt").exists()
    again = _torchrun([str(WORKER), "resume", str(killed)])
    assert again.returncode == 0, again.stderr[-3000:]
    straight = _torchrun([str(WORKER), "resume", str(whole)])
    assert straight.returncode == 0, straight.stderr[-3000:]
    resumed, uninterrupted = torch.load(killed / "weights.pt"), torch.load(whole / "weights.pt")
    for key in uninterrupted:
        assert torch.equal(resumed[key], uninterrupted[key]), f"{key} differs after the resume"


@pytest.mark.slow
def test_cli_under_torchrun_trains_checkpoints_and_resumes(tmp_path):
    ckpt = tmp_path / "run.pt"
    args = ["-m", "segtutor.train", "--model", "fcn8s", "--data", "synthetic", "--budget", "ci", "--epochs", "1",
            "--checkpoint", str(ckpt), "--no-progress"]
    job = _torchrun(args)
    assert job.returncode == 0, job.stderr[-3000:]
    lines = [line for line in job.stdout.splitlines() if line.startswith("held-out mIoU")]
    assert len(lines) == 1, job.stdout  # printed by rank 0 only
    miou = float(lines[0].split()[2])
    assert 0.0 <= miou <= 1.0
    assert ckpt.exists() and not list(tmp_path.glob("run.pt.tmp*"))
    again = _torchrun(args[:-1] + ["--epochs", "1", "--no-progress"])  # the finished run: resumes, trains nothing
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"held-out mIoU {miou:.4f}" in again.stdout


def test_sharded_sampler_splits_each_global_batch():
    data = SyntheticShapes(21, image_size=32, num_classes=4, seed=0)
    batch = 4
    shards = []
    for rank in (0, 1):
        g = torch.Generator().manual_seed(123)
        sampler = distributed.ShardedSampler(data, distributed.DistContext(rank, 2), g, batch_size=batch,
                                             drop_last=True)
        shards.append(list(sampler))
    order = torch.randperm(21, generator=torch.Generator().manual_seed(123)).tolist()[:20]
    assert all(len(s) == 10 for s in shards)
    for b in range(5):  # global batch b of one process = rank 0's and rank 1's local batch b together
        local = shards[0][2 * b:2 * b + 2] + shards[1][2 * b:2 * b + 2]
        assert sorted(local) == sorted(order[4 * b:4 * b + 4])


def test_context_without_torchrun_is_single_process(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    ctx = distributed.context()
    assert (ctx.rank, ctx.world_size, ctx.enabled, ctx.is_main) == (0, 1, False, True)


def test_context_names_what_torchrun_should_have_set(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(RuntimeError, match="torchrun"):
        distributed.context()
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE"):
        distributed.context()
