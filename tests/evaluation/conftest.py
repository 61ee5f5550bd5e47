"""Scorers and the hand-computed example shared by the evaluation tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

INF = float("inf")


class TableScorer:
    """Returns fixed scores: ``tail_table[h, r] -> [E]`` and ``head_table[r, t] -> [E]``."""

    def __init__(self, tail_table: torch.Tensor, head_table: torch.Tensor) -> None:
        self.tail_table = tail_table  # [E, R, E]
        self.head_table = head_table  # [R, E, E]
        self.calls: list[int] = []

    def score_t(self, hr: torch.Tensor) -> torch.Tensor:
        self.calls.append(len(hr))
        return self.tail_table[hr[:, 0], hr[:, 1]]

    def score_h(self, rt: torch.Tensor) -> torch.Tensor:
        self.calls.append(len(rt))
        return self.head_table[rt[:, 0], rt[:, 1]]


@pytest.fixture
def random_scorer() -> Callable[..., TableScorer]:
    """``make(E, R, generator, levels=4, neg_inf_prob=0.1)``: integer scores in ``[0, levels)`` (many ties), some -inf."""

    def make(
        num_entities: int,
        num_relations: int,
        generator: torch.Generator,
        levels: int = 4,
        neg_inf_prob: float = 0.1,
    ) -> TableScorer:
        def table(*shape: int) -> torch.Tensor:
            t = torch.randint(0, levels, shape, generator=generator).float()
            t[torch.rand(shape, generator=generator) < neg_inf_prob] = -INF
            return t

        return TableScorer(
            table(num_entities, num_relations, num_entities), table(num_relations, num_entities, num_entities)
        )

    return make


class HandExample:
    """Six entities, two relations, three test triples; every rank below is worked out by hand.

    Known triples: test (0,0,1) (2,1,4) (5,0,3); train (0,0,2) (3,0,1) (1,0,3); valid (2,1,5).

    tail (0,0,?)  scores [.5 .7 .9 .7 .1 .9], true 1 (.7), known {1,2}: e2 filtered, e5 higher, e3 ties
                  -> optimistic 2, pessimistic 3, realistic 2.5, candidates 5
    tail (2,1,?)  scores [1 2 3 4 5 6], true 4 (5), known {4,5}: the only higher one (e5) is filtered -> 1, 1, 1
    tail (5,0,?)  all scores 0, true 3, known {3}: five ties -> 1, 6, 3.5
    head (?,0,1)  scores [.3 .1 .3 .3 .2 0], true 0 (.3), known {0,3}: e3 filtered, e2 ties -> 1, 2, 1.5
    head (?,1,4)  scores [-inf -inf -inf 0 -inf 2], true 2 (-inf), known {2}: two finite scores ahead,
                  three -inf ties -> 3, 6, 4.5, candidates 6
    head (?,0,3)  scores [.9 .8 .7 .6 .5 .95], true 5 (best), known {5,1} -> 1, 1, 1
    """

    num_entities = 6
    num_relations = 2
    test = torch.tensor([[0, 0, 1], [2, 1, 4], [5, 0, 3]])
    train = torch.tensor([[0, 0, 2], [3, 0, 1], [1, 0, 3]])
    valid = torch.tensor([[2, 1, 5]])
    ranks = {
        "tail": {"optimistic": [2.0, 1.0, 1.0], "pessimistic": [3.0, 1.0, 6.0], "realistic": [2.5, 1.0, 3.5]},
        "head": {"optimistic": [1.0, 3.0, 1.0], "pessimistic": [2.0, 6.0, 1.0], "realistic": [1.5, 4.5, 1.0]},
    }
    num_candidates = {"tail": [5, 5, 6], "head": [5, 6, 5]}

    @property
    def all_triples(self) -> torch.Tensor:
        return torch.cat([self.train, self.valid, self.test])

    def scorer(self) -> TableScorer:
        tail = torch.full((6, 2, 6), -123.0)  # rows never queried
        head = torch.full((2, 6, 6), -123.0)
        tail[0, 0] = torch.tensor([0.5, 0.7, 0.9, 0.7, 0.1, 0.9])
        tail[2, 1] = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
        tail[5, 0] = torch.zeros(6)
        head[0, 1] = torch.tensor([0.3, 0.1, 0.3, 0.3, 0.2, 0.0])
        head[1, 4] = torch.tensor([-INF, -INF, -INF, 0.0, -INF, 2.0])
        head[0, 3] = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.95])
        return TableScorer(tail, head)


@pytest.fixture
def hand() -> HandExample:
    return HandExample()


@pytest.fixture
def table_scorer() -> type[TableScorer]:
    """The :class:`TableScorer` class (fixed score tables)."""
    return TableScorer
