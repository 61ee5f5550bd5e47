"""Small helpers shared by the training code: seeding, RNG state capture, gradient clipping re-exports.

``clip_grad_value_`` and ``clip_grad_norm_`` are torch's own functions, re-exported so that callbacks can be
written as in the PyKEEN documentation::

    from kgreason.training.utils import clip_grad_value_
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import clip_grad_norm_, clip_grad_value_

__all__ = [
    "clip_grad_norm_",
    "clip_grad_value_",
    "get_rng_state",
    "has_batch_norm",
    "resolve_device",
    "set_rng_state",
    "set_seed",
]


def set_seed(seed: int) -> None:
    """Seed Python's ``random``, NumPy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/``"auto"`` -> ``cuda`` when available, else ``cpu``; anything else -> ``torch.device(device)``."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def get_rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    """Every random state a training run consumes: Python, NumPy, torch CPU, CUDA (if any) and ``generator``."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": _numpy_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def set_rng_state(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    """Restore a state captured by :func:`get_rng_state` (CUDA states only when CUDA is available)."""
    random.setstate(_as_python_state(state["python"]))
    _set_numpy_state(state["numpy"])
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = [s.cpu() for s in state["cuda"]]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
    if generator is not None and "generator" in state:
        generator.set_state(state["generator"].cpu())


def _numpy_state() -> dict[str, Any]:
    # plain types and tensors only, so checkpoints load with torch.load(weights_only=True)
    name, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)  # type: ignore[misc]
    return {
        "name": name,
        "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "gauss": float(gauss),
    }


def _set_numpy_state(state: dict[str, Any]) -> None:
    keys = state["keys"].cpu().numpy().astype(np.uint32)
    np.random.set_state((state["name"], keys, state["pos"], state["has_gauss"], state["gauss"]))


def _as_python_state(obj: Any) -> Any:
    # random.setstate wants tuples; a round trip through torch.load keeps them, JSON would not
    if isinstance(obj, list):
        return tuple(_as_python_state(x) for x in obj)
    return obj


def has_batch_norm(module: nn.Module) -> bool:
    """Whether ``module`` contains a batch-norm layer (whose statistics depend on the batch composition)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())
