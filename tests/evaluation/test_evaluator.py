from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from kgreason.data import Dataset
from kgreason.evaluation import EvaluationResult, RankBasedEvaluator, Scorer, evaluate_dataset, metric_keys

RANK_TYPES = ("optimistic", "pessimistic", "realistic")

# Every metric of the hand example (conftest.HandExample), written out from its ranks:
#   tail: optimistic [2, 1, 1]  pessimistic [3, 1, 6]  realistic [2.5, 1, 3.5]
#   head: optimistic [1, 3, 1]  pessimistic [2, 6, 1]  realistic [1.5, 4.5, 1]
HAND_METRICS = {
    "tail.optimistic": dict(
        mrr=(1 / 2 + 1 + 1) / 3, mr=4 / 3, hits_at_1=2 / 3, hits_at_3=1, hits_at_5=1, hits_at_10=1
    ),
    "tail.pessimistic": dict(
        mrr=(1 / 3 + 1 + 1 / 6) / 3,
        mr=10 / 3,
        hits_at_1=1 / 3,
        hits_at_3=2 / 3,
        hits_at_5=2 / 3,
        hits_at_10=1,
    ),
    "tail.realistic": dict(
        mrr=(1 / 2.5 + 1 + 1 / 3.5) / 3, mr=7 / 3, hits_at_1=1 / 3, hits_at_3=2 / 3, hits_at_5=1, hits_at_10=1
    ),
    "head.optimistic": dict(
        mrr=(1 + 1 / 3 + 1) / 3, mr=5 / 3, hits_at_1=2 / 3, hits_at_3=1, hits_at_5=1, hits_at_10=1
    ),
    "head.pessimistic": dict(
        mrr=(1 / 2 + 1 / 6 + 1) / 3, mr=3, hits_at_1=1 / 3, hits_at_3=2 / 3, hits_at_5=2 / 3, hits_at_10=1
    ),
    "head.realistic": dict(
        mrr=(1 / 1.5 + 1 / 4.5 + 1) / 3, mr=7 / 3, hits_at_1=1 / 3, hits_at_3=2 / 3, hits_at_5=1, hits_at_10=1
    ),
    "both.optimistic": dict(
        mrr=(1 / 2 + 1 + 1 + 1 + 1 / 3 + 1) / 6,
        mr=9 / 6,
        hits_at_1=4 / 6,
        hits_at_3=1,
        hits_at_5=1,
        hits_at_10=1,
    ),
    "both.pessimistic": dict(
        mrr=(1 / 3 + 1 + 1 / 6 + 1 / 2 + 1 / 6 + 1) / 6,
        mr=19 / 6,
        hits_at_1=2 / 6,
        hits_at_3=4 / 6,
        hits_at_5=4 / 6,
        hits_at_10=1,
    ),
    "both.realistic": dict(
        mrr=(1 / 2.5 + 1 + 1 / 3.5 + 1 / 1.5 + 1 / 4.5 + 1) / 6,
        mr=14 / 6,
        hits_at_1=2 / 6,
        hits_at_3=4 / 6,
        hits_at_5=1,
        hits_at_10=1,
    ),
}


def naive_evaluation(scorer, triples: torch.Tensor, known: torch.Tensor, num_entities: int) -> dict:
    """Reference: one query at a time, candidates checked one by one against a Python set."""
    known_set = {tuple(t) for t in known.tolist()}
    out: dict = {}
    for side in ("head", "tail"):
        opt, pess = [], []
        for h, r, t in triples.tolist():
            if side == "tail":
                s = scorer.score_t(torch.tensor([[h, r]]))[0].tolist()
                true, is_known = t, (lambda e, h=h, r=r: (h, r, e) in known_set)
            else:
                s = scorer.score_h(torch.tensor([[r, t]]))[0].tolist()
                true, is_known = h, (lambda e, r=r, t=t: (e, r, t) in known_set)
            others = [s[e] for e in range(num_entities) if e != true and not is_known(e)]
            opt.append(1.0 + sum(v > s[true] for v in others))
            pess.append(1.0 + sum(v >= s[true] for v in others))
        out[side] = {
            "optimistic": opt,
            "pessimistic": pess,
            "realistic": [(a + b) / 2 for a, b in zip(opt, pess)],
        }
    return out


