"""The process group of a distributed run, and the few collectives kgreason needs.

Distributed runs use PyTorch's own engine: ``torchrun`` starts the processes and sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; :func:`init_distributed` reads them and calls
``torch.distributed.init_process_group``. Outside ``torchrun`` (no ``WORLD_SIZE``, or ``WORLD_SIZE=1``) it does
nothing and every helper here is a no-op, so single-process code needs no branch::

    ctx = init_distributed(device="auto")   # rank 0 of 1 outside torchrun
    if ctx.is_main:
        write_report()
    barrier()

Backend: ``gloo`` when training on CPU; on GPUs ``"cpu:gloo,cuda:nccl"`` (NCCL for CUDA tensors, gloo for the
few CPU tensors of bookkeeping). ``KGREASON_DIST_BACKEND`` overrides the choice. Each process of a GPU run
uses the GPU of its ``LOCAL_RANK``.

Timeouts: every collective fails after ``timeout`` seconds (default 600, ``KGREASON_DIST_TIMEOUT``) instead of
hanging forever, and a rank that dies closes its connections, so its peers fail at their next collective.
:func:`is_communication_error` recognises such failures; the training loop turns them into
:class:`RankFailureError`.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import torch
import torch.distributed as dist

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "DistributedContext",
    "DistributedError",
    "RankFailureError",
    "all_gather_objects",
    "all_reduce",
    "barrier",
    "broadcast_object",
    "choose_backend",
    "destroy_distributed",
    "get_context",
    "init_distributed",
    "is_communication_error",
    "is_main_process",
]

#: default timeout of every collective, in seconds
DEFAULT_TIMEOUT_S = 600.0
ENV_TIMEOUT = "KGREASON_DIST_TIMEOUT"
ENV_BACKEND = "KGREASON_DIST_BACKEND"

ReduceOp = Literal["sum", "max", "min"]


class DistributedError(RuntimeError):
    """A distributed run cannot start or go on (missing launcher variables, too few GPUs, ...)."""


class RankFailureError(DistributedError):
    """A collective failed because another rank died, was killed or hung past the timeout."""


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in the run: ``rank`` of ``world_size`` processes, ``local_rank`` on its machine.

    ``DistributedContext()`` is the single-process context (rank 0 of 1). ``backend`` is the process group's
    backend (``None`` when there is none).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_distributed(self) -> bool:
        """More than one process takes part in the run."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """This is rank 0, the process that writes files and talks to trackers."""
        return self.rank == 0

    def resolve_device(self, device: str | torch.device | None = None) -> torch.device:
        """The device this rank computes on: ``None``/``"auto"`` is CUDA when available, else CPU; a CUDA device
        without an index (``"cuda"``) becomes ``cuda:<local_rank>``; anything else is kept."""
        if device is None or device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device(
                "cuda", self.local_rank if self.is_distributed else torch.cuda.current_device()
            )
        return device


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise DistributedError(f"environment variable {name}={value!r} is not an integer") from None


def choose_backend(device_type: str) -> str:
    """The process-group backend for training on ``device_type`` (``"cpu"`` or ``"cuda"``).

    ``KGREASON_DIST_BACKEND`` wins when set; else ``"cpu:gloo,cuda:nccl"`` for CUDA (when NCCL is available)
    and ``"gloo"`` otherwise.
    """
    override = os.environ.get(ENV_BACKEND)
    if override:
        return override
    if device_type == "cuda" and dist.is_nccl_available():
        return "cpu:gloo,cuda:nccl"
    return "gloo"


def _timeout_seconds(timeout: float | None) -> float:
    if timeout is not None:
        return float(timeout)
    value = os.environ.get(ENV_TIMEOUT)
    if value:
        try:
            return float(value)
        except ValueError:
            raise DistributedError(f"{ENV_TIMEOUT}={value!r} is not a number of seconds") from None
    return DEFAULT_TIMEOUT_S


def get_context() -> DistributedContext:
    """The context of the current process group (rank 0 of 1 when none is initialised). Initialises nothing."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistributedContext()
    rank, world_size = dist.get_rank(), dist.get_world_size()
    return DistributedContext(
        rank=rank,
        world_size=world_size,
        local_rank=_env_int("LOCAL_RANK", rank),
        backend=str(dist.get_backend()),
    )


