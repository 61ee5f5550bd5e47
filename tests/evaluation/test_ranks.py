from __future__ import annotations

import pytest
import torch

from kgreason.evaluation.ranks import FilterIndex, compute_ranks

INF = float("inf")


def naive_filtered_ranks(
    scores: torch.Tensor, true: torch.Tensor, known: list[set[int]]
) -> tuple[list[float], list[float]]:
    """Reference: a Python loop over queries and candidates."""
    opt, pess = [], []
    for i in range(scores.shape[0]):
        s = scores[i].tolist()
        t = int(true[i])
        gt = sum(1 for e, v in enumerate(s) if e != t and e not in known[i] and v > s[t])
        ge = sum(1 for e, v in enumerate(s) if e != t and e not in known[i] and v >= s[t])
        opt.append(1.0 + gt)
        pess.append(1.0 + ge)
    return opt, pess


def test_filter_index_answers_tail_and_head() -> None:
    triples = torch.tensor([[0, 0, 1], [0, 0, 2], [0, 0, 2], [3, 0, 1], [0, 1, 4], [2, 1, 4]])
    index = FilterIndex(triples, num_entities=5)
    assert index.num_triples == 5  # the duplicate (0, 0, 2) counted once
    rows, ents = index.answers(torch.tensor([[0, 0], [0, 1], [4, 0], [0, 7]]), "tail")
    got = sorted(zip(rows.tolist(), ents.tolist()))
    assert got == [(0, 1), (0, 2), (1, 4)]  # (4, 0) has no answers; relation 7 is unknown
    rows, ents = index.answers(torch.tensor([[0, 1], [1, 4], [0, 3]]), "head")
    assert sorted(zip(rows.tolist(), ents.tolist())) == [(0, 0), (0, 3), (1, 0), (1, 2)]
    assert rows.tolist() == sorted(rows.tolist())


def test_huge_entity_ids_use_the_lexicographic_fallback() -> None:
    g = torch.Generator().manual_seed(1)
    triples = torch.randint(0, 6, (80, 3), generator=g)  # many duplicates
    queries = torch.randint(0, 6, (30, 2), generator=g)
    small = FilterIndex(triples, num_entities=6)
    huge = FilterIndex(triples, num_entities=2**40)  # (key + 1) * E overflows the single-int64 key
    assert small.num_triples == huge.num_triples == len({tuple(t) for t in triples.tolist()})
    for side in ("tail", "head"):
        a, b = small.answers(queries, side), huge.answers(queries, side)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_unknown_relation_does_not_alias_another_key() -> None:
    # key = h * num_keys_r + r with num_keys_r = 2: (0, 2) would alias (1, 0) without the relation check.
    index = FilterIndex(torch.tensor([[1, 0, 3], [0, 1, 2]]), num_entities=4)
    rows, _ = index.answers(torch.tensor([[0, 2]]), "tail")
    assert len(rows) == 0


def test_filter_index_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match=r"\[n, 3\]"):
        FilterIndex(torch.zeros(3, 2, dtype=torch.long), 4)
    with pytest.raises(ValueError, match="entity ids"):
        FilterIndex(torch.tensor([[0, 0, 4]]), 4)
    with pytest.raises(ValueError, match="integer"):
        FilterIndex(torch.zeros(1, 3), 4)