def test_hand_example_ranks_and_every_metric(hand) -> None:
    evaluator = RankBasedEvaluator(hand.all_triples, num_entities=hand.num_entities, batch_size=2)
    result = evaluator.evaluate(hand.scorer(), hand.test)
    for side in ("head", "tail"):
        for rt in RANK_TYPES:
            assert result.ranks[side][rt].tolist() == hand.ranks[side][rt], (side, rt)
        assert result.num_candidates is not None
        assert result.num_candidates[side].tolist() == hand.num_candidates[side]
    expected = {f"{prefix}.{m}": v for prefix, ms in HAND_METRICS.items() for m, v in ms.items()}
    assert set(result.metrics) == set(expected) == set(metric_keys(("head", "tail")))
    for key, value in expected.items():
        assert result[key] == pytest.approx(value, abs=1e-12), key
    assert torch.equal(result.triples, hand.test)


def test_single_side_has_only_its_keys(hand) -> None:
    evaluator = RankBasedEvaluator(hand.all_triples, num_entities=6)
    result = evaluator.evaluate(hand.scorer(), hand.test, sides=("tail",))
    assert set(result.metrics) == set(metric_keys(("tail",)))
    assert result.sides == ["tail"] and set(result.ranks) == {"tail"}
    assert result["tail.realistic.mr"] == pytest.approx(7 / 3)
    with pytest.raises(KeyError, match="no metric"):
        result["both.realistic.mrr"]
    with pytest.raises(ValueError, match="sides"):
        evaluator.evaluate(hand.scorer(), hand.test, sides=("left",))


def test_without_filter_ranks_are_raw(hand) -> None:
    result = RankBasedEvaluator(None, num_entities=6).evaluate(hand.scorer(), hand.test, sides=("tail",))
    # tail (0,0,?): e2 and e5 higher, e3 ties; tail (2,1,?): e5 higher; tail (5,0,?): five ties
    assert result.ranks["tail"]["optimistic"].tolist() == [3.0, 2.0, 1.0]
    assert result.ranks["tail"]["pessimistic"].tolist() == [4.0, 2.0, 6.0]
    assert result.num_candidates["tail"].tolist() == [6, 6, 6]


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_naive_loop_reference(seed: int, random_scorer: Callable) -> None:
    g = torch.Generator().manual_seed(seed)
    num_entities, num_relations = 17, 3
    scorer = random_scorer(num_entities, num_relations, g)
    known = torch.stack(
        [
            torch.randint(0, num_entities, (120,), generator=g),
            torch.randint(0, num_relations, (120,), generator=g),
            torch.randint(0, num_entities, (120,), generator=g),
        ],
        dim=1,
    )
    test = known[torch.randperm(len(known), generator=g)[:40]]
    result = RankBasedEvaluator(known, num_entities, batch_size=7).evaluate(scorer, test)
    reference = naive_evaluation(scorer, test, known, num_entities)
    for side in ("head", "tail"):
        for rt in RANK_TYPES:
            assert result.ranks[side][rt].tolist() == reference[side][rt], (side, rt)


def test_chunking_invariance(random_scorer: Callable) -> None:
    g = torch.Generator().manual_seed(3)
    scorer = random_scorer(23, 4, g, levels=3)
    known = torch.stack(
        [
            torch.randint(0, 23, (200,), generator=g),
            torch.randint(0, 4, (200,), generator=g),
            torch.randint(0, 23, (200,), generator=g),
        ],
        dim=1,
    )
    test = known[:60]
    results = [RankBasedEvaluator(known, 23, batch_size=bs).evaluate(scorer, test) for bs in (1, 7, 1024)]
    for other in results[1:]:
        assert other.metrics == results[0].metrics
        for side in ("head", "tail"):
            for rt in RANK_TYPES:
                assert torch.equal(other.ranks[side][rt], results[0].ranks[side][rt])
    assert max(scorer.calls) == 60  # the large batch scored all queries of a side at once


def test_nan_scores_raise_value_error(hand) -> None:
    scorer = hand.scorer()
    scorer.head_table[0, 3, 2] = float("nan")
    evaluator = RankBasedEvaluator(hand.all_triples, 6)
    evaluator.evaluate(scorer, hand.test, sides=("tail",))  # the NaN is only in a head query
    with pytest.raises(ValueError, match="NaN"):
        evaluator.evaluate(scorer, hand.test, sides=("head",))


