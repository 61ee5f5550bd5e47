"""Toy graphs for the walker tests."""

from __future__ import annotations

import pytest
import torch

from kgreason.data import Dataset


def rule_dataset(num_people: int = 40, seed: int = 0, distractor: bool = True) -> Dataset:
    """A graph with the 2-hop rule ``r0(x, y) ∧ r1(y, z) => r2(x, z)`` plus a random distractor relation ``r3``.

    ``r0: x -> x + 1``, ``r1: y -> 7y + 2`` (mod N; a bijection without fixed points of r2 when N is not divisible by 7 and even), ``r2`` their composition; a third of the ``r2``
    facts are held out as valid/test.
    """
    g = torch.Generator().manual_seed(seed)
    n = num_people
    x = torch.arange(n)
    y = (x + 1) % n
    z = (7 * y + 2) % n
    r0 = torch.stack([x, torch.zeros_like(x), y], 1)
    r1 = torch.stack([x, torch.ones_like(x), (7 * x + 2) % n], 1)
    r2 = torch.stack([x, torch.full_like(x, 2), z], 1)
    r3 = torch.stack([x, torch.full_like(x, 3), torch.randint(0, n, (n,), generator=g)], 1)
    perm = torch.randperm(n, generator=g)
    held = r2[perm[: n // 3]]
    train = torch.cat([r0, r1, r2[perm[n // 3 :]], *([r3] if distractor else [])])
    half = len(held) // 2
    return Dataset.from_tensors("rule", train, held[:half], held[half:], num_entities=n, num_relations=4)


@pytest.fixture
def rule_ds() -> Dataset:
    return rule_dataset()


@pytest.fixture(scope="session")
def make_rule_dataset():  # type: ignore[no-untyped-def]
    """The :func:`rule_dataset` builder (for module-scoped fixtures)."""
    return rule_dataset
