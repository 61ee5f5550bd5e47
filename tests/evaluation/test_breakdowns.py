from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from kgreason.data import Dataset
from kgreason.evaluation import EvaluationResult, RankBasedEvaluator, breakdown, metric_keys


@pytest.fixture
def hand_result(hand) -> EvaluationResult:
    return RankBasedEvaluator(hand.all_triples, 6).evaluate(hand.scorer(), hand.test)


@pytest.fixture
def hand_dataset(hand) -> Dataset:
    return Dataset.from_tensors("hand", hand.train, hand.valid, hand.test, num_entities=6, num_relations=2)


def test_by_relation(hand_result: EvaluationResult, hand_dataset: Dataset) -> None:
    # relation 0: test triples 0 and 2; relation 1: test triple 1 (ranks in conftest.HandExample)
    groups = breakdown(hand_result, hand_dataset, by="relation")
    assert list(groups) == [0, 1]
    r0, r1 = groups[0], groups[1]
    assert set(r0) == set(metric_keys(("head", "tail"))) | {
        "head.num_queries",
        "tail.num_queries",
        "both.num_queries",
    }
    assert r0["tail.optimistic.mrr"] == pytest.approx((1 / 2 + 1) / 2)
    assert r0["tail.pessimistic.mr"] == pytest.approx((3 + 6) / 2)
    assert r0["head.realistic.mr"] == pytest.approx((1.5 + 1) / 2)
    assert r0["both.realistic.mr"] == pytest.approx((2.5 + 3.5 + 1.5 + 1) / 4)
    assert r0["both.realistic.hits_at_3"] == pytest.approx(3 / 4)
    assert r0["tail.num_queries"] == 2 and r0["both.num_queries"] == 4
    assert r1["tail.realistic.mrr"] == 1.0
    assert r1["head.optimistic.mr"] == 3 and r1["head.pessimistic.mr"] == 6
    assert r1["both.realistic.mr"] == pytest.approx((1 + 4.5) / 2)


def test_by_seen_query(hand_result: EvaluationResult, hand, hand_dataset: Dataset) -> None:
    # train (0,0,2) (3,0,1) (1,0,3): tail (0,0,?) is seen, (2,1,?) and (5,0,?) are not;
    # head (?,0,1) and (?,0,3) are seen, (?,1,4) is not.
    groups = breakdown(hand_result, hand_dataset, by="seen")
    seen, unseen = groups["seen"], groups["unseen"]
    assert (seen["tail.num_queries"], seen["head.num_queries"], seen["both.num_queries"]) == (1, 2, 3)
    assert seen["tail.realistic.mr"] == 2.5
    assert seen["head.realistic.mr"] == pytest.approx((1.5 + 1) / 2)
    assert seen["both.realistic.mr"] == pytest.approx((2.5 + 1.5 + 1) / 3)
    assert unseen["tail.realistic.mr"] == pytest.approx((1 + 3.5) / 2)
    assert unseen["head.pessimistic.mr"] == 6
    assert unseen["both.realistic.mrr"] == pytest.approx((1 + 1 / 3.5 + 1 / 4.5) / 3)
    # a tensor of training triples gives the same grouping
    assert breakdown(hand_result, hand.train, by="seen") == groups


def test_by_relation_type(hand_result: EvaluationResult, hand, hand_dataset: Dataset) -> None:
    # over all known triples: tail xi_0 = 5 answers / 4 queries = 1.25 (to-one), tail xi_1 = 2 (to-many);
    # head xi_0 = 5 / 3 (to-many), head xi_1 = 1 (to-one).
    groups = breakdown(hand_result, hand_dataset, by="relation_type")
    many, one = groups["to-many"], groups["to-one"]
    assert (many["tail.num_queries"], many["head.num_queries"]) == (1, 2)
    assert many["tail.realistic.mr"] == 1.0
    assert many["head.realistic.mr"] == pytest.approx((1.5 + 1) / 2)
    assert many["both.realistic.hits_at_1"] == pytest.approx(2 / 3)
    assert one["tail.realistic.mr"] == pytest.approx((2.5 + 3.5) / 2)
    assert one["head.realistic.mr"] == 4.5
    assert one["both.realistic.mr"] == pytest.approx((2.5 + 3.5 + 4.5) / 3)
    assert breakdown(hand_result, hand.all_triples, by="relation_type") == groups
    # a stricter threshold makes every relation to-one
    assert list(breakdown(hand_result, hand_dataset, by="relation_type", threshold=10.0)) == ["to-one"]


def test_one_side_results_and_bad_grouping(hand, hand_dataset: Dataset) -> None:
    result = RankBasedEvaluator(hand.all_triples, 6).evaluate(hand.scorer(), hand.test, sides=("tail",))
    groups = breakdown(result, hand_dataset, by="seen")
    assert all(k.startswith("tail.") for g in groups.values() for k in g)
    with pytest.raises(ValueError, match="by must be"):
        breakdown(result, hand_dataset, by="entity")  # type: ignore[arg-type]


def test_groups_partition_the_overall_metrics(random_scorer: Callable) -> None:
    g = torch.Generator().manual_seed(5)
    num_entities, num_relations = 19, 4
    known = torch.stack(
        [
            torch.randint(0, num_entities, (150,), generator=g),
            torch.randint(0, num_relations, (150,), generator=g),
            torch.randint(0, num_entities, (150,), generator=g),
        ],
        dim=1,
    )
    train, test = known[:100], known[100:]
    result = RankBasedEvaluator(known, num_entities).evaluate(
        random_scorer(num_entities, num_relations, g), test
    )
    for by in ("relation", "relation_type", "seen"):
        groups = breakdown(result, known if by == "relation_type" else train, by=by)  # type: ignore[arg-type]
        for key in ("head.realistic.mrr", "tail.optimistic.hits_at_3", "both.pessimistic.mr"):
            side = key.split(".")[0]
            total = sum(m[f"{side}.num_queries"] for m in groups.values() if key in m)
            pooled = sum(m[key] * m[f"{side}.num_queries"] for m in groups.values() if key in m)
            assert total == (2 if side == "both" else 1) * len(test)
            assert pooled / total == pytest.approx(result[key]), (by, key)


def test_breakdown_from_saved_ranks(
    hand_result: EvaluationResult, hand_dataset: Dataset, tmp_path: Path
) -> None:
    hand_result.save(tmp_path, include_ranks=True)
    loaded = EvaluationResult.load(tmp_path)
    assert breakdown(loaded, hand_dataset, by="relation") == breakdown(
        hand_result, hand_dataset, by="relation"
    )
    hand_result.save(tmp_path / "bare")
    with pytest.raises(ValueError, match="no ranks"):
        breakdown(EvaluationResult.load(tmp_path / "bare"), hand_dataset)
