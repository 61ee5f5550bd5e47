from __future__ import annotations

import pytest
import torch

from kgreason.training.samplers import (
    BernoulliNegativeSampler,
    PseudoTypedNegativeSampler,
    TripleSet,
    UniformNegativeSampler,
    bernoulli_head_probability,
    make_negative_sampler,
    triple_keys,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_triple_keys_are_a_bijection() -> None:
    E, R = 7, 3
    all_triples = torch.cartesian_prod(torch.arange(E), torch.arange(R), torch.arange(E))
    keys = triple_keys(all_triples, E, R)
    assert keys.unique().numel() == E * R * E
    assert int(keys.min()) == 0 and int(keys.max()) == E * R * E - 1


def test_triple_set_membership_matches_python_set(triples: torch.Tensor) -> None:
    ts = TripleSet(triples, 24, 3)
    queries = torch.cartesian_prod(torch.arange(24), torch.arange(3), torch.arange(24))
    known = {tuple(x) for x in triples.tolist()}
    expected = torch.tensor([tuple(q) in known for q in queries.tolist()])
    assert torch.equal(ts.contains(queries), expected)
    assert len(ts) == len(known)


def test_uniform_corrupts_exactly_one_column_never_to_itself(triples: torch.Tensor) -> None:
    sampler = UniformNegativeSampler(triples, 24, 3, num_negs_per_pos=16)
    neg, valid = sampler.sample(triples, _gen())
    assert neg.shape == (len(triples), 16, 3) and valid is None
    diff = neg != triples.unsqueeze(1)
    assert torch.all(diff.sum(-1) == 1)  # exactly one column changed
    assert not diff[..., 1].any()  # relations untouched by default
    # heads and tails both corrupted, roughly half each
    head_share = diff[..., 0].float().mean().item()
    assert 0.4 < head_share < 0.6
    assert int(neg.min()) >= 0 and int(neg[..., [0, 2]].max()) < 24


def test_relation_corruption(triples: torch.Tensor) -> None:
    sampler = UniformNegativeSampler(
        triples, 24, 3, num_negs_per_pos=30, corruption=("head", "relation", "tail")
    )
    neg, _ = sampler.sample(triples, _gen())
    diff = neg != triples.unsqueeze(1)
    assert torch.all(diff.sum(-1) == 1)
    share = diff.float().mean(dim=(0, 1))
    assert torch.all((share > 0.25) & (share < 0.42)), share
    assert int(neg[..., 1].max()) < 3


def test_filtering_marks_exactly_the_known_positives() -> None:
    g = _gen(1)
    triples = torch.stack(
        [
            torch.randint(10, (60,), generator=g),
            torch.randint(2, (60,), generator=g),
            torch.randint(10, (60,), generator=g),
        ],
        1,
    )
    sampler = UniformNegativeSampler(triples, 10, 2, num_negs_per_pos=50, filtered=True)
    neg, valid = sampler.sample(triples, _gen(3))
    known = {tuple(x) for x in triples.tolist()}
    expected = torch.tensor([[tuple(t) not in known for t in row] for row in neg.tolist()])
    assert valid is not None and torch.equal(valid, expected)
    assert (~valid).any() and valid.any()  # a dense graph: some sampled negatives are positives


def test_filter_with_extra_triples(triples: torch.Tensor) -> None:
    extra = torch.tensor([[0, 0, 5]])
    sampler = UniformNegativeSampler(
        triples, 24, 3, num_negs_per_pos=200, filtered=True, filter_triples=torch.cat([triples, extra])
    )
    pos = torch.tensor([[0, 0, 1]])
    neg, valid = sampler.sample(pos, _gen())
    hit = (neg == extra).all(-1)
    assert hit.any() and not valid[hit].any()


def test_bernoulli_probabilities_by_hand() -> None:
    # r0: one head with 4 tails (1-to-N): tph = 4, hpt = 1 -> P(head) = 0.8
    # r1: 3 heads into one tail (N-to-1): tph = 1, hpt = 3 -> P(head) = 0.25
    # r2: 1-to-1 -> 0.5
    t = torch.tensor(
        [[0, 0, 1], [0, 0, 2], [0, 0, 3], [0, 0, 4], [5, 1, 9], [6, 1, 9], [7, 1, 9], [1, 2, 2], [3, 2, 4]]
    )
    p = bernoulli_head_probability(t, 3)
    assert torch.allclose(p, torch.tensor([0.8, 0.25, 0.5]))
    sampler = BernoulliNegativeSampler(t, 10, 3, num_negs_per_pos=4000)
    neg, _ = sampler.sample(t[[0, 4]], _gen())
    head_share = (neg[..., 0] != t[[0, 4], None, 0]).float().mean(1)
    assert torch.allclose(head_share, torch.tensor([0.8, 0.25]), atol=0.03)


def test_pseudo_typed_draws_from_the_relation_pool(triples: torch.Tensor) -> None:
    # restrict r0 to heads 0..5 so its head pool is small
    t = torch.tensor([[h, 0, h + 10] for h in range(6)] + [[20, 1, 21], [22, 1, 21]])
    sampler = PseudoTypedNegativeSampler(t, 24, 2, num_negs_per_pos=200)
    neg, _ = sampler.sample(t, _gen())
    for i, (h, r, tail) in enumerate(t.tolist()):
        changed_head = neg[i, :, 0] != h
        heads = set(neg[i, changed_head, 0].tolist())
        tails = set(neg[i, ~changed_head, 2].tolist())
        pool_h = {x for x, rr, _ in t.tolist() if rr == r} - {h}
        pool_t = {y for _, rr, y in t.tolist() if rr == r} - {tail}
        assert heads <= pool_h and heads
        if pool_t:
            assert tails <= pool_t and tails
        else:  # r1 has a single tail: any other entity is used
            assert tail not in tails and len(tails) > 3
    assert torch.all((neg != t.unsqueeze(1)).sum(-1) == 1)


def test_registry_and_errors(triples: torch.Tensor) -> None:
    assert isinstance(make_negative_sampler("basic", triples, 24, 3), UniformNegativeSampler)
    assert isinstance(make_negative_sampler("Pseudo-Typed", triples, 24, 3), PseudoTypedNegativeSampler)
    with pytest.raises(KeyError, match="bernoulli"):
        make_negative_sampler("bernouli", triples, 24, 3)
    with pytest.raises(ValueError):
        UniformNegativeSampler(triples, 24, 3, corruption=("side",))
    with pytest.raises(ValueError):
        BernoulliNegativeSampler(triples, 24, 3, corruption=("tail",))


def test_sampling_is_deterministic_with_a_generator(triples: torch.Tensor) -> None:
    sampler = BernoulliNegativeSampler(triples, 24, 3, num_negs_per_pos=5)
    a, _ = sampler.sample(triples, _gen(7))
    b, _ = sampler.sample(triples, _gen(7))
    assert torch.equal(a, b)


def test_side_per_positive_keeps_one_column_per_positive(triples: torch.Tensor) -> None:
    for cls in (UniformNegativeSampler, BernoulliNegativeSampler):
        sampler = cls(triples, 24, 3, num_negs_per_pos=8, side_per_positive=True)
        neg, _ = sampler.sample(triples.repeat(20, 1), _gen())
        diff = neg != triples.repeat(20, 1).unsqueeze(1)
        assert torch.all(diff.sum(-1) == 1)
        column = diff.long().argmax(-1)
        assert torch.all(column == column[:, :1])  # one side per positive
        head_share = (column[:, 0] == 0).float().mean().item()
        assert 0.3 < head_share < 0.7
