"""The fact-extraction agent: batched suggestions, masks, cache, policy log-probabilities, explanations."""

from __future__ import annotations

import math

import pytest
import torch

from kgreason.data.dataset import Dataset
from kgreason.data.family import build_family_dataset
from kgreason.open.distant_supervision import BagDataset, build_bag_dataset
from kgreason.open.encoder import PCNNAttention
from kgreason.open.extractor import FactExtractor, Suggestions, reinforce_loss


@pytest.fixture(scope="module")
def family() -> tuple[Dataset, BagDataset]:
    ds = build_family_dataset("tiny", with_corpus=True)
    return ds, build_bag_dataset(ds.metadata["corpus"], ds)


def make_extractor(ds: Dataset, bags: BagDataset, inverse: bool = True, seed: int = 0) -> FactExtractor:
    torch.manual_seed(seed)
    encoder = PCNNAttention.from_bag_dataset(bags, word_dim=8, num_filters=16)
    return FactExtractor(encoder, bags, ds.num_entities, inverse=inverse, known_triples=ds.train)


def edge_set(s: Suggestions, entities: torch.Tensor) -> list[set[tuple[int, int, int]]]:
    out = []
    for i, e in enumerate(entities.tolist()):
        out.append(
            {
                (e, r, t)
                for r, t, m in zip(s.relations[i].tolist(), s.targets[i].tolist(), s.mask[i].tolist())
                if m
            }
        )
    return out


def test_suggestions_are_edges_out_of_the_entity(family: tuple[Dataset, BagDataset]) -> None:
    ds, bags = family
    ex = make_extractor(ds, bags)
    num_rel = ds.num_relations
    entities = torch.arange(ds.num_entities)
    s = ex.suggest(entities, k=6)
    assert all(x.shape == (ds.num_entities, 6) for x in s)
    assert s.relations.dtype == torch.long and s.mask.dtype == torch.bool
    pairs = {tuple(p) for p in bags.pairs.tolist()}
    train = set(map(tuple, ds.train.tolist()))
    n_real = 0
    for i, e in enumerate(entities.tolist()):
        for j in range(6):
            if not s.mask[i, j]:
                assert s.bags[i, j] == -1 and s.log_probs[i, j] == -math.inf and s.scores[i, j] == 0
                continue
            n_real += 1
            r, t, b = int(s.relations[i, j]), int(s.targets[i, j]), int(s.bags[i, j])
            assert 0 <= r < 2 * num_rel and t != e
            head, rel, tail = (e, r, t) if r < num_rel else (t, r - num_rel, e)
            assert (head, tail) in pairs and tuple(bags.pairs[b].tolist()) == (head, tail)
            assert (head, rel, tail) not in train  # known edges are never suggested
            assert 0 < float(s.scores[i, j]) <= 1 and s.log_probs[i, j] <= 0
        # real suggestions first, and as many as there are candidate actions (up to k)
        m = s.mask[i].tolist()
        assert m == sorted(m, reverse=True)
    assert n_real > 0
    assert len(set().union(*edge_set(s, entities))) == n_real  # no duplicate edge


def test_batched_suggest_equals_per_entity(family: tuple[Dataset, BagDataset]) -> None:
    ds, bags = family
    ex = make_extractor(ds, bags)
    entities = torch.tensor([5, 0, 17, 5, 42, 3, 0])  # duplicates and entities of different degree
    batched = ex.suggest(entities, k=4)
    for i, e in enumerate(entities.tolist()):
        single = ex.suggest(torch.tensor([e]), k=4)
        for name, a, b in zip(Suggestions._fields, batched, single):
            assert torch.equal(a[i], b[0]) if a.dtype != torch.float32 else torch.allclose(a[i], b[0]), (
                e,
                name,
            )


