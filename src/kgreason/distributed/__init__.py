"""Data-parallel training on PyTorch's own distributed engine (``torchrun`` + ``torch.distributed`` + DDP).

A utility layer, usable from ``training`` and ``evaluation``; it imports nothing else of kgreason. See
docs/distributed.md. Outside ``torchrun`` every helper is a no-op and :func:`get_context` is rank 0 of 1.

* :mod:`~kgreason.distributed.context`: joining the run (:func:`init_distributed`), backend, timeouts, device
  per local rank, ``barrier``/``all_reduce``/``broadcast_object``/``all_gather_objects``, ``is_main_process``.
* :mod:`~kgreason.distributed.sampler`: seeded, rank-aware sharding of global batches.
* :mod:`~kgreason.distributed.ddp`: ``DistributedDataParallel`` around a loss that calls model methods.
"""

from kgreason.distributed.context import (
    DEFAULT_TIMEOUT_S,
    DistributedContext,
    DistributedError,
    RankFailureError,
    all_gather_objects,
    all_reduce,
    barrier,
    broadcast_object,
    choose_backend,
    destroy_distributed,
    get_context,
    init_distributed,
    is_communication_error,
    is_main_process,
)
from kgreason.distributed.ddp import LossModule, data_parallel_loss
from kgreason.distributed.sampler import (
    num_examples,
    rank_seed,
    shard_batch,
    shard_bounds,
    slice_examples,
    split_examples,
)

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "DistributedContext",
    "DistributedError",
    "LossModule",
    "RankFailureError",
    "all_gather_objects",
    "all_reduce",
    "barrier",
    "broadcast_object",
    "choose_backend",
    "data_parallel_loss",
    "destroy_distributed",
    "get_context",
    "init_distributed",
    "is_communication_error",
    "is_main_process",
    "num_examples",
    "rank_seed",
    "shard_batch",
    "shard_bounds",
    "slice_examples",
    "split_examples",
]
