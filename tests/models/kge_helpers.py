"""Small model configurations and helpers shared by the model tests (imported as ``kge_helpers``)."""

from __future__ import annotations

from typing import Any

import torch

from kgreason.models import MODELS, KGEModel

NUM_ENTITIES = 11
NUM_RELATIONS = 3

#: per-model keyword arguments that keep every test tiny (and exercise non-default options)
SMALL: dict[str, dict[str, Any]] = {
    "transe": {"embedding_dim": 12},
    "distmult": {"embedding_dim": 12},
    "complex": {"embedding_dim": 8},
    "rotate": {"embedding_dim": 8},
    "conve": {"embedding_dim": 24, "embedding_height": 4, "num_filters": 4},
    "tucker": {"embedding_dim": 10, "relation_dim": 6},
}
MODEL_NAMES = sorted(SMALL)


def make_model(name: str, inverse_relations: bool | None = None, seed: int = 0, **kwargs: Any) -> KGEModel:
    torch.manual_seed(seed)
    extra = {**SMALL[name], **kwargs}
    if inverse_relations is not None:
        extra["inverse_relations"] = inverse_relations
    return MODELS.make(name, num_entities=NUM_ENTITIES, num_relations=NUM_RELATIONS, **extra)


def random_triples(n: int, num_relations: int = NUM_RELATIONS, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    h = torch.randint(NUM_ENTITIES, (n,), generator=g)
    r = torch.randint(num_relations, (n,), generator=g)
    t = torch.randint(NUM_ENTITIES, (n,), generator=g)
    return torch.stack([h, r, t], dim=1)
