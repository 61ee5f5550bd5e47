"""DistMult (Yang et al. 2015, "Embedding Entities and Relations for Learning and Inference in Knowledge Bases").

``f(h, r, t) = <e_h, w_r, e_t> = sum_j e_h[j] w_r[j] e_t[j]``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from kgreason.models.base import KGEModel, dot_scores, gather, register_model

__all__ = ["DistMult"]


@register_model("distmult")
class DistMult(KGEModel):
    """DistMult: a trilinear product, symmetric in head and tail.

    Defaults: ``embedding_dim=200``; ``inverse_relations=True`` (reciprocal relations lift the symmetry
    restriction for the tail/head views, as in 1-N training of Dettmers et al. 2018 and Lacroix et al. 2018);
    Xavier-uniform initialisation; no regulariser. ``default_training``: LCWA (1-N), BCE with label smoothing
    0.1, Adam lr 1e-3, batch 256, 300 epochs.

    Scoring all tails is one matmul ``(e_h * w_r) @ E^T``; a candidate subset one batched dot product.
    """

    default_training: ClassVar[dict[str, Any]] = {
        "loop": "lcwa",
        "loss": "bce",
        "label_smoothing": 0.1,
        "optimizer": "adam",
        "lr": 1e-3,
        "batch_size": 256,
        "epochs": 300,
    }

    def __init__(
        self,
        num_entities: int,
        num_relations: int,
        embedding_dim: int = 200,
        inverse_relations: bool = True,
        regularizer: str | None = None,
        regularizer_kwargs: dict[str, Any] | None = None,
        entity_initializer: str | None = None,
        relation_initializer: str | None = None,
    ) -> None:
        super().__init__(
            num_entities,
            num_relations,
            embedding_dim,
            inverse_relations,
            regularizer,
            regularizer_kwargs,
            entity_initializer,
            relation_initializer,
        )
        self.entity = nn.Embedding(self.num_entities, self.embedding_dim)
        self.relation = nn.Embedding(self.num_relations_embedded, self.embedding_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self._initialize(self.entity.weight, "entity", "xavier_uniform")
        self._initialize(self.relation.weight, "relation", "xavier_uniform")

    def _query(self, e: torch.Tensor, r: torch.Tensor, candidates: torch.Tensor | None) -> torch.Tensor:
        x, w = self.entity(e), self.relation(r)
        if self._regularizing:
            self._regularize(x, w, *(() if candidates is None else (gather(self.entity.weight, candidates),)))
        return dot_scores(x * w, self.entity.weight, candidates)

    def _score_t(self, h: torch.Tensor, r: torch.Tensor, tails: torch.Tensor | None) -> torch.Tensor:
        return self._query(h, r, tails)

    def _score_h(self, r: torch.Tensor, t: torch.Tensor, heads: torch.Tensor | None) -> torch.Tensor:
        return self._query(t, r, heads)  # symmetric in head and tail

    def _score_r(self, h: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x, y = self.entity(h), self.entity(t)
        self._regularize(x, y)
        return dot_scores(x * y, self.relation.weight)
