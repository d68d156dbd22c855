"""Checks for the exercise of ``notebooks/09_scaling_out.ipynb`` (training on several processes).

- :func:`check_shard` — ``shard(order, rank, world_size)``: the indices rank ``rank`` of ``world_size`` trains on
  in one epoch, given the epoch's permutation ``order`` of the dataset (a list of ints whose length is a multiple
  of the global batch). The requirement: with each rank's local batches of ``B / world_size`` images, global
  batch ``b`` (the ranks' local batches ``b`` together) holds exactly the images of batch ``b`` of a one-process
  run, ``order[b B:(b + 1) B]``, for every ``B`` that is a multiple of ``world_size``. The reference is
  :func:`segtutor.distributed.ShardedSampler`'s rule, every ``world_size``-th index from ``rank``.
"""
from __future__ import annotations

from typing import Callable, Sequence

from . import call_student, fail, passed

__all__ = ["shard_reference", "check_shard"]

_EXERCISE = "shard"


def shard_reference(order: Sequence[int], rank: int, world_size: int) -> list[int]:
    """Rank ``rank``'s share of the epoch's permutation ``order``: ``order[rank::world_size]``."""
    return list(order)[rank::world_size]


def _as_list(value, rank: int) -> list[int]:
    try:
        return [int(i) for i in value]
    except TypeError:
        fail(_EXERCISE, expected="a list of ints (the dataset indices this rank trains on)",
             got=f"{type(value).__name__} for rank {rank}", hint="return a list, e.g. built with a slice of order")


def check_shard(fn: Callable[[Sequence[int], int, int], Sequence[int]]) -> None:
    """Check ``fn(order, rank, world_size)`` on several permutations, world sizes and global batches."""
    cases = [(list(range(8)), 2, 4), ([5, 2, 7, 0, 3, 6, 1, 4, 9, 8, 11, 10], 2, 4), (list(range(12)), 3, 6),
             ([3, 1, 2, 0, 7, 5, 6, 4], 4, 8), (list(range(16)), 2, 8)]
    for order, world, batch in cases:
        shares = [_as_list(call_student(_EXERCISE, fn, list(order), rank, world), rank) for rank in range(world)]
        everything = sorted(i for share in shares for i in share)
        if everything != sorted(order):
            missing = sorted(set(order) - set(everything))
            doubled = sorted({i for i in everything if everything.count(i) > 1})
            fail(_EXERCISE, expected=f"every index of order exactly once over the {world} ranks",
                 got=f"missing {missing}, more than once {doubled} (order={order}, world_size={world})",
                 hint="the ranks' shares must split order: no index left out, none given to two ranks")
        if len({len(share) for share in shares}) != 1:
            fail(_EXERCISE, expected=f"{len(order) // world} indices per rank",
                 got=f"shares of lengths {[len(s) for s in shares]}",
                 hint="every rank must run the same number of steps, or the others wait for it forever")
        local = batch // world
        for b in range(len(order) // batch):
            together = sorted(i for share in shares for i in share[b * local:(b + 1) * local])
            expected = sorted(order[b * batch:(b + 1) * batch])
            if together != expected:
                hint = ("each index is used once, but rank r got one contiguous block of order: global batch 0 then "
                        "takes images from the start of each block, not the first B images of the permutation; "
                        "deal order out like cards instead" if shares[0] == list(order)[:len(order) // world] else
                        "deal order out like cards: rank r takes positions r, r + world_size, r + 2 world_size, ...")
                fail(_EXERCISE, expected=f"global batch {b} (B={batch}, world_size={world}) = {expected}",
                     got=f"{together} (order={order})", hint=hint)
    passed(_EXERCISE, "each global batch equals the one-process batch")
