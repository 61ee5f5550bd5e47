"""Rank-based metrics (MRR, MR, Hits@k) and their ``{side}.{rank_type}.{metric}`` keys.

Every metric is a plain mean over queries of a function of the rank (PyKEEN's convention, also for the
fractional realistic rank): ``mrr = mean(1 / rank)``, ``mr = mean(rank)``,
``hits_at_k = mean(rank <= k)``. ``both`` pools the head and tail queries (mean over their union).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from kgreason.evaluation.ranks import RANK_TYPES

SIDES: tuple[str, ...] = ("head", "tail")
ALL_SIDES: tuple[str, ...] = ("head", "tail", "both")
HITS_AT: tuple[int, ...] = (1, 3, 5, 10)
METRICS: tuple[str, ...] = ("mrr", "mr", *(f"hits_at_{k}" for k in HITS_AT))

__all__ = [
    "ALL_SIDES",
    "HITS_AT",
    "METRICS",
    "RANK_TYPES",
    "SIDES",
    "metric_key",
    "metric_keys",
    "metrics_from_ranks",
    "rank_metrics",
]


def metric_key(side: str, rank_type: str, metric: str) -> str:
    """``"tail.realistic.mrr"``-style key; raises ``ValueError`` for an unknown part."""
    for value, allowed, what in (
        (side, ALL_SIDES, "side"),
        (rank_type, RANK_TYPES, "rank type"),
        (metric, METRICS, "metric"),
    ):
        if value not in allowed:
            raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(allowed)}")
    return f"{side}.{rank_type}.{metric}"


def metric_keys(sides: tuple[str, ...] | list[str] = SIDES) -> list[str]:
    """Every key an evaluation of ``sides`` produces (``both`` added when head and tail are both there)."""
    out_sides = [s for s in SIDES if s in sides]
    if len(out_sides) == 2:
        out_sides.append("both")
    return [f"{s}.{rt}.{m}" for s in out_sides for rt in RANK_TYPES for m in METRICS]


def rank_metrics(ranks: torch.Tensor) -> dict[str, float]:
    """MRR, MR and Hits@{1,3,5,10} of ``ranks: FloatTensor[n]`` (1 = best), computed in float64.

    An empty tensor gives NaN for every metric.
    """
    r = ranks.detach().to(torch.float64).flatten()
    if r.numel() == 0:
        return {m: float("nan") for m in METRICS}
    out = {"mrr": float(r.reciprocal().mean()), "mr": float(r.mean())}
    for k in HITS_AT:
        out[f"hits_at_{k}"] = float((r <= k).to(torch.float64).mean())
    return out


def metrics_from_ranks(ranks: Mapping[str, Mapping[str, torch.Tensor]]) -> dict[str, float]:
    """All ``{side}.{rank_type}.{metric}`` values of per-side ranks.

    Args:
        ranks: ``{side: {rank_type: FloatTensor[n_side]}}`` with side in ``head``/``tail``; ``both`` is
            added (ranks of the two sides concatenated) when both sides are present.

    Returns:
        A flat ``dict[str, float]`` in a stable order (sides head, tail, both).
    """
    unknown = set(ranks) - set(SIDES)
    if unknown:
        raise ValueError(f"unknown side(s) {sorted(unknown)}; ranks are keyed by 'head' and/or 'tail'")
    per_side = {s: ranks[s] for s in SIDES if s in ranks}
    if len(per_side) == 2:
        per_side["both"] = {rt: torch.cat([ranks["head"][rt], ranks["tail"][rt]]) for rt in RANK_TYPES}
    out: dict[str, float] = {}
    for side, by_type in per_side.items():
        for rank_type in RANK_TYPES:
            for metric, value in rank_metrics(by_type[rank_type]).items():
                out[f"{side}.{rank_type}.{metric}"] = value
    return out
