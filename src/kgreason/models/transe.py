"""TransE (Bordes et al. 2013, "Translating Embeddings for Modeling Multi-relational Data").

``f(h, r, t) = -||e_h + w_r - e_t||_p``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from kgreason.models.base import (
    KGEModel,
    gather,
    lp_distances,
    register_model,
)
from kgreason.models.kernels import unit_rows

__all__ = ["TransE"]


@register_model("transe")
class TransE(KGEModel):
    """TransE: relations translate heads to tails; scores are negative L1 or L2 distances (no margin: the
    margin, if any, belongs to the loss).

    Args:
        p: norm of the distance, ``1`` (default, the better of the two in Bordes et al. and Sun et al. 2019)
            or ``2`` (scoring all entities then is one matmul through ``|a|^2 - 2 a.e + |e|^2``).
        normalize_entities: entity embeddings are used projected onto the unit L2 sphere (default ``True``, the
            paper's constraint). It is a reparametrisation applied to the table in every scoring call, so no
            training-loop hook is needed; the stored table itself is not renormalised.

    Defaults: ``embedding_dim=200``, ``inverse_relations=False`` (head and tail sides are scored natively:
    heads as ``-||e - (e_t - w_r)||``), Xavier-uniform initialisation, no regulariser. ``default_training``:
    sLCWA with 64 negatives per positive, self-adversarial negative-sampling loss (Sun et al. 2019; margin 9,
    temperature 1), Adam lr 1e-3, batch 512, 300 epochs.
    """

    default_training: ClassVar[dict[str, Any]] = {
        "loop": "slcwa",
        "num_negatives": 64,
        "loss": "nssa",
        "loss_kwargs": {"margin": 9.0, "adversarial_temperature": 1.0},
        "optimizer": "adam",
        "lr": 1e-3,
        "batch_size": 512,
        "epochs": 300,
    }

    def __init__(
        self,
        num_entities: int,
        num_relations: int,
        embedding_dim: int = 200,
        inverse_relations: bool = False,
        p: int = 1,
        normalize_entities: bool = True,
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
        if p not in (1, 2):
            raise ValueError(f"TransE: p must be 1 or 2, got {p!r}")
        self.p = int(p)
        self.normalize_entities = bool(normalize_entities)
        self._extra_config = {"p": self.p, "normalize_entities": self.normalize_entities}
        self.entity = nn.Embedding(self.num_entities, self.embedding_dim)
        self.relation = nn.Embedding(self.num_relations_embedded, self.embedding_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self._initialize(self.entity.weight, "entity", "xavier_uniform")
        self._initialize(self.relation.weight, "relation", "xavier_uniform")

    def _entity_table(self) -> torch.Tensor:
        """``FloatTensor[E, d]``: the entity table, projected onto the unit sphere if ``normalize_entities``."""
        weight = self.entity.weight
        return unit_rows(weight) if self.normalize_entities else weight

    def _distances(
        self,
        query: torch.Tensor,
        table: torch.Tensor,
        candidates: torch.Tensor | None,
        *factors: torch.Tensor,
    ) -> torch.Tensor:
        if self._regularizing:
            self._regularize(*factors, *(() if candidates is None else (gather(table, candidates),)))
        return -lp_distances(query, table, self.p, candidates)

    def _rows_and_table(
        self, query_entities: torch.Tensor, candidates: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(rows of query_entities, table, candidates)`` for scoring: the (normalised) entity table and the
        indices into it, or -- when per-query candidates ``[b, k]`` need fewer rows than the table has -- just
        the needed rows, normalised, as a compact table with the candidates re-indexed into it. Normalising is
        row-wise, so both give the same values and gradients; the compact form does not normalise (and
        back-propagate through) every row of a large table at every step (fb15k-237: 14,505 rows for 1,024
        needed with one negative)."""
        b = query_entities.shape[0]
        if (
            not self.normalize_entities
            or candidates is None
            or candidates.dim() != 2
            or b * (1 + candidates.shape[1]) >= self.num_entities
        ):
            table = self._entity_table()
            return gather(table, query_entities), table, candidates
        needed = torch.cat([query_entities, candidates.reshape(-1)])
        table = unit_rows(self.entity(needed))
        local = torch.arange(b, needed.shape[0], device=needed.device).view(b, -1)
        return table[:b], table, local

    def _score_t(self, h: torch.Tensor, r: torch.Tensor, tails: torch.Tensor | None) -> torch.Tensor:
        x, table, tails = self._rows_and_table(h, tails)
        w = self.relation(r)
        return self._distances(x + w, table, tails, x, w)

    def _score_h(self, r: torch.Tensor, t: torch.Tensor, heads: torch.Tensor | None) -> torch.Tensor:
        y, table, heads = self._rows_and_table(t, heads)
        w = self.relation(r)
        return self._distances(y - w, table, heads, w, y)

    def score_h_and_t(
        self, rt: torch.Tensor, heads: torch.Tensor, hr: torch.Tensor, tails: torch.Tensor
    ) -> torch.Tensor:
        """As :meth:`KGEModel.score_h_and_t`, with one entity lookup and one distance kernel for both groups:
        a head candidate is scored as ``-||(e_t - w_r) - e_h||``, a tail candidate as ``-||(e_h + w_r) - e_t||``."""
        if not self._joint_h_and_t(rt, heads, hr, tails):
            return super().score_h_and_t(rt, heads, hr, tails)
        anchors, table, candidates = self._rows_and_table(
            torch.cat([rt[:, 1], hr[:, 0]]), torch.cat([heads, tails])
        )
        w = self.relation(torch.cat([rt[:, 0], hr[:, 1]]))
        sign = torch.ones(w.shape[0], 1, dtype=w.dtype, device=w.device)
        sign[: rt.shape[0]] = -1.0
        return -lp_distances(torch.addcmul(anchors, sign, w), table, self.p, candidates)

    def _score_r(self, h: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # ||e_h + w_r - e_t|| = ||w_r - (e_t - e_h)||
        ht = self.entity(torch.cat([h, t]))
        if self.normalize_entities:  # row-wise: the same as gathering from the normalised table
            ht = unit_rows(ht)
        x, y = ht[: h.shape[0]], ht[h.shape[0] :]
        self._regularize(x, y)
        return -lp_distances(y - x, self.relation.weight, self.p)