def test_policy_is_a_distribution_and_log_prob_matches(family: tuple[Dataset, BagDataset]) -> None:
    ds, bags = family
    ex = make_extractor(ds, bags)
    entities = torch.tensor([0, 1, 2, 7])
    everything = ex.suggest(entities, k=10_000)  # every candidate action
    probs = torch.where(everything.mask, everything.log_probs.exp(), torch.zeros(()))
    assert torch.allclose(probs.sum(1), torch.ones(4), atol=1e-5)
    top = ex.suggest(entities, k=3)
    lp = ex.log_prob(entities, top.relations, top.targets)
    assert lp.shape == (4, 3) and lp.requires_grad
    assert torch.allclose(lp[top.mask], top.log_probs[top.mask], atol=1e-5)
    # 1-d form; impossible actions (known edge, no bag, self loop) get -inf
    h, r, t = ds.train[0].tolist()
    bad = ex.log_prob(torch.tensor([h, h, h]), torch.tensor([r, r, 0]), torch.tensor([t, h, (h + 1) % 60]))
    assert bad.shape == (3,) and bad[0] == -math.inf and bad[1] == -math.inf
    # REINFORCE step: gradients reach the encoder; zero rewards give no gradient (gamma = 0, step-wise reward)
    ex.zero_grad()
    reinforce_loss(lp, torch.zeros_like(lp), top.mask).backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in ex.parameters())
    ex.zero_grad()
    lp = ex.log_prob(entities, top.relations, top.targets)
    rewards = torch.zeros_like(lp)
    rewards[0, 0] = 1.0
    loss = reinforce_loss(lp, rewards, top.mask)
    assert loss.item() == pytest.approx(-float(lp[0, 0].detach()) / int(top.mask.sum()), rel=1e-5)
    loss.backward()
    assert ex.encoder.conv.weight.grad.abs().sum() > 0


def test_pair_log_prob_sums_the_policy_over_the_pairs_relations(family: tuple[Dataset, BagDataset]) -> None:
    ds, bags = family
    ex = make_extractor(ds, bags)
    entities = torch.tensor([0, 1, 2, 7])
    everything = ex.suggest(entities, k=10_000)
    top = ex.suggest(entities, k=3)
    lp = ex.log_prob(entities, top.relations, top.targets, pair=True)
    assert lp.shape == (4, 3) and lp.requires_grad
    checked = 0
    for i in range(4):
        direction = everything.relations[i] >= ds.num_relations
        for j in range(3):
            if not top.mask[i, j]:
                assert lp[i, j] == -math.inf
                continue
            same_pair = (
                everything.mask[i]
                & (everything.targets[i] == top.targets[i, j])
                & (direction == (top.relations[i, j] >= ds.num_relations))
            )
            expected = torch.logsumexp(everything.log_probs[i][same_pair], dim=0)
            assert float(lp[i, j].detach()) == pytest.approx(float(expected), abs=1e-5)
            assert float(lp[i, j].detach()) >= float(top.log_probs[i, j]) - 1e-6  # the pair holds the edge
            checked += 1
    assert checked > 0
    # a pair with several candidate relations: its edges share one pair log-probability
    pairs = torch.stack([everything.targets, (everything.relations >= ds.num_relations).long()], dim=-1)
    row = next(
        i
        for i in range(4)
        if len({tuple(p) for p in pairs[i][everything.mask[i]].tolist()}) < int(everything.mask[i].sum())
    )
    real = everything.mask[row]
    plp = ex.log_prob(
        entities[row : row + 1].expand(int(real.sum())),
        everything.relations[row][real],
        everything.targets[row][real],
        pair=True,
    ).detach()
    keys = [tuple(p) for p in pairs[row][real].tolist()]
    by_pair: dict[tuple[int, int], set[float]] = {}
    for key, v in zip(keys, plp.tolist()):
        by_pair.setdefault(key, set()).add(round(v, 5))
    assert all(len(v) == 1 for v in by_pair.values()) and len(by_pair) < len(keys)
    # impossible edges stay -inf, and the gradient is finite
    h, r, t = ds.train[0].tolist()
    bad = ex.log_prob(torch.tensor([h, h]), torch.tensor([r, r]), torch.tensor([t, h]), pair=True)
    assert bool((bad == -math.inf).all())
    ex.zero_grad()
    reinforce_loss(lp, torch.ones_like(lp), top.mask).backward()
    grads = [p.grad for p in ex.parameters() if p.grad is not None]
    assert grads and all(bool(torch.isfinite(g).all()) for g in grads)
    assert ex.encoder.conv.weight.grad.abs().sum() > 0


def test_cache_reencodes_only_after_parameter_updates(family: tuple[Dataset, BagDataset]) -> None:
    ds, bags = family
    ex = make_extractor(ds, bags)
    entities = torch.tensor([0, 1, 2])
    first = ex.suggest(entities, k=3)
    encoded = ex.num_encoded_bags
    assert 0 < encoded < len(bags)  # only the bags of these entities
    again = ex.suggest(entities, k=3)
    assert ex.num_encoded_bags == encoded and torch.equal(first.relations, again.relations)
    ex.suggest(torch.tensor([0, 4]), k=3)  # entity 4's bags are new, entity 0's are cached
    assert ex.num_encoded_bags > encoded
    n = ex.num_encoded_bags
    opt = torch.optim.SGD(ex.parameters(), lr=1.0)
    lp = ex.log_prob(entities, first.relations, first.targets)
    reinforce_loss(lp, torch.ones_like(lp), first.mask).backward()
    opt.step()
    after = ex.suggest(entities, k=3)
    assert ex.num_encoded_bags == n + encoded  # the cache was dropped and refilled for these entities
    assert not torch.allclose(after.log_probs[after.mask], first.log_probs[first.mask])
    ex.invalidate_cache()
    ex.suggest(entities, k=3)
    assert ex.num_encoded_bags == n + 2 * encoded


