from __future__ import annotations

import math

import pytest
import torch

from kgreason.evaluation.metrics import METRICS, metric_key, metric_keys, metrics_from_ranks, rank_metrics


def test_rank_metrics_by_hand() -> None:
    m = rank_metrics(torch.tensor([1.0, 2.5, 4.0, 12.0]))
    assert m["mrr"] == pytest.approx((1 + 1 / 2.5 + 1 / 4 + 1 / 12) / 4)
    assert m["mr"] == pytest.approx((1 + 2.5 + 4 + 12) / 4)
    assert m["hits_at_1"] == 0.25
    assert m["hits_at_3"] == 0.5  # 2.5 <= 3 counts
    assert m["hits_at_5"] == 0.75
    assert m["hits_at_10"] == 0.75
    assert list(m) == list(METRICS)


def test_rank_metrics_of_no_ranks_are_nan() -> None:
    assert all(math.isnan(v) for v in rank_metrics(torch.empty(0)).values())


def test_metric_keys_are_exact() -> None:
    keys = metric_keys(("head", "tail"))
    assert len(keys) == 3 * 3 * 6 and len(set(keys)) == len(keys)
    assert "both.realistic.hits_at_10" in keys and "tail.optimistic.mr" in keys
    assert all(k.startswith("tail.") for k in metric_keys(("tail",)))
    assert len(metric_keys(("tail",))) == 18
    assert metric_key("both", "pessimistic", "mrr") == "both.pessimistic.mrr"
    with pytest.raises(ValueError, match="unknown metric"):
        metric_key("head", "realistic", "hits@10")


def test_metrics_from_ranks_pools_both_sides() -> None:
    ranks = {
        side: {rt: torch.tensor(v) for rt in ("optimistic", "pessimistic", "realistic")}
        for side, v in (("head", [1.0, 3.0]), ("tail", [2.0]))
    }
    m = metrics_from_ranks(ranks)
    assert set(m) == set(metric_keys(("head", "tail")))
    assert m["both.realistic.mr"] == pytest.approx(2.0)  # mean over the union, not the mean of side means
    assert m["both.optimistic.mrr"] == pytest.approx((1 + 1 / 3 + 1 / 2) / 3)
    with pytest.raises(ValueError, match="unknown side"):
        metrics_from_ranks({"both": ranks["head"]})
