"""Checkpoints: a whole training state in one atomically written file.

A checkpoint is ``loop.state_dict()`` (see :meth:`kgreason.training.loop.TrainingLoop.state_dict`): model,
optimiser, scheduler, every RNG state (Python, NumPy, torch, CUDA, the loop's generator), completed epochs,
history, callback states and the run config. It is written through :func:`kgreason.io.atomic_torch_save`, so a
run killed at any moment leaves either the previous or the new checkpoint, never a broken one, and it holds
only tensors and plain Python values, so it loads with ``torch.load(weights_only=True)``.

Resuming (``loop.train(num_epochs, checkpoint_dir=..., resume=True)``) restores all of it; on CPU the resumed
run ends with exactly the weights of an uninterrupted run with the same seed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from kgreason.io import atomic_torch_save

if TYPE_CHECKING:
    from kgreason.training.loop import TrainingLoop

__all__ = ["CheckpointError", "load_checkpoint", "resume_from", "save_checkpoint"]


class CheckpointError(RuntimeError):
    """A checkpoint file could not be read."""


def save_checkpoint(loop: TrainingLoop, path: str | os.PathLike[str]) -> Path:
    """Write ``loop.state_dict()`` to ``path`` atomically; returns the path."""
    path = Path(path)
    atomic_torch_save(loop.state_dict(), path)
    return path


def load_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device | None = "cpu"
) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors mapped to ``map_location``)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no checkpoint")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot read checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or "model" not in state or "epoch" not in state:
        raise CheckpointError(f"{path}: not a kgreason training checkpoint")
    return state


def resume_from(loop: TrainingLoop, path: str | os.PathLike[str], check_config: bool = True) -> int:
    """Load the checkpoint at ``path`` into ``loop`` (config checked unless ``check_config=False``);
    returns the number of completed epochs."""
    loop.load_state_dict(
        load_checkpoint(path, map_location=loop.device), path=path, check_config=check_config
    )
    return loop.epoch
