"""RotatE (Sun et al. 2019, "RotatE: Knowledge Graph Embedding by Relational Rotation in Complex Space").

``f(h, r, t) = -|| e_h * exp(i theta_r) - e_t ||`` with complex entity embeddings and relation phases.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import nn

from kgreason.models.base import (
    DENSE_CANDIDATE_RATIO,
    DENSE_CANDIDATE_RATIO_L1,
    KGEModel,
    as_complex,
    as_real,
    complex_l1_distances,
    gather,
    lp_distances,
    register_model,
)

__all__ = ["RotatE"]


@register_model("rotate")
class RotatE(KGEModel):
    """RotatE: relations rotate complex head embeddings onto tails; scores are negative distances (no margin:
    the margin ``gamma`` of the paper belongs to the loss, e.g. the self-adversarial loss).

    Entities are real tables ``[E, 2 * embedding_dim]`` of interleaved (real, imaginary) pairs
    (``embedding_dim`` counts complex components); relations are phases ``[R', embedding_dim]``.

    Args:
        p: ``2`` (default: the Euclidean norm of the complex difference vector; all-entity scoring is one matmul
            through ``|q|^2 - 2 q.e + |e|^2``, so 1-N training and evaluation stay fast on large graphs) or ``1``
            (the paper's distance, the sum of complex moduli ``sum_j |q_j - e_j|``; no matmul form, so all-entity
            scoring materialises ``[b, E, d]`` differences, in chunks).

    Heads are scored natively as ``-|| e - e_t * exp(-i theta_r) ||`` (rotations preserve moduli).
    Defaults: ``embedding_dim=200``, ``inverse_relations=False``, Xavier-uniform entities, phases uniform in
    ``[-pi, pi]``, no regulariser (a regulariser sees entity rows only). ``default_training``: sLCWA with 64
    negatives, self-adversarial negative-sampling loss (margin 9, temperature 1; Sun et al.), Adam lr 1e-2,
    batch 512, 300 epochs. (With lr 1e-3 the small Xavier-initialised embeddings grow too slowly towards the
    margin: UMLS test MRR 0.21 after 100 epochs, against 0.81 with 3e-3, 0.88 with 1e-2, and 0.90 after the
    300 epochs of the default.)
    """

    default_training: ClassVar[dict[str, Any]] = {
        "loop": "slcwa",
        "num_negatives": 64,
        "loss": "nssa",
        "loss_kwargs": {"margin": 9.0, "adversarial_temperature": 1.0},
        "optimizer": "adam",
        "lr": 1e-2,
        "batch_size": 512,
        "epochs": 300,
    }
    fallback_chunk_rows = 1024

    def __init__(
        self,
        num_entities: int,
        num_relations: int,
        embedding_dim: int = 200,
        inverse_relations: bool = False,
        p: int = 2,
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
            raise ValueError(f"RotatE: p must be 1 or 2, got {p!r}")
        if relation_initializer is not None:
            raise ValueError(
                f"RotatE: relation_initializer={relation_initializer!r} is not supported: its relations are "
                "rotation phases, drawn uniformly from [-pi, pi]"
            )
        self.p = int(p)
        self._extra_config = {"p": self.p}
        self.entity = nn.Embedding(self.num_entities, 2 * self.embedding_dim)
        self.phase = nn.Embedding(self.num_relations_embedded, self.embedding_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self._initialize(self.entity.weight, "entity", "xavier_uniform")
        nn.init.uniform_(self.phase.weight, -math.pi, math.pi)

    def _rotation(self, r: torch.Tensor) -> torch.Tensor:
        theta = self.phase(r)
        return torch.complex(torch.cos(theta), torch.sin(theta))

    def _distances(
        self, query: torch.Tensor, candidates: torch.Tensor | None, x: torch.Tensor
    ) -> torch.Tensor:
        """Negative distances of the complex ``query[b, d]`` to entity rows (all / a subset)."""
        if self._regularizing:
            self._regularize(
                x, *(() if candidates is None else (as_complex(gather(self.entity.weight, candidates)),))
            )
        if self.p == 2:
            return -lp_distances(as_real(query), self.entity.weight, 2.0, candidates)
        return -complex_l1_distances(query, as_complex(self.entity.weight), candidates)

    def score_h_and_t(
        self, rt: torch.Tensor, heads: torch.Tensor, hr: torch.Tensor, tails: torch.Tensor
    ) -> torch.Tensor:
        """As :meth:`KGEModel.score_h_and_t`, with one entity lookup for both groups' queries and candidates (one
        dense table gradient per step instead of four): a head candidate is scored as
        ``-||e_t o conj(r) - e_h||``, a tail candidate as ``-||e_h o r - e_t||`` (``p``-norm)."""
        dense_ratio = DENSE_CANDIDATE_RATIO if self.p == 2 else DENSE_CANDIDATE_RATIO_L1
        # small tables: the dense paths of the distance functions (every entity, then a pick) are faster
        if not self._joint_h_and_t(rt, heads, hr, tails) or self.num_entities <= dense_ratio * heads.shape[1]:
            return super().score_h_and_t(rt, heads, hr, tails)
        anchors, candidates = torch.cat([rt[:, 1], hr[:, 0]]), torch.cat([heads, tails])
        b, k = candidates.shape
        rotation = self._rotation(torch.cat([rt[:, 0], hr[:, 1]]))
        rotation = torch.cat([rotation[: rt.shape[0]].conj(), rotation[rt.shape[0] :]])
        if b * (1 + k) >= self.num_entities:  # many candidates: one query lookup, candidates from the table
            query = as_complex(self.entity(anchors)) * rotation
            return self._distances(query, candidates, query)
        # few candidates: queries and candidates in one lookup, scored against those rows as a compact table
        rows = as_complex(self.entity(torch.cat([anchors, candidates.reshape(-1)])))
        query = rows[:b] * rotation
        if self.p == 2:
            local = torch.arange(b, b * (1 + k), device=candidates.device).view(b, k)
            return -lp_distances(as_real(query), as_real(rows), 2.0, local)
        return -(query.unsqueeze(1) - rows[b:].view(b, k, -1)).abs().sum(dim=-1)

    def _score_t(self, h: torch.Tensor, r: torch.Tensor, tails: torch.Tensor | None) -> torch.Tensor:
        x = as_complex(self.entity(h))
        return self._distances(x * self._rotation(r), tails, x)

    def _score_h(self, r: torch.Tensor, t: torch.Tensor, heads: torch.Tensor | None) -> torch.Tensor:
        y = as_complex(self.entity(t))
        return self._distances(y * self._rotation(r).conj(), heads, y)
