"""Start ``world_size`` local processes the way ``torchrun`` does (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT`` in the environment), for tests on CPU with gloo."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.multiprocessing as mp


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _entry(
    rank: int,
    world_size: int,
    port: int,
    env: dict[str, str],
    target: Callable[..., Any],
    args: tuple[Any, ...],
) -> None:
    os.environ.update(
        {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "WORLD_SIZE": str(world_size),
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "LOCAL_WORLD_SIZE": str(world_size),
            "OMP_NUM_THREADS": "1",
            **env,
        }
    )
    torch.set_num_threads(1)
    target(rank, *args)


def launch(
    target: Callable[..., Any],
    world_size: int,
    *args: Any,
    timeout: float = 60.0,
    env: dict[str, str] | None = None,
) -> list[int | None]:
    """Run ``target(rank, *args)`` in ``world_size`` spawned processes; returns their exit codes (``None`` for a
    process still running at ``timeout`` seconds, which is then killed)."""
    ctx = mp.get_context("spawn")
    port = free_port()
    procs = [
        ctx.Process(target=_entry, args=(rank, world_size, port, dict(env or {}), target, args))
        for rank in range(world_size)
    ]
    for proc in procs:
        proc.start()
    deadline = time.monotonic() + timeout
    codes: list[int | None] = []
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
        codes.append(proc.exitcode)
    for proc in procs:
        if proc.is_alive():
            proc.kill()
            proc.join()
    return codes
