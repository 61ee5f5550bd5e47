"""Held-out relation-extraction metrics over (bag, relation) predictions (Mintz et al. 2009; Lin et al. 2016).

Every (bag, relation) pair except the "no relation" class is one prediction with a score; it is correct when the
bag's label holds that relation. Predictions are ranked by score (descending; ties keep bag-major order, and the
curve has one point per *distinct* score, so tied predictions enter it together):

* ``precision_at_n`` -- precision of the top ``N`` predictions (``N`` an int, or a fraction of all predictions);
* ``precision_recall_curve`` -- precision and recall after each distinct score threshold;
* ``pr_auc`` -- trapezoidal area under those points (what OpenNRE reports via ``sklearn.metrics.auc``; no point at
  recall 0 is added);
* ``average_precision`` -- ``sum_i (R_i - R_{i-1}) P_i`` with ``R_0 = 0`` (step-wise area).

All are vectorised (one sort, one cumulative sum). A random ranking scores about the positive rate
(``num_positives / num_predictions``), reported by :func:`heldout_metrics` as ``random_pr_auc``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from kgreason.typing import BoolTensor, FloatTensor

__all__ = [
    "average_precision",
    "heldout_metrics",
    "pr_auc",
    "precision_at_n",
    "precision_recall_curve",
    "ranked_predictions",
]


def _drop_na(
    scores: FloatTensor, labels: torch.Tensor, na_index: int | None
) -> tuple[FloatTensor, BoolTensor]:
    if scores.shape != labels.shape:
        raise ValueError(f"scores {tuple(scores.shape)} and labels {tuple(labels.shape)} differ in shape")
    labels = labels.bool()
    if na_index is not None:
        keep = torch.ones(scores.shape[-1], dtype=torch.bool, device=scores.device)
        keep[na_index] = False
        scores, labels = scores[..., keep], labels[..., keep]
    return scores.reshape(-1).float(), labels.reshape(-1)


def ranked_predictions(
    scores: FloatTensor, labels: torch.Tensor, na_index: int | None = None
) -> tuple[FloatTensor, BoolTensor]:
    """Flattened predictions sorted by score, best first.

    Args:
        scores: ``FloatTensor[B, C]`` score of every (bag, class).
        labels: ``BoolTensor[B, C]`` (or 0/1) multi-hot gold labels.
        na_index: column of the "no relation" class, excluded; ``None`` when there is none.

    Returns:
        ``(scores FloatTensor[n], correct BoolTensor[n])`` with ``n = B * (C - 1)`` (or ``B * C``), sorted by
        descending score; ties keep row-major order (stable sort).
    """
    flat_scores, flat_labels = _drop_na(scores, labels, na_index)
    order = torch.sort(flat_scores, descending=True, stable=True).indices
    return flat_scores[order], flat_labels[order]


def precision_recall_curve(
    scores: FloatTensor, labels: torch.Tensor, na_index: int | None = None
) -> tuple[FloatTensor, FloatTensor, FloatTensor]:
    """Precision and recall at every distinct score threshold, from the highest.

    Returns ``(precision FloatTensor[k], recall FloatTensor[k], thresholds FloatTensor[k])``: point ``i`` counts
    every prediction with ``score >= thresholds[i]``. Recall is over all positive (bag, relation) labels; with
    none, recall is NaN.
    """
    s, y = ranked_predictions(scores, labels, na_index)
    n = s.numel()
    if n == 0:
        empty = torch.zeros(0, device=scores.device)
        return empty, empty, empty
    tp = torch.cumsum(y.double(), 0)
    k = torch.arange(1, n + 1, device=s.device, dtype=torch.float64)
    last_of_tie = torch.ones(n, dtype=torch.bool, device=s.device)
    last_of_tie[:-1] = s[:-1] != s[1:]
    total = tp[-1]
    precision = (tp / k)[last_of_tie]
    recall = (tp / total)[last_of_tie] if total > 0 else torch.full_like(precision, math.nan)
    return precision.float(), recall.float(), s[last_of_tie]


def pr_auc(scores: FloatTensor, labels: torch.Tensor, na_index: int | None = None) -> float:
    """Trapezoidal area under the precision-recall points of :func:`precision_recall_curve` (NaN without
    positives; ``0.0`` with a single point)."""
    precision, recall, _ = precision_recall_curve(scores, labels, na_index)
    if precision.numel() == 0 or torch.isnan(recall).any():
        return math.nan
    return float(torch.trapezoid(precision.double(), recall.double()))


def average_precision(scores: FloatTensor, labels: torch.Tensor, na_index: int | None = None) -> float:
    """``sum_i (R_i - R_{i-1}) P_i`` over the distinct thresholds, ``R_0 = 0`` (NaN without positives)."""
    precision, recall, _ = precision_recall_curve(scores, labels, na_index)
    if precision.numel() == 0 or torch.isnan(recall).any():
        return math.nan
    prev = torch.cat([recall.new_zeros(1), recall[:-1]])
    return float(((recall - prev).double() * precision.double()).sum())


def _n_key(n: int | float) -> str:
    if isinstance(n, float):
        return f"p@{100 * n:g}%"
    return f"p@{n}"


def precision_at_n(
    scores: FloatTensor,
    labels: torch.Tensor,
    ns: Sequence[int | float] = (100, 200, 300),
    na_index: int | None = None,
) -> dict[str, float]:
    """Precision of the ``N`` highest-scored predictions, for each ``N`` in ``ns``.

    An int ``N`` counts predictions (``min(N, n)`` when fewer exist); a float in ``(0, 1]`` is a fraction of all
    ``n`` predictions (at least one). Keys: ``"p@100"`` or ``"p@10%"``. Ties at the cut are broken by the stable
    order of :func:`ranked_predictions`.
    """
    _, y = ranked_predictions(scores, labels, na_index)
    n = y.numel()
    tp = torch.cumsum(y.long(), 0)
    out: dict[str, float] = {}
    for value in ns:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"N must be an int or a fraction, got {value!r}")
        if isinstance(value, float):
            if not 0.0 < value <= 1.0:
                raise ValueError(f"a fractional N must be in (0, 1], got {value}")
            cut = max(1, round(value * n))
        else:
            if value < 1:
                raise ValueError(f"N must be >= 1, got {value}")
            cut = value
        cut = min(cut, n)
        out[_n_key(value)] = float(tp[cut - 1]) / cut if cut > 0 else math.nan
    return out


def heldout_metrics(
    scores: FloatTensor,
    labels: torch.Tensor,
    na_index: int | None = None,
    ns: Sequence[int | float] = (100, 200, 300),
) -> dict[str, float]:
    """``pr_auc``, ``average_precision``, ``p@N`` for every ``N`` in ``ns``, ``num_predictions``,
    ``num_positives`` and ``random_pr_auc`` (the positive rate: what a random ranking scores)."""
    flat_scores, flat_labels = _drop_na(scores, labels, na_index)
    n, pos = flat_scores.numel(), int(flat_labels.sum())
    out = {
        "pr_auc": pr_auc(scores, labels, na_index),
        "average_precision": average_precision(scores, labels, na_index),
        **precision_at_n(scores, labels, ns, na_index),
        "num_predictions": float(n),
        "num_positives": float(pos),
        "random_pr_auc": pos / n if n else math.nan,
    }
    return out
