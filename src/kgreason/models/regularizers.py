"""Penalties on the embeddings a scoring call used (registry ``REGULARIZERS``).

A regulariser maps the *factors* of a batch (the embedding rows looked up by a scoring call, each a tensor
``[..., dim]``, real or complex) to a scalar::

    term = weight * sum over factors f of  mean over rows of f ( sum_j |f_j| ** p )

A "row" is one embedding vector: every leading dimension of a factor counts as rows, the last is the embedding
dimension. For complex factors ``|f_j|`` is the modulus, so the N3 penalty of ComplEx is computed on complex
components exactly as in Lacroix et al. (2018), "Canonical Tensor Decomposition for Knowledge Base Completion".
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar

import torch

from kgreason.registry import Registry

__all__ = ["REGULARIZERS", "LpRegularizer", "N3Regularizer", "Regularizer"]


class Regularizer(abc.ABC):
    """A weighted penalty on embedding factors; ``regularizer(factors) -> FloatTensor[]`` (a scalar)."""

    name: ClassVar[str] = ""

    def __init__(self, weight: float) -> None:
        if weight < 0:
            raise ValueError(f"regulariser weight must be >= 0, got {weight}")
        self.weight = float(weight)

    @abc.abstractmethod
    def penalty(self, factor: torch.Tensor) -> torch.Tensor:
        """Unweighted penalty of one factor ``[..., dim]``: a scalar, averaged over rows."""

    def __call__(self, factors: Sequence[torch.Tensor]) -> torch.Tensor:
        """``weight * sum(penalty(f) for f in factors)`` as a scalar tensor."""
        if not factors:
            raise ValueError("a regulariser needs at least one factor")
        total = self.penalty(factors[0])
        for factor in factors[1:]:
            total = total + self.penalty(factor)
        return self.weight * total

    @property
    def config(self) -> dict[str, Any]:
        """Constructor keyword arguments (JSON-able)."""
        return {"weight": self.weight}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{type(self).__name__}({args})"


REGULARIZERS: Registry[type[Regularizer]] = Registry("regularizer")


@REGULARIZERS.register("lp")
class LpRegularizer(Regularizer):
    """``weight * mean_rows(sum_j |x_j| ** p)`` per factor: ``p=2`` is the squared L2 norm (weight decay on the
    embeddings actually used in a batch), ``p=1`` the L1 norm.

    Args:
        weight: multiplier of the penalty (default ``1e-5``).
        p: exponent, ``>= 1`` (default ``2.0``).
    """

    name = "lp"

    def __init__(self, weight: float = 1e-5, p: float = 2.0) -> None:
        super().__init__(weight)
        if p < 1:
            raise ValueError(f"p must be >= 1, got {p}")
        self.p = float(p)

    def penalty(self, factor: torch.Tensor) -> torch.Tensor:
        magnitude = factor.abs()
        powered = magnitude.square() if self.p == 2.0 else magnitude.pow(self.p)
        return powered.sum(dim=-1).mean()

    @property
    def config(self) -> dict[str, Any]:
        return {"weight": self.weight, "p": self.p}


@REGULARIZERS.register("n3")
class N3Regularizer(Regularizer):
    """Nuclear 3-norm penalty of Lacroix et al. (2018): ``weight * mean_rows(sum_j |x_j| ** 3)`` per factor, with
    ``|x_j|`` the modulus of complex components (pass complex factors for ComplEx).

    Args:
        weight: multiplier (default ``5e-2``, the FB15k-237 value of Lacroix et al.; tune per dataset).
    """

    name = "n3"

    def __init__(self, weight: float = 5e-2) -> None:
        super().__init__(weight)

    def penalty(self, factor: torch.Tensor) -> torch.Tensor:
        return factor.abs().pow(3).sum(dim=-1).mean()
