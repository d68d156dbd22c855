"""A training job that tests/test_distributed.py runs under ``torchrun`` (and in one process, to compare).

    python tests/ddp_worker.py MODE OUT_DIR

MODE ``train``: fit a small BatchNorm-free network on synthetic shapes for 2 epochs (global batch 8), then write
``weights.pt`` (rank 0) and ``matrix-<rank>.pt`` (every rank: the validation confusion matrix as evaluate reduced it).
MODE ``die``: as ``train``, but rank 1 exits with status 3 while reading its 5th training image.
MODE ``resume``: as ``train`` with ``fit(checkpoint=OUT_DIR/run.pt)``; with ``SEGTUTOR_TEST_DIE_AT=N`` rank 1 exits
with status 3 at its N-th image read (N past the first epoch: the job dies in epoch 2, after the epoch-1 save).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from segtutor.data import SyntheticShapes  # noqa: E402
from segtutor.runtime import seed_everything  # noqa: E402
from segtutor.train import evaluate, fit  # noqa: E402


class Dying(torch.utils.data.Dataset):
    """``data`` whose 5th read on rank 1 ends the process, as a crashed worker would."""

    def __init__(self, data, die_at=5):
        self.data, self.reads, self.die_at = data, 0, die_at

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        self.reads += 1
        if os.environ.get("RANK") == "1" and self.reads == self.die_at:
            os._exit(3)
        return self.data[index]


def tiny_net(k: int = 4) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(8, k, 1))


def main(mode: str, out: str) -> None:
    torch.set_num_threads(1)
    train = SyntheticShapes(48, image_size=32, num_classes=4, seed=0)
    val = SyntheticShapes(13, image_size=32, num_classes=4, seed=1)  # 13: not a multiple of 2 ranks
    if mode == "die":
        train = Dying(train)
    die_at = int(os.environ.get("SEGTUTOR_TEST_DIE_AT", "0"))
    if mode == "resume" and die_at:
        train = Dying(train, die_at)
    seed_everything(0)
    model = tiny_net()
    fit(model, train, val, epochs=2, batch_size=8, lr=1e-2, seed=0, progress=False, device="cpu",
        checkpoint=Path(out) / "run.pt" if mode == "resume" else None)
    result = evaluate(model, val, 4)
    rank = int(os.environ.get("RANK", "0"))
    torch.save(result.confusion, Path(out) / f"matrix-{rank}.pt")
    if rank == 0:
        torch.save(model.state_dict(), Path(out) / "weights.pt")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
