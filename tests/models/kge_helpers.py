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


def assert_h_and_t_match_separate_calls(model: KGEModel, num_heads: int, num_tails: int, k: int = 4) -> None:
    """``model.score_h_and_t`` on random head and tail groups equals ``cat([score_h, score_t])`` in values and
    in the gradients of every parameter."""
    e, r = model.num_entities, model.num_relations
    rt = torch.stack([torch.randint(0, r, (num_heads,)), torch.randint(0, e, (num_heads,))], dim=1)
    hr = torch.stack([torch.randint(0, e, (num_tails,)), torch.randint(0, r, (num_tails,))], dim=1)
    heads, tails = torch.randint(0, e, (num_heads, k)), torch.randint(0, e, (num_tails, k))
    both = model.score_h_and_t(rt, heads, hr, tails)
    both.square().sum().backward()
    grads = [w.grad.clone() for w in model.parameters()]
    model.zero_grad()
    separate = torch.cat([model.score_h(rt, heads), model.score_t(hr, tails)])
    separate.square().sum().backward()
    assert both.shape == (num_heads + num_tails, k)
    torch.testing.assert_close(both, separate, atol=1e-5, rtol=1e-5)
    for got, expected in zip(grads, (w.grad for w in model.parameters()), strict=True):
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
