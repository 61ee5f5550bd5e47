"""Rank-aware, seeded batch sharding: every rank draws the same global batch, and trains on its own slice.

The training loop keeps one *shared* generator whose state is the same on every rank (seeded alike, restored
alike from checkpoints), so each epoch's permutation, its global batches and any randomness drawn for a whole
batch (sLCWA negatives) are identical on all ranks and identical to a single-process run. Each global batch
of ``N`` examples is then cut into ``world_size`` contiguous shards whose sizes differ by at most one
(:func:`shard_bounds`); rank ``r`` trains on shard ``r``. The shards of one batch are disjoint and cover it, so
every epoch visits every example exactly once over all ranks.

Randomness a rank draws for its own shard (dropout, the walker's rollouts) comes from streams seeded with
:func:`rank_seed` ``(seed, epoch, rank)``: independent across ranks, reproducible, and needing no checkpoint.

Batches are tensors (split along dim 0) or tuples, named tuples, lists or dicts of tensors sharing dim 0
(``None`` entries are kept as they are).
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["num_examples", "rank_seed", "shard_batch", "shard_bounds", "slice_examples", "split_examples"]

_MASK64 = (1 << 64) - 1


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """``[start, stop)`` of rank ``rank``'s contiguous shard of ``n`` items; the first ``n % world_size`` ranks
    get one more item (as ``torch.tensor_split``)."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def num_examples(batch: Any) -> int:
    """Examples in ``batch``: dim 0 of a tensor, or of the first tensor of a tuple/list/dict."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    parts = list(batch.values()) if isinstance(batch, dict) else batch
    if isinstance(parts, tuple | list):
        for part in parts:
            if isinstance(part, torch.Tensor):
                return int(part.shape[0])
    raise NotImplementedError(
        f"cannot count the examples of a {type(batch).__name__} batch; override batch_size_of/shard_batch"
    )


def slice_examples(batch: Any, start: int, stop: int) -> Any:
    """Examples ``start:stop`` of ``batch`` (views for tensors), keeping the batch's type."""
    if isinstance(batch, torch.Tensor):
        return batch[start:stop]
    if isinstance(batch, dict):
        return {k: _slice_part(v, start, stop) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # named tuple
        return type(batch)(*(_slice_part(v, start, stop) for v in batch))
    if isinstance(batch, tuple | list):
        return type(batch)(_slice_part(v, start, stop) for v in batch)
    raise NotImplementedError(
        f"cannot slice a {type(batch).__name__} batch; override TrainingLoop.split_batch/shard_batch"
    )


def _slice_part(part: Any, start: int, stop: int) -> Any:
    if part is None:
        return None
    if isinstance(part, torch.Tensor):
        return part[start:stop]
    raise NotImplementedError(f"cannot slice a batch part of type {type(part).__name__}")


def split_examples(batch: Any, size: int) -> list[Any]:
    """``batch`` cut into consecutive pieces of at most ``size`` examples."""
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    n = num_examples(batch)
    return [slice_examples(batch, s, min(s + size, n)) for s in range(0, n, size)]


def shard_batch(batch: Any, rank: int, world_size: int) -> Any:
    """Rank ``rank``'s contiguous shard of a global ``batch`` (see :func:`shard_bounds`); may be empty when the
    batch has fewer examples than ranks."""
    start, stop = shard_bounds(num_examples(batch), rank, world_size)
    return slice_examples(batch, start, stop)


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def rank_seed(seed: int, *keys: int) -> int:
    """A seed in ``[0, 2**63)`` derived from ``seed`` and ``keys`` (e.g. ``epoch, rank``) by SplitMix64 mixing:
    deterministic, and different keys give unrelated streams."""
    x = _splitmix64(int(seed) & _MASK64)
    for key in keys:
        x = _splitmix64(x ^ (int(key) & _MASK64))
    return x >> 1