def test_compute_ranks_ties_and_filter_by_hand() -> None:
    scores = torch.tensor([[0.5, 0.7, 0.9, 0.7, 0.1, 0.9], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    true = torch.tensor([1, 3])
    # row 0: e2 is another known answer (removed), e5 scores higher, e3 ties; e1 (the true one) is listed too
    ranks = compute_ranks(scores, true, torch.tensor([0, 0]), torch.tensor([1, 2]))
    assert ranks.optimistic.tolist() == [2.0, 1.0]
    assert ranks.pessimistic.tolist() == [3.0, 6.0]
    assert ranks.realistic.tolist() == [2.5, 3.5]
    assert ranks.num_candidates.tolist() == [5, 6]
    raw = compute_ranks(scores, true)  # unfiltered: e2 counts too
    assert raw.optimistic.tolist() == [3.0, 1.0]
    assert raw.pessimistic.tolist() == [4.0, 6.0]


def test_neg_inf_scores_tie_behind_finite_ones() -> None:
    scores = torch.tensor(
        [
            [-INF, 1.0, -INF, 0.5, -INF],  # true e1 finite: the -inf entities rank behind it
            [-INF, 1.0, -INF, 0.5, -INF],  # true e0 is -inf: tie block of e0, e2, e4 behind e1, e3
            [-INF, -INF, -INF, -INF, -INF],  # everything -inf: one tie block of 5
        ]
    )
    ranks = compute_ranks(scores, torch.tensor([1, 0, 2]), torch.tensor([1]), torch.tensor([4]))
    assert ranks.optimistic.tolist() == [1.0, 3.0, 1.0]
    assert ranks.pessimistic.tolist() == [1.0, 4.0, 5.0]  # row 1: e4 filtered -> ties e2 only
    assert ranks.realistic.tolist() == [1.0, 3.5, 3.0]


def test_pos_inf_scores_and_mixed_infinities_are_fine() -> None:
    scores = torch.tensor([[INF, -INF, 0.0, INF], [INF, -INF, 0.0, 1.0]])
    ranks = compute_ranks(scores, torch.tensor([0, 2]))
    assert ranks.optimistic.tolist() == [1.0, 3.0]
    assert ranks.pessimistic.tolist() == [2.0, 3.0]


@pytest.mark.parametrize("where", [(0, 3), (1, 0), (2, 4)])
def test_nan_scores_raise(where: tuple[int, int]) -> None:
    scores = torch.zeros(3, 5)
    scores[2, 0], scores[2, 1] = INF, -INF  # a row whose sum is NaN without any NaN entry must not hide one
    scores[where] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        compute_ranks(scores, torch.tensor([0, 1, 2]))


def test_inf_rows_without_nan_do_not_raise() -> None:
    scores = torch.tensor([[INF, -INF, 0.0]])
    assert compute_ranks(scores, torch.tensor([2])).optimistic.tolist() == [2.0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_naive_reference_on_random_scores(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    b, num_entities = 40, 13
    scores = torch.randint(0, 4, (b, num_entities), generator=g).float()
    scores[torch.rand(b, num_entities, generator=g) < 0.15] = -INF
    true = torch.randint(0, num_entities, (b,), generator=g)
    known_mask = torch.rand(b, num_entities, generator=g) < 0.3
    rows, ents = known_mask.nonzero(as_tuple=True)
    known = [set(known_mask[i].nonzero().squeeze(1).tolist()) - {int(true[i])} for i in range(b)]
    ranks = compute_ranks(scores, true, rows, ents)
    opt, pess = naive_filtered_ranks(scores, true, known)
    assert ranks.optimistic.tolist() == opt
    assert ranks.pessimistic.tolist() == pess
    assert torch.equal(ranks.realistic, (torch.tensor(opt) + torch.tensor(pess)) / 2)
    assert ranks.num_candidates.tolist() == [num_entities - len(k) for k in known]


def test_row_blocks_do_not_change_ranks_and_half_precision_works() -> None:
    g = torch.Generator().manual_seed(7)
    scores = torch.randint(0, 3, (9, 11), generator=g).float()
    true = torch.randint(0, 11, (9,), generator=g)
    rows, ents = (torch.rand(9, 11, generator=g) < 0.3).nonzero(as_tuple=True)
    whole = compute_ranks(scores, true, rows, ents, chunk_elements=10**6)
    for chunk in (1, 11, 25, 40):  # one row per block, 2 rows, 3 rows (a short last block), ...
        blocked = compute_ranks(scores, true, rows, ents, chunk_elements=chunk)
        assert torch.equal(blocked.optimistic, whole.optimistic)
        assert torch.equal(blocked.pessimistic, whole.pessimistic)
    half = compute_ranks(torch.tensor([[0.5, 0.7, 0.9, 0.7]], dtype=torch.float16), torch.tensor([1]))
    assert half.optimistic.tolist() == [2.0]
    assert half.pessimistic.tolist() == [3.0]


def test_scores_that_require_grad_are_accepted() -> None:
    scores = torch.tensor([[0.1, 0.9, 0.5]], requires_grad=True)
    assert compute_ranks(scores * 2, torch.tensor([2])).optimistic.tolist() == [2.0]
