"""Fixtures of the training tests: a small structured graph and tiny models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kgreason.data import Dataset


def toy_triples(num_entities: int = 24) -> torch.Tensor:
    """Three relations with a clear pattern: r0: e -> e+1, r1: e -> e+2, r2: e <-> e+12 (mod E)."""
    e = torch.arange(num_entities)
    r0 = torch.stack([e, torch.zeros_like(e), (e + 1) % num_entities], 1)
    r1 = torch.stack([e, torch.ones_like(e), (e + 2) % num_entities], 1)
    r2 = torch.stack([e, torch.full_like(e, 2), (e + num_entities // 2) % num_entities], 1)
    return torch.cat([r0, r1, r2])


@pytest.fixture
def triples() -> torch.Tensor:
    return toy_triples()


@pytest.fixture
def toy_dataset() -> Dataset:
    t = toy_triples()
    perm = torch.randperm(len(t), generator=torch.Generator().manual_seed(0))
    t = t[perm]
    return Dataset.from_tensors("toy", t[:60], t[60:66], t[66:], num_entities=24, num_relations=3)


class TinyDistMult(nn.Module):
    """A minimal KGE model (DistMult) implementing the scoring interface the loops use."""

    def __init__(self, num_entities: int, num_relations: int, dim: int = 8, inverse_relations: bool = False):
        super().__init__()
        self.num_entities, self.num_relations, self.inverse_relations = (
            num_entities,
            num_relations,
            inverse_relations,
        )
        self.ent = nn.Embedding(num_entities, dim)
        self.rel = nn.Embedding(num_relations * (2 if inverse_relations else 1), dim)

    def score_hrt(self, hrt: torch.Tensor) -> torch.Tensor:
        return (self.ent(hrt[:, 0]) * self.rel(hrt[:, 1]) * self.ent(hrt[:, 2])).sum(-1)

    def score_t(self, hr: torch.Tensor, tails: torch.Tensor | None = None) -> torch.Tensor:
        q = self.ent(hr[:, 0]) * self.rel(hr[:, 1])
        if tails is None:
            return q @ self.ent.weight.t()
        return (q.unsqueeze(1) * self.ent(tails)).sum(-1)

    def score_h(self, rt: torch.Tensor, heads: torch.Tensor | None = None) -> torch.Tensor:
        if self.inverse_relations:
            return self.score_t(torch.stack([rt[:, 1], rt[:, 0] + self.num_relations], 1), heads)
        q = self.rel(rt[:, 0]) * self.ent(rt[:, 1])
        if heads is None:
            return q @ self.ent.weight.t()
        return (q.unsqueeze(1) * self.ent(heads)).sum(-1)

    def score_r(self, ht: torch.Tensor) -> torch.Tensor:
        return (self.ent(ht[:, 0]) * self.ent(ht[:, 1])) @ self.rel.weight.t()


@pytest.fixture
def tiny_model_factory():
    def make(
        inverse: bool = False, seed: int = 0, num_entities: int = 24, num_relations: int = 3
    ) -> TinyDistMult:
        torch.manual_seed(seed)
        return TinyDistMult(num_entities, num_relations, inverse_relations=inverse)

    return make
