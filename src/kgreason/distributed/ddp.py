"""``DistributedDataParallel`` around a loss function that calls model *methods*.

DDP all-reduces gradients only for computations that run inside its ``forward``. KGE losses call
``model.score_t``/``score_h``/``score_r`` (several of them per batch) and the walker runs its policy step by
step, so wrapping the model itself would see none of it. :func:`data_parallel_loss` wraps the whole loss
instead: ``ddp(batch)`` runs ``loss_fn(batch)`` as the forward pass of a module that owns the model's
parameters, so one DDP forward covers every model call of the batch, and the backward pass of its result
averages the gradients over ranks (bucketed, overlapped with the backward computation, as DDP always does).
DDP also broadcasts rank 0's parameters and buffers when it is built, so every rank starts equal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

__all__ = ["LossModule", "data_parallel_loss"]


class LossModule(nn.Module):
    """An ``nn.Module`` whose ``forward(*args)`` is ``loss_fn(*args)`` and whose parameters are ``model``'s.

    ``loss_fn`` must compute with ``model`` (the very module registered here, not a copy).
    """

    def __init__(self, model: nn.Module, loss_fn: Callable[..., torch.Tensor]) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.loss_fn(*args, **kwargs)


def data_parallel_loss(
    model: nn.Module,
    loss_fn: Callable[..., torch.Tensor],
    device: torch.device,
    find_unused_parameters: bool = False,
    **ddp_kwargs: Any,
) -> DistributedDataParallel:
    """``DistributedDataParallel`` over :class:`LossModule` ``(model, loss_fn)``; needs an initialised process
    group and every rank calling it together.

    Args:
        model: the module being trained (already on ``device``); its trainable parameters are synchronised.
        loss_fn: computes a scalar loss with ``model``; ``ddp(*args)`` calls it.
        device: this rank's device (``device_ids=[index]`` for CUDA, none for CPU).
        find_unused_parameters: set when some parameters may get no gradient in a step.
        **ddp_kwargs: more ``DistributedDataParallel`` arguments (``bucket_cap_mb``, ``broadcast_buffers``...).
    """
    device_ids = [device.index] if device.type == "cuda" and device.index is not None else None
    return DistributedDataParallel(
        LossModule(model, loss_fn),
        device_ids=device_ids,
        find_unused_parameters=find_unused_parameters,
        **ddp_kwargs,
    )
