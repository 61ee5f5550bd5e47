"""TuckER (Balazevic et al. 2019, "TuckER: Tensor Factorization for Knowledge Graph Completion").

``f(h, r, t) = W x_1 e_h x_2 w_r x_3 e_t`` with a shared core tensor ``W[d_r, d_e, d_e]``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from kgreason.models.base import KGEModel, dot_scores, gather, register_model

__all__ = ["TuckER"]


@register_model("tucker")
class TuckER(KGEModel):
    """TuckER: a Tucker decomposition of the binary tensor of facts.

    Per query the core is contracted with the relation once (``W_r = w_r . W``, ``[b, d_e, d_e]``), the head is
    mapped through it, and all tails are scored by one matmul against the entity table; a candidate subset by a
    batched dot product of the same query vector. As in the paper: batch-norm on the head embedding and on the
    mapped query, input dropout (head), hidden dropout 1 (on ``W_r``) and hidden dropout 2 (on the query).

    Args:
        relation_dim: ``d_r`` (default: ``embedding_dim``).
        input_dropout, hidden_dropout1, hidden_dropout2: the three dropouts of the paper.

    Defaults: ``embedding_dim=200``, ``relation_dim=200``, dropouts 0.3 / 0.4 / 0.5 (the paper's FB15k-237
    setting; WN18RR used ``relation_dim=30`` and 0.2 / 0.2 / 0.3), Xavier-normal embeddings, core uniform in
    ``[-1, 1]``; ``inverse_relations=True`` (reciprocal relations, as in the paper; without them ``score_h`` and
    ``score_r`` contract the core for every candidate, exact but slow). ``default_training``: LCWA (1-N), BCE with
    label smoothing 0.1, Adam lr 5e-4, batch 128, 500 epochs.
    """

    default_training: ClassVar[dict[str, Any]] = {
        "loop": "lcwa",
        "loss": "bce",
        "label_smoothing": 0.1,
        "optimizer": "adam",
        "lr": 5e-4,
        "batch_size": 128,
        "epochs": 500,
    }
    fallback_chunk_rows = 1024

    def __init__(
        self,
        num_entities: int,
        num_relations: int,
        embedding_dim: int = 200,
        inverse_relations: bool = True,
        relation_dim: int | None = None,
        input_dropout: float = 0.3,
        hidden_dropout1: float = 0.4,
        hidden_dropout2: float = 0.5,
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
        d_e = self.embedding_dim
        d_r = int(relation_dim) if relation_dim is not None else d_e
        if d_r < 1:
            raise ValueError(f"TuckER: relation_dim must be positive, got {relation_dim!r}")
        self.relation_dim = d_r
        self._extra_config = {
            "relation_dim": d_r,
            "input_dropout": float(input_dropout),
            "hidden_dropout1": float(hidden_dropout1),
            "hidden_dropout2": float(hidden_dropout2),
        }
        self.entity = nn.Embedding(self.num_entities, d_e)
        self.relation = nn.Embedding(self.num_relations_embedded, d_r)
        self.core = nn.Parameter(torch.empty(d_r, d_e, d_e))
        self.bn_input = nn.BatchNorm1d(d_e)
        self.bn_hidden = nn.BatchNorm1d(d_e)
        self.input_dropout = nn.Dropout(input_dropout)
        self.hidden_dropout1 = nn.Dropout(hidden_dropout1)
        self.hidden_dropout2 = nn.Dropout(hidden_dropout2)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self._initialize(self.entity.weight, "entity", "xavier_normal")
        self._initialize(self.relation.weight, "relation", "xavier_normal")
        nn.init.uniform_(self.core, -1.0, 1.0)
        self.bn_input.reset_parameters()
        self.bn_hidden.reset_parameters()

    def query(self, h: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """``e_h`` mapped through ``W_r``: ``FloatTensor[b, embedding_dim]`` (dotted with tails to score)."""
        x, w = self.entity(h), self.relation(r)
        self._regularize(x, w)
        d_e = self.embedding_dim
        x = self.input_dropout(self._batch_norm(self.bn_input, x))
        core_r = (w @ self.core.view(self.relation_dim, d_e * d_e)).view(-1, d_e, d_e)  # [b, d_e, d_e]
        x = torch.bmm(x.unsqueeze(1), self.hidden_dropout1(core_r)).squeeze(1)
        return self.hidden_dropout2(self._batch_norm(self.bn_hidden, x))

    def _score_t(self, h: torch.Tensor, r: torch.Tensor, tails: torch.Tensor | None) -> torch.Tensor:
        q = self.query(h, r)
        if tails is not None and self._regularizing:
            self._regularize(gather(self.entity.weight, tails))
        return dot_scores(q, self.entity.weight, tails)
