"""Filtered rank-based evaluation: ranks, metrics, the evaluator and per-group breakdowns.

Typical use::

    evaluator = RankBasedEvaluator(dataset.all_triples(), num_entities=dataset.num_entities)
    result = evaluator.evaluate(model, dataset.test)
    print(result.format()); result.save(run_dir)
    per_type = breakdown(result, dataset, by="relation_type")
"""

from kgreason.evaluation.breakdowns import breakdown, query_groups
from kgreason.evaluation.evaluator import EvaluationResult, RankBasedEvaluator, Scorer, evaluate_dataset
from kgreason.evaluation.metrics import (
    ALL_SIDES,
    HITS_AT,
    METRICS,
    SIDES,
    metric_key,
    metric_keys,
    metrics_from_ranks,
    rank_metrics,
)
from kgreason.evaluation.ranks import RANK_TYPES, BatchRanks, FilterIndex, compute_ranks

__all__ = [
    "ALL_SIDES",
    "HITS_AT",
    "METRICS",
    "RANK_TYPES",
    "SIDES",
    "BatchRanks",
    "EvaluationResult",
    "FilterIndex",
    "RankBasedEvaluator",
    "Scorer",
    "breakdown",
    "compute_ranks",
    "evaluate_dataset",
    "metric_key",
    "metric_keys",
    "metrics_from_ranks",
    "query_groups",
    "rank_metrics",
]