def init_distributed(
    device: str | torch.device | None = None,
    backend: str | None = None,
    timeout: float | None = None,
) -> DistributedContext:
    """Join the run ``torchrun`` started, once; later calls return the same context.

    Args:
        device: what this run trains on (``None``/``"auto"``: CUDA when available); picks the backend and,
            for CUDA, makes ``cuda:<LOCAL_RANK>`` the current device.
        backend: a ``torch.distributed`` backend; ``None`` chooses with :func:`choose_backend`.
        timeout: seconds after which a collective fails (default ``KGREASON_DIST_TIMEOUT`` or 600).

    Returns the single-process context without touching ``torch.distributed`` when ``WORLD_SIZE`` is unset or
    1, or when a process group already exists (then its context).

    Raises:
        DistributedError: ``WORLD_SIZE > 1`` without ``RANK``/``MASTER_ADDR``/``MASTER_PORT``, or a CUDA run
            with fewer GPUs than processes on this machine.
    """
    if not dist.is_available():
        return DistributedContext()
    if dist.is_initialized():
        return get_context()
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size <= 1:
        return DistributedContext()
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if not os.environ.get(k)]
    if missing:
        raise DistributedError(
            f"WORLD_SIZE={world_size} but {', '.join(missing)} not set: start distributed runs with "
            "torchrun (e.g. `torchrun --nproc_per_node=2 -m kgreason train kge ...`)"
        )
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    probe = DistributedContext(rank=rank, world_size=world_size, local_rank=local_rank)
    device_type = probe.resolve_device(device).type
    if device_type == "cuda":
        count = torch.cuda.device_count()
        if local_rank >= count:
            raise DistributedError(
                f"LOCAL_RANK={local_rank} but this machine has {count} GPU(s): start at most {count} processes "
                "per node (--nproc_per_node), or train on CPU (device='cpu')"
            )
        torch.cuda.set_device(local_rank)
    chosen = backend or choose_backend(device_type)
    if "nccl" in chosen:
        # failed NCCL collectives abort the process instead of blocking it
        os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")
    dist.init_process_group(
        backend=chosen,
        init_method="env://",
        rank=rank,
        world_size=world_size,
        timeout=timedelta(seconds=_timeout_seconds(timeout)),
    )
    atexit.register(destroy_distributed)
    return get_context()


def destroy_distributed() -> None:
    """Leave the process group (if any); registered at exit by :func:`init_distributed`."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_main_process() -> bool:
    """Rank 0, or a single process."""
    return get_context().is_main


def _comm_device(ctx: DistributedContext) -> torch.device:
    """Where small bookkeeping tensors go: the CPU when the backend has gloo for it, else the current GPU."""
    if ctx.backend is None or "gloo" in ctx.backend or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", torch.cuda.current_device())


def barrier() -> None:
    """Wait until every rank arrives (no-op in a single process). Fails after the timeout."""
    ctx = get_context()
    if ctx.is_distributed:
        dist.all_reduce(torch.zeros(1, device=_comm_device(ctx)))


_OPS = {"sum": "SUM", "max": "MAX", "min": "MIN"}


def all_reduce(values: torch.Tensor | Sequence[float] | float, op: ReduceOp = "sum") -> torch.Tensor:
    """``op`` over ranks of ``values`` (a tensor, numbers or a number), returned as a new tensor on the
    device of ``values`` (float64 for numbers). In a single process: ``values`` as a tensor."""
    if op not in _OPS:
        raise ValueError(f"op must be one of {sorted(_OPS)}, got {op!r}")
    tensor = values if isinstance(values, torch.Tensor) else torch.tensor(values, dtype=torch.float64)
    ctx = get_context()
    if not ctx.is_distributed:
        return tensor.clone()
    work = tensor.detach().to(_comm_device(ctx), copy=True)
    dist.all_reduce(work, op=getattr(dist.ReduceOp, _OPS[op]))
    return work.to(tensor.device)


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` (picklable) on every rank; ``obj`` itself in a single process."""
    ctx = get_context()
    if not ctx.is_distributed:
        return obj
    box = [obj if ctx.rank == src else None]
    dist.broadcast_object_list(box, src=src, device=_comm_device(ctx))
    return box[0]


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` in a single process."""
    ctx = get_context()
    if not ctx.is_distributed:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


_COMMUNICATION_MARKERS = (
    "connection closed",
    "connection reset",
    "connection refused",
    "broken pipe",
    "timed out",
    "by peer",
    "nccl communicator was aborted",
)


def is_communication_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a failed collective (a dead, killed or hung peer), not an error of the computation."""
    if isinstance(exc, dist.DistError):
        return True
    if not isinstance(exc, RuntimeError) or isinstance(exc, DistributedError):
        return False
    text = str(exc).lower()
    return any(marker in text for marker in _COMMUNICATION_MARKERS)
