from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kgreason.data import Dataset
from kgreason.data.graph import (
    NO_OP_SLOT,
    ActionGraph,
    AnswerIndex,
    inverse_relation,
    normalize_triples,
    pagerank,
)


def tiny() -> torch.Tensor:
    # 5 entities, 2 relations
    return torch.tensor([[0, 0, 1], [0, 1, 2], [1, 0, 2], [2, 1, 3], [3, 0, 0], [0, 0, 3]])


def test_csr_holds_train_and_inverse_edges_sorted() -> None:
    g = ActionGraph.from_triples(tiny(), num_entities=5, num_relations=2)
    expected = {tuple(t) for t in tiny().tolist()} | {(t, r + 2, h) for h, r, t in tiny().tolist()}
    edges = g.edges()
    assert {tuple(e) for e in edges.tolist()} == expected
    assert len(edges) == len(expected)
    # rows sorted by (head, relation, tail)
    keys = (edges[:, 0] * 10 + edges[:, 1]) * 10 + edges[:, 2]
    assert torch.equal(keys, keys.sort().values)
    assert g.out_degree().tolist() == [4, 2, 3, 3, 0]
    assert g.indptr[-1] == len(expected)


def test_no_op_slot_and_padding() -> None:
    g = ActionGraph.from_triples(tiny(), num_entities=5, num_relations=2)
    assert g.no_op == 4 and g.num_relation_ids == 5
    assert (g.action_relations[:, NO_OP_SLOT] == 4).all()
    assert torch.equal(g.action_targets[:, NO_OP_SLOT], torch.arange(5))
    assert g.action_mask[:, NO_OP_SLOT].all()
    assert g.num_actions == 1 + 4  # NO_OP + largest out-degree
    assert g.action_mask.sum(1).tolist() == [5, 3, 4, 4, 1]  # isolated entity 4 keeps NO_OP only
    pad = ~g.action_mask
    assert (g.action_relations[pad] == 4).all()
    # every valid non-NO_OP slot is an edge of the graph
    rows = torch.arange(5).unsqueeze(1).expand_as(g.action_relations)
    valid = g.action_mask.clone()
    valid[:, 0] = False
    triples = torch.stack([rows[valid], g.action_relations[valid], g.action_targets[valid]], dim=1)
    assert g.has_edges(triples).all()


def test_pagerank_sums_to_one_and_matches_dense_solution() -> None:
    torch.manual_seed(0)
    edges = torch.randint(0, 12, (40, 2))
    pr = pagerank(edges, 12)
    assert pr.sum().item() == pytest.approx(1.0, abs=1e-9)
    # dense reference: undirected, parallel edges add weight, self-loops ignored, dangling -> uniform
    A = torch.zeros(12, 12, dtype=torch.float64)
    for a, b in edges.tolist():
        if a != b:
            A[a, b] += 1
            A[b, a] += 1
    deg = A.sum(1)
    P = torch.where(deg[:, None] > 0, A / deg.clamp_min(1)[:, None], torch.full_like(A, 1 / 12))
    M = 0.85 * P.t() + 0.15 / 12
    evals, evecs = torch.linalg.eig(M)
    v = evecs[:, evals.real.argmax()].real
    v = v / v.sum()
    assert torch.allclose(pr, v, atol=1e-8)


def test_fan_out_cap_keeps_highest_pagerank_targets() -> None:
    # hub 0 linked to 1..6; entity k in 1..6 has k-1 extra leaves so PageRank grows with k
    triples = [[0, 0, k] for k in range(1, 7)]
    leaf = 7
    for k in range(1, 7):
        for _ in range(k - 1):
            triples.append([k, 1, leaf])
            leaf += 1
    t = torch.tensor(triples)
    g = ActionGraph.from_triples(t, num_entities=leaf, num_relations=2, max_actions=3)
    assert g.num_actions == 4
    kept = set(g.action_targets[0][g.action_mask[0]].tolist()) - {0}
    neighbours = torch.arange(1, 7)
    top3 = set(neighbours[g.pagerank[neighbours].argsort(descending=True)[:3]].tolist())
    assert kept == top3 == {4, 5, 6}
    # kept edges of an entity are ordered by decreasing target PageRank
    pr = g.pagerank[g.action_targets[0, 1:]]
    assert (pr[:-1] >= pr[1:]).all()
    # the uncapped CSR still holds every edge
    assert g.out_degree()[0] == 6


def test_exclude_removes_links_and_inverses_and_from_dataset() -> None:
    train = tiny()
    valid = torch.tensor([[0, 0, 1]])
    test = torch.tensor([[2, 1, 3]])
    ds = Dataset.from_tensors("t", train, valid, test, num_entities=5, num_relations=2)
    g = ActionGraph.from_dataset(ds)
    held_out = torch.cat([valid, test])
    inverse = torch.stack([held_out[:, 2], held_out[:, 1] + 2, held_out[:, 0]], dim=1)
    assert not g.has_edges(held_out).any()
    assert not g.has_edges(inverse).any()
    assert len(g.triples) == len(train) - 2
    # exclude given with inverse ids is normalised
    g2 = ActionGraph.from_triples(train, 5, 2, exclude=inverse)
    assert not g2.has_edges(held_out).any()


def test_inverse_helpers() -> None:
    r = torch.tensor([0, 1, 2, 3, 4])
    assert inverse_relation(r, 2).tolist() == [2, 3, 0, 1, 4]
    t = torch.tensor([[1, 3, 0]])
    assert normalize_triples(t, 2).tolist() == [[0, 1, 1]]


def test_answer_index_dense() -> None:
    idx = AnswerIndex.from_triples(tiny(), num_entities=5, num_relations=2)
    dense = idx.dense(torch.tensor([0, 2, 4, 1]), torch.tensor([0, 3, 0, 2]))
    assert dense[0].nonzero().squeeze(1).tolist() == [1, 3]
    assert dense[1].nonzero().squeeze(1).tolist() == [0]  # (0, r1, 2) -> inverse query (2, r1+R) answers 0
    assert not dense[2].any()
    assert dense[3].nonzero().squeeze(1).tolist() == [0]
    assert idx.num_answers(torch.tensor([0, 4]), torch.tensor([0, 0])).tolist() == [2, 0]


def test_rejects_bad_ids() -> None:
    with pytest.raises(ValueError, match="entity ids"):
        ActionGraph.from_triples(torch.tensor([[0, 0, 9]]), 5, 2)
    with pytest.raises(ValueError, match="max_actions"):
        ActionGraph.from_triples(tiny(), 5, 2, max_actions=0)


@pytest.mark.realdata
def test_umls_graph(shared_data: Path) -> None:
    ds = Dataset.from_directory(shared_data / "umls")
    g = ActionGraph.from_dataset(ds, max_actions=400)
    assert g.pagerank.sum().item() == pytest.approx(1.0, abs=1e-9)
    assert len(g.edges()) == 2 * len(g.triples)
    assert not g.has_edges(ds.valid).any() and not g.has_edges(ds.test).any()
    assert g.action_mask[:, 0].all()
    capped = ActionGraph.from_dataset(ds, max_actions=50)
    assert capped.num_actions == 51
    assert (capped.action_mask.sum(1) <= 51).all()