def test_scores_of_wrong_width_or_entities_out_of_range_raise(hand) -> None:
    scorer = hand.scorer()
    with pytest.raises(ValueError, match="num_entities=7"):
        RankBasedEvaluator(hand.all_triples, num_entities=7).evaluate(scorer, hand.test)
    with pytest.raises(ValueError, match="entity ids"):
        RankBasedEvaluator(None, num_entities=6).evaluate(scorer, torch.tensor([[0, 0, 6]]))
    with pytest.raises(ValueError, match="columns"):
        RankBasedEvaluator(None).evaluate(scorer, torch.tensor([[0, 0, 9]]), sides=("tail",))


def test_out_of_memory_halves_the_batch(hand) -> None:
    class Fussy:
        def __init__(self) -> None:
            self.inner = hand.scorer()

        def score_t(self, hr: torch.Tensor) -> torch.Tensor:
            if len(hr) > 1:
                raise RuntimeError("CUDA out of memory. Tried to allocate 1 GiB")
            return self.inner.score_t(hr)

        def score_h(self, rt: torch.Tensor) -> torch.Tensor:
            return self.inner.score_h(rt)

    evaluator = RankBasedEvaluator(hand.all_triples, 6, batch_size=8)
    result = evaluator.evaluate(Fussy(), hand.test)
    assert evaluator.batch_size == 1
    assert result.ranks["tail"]["realistic"].tolist() == hand.ranks["tail"]["realistic"]

    class Broken(Fussy):
        def score_t(self, hr: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("something else")

    with pytest.raises(RuntimeError, match="something else"):
        RankBasedEvaluator(hand.all_triples, 6).evaluate(Broken(), hand.test)


class TinyDistMult(nn.Module):
    def __init__(self, num_entities: int, num_relations: int, dim: int = 8) -> None:
        super().__init__()
        self.entity = nn.Embedding(num_entities, dim)
        self.relation = nn.Embedding(num_relations, dim)
        self.dropout = nn.Dropout(0.5)

    def score_t(self, hr: torch.Tensor, tails: torch.Tensor | None = None) -> torch.Tensor:
        q = self.dropout(self.entity(hr[:, 0]) * self.relation(hr[:, 1]))
        return q @ self.entity.weight.T

    def score_h(self, rt: torch.Tensor, heads: torch.Tensor | None = None) -> torch.Tensor:
        q = self.dropout(self.relation(rt[:, 0]) * self.entity(rt[:, 1]))
        return q @ self.entity.weight.T


def test_module_scorer_runs_in_eval_mode_and_mode_is_restored(hand) -> None:
    torch.manual_seed(0)
    model = TinyDistMult(6, 2)
    assert isinstance(model, Scorer)
    evaluator = RankBasedEvaluator(hand.all_triples, 6)
    first = evaluator.evaluate(model, hand.test)
    second = evaluator.evaluate(model, hand.test)
    assert first.metrics == second.metrics  # dropout off -> deterministic
    assert model.training
    assert all(r.device.type == "cpu" for side in first.ranks.values() for r in side.values())


def test_evaluate_dataset_filters_with_all_splits(hand) -> None:
    ds = Dataset.from_tensors("hand", hand.train, hand.valid, hand.test, num_entities=6, num_relations=2)
    result = evaluate_dataset(hand.scorer(), ds, split="test", batch_size=2)
    assert result.ranks["head"]["pessimistic"].tolist() == hand.ranks["head"]["pessimistic"]
    assert result["both.realistic.mrr"] == pytest.approx(HAND_METRICS["both.realistic"]["mrr"])


def test_save_and_load_metrics_json(hand, tmp_path: Path) -> None:
    result = RankBasedEvaluator(hand.all_triples, 6).evaluate(hand.scorer(), hand.test)
    path = result.save(tmp_path / "run")
    assert path == tmp_path / "run" / "metrics.json"
    assert json.loads(path.read_text()) == result.metrics
    assert not (tmp_path / "run" / "ranks.pt").exists()
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["metrics.json"]  # no temporary left behind
    loaded = EvaluationResult.load(tmp_path / "run")
    assert loaded.metrics == result.metrics and loaded.ranks == {}

    result.save(tmp_path / "eval" / "test.json", include_ranks=True)
    loaded = EvaluationResult.load(tmp_path / "eval" / "test.json")
    assert (tmp_path / "eval" / "test.ranks.pt").exists()
    assert loaded.metrics == result.metrics
    assert torch.equal(loaded.triples, result.triples)
    assert torch.equal(loaded.ranks["head"]["realistic"], result.ranks["head"]["realistic"])


def test_format_is_a_compact_table(hand) -> None:
    result = RankBasedEvaluator(hand.all_triples, 6).evaluate(hand.scorer(), hand.test)
    lines = result.format().splitlines()
    assert lines[0].split() == ["side", "rank", "MRR", "MR", "H@1", "H@3", "H@5", "H@10"]
    assert [line.split()[:2] for line in lines[1:]] == [
        ["head", "realistic"],
        ["tail", "realistic"],
        ["both", "realistic"],
    ]
    assert lines[3].split()[3] == "2.3"  # both.realistic.mr = 14 / 6
    assert len(result.format(rank_types=RANK_TYPES).splitlines()) == 1 + 9


def test_empty_triples(hand) -> None:
    result = RankBasedEvaluator(hand.all_triples, 6).evaluate(
        hand.scorer(), torch.empty(0, 3, dtype=torch.long)
    )
    assert result.ranks["tail"]["realistic"].shape == (0,)
    assert set(result.metrics) == set(metric_keys(("head", "tail")))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(hand) -> None:
    cpu = RankBasedEvaluator(hand.all_triples, 6).evaluate(hand.scorer(), hand.test)
    scorer = hand.scorer()
    scorer.tail_table, scorer.head_table = scorer.tail_table.cuda(), scorer.head_table.cuda()
    gpu = RankBasedEvaluator(hand.all_triples, 6, device="cuda").evaluate(scorer, hand.test)
    assert gpu.metrics == cpu.metrics


@pytest.mark.realdata
def test_umls_matches_dense_mask_reference(shared_data: Path, table_scorer: type) -> None:
    ds = Dataset.from_directory(shared_data / "umls")
    num_e, num_r = ds.num_entities, ds.num_relations
    g = torch.Generator().manual_seed(0)
    ent, rel = torch.randn(num_e, 16, generator=g), torch.randn(num_r, 16, generator=g)
    # DistMult scores of every (h, r) and (r, t), rounded to create ties, kept as fixed tables
    tail_table = torch.einsum("hd,rd,td->hrt", ent, rel, ent).round()
    scorer = table_scorer(tail_table, tail_table.permute(1, 2, 0).contiguous())
    result = evaluate_dataset(scorer, ds, split="valid", batch_size=256)

    known = torch.zeros(num_e, num_r, num_e, dtype=torch.bool)  # known[h, r, t]
    all_t = ds.all_triples()
    known[all_t[:, 0], all_t[:, 1], all_t[:, 2]] = True
    h, r, t = ds.valid.T
    for side, scores, mask, true in (
        ("tail", tail_table[h, r], known[h, r].clone(), t),
        ("head", tail_table[:, r, t].T, known[:, r, t].T.clone(), h),
    ):
        mask[torch.arange(len(true)), true] = False
        s_true = scores.gather(1, true[:, None])
        optimistic = 1 + ((scores > s_true) & ~mask).sum(1)
        pessimistic = ((scores >= s_true) & ~mask).sum(1)
        assert torch.equal(result.ranks[side]["optimistic"], optimistic.float())
        assert torch.equal(result.ranks[side]["pessimistic"], pessimistic.float())
        assert torch.equal(result.num_candidates[side], num_e - mask.sum(1))


def test_num_entities_taken_from_the_scores(hand) -> None:
    # the filter set names entities 0..3 only; the scores (6 columns) decide the candidate set
    result = RankBasedEvaluator(hand.train).evaluate(hand.scorer(), hand.test, sides=("tail",))
    # only (0, 0, 2) is known besides the test triples themselves
    assert result.num_candidates["tail"].tolist() == [5, 6, 6]
    assert result.ranks["tail"]["optimistic"].tolist() == [2.0, 2.0, 1.0]
