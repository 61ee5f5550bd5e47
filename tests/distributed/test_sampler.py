"""Rank-aware sharding of global batches and per-rank seeds."""

from __future__ import annotations

import pytest
import torch

from kgreason.distributed import num_examples, rank_seed, shard_batch, shard_bounds, split_examples
from kgreason.training.slcwa import SLCWABatch


@pytest.mark.parametrize("world_size", [1, 2, 3, 5])
def test_shards_are_disjoint_cover_the_batch_and_differ_by_at_most_one(world_size: int) -> None:
    for n in range(0, 23):
        bounds = [shard_bounds(n, r, world_size) for r in range(world_size)]
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
        sizes = [stop - start for start, stop in bounds]
        assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)
        batch = torch.arange(n)
        assert torch.equal(torch.cat([shard_batch(batch, r, world_size) for r in range(world_size)]), batch)


def test_shard_bounds_rejects_bad_ranks() -> None:
    with pytest.raises(ValueError):
        shard_bounds(4, 2, 2)
    with pytest.raises(ValueError):
        shard_bounds(-1, 0, 2)


def test_structured_batches_are_sliced_row_wise() -> None:
    pos, neg = torch.arange(15).view(5, 3), torch.arange(30).view(5, 2, 3)
    batch = SLCWABatch(pos, neg, None)
    assert num_examples(batch) == 5
    shard = shard_batch(batch, 1, 2)  # rows 3:5
    assert isinstance(shard, SLCWABatch) and shard.valid is None
    assert torch.equal(shard.positives, pos[3:]) and torch.equal(shard.negatives, neg[3:])
    pair = shard_batch((pos, neg), 0, 2)
    assert isinstance(pair, tuple) and torch.equal(pair[0], pos[:3])
    as_dict = shard_batch({"x": pos, "mask": None}, 0, 2)
    assert torch.equal(as_dict["x"], pos[:3]) and as_dict["mask"] is None
    pieces = split_examples(batch, 2)
    assert [num_examples(p) for p in pieces] == [2, 2, 1]
    with pytest.raises(NotImplementedError):
        shard_batch("not a batch", 0, 2)


def test_rank_seeds_are_deterministic_and_distinct() -> None:
    seeds = {rank_seed(0, epoch, rank) for epoch in range(1, 50) for rank in range(8)}
    assert len(seeds) == 49 * 8
    assert rank_seed(7, 1, 0) == rank_seed(7, 1, 0) != rank_seed(8, 1, 0)
    assert all(0 <= s < 2**63 for s in seeds)