def test_threshold_sampling_and_no_inverse(family: tuple[Dataset, BagDataset]) -> None:
    ds, bags = family
    ex = make_extractor(ds, bags)
    entities = torch.arange(20)
    s = ex.suggest(entities, k=5, threshold=0.06)
    assert (s.scores[s.mask] >= 0.06).all() and (~s.mask).any()
    gen = torch.Generator().manual_seed(3)
    a = ex.suggest(entities, k=5, sample=True, generator=gen)
    b = ex.suggest(entities, k=5, sample=True, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.relations, b.relations) and torch.equal(a.targets, b.targets)
    for edges, row in zip(edge_set(a, entities), a.mask):
        assert len(edges) == int(row.sum())  # without replacement
    full = edge_set(ex.suggest(entities, k=10_000), entities)
    assert all(e <= f for e, f in zip(edge_set(a, entities), full))
    lp = ex.log_prob(entities, a.relations, a.targets)
    assert torch.allclose(lp[a.mask], a.log_probs[a.mask], atol=1e-5)
    forward_only = make_extractor(ds, bags, inverse=False)
    f = forward_only.suggest(entities, k=5)
    assert (f.relations[f.mask] < ds.num_relations).all()
    assert all((e, t) in {tuple(p) for p in bags.pairs.tolist()}
               for e, t in zip(entities.repeat_interleave(5)[f.mask.flatten()].tolist(), f.targets[f.mask].tolist()))  # fmt: skip


def test_entities_without_bags_get_empty_rows() -> None:
    train = torch.tensor([[0, 0, 1], [1, 0, 2], [2, 1, 3]])
    ds = Dataset.from_tensors("t", train, train[:1], train[:1], num_entities=5, num_relations=2)
    from kgreason.data.corpus import CorpusSentence

    corpus = [CorpusSentence("e0", "e3", "e0 knows e3 well .", (0, 2), (9, 11))]
    bags = build_bag_dataset(corpus, ds)
    ex = make_extractor(ds, bags)
    s = ex.suggest(torch.tensor([4, 0, 3]), k=5)
    assert s.mask.sum(1).tolist() == [0, 2, 2]  # 2 relations x 1 bag, forward from e0, inverse from e3
    assert (s.relations[1, :2] < 2).all() and (s.relations[2, :2] >= 2).all()
    assert s.targets[1, :2].tolist() == [3, 3] and s.targets[2, :2].tolist() == [0, 0]
    assert ex.log_prob(torch.tensor([4]), torch.tensor([0]), torch.tensor([1])).item() == -math.inf


def test_explain_and_extract_facts(family: tuple[Dataset, BagDataset]) -> None:
    ds, bags = family
    ex = make_extractor(ds, bags)
    big = int(torch.argmax(bags.bag_sizes))
    h, t = bags.pairs[big].tolist()
    support = ex.explain(h, 2, t, top=5)
    assert len(support) == min(5, int(bags.bag_sizes[big]))
    members = set(bags.bag_sentences[bags.bag_ptr[big] : bags.bag_ptr[big + 1]].tolist())
    assert {x.sentence_id for x in support} <= members
    assert all(bags.texts[x.sentence_id] == x.text for x in support)
    weights = [x.weight for x in support]
    assert weights == sorted(weights, reverse=True) and sum(weights) <= 1 + 1e-5
    inverse = ex.explain(t, 2 + ds.num_relations, h, top=5)  # the same bag, read as an inverse edge
    assert [x.sentence_id for x in inverse] == [x.sentence_id for x in support]
    assert ex.explain(h, 2, h) == []
    facts, scores = ex.extract_facts(threshold=0.0)
    assert len(facts) == len(bags) * ds.num_relations - int(bags.labels[:, :-1].sum())  # all but known edges
    assert (scores[:-1] >= scores[1:]).all()
    assert not set(map(tuple, facts.tolist())) & set(map(tuple, ds.train.tolist()))
