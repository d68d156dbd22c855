"""segtutor.checks.scaling: the sharding exercise of notebook 09 accepts the rule and names the usual mistakes."""
from __future__ import annotations

from check_helpers import failure_message
from segtutor import checks, distributed
from segtutor.data import SyntheticShapes

import torch


def test_reference_passes(capsys):
    checks.check_shard(checks.shard_reference)
    assert "passed" in capsys.readouterr().out


def test_reference_is_the_sampler_rule():
    data = SyntheticShapes(12, image_size=32, num_classes=4, seed=0)
    for rank in range(3):
        g = torch.Generator().manual_seed(7)
        sampler = distributed.ShardedSampler(data, distributed.DistContext(rank, 3), g, batch_size=6, drop_last=True)
        order = torch.randperm(12, generator=torch.Generator().manual_seed(7)).tolist()
        assert list(sampler) == checks.shard_reference(order, rank, 3)


def test_contiguous_blocks_are_named():
    def blocks(order, rank, world):
        n = len(order) // world
        return order[rank * n:(rank + 1) * n]

    assert "contiguous block" in failure_message("shard", checks.check_shard, blocks)


def test_a_lost_index_is_named():
    def lossy(order, rank, world):
        return order[rank::world][:-1] if rank == 0 else order[rank::world]

    message = failure_message("shard", checks.check_shard, lossy)
    assert "exactly once" in message or "indices per rank" in message


def test_every_rank_getting_everything_is_named():
    assert "more than once" in failure_message("shard", checks.check_shard, lambda order, rank, world: list(order))


def test_not_a_list_is_named():
    assert "list of ints" in failure_message("shard", checks.check_shard, lambda order, rank, world: None)
