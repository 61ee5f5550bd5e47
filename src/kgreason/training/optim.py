"""Optimisers and learning-rate schedulers chosen by name: every class of ``torch.optim`` and
``torch.optim.lr_scheduler``, found at import time (so new torch versions add theirs automatically).

    make_optimizer("adam", model.parameters(), lr=1e-3, weight_decay=0.0)
    make_lr_scheduler("StepLR", optimizer, step_size=10, gamma=0.5)
    make_lr_scheduler("reduce_lr_on_plateau", optimizer, mode="max", patience=2)

Composite schedulers take their parts as specs ``{"name": ..., **kwargs}``::

    make_lr_scheduler("SequentialLR", optimizer, milestones=[5],
                      schedulers=[{"name": "LinearLR", "start_factor": 0.1, "total_iters": 5},
                                  {"name": "CosineAnnealingLR", "T_max": 95}])
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

import torch
from torch.optim import lr_scheduler as _sched

from kgreason.registry import Registry

__all__ = ["LR_SCHEDULERS", "OPTIMIZERS", "make_lr_scheduler", "make_optimizer"]

OPTIMIZERS: Registry[type[torch.optim.Optimizer]] = Registry("optimizer")
LR_SCHEDULERS: Registry[type] = Registry("learning-rate scheduler")

#: optimisers whose ``step`` needs a closure that re-evaluates the loss; a mini-batch loop cannot drive them
_NEEDS_CLOSURE = {"LBFGS"}

for _name, _cls in vars(torch.optim).items():
    if (
        inspect.isclass(_cls)
        and issubclass(_cls, torch.optim.Optimizer)
        and _cls is not torch.optim.Optimizer
        and not _name.startswith("_")
        and _name not in _NEEDS_CLOSURE
    ):
        OPTIMIZERS.add(_name, _cls)

for _name, _cls in vars(_sched).items():
    if (
        inspect.isclass(_cls)
        and (issubclass(_cls, _sched.LRScheduler) or _cls is _sched.ReduceLROnPlateau)
        and _name not in ("LRScheduler", "_LRScheduler")
        and not _name.startswith("_")
    ):
        LR_SCHEDULERS.add(_name, _cls)


def make_optimizer(
    optimizer: str | type[torch.optim.Optimizer] | torch.optim.Optimizer,
    params: Iterable[Any],
    lr: float | None = None,
    **kwargs: Any,
) -> torch.optim.Optimizer:
    """Build an optimiser by name (case-insensitive, e.g. ``"adam"``, ``"AdamW"``, ``"sgd"``) or class.

    ``lr=None`` keeps the optimiser's own default. An already built optimiser is returned unchanged
    (``params``, ``lr`` and ``kwargs`` must then be empty/None).
    """
    if isinstance(optimizer, torch.optim.Optimizer):
        if lr is not None or kwargs:
            raise ValueError("lr/optimizer_kwargs cannot be applied to an already built optimizer")
        return optimizer
    if isinstance(optimizer, str):
        if optimizer.lower() in {n.lower() for n in _NEEDS_CLOSURE}:
            raise ValueError("LBFGS needs a loss closure per step and cannot be used by TrainingLoop")
        cls = OPTIMIZERS.get(optimizer)
    else:
        cls = optimizer
    if lr is not None:
        kwargs["lr"] = lr
    return cls(params, **kwargs)


def make_lr_scheduler(scheduler: str | type | Any, optimizer: torch.optim.Optimizer, **kwargs: Any) -> Any:
    """Build a ``torch.optim.lr_scheduler`` scheduler by name (case/underscore-insensitive) or class.

    For ``SequentialLR`` and ``ChainedScheduler``, ``schedulers`` may be a list of specs
    ``{"name": ..., **kwargs}`` built here on the same optimiser. A built scheduler is returned unchanged.
    """
    if not isinstance(scheduler, str) and not inspect.isclass(scheduler):
        return scheduler
    cls = LR_SCHEDULERS.get(scheduler) if isinstance(scheduler, str) else scheduler
    if "schedulers" in kwargs:
        kwargs["schedulers"] = [
            make_lr_scheduler(spec["name"], optimizer, **{k: v for k, v in spec.items() if k != "name"})
            if isinstance(spec, dict)
            else spec
            for spec in kwargs["schedulers"]
        ]
    if cls is _sched.ChainedScheduler:
        return cls(kwargs.pop("schedulers"), optimizer=optimizer, **kwargs)
    try:
        return cls(optimizer, **kwargs)
    except TypeError as exc:
        raise TypeError(f"cannot build learning-rate scheduler {cls.__name__} with {kwargs}: {exc}") from exc
