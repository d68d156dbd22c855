"""Training on several processes: ``torchrun`` with DistributedDataParallel (DDP).

Taught in ``notebooks/06_end_to_end.ipynb`` ("Scaling out"). :func:`segtutor.train.fit` calls these helpers, so
the same call trains on one process or, launched by ``torchrun --nproc_per_node=N``, on N processes:

- :func:`context` reads ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` (set by ``torchrun``) and joins the process
  group on first use: ``nccl`` on CUDA, ``gloo`` on the CPU.
- :class:`ShardedSampler` is a :class:`torch.utils.data.DistributedSampler` whose per-epoch permutation is drawn
  from the generator ``fit`` already seeds from ``(seed, epoch)``; rank ``r`` takes every ``N``-th index from
  ``r``. So global batch ``b`` of an N-process run holds exactly the images of batch ``b`` of a one-process run.
- :func:`all_reduce_sum` adds a tensor over ranks (confusion matrices, loss sums): validation metrics of an
  N-process run equal a one-process evaluation of the same data.

What ``batch_size`` and ``lr`` mean: ``batch_size`` is the GLOBAL batch, split evenly over the ranks (it must
be a multiple of N), and DDP averages the ranks' gradients, so a step sees the same images and (BatchNorm aside)
the same gradient as the one-process step: ``lr`` needs no scaling when N changes. Scaling the global batch up with
N instead is a choice of its own, usually paired with a larger ``lr`` (Goyal et al., 2017, linear scaling rule).
BatchNorm normalises each rank's share of the batch unless ``sync_batchnorm=True`` converts it to
:class:`torch.nn.SyncBatchNorm` (statistics over the global batch, at the cost of a collective per layer).
"""
from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset, DistributedSampler

__all__ = ["DistContext", "context", "current", "device_for", "shard_indices", "ShardedSampler", "all_reduce_sum", "wrap_model", "unwrap_model", "barrier"]

#: How long a collective waits for a rank that has stopped answering before the job fails with an error.
TIMEOUT = datetime.timedelta(seconds=float(os.environ.get("SEGTUTOR_DIST_TIMEOUT", "120")))


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in the job: ``rank`` of ``world_size`` processes, ``local_rank`` on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """True when more than one process trains (launched by ``torchrun`` with N > 1)."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes checkpoints and draws progress."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"environment variable {name}={text!r} must be an integer (torchrun sets it)") from None


def context(device: torch.device | None = None) -> DistContext:
    """This process's :class:`DistContext`, joining the default process group when ``WORLD_SIZE`` > 1.

    The backend is ``nccl`` when ``device`` is a CUDA device and ``gloo`` otherwise. A process group that is
    already initialised (by the caller) is used as it is.
    """
    if dist.is_available() and dist.is_initialized():
        return current()
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size <= 1:
        return DistContext()
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if not os.environ.get(name):
            raise RuntimeError(f"WORLD_SIZE={world_size} but {name} is not set: launch with "
                               "`torchrun --nproc_per_node=N ...`, which sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT")
    backend = "nccl" if device is not None and device.type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend, rank=rank, world_size=world_size, timeout=TIMEOUT)
    return DistContext(rank, world_size, local_rank)


def current() -> DistContext:
    """The job this process belongs to, without joining one: the initialised process group, else one process."""
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", 0))
    return DistContext()


def device_for(ctx: DistContext, device: torch.device) -> torch.device:
    """On CUDA each process trains on its own GPU, ``cuda:LOCAL_RANK``; other devices are returned as they are."""
    if ctx.enabled and device.type == "cuda":
        return torch.device("cuda", ctx.local_rank)
    return device


class ShardedSampler(DistributedSampler):
    """Rank ``rank``'s share of a permutation drawn from ``generator`` each epoch (see the module docstring).

    ``drop_last=True`` keeps only the first ``len(dataset) // batch_size * batch_size`` indices of the permutation
    (whole global batches, as a one-process ``DataLoader(drop_last=True)`` does); otherwise the permutation is
    padded by repeating its start so that every rank gets the same number of indices (DistributedSampler's rule).
    """

    def __init__(self, dataset: Dataset, ctx: DistContext, generator: torch.Generator, *, batch_size: int,
                 drop_last: bool) -> None:
        super().__init__(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, drop_last=False)
        self.generator = generator
        n = len(dataset)  # type: ignore[arg-type]
        self.total_size = n // batch_size * batch_size if drop_last and n >= batch_size else \
            -(-n // ctx.world_size) * ctx.world_size
        self.num_samples = self.total_size // ctx.world_size

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)  # type: ignore[arg-type]
        order = torch.randperm(n, generator=self.generator).tolist()
        while len(order) < self.total_size:
            order += order[: self.total_size - len(order)]
        return iter(order[self.rank:self.total_size:self.num_replicas])


def shard_indices(n: int, ctx: DistContext) -> list[int]:
    """Rank ``ctx.rank``'s share of ``range(n)`` for evaluation: every ``world_size``-th index, no padding (so each
    sample is scored exactly once across ranks)."""
    return list(range(ctx.rank, n, ctx.world_size))


def all_reduce_sum(tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """``tensor`` summed over ranks (in place); unchanged on one process."""
    if ctx.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier(ctx: DistContext) -> None:
    """Wait until every rank gets here (a no-op on one process)."""
    if ctx.enabled:
        dist.barrier()


def wrap_model(model: nn.Module, ctx: DistContext, device: torch.device, *, sync_batchnorm: bool = False) -> nn.Module:
    """``model`` wrapped in :class:`torch.nn.parallel.DistributedDataParallel` when ``ctx.enabled``.

    DDP broadcasts rank 0's parameters and buffers at construction, so every rank starts from the same weights
    whatever its seed. ``sync_batchnorm`` converts BatchNorm layers to SyncBatchNorm first.
    """
    if not ctx.enabled:
        return model
    if sync_batchnorm:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (the model itself otherwise)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
