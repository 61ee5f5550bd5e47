"""Metrics of subsets of the evaluated queries, from the saved ranks of an :class:`EvaluationResult`.

Groupings (``by``):

- ``"relation"``: one group per relation id of the evaluated triples (keys are ``int``).
- ``"relation_type"``: ``"to-many"`` / ``"to-one"`` as in MultiHopKG (Lin et al. 2018, §5.3.3): relation ``r``
  is to-many when ``ξ_r`` (average answer-set size of its queries over all known triples) exceeds
  ``threshold`` (1.5). Tail queries ``(h, r, ?)`` use ``ξ`` of ``(h, r, ?)``; head queries ``(?, r, t)`` use
  ``ξ`` of ``(?, r, t)`` (the tail queries of the inverse relation), so one triple's two queries may fall into
  different groups.
- ``"seen"``: ``"seen"`` / ``"unseen"`` (§5.3.4): a tail query ``(h, r, ?)`` is seen when the training triples
  hold some ``(h, r, x)``; a head query ``(?, r, t)`` when they hold some ``(x, r, t)``.

Each group maps to the usual ``{side}.{rank_type}.{metric}`` keys for the sides that have queries in the group
(``both`` pools them when both do), plus ``{side}.num_queries``. All groups are reduced at once with segment
sums (no loop over queries).
"""

from __future__ import annotations

from typing import Literal

import torch

from kgreason.data.dataset import Dataset
from kgreason.data.statistics import TO_MANY_THRESHOLD, relation_cardinality
from kgreason.evaluation.evaluator import EvaluationResult
from kgreason.evaluation.metrics import HITS_AT, METRICS, SIDES
from kgreason.evaluation.ranks import RANK_TYPES

BreakdownBy = Literal["relation", "relation_type", "seen"]
Group = int | str

__all__ = ["BreakdownBy", "breakdown", "query_groups"]


def query_groups(
    result: EvaluationResult,
    data: Dataset | torch.Tensor,
    by: BreakdownBy = "relation",
    num_relations: int | None = None,
    threshold: float = TO_MANY_THRESHOLD,
) -> tuple[list[Group], dict[str, torch.Tensor]]:
    """The group of every evaluated query.

    Args:
        result: an evaluation result holding ``ranks`` and ``triples``.
        data: a :class:`Dataset` (``ξ`` over ``all_triples()``, seen-ness over ``train``) or a
            ``LongTensor[m, 3]`` used for both (pass the training triples for ``"seen"``, all known triples
            for ``"relation_type"``).
        by: ``"relation"``, ``"relation_type"`` or ``"seen"``.
        num_relations: relation ids are below it; default: the dataset's, else inferred from the ids.
        threshold: ``ξ`` above which a relation is to-many.

    Returns:
        ``names``: the group names (group ``g`` is ``names[g]``) and ``{side: LongTensor[n]}`` group indices.
    """
    triples = result.triples.long()
    if isinstance(data, Dataset):
        known = data.all_triples() if by == "relation_type" else data.train
        num_relations = data.num_relations if num_relations is None else num_relations
    else:
        known = data.long().to(triples.device)
    if num_relations is None:
        rels = torch.cat([triples[:, 1], known[:, 1]])
        num_relations = int(rels.max()) + 1 if len(rels) else 1
    num_relations = max(num_relations, int(triples[:, 1].max()) + 1 if len(triples) else 0)
    sides = result.sides

    if by == "relation":
        present, index = torch.unique(triples[:, 1], return_inverse=True)
        return [int(r) for r in present.tolist()], {side: index for side in sides}
    if by == "relation_type":
        names: list[Group] = ["to-many", "to-one"]
        groups = {}
        for side in sides:
            xi = relation_cardinality(known, num_relations, side="tail" if side == "tail" else "head")
            to_many = torch.nan_to_num(xi, nan=0.0) > threshold
            groups[side] = torch.where(to_many[triples[:, 1]], 0, 1)
        return names, groups
    if by == "seen":
        names = ["seen", "unseen"]
        groups = {}
        for side in sides:
            anchor_col = 0 if side == "tail" else 2
            seen_keys = torch.unique(known[:, anchor_col] * num_relations + known[:, 1])
            keys = triples[:, anchor_col] * num_relations + triples[:, 1]
            groups[side] = torch.where(torch.isin(keys, seen_keys), 0, 1)
        return names, groups
    raise ValueError(f"by must be 'relation', 'relation_type' or 'seen', got {by!r}")


def breakdown(
    result: EvaluationResult,
    data: Dataset | torch.Tensor,
    by: BreakdownBy = "relation",
    num_relations: int | None = None,
    threshold: float = TO_MANY_THRESHOLD,
) -> dict[Group, dict[str, float]]:
    """Metrics per group of queries, computed from ``result.ranks`` (no re-scoring).

    See :func:`query_groups` for the arguments and the module docstring for the groupings.

    Returns:
        ``{group: {"{side}.{rank_type}.{metric}": value, "{side}.num_queries": count}}`` for every group with
        at least one query, in group order (relation id; to-many before to-one; seen before unseen).
    """
    if not result.sides:
        raise ValueError("the result holds no ranks (was it loaded without its ranks file?)")
    names, groups = query_groups(result, data, by=by, num_relations=num_relations, threshold=threshold)
    num_groups = len(names)
    # Per side and rank type: segment sums of [1/r, r, r<=1, r<=3, ...] -> [G, len(METRICS)].
    sums: dict[str, dict[str, torch.Tensor]] = {}
    counts: dict[str, torch.Tensor] = {}
    for side in result.sides:
        group = groups[side]
        counts[side] = torch.bincount(group, minlength=num_groups).to(torch.float64)
        sums[side] = {}
        for rank_type in RANK_TYPES:
            r = result.ranks[side][rank_type].to(torch.float64)
            values = torch.stack([r.reciprocal(), r, *((r <= k).to(torch.float64) for k in HITS_AT)], dim=1)
            sums[side][rank_type] = torch.zeros(num_groups, len(METRICS), dtype=torch.float64).index_add_(
                0, group, values
            )
    if len(sums) == 2:
        counts["both"] = counts["head"] + counts["tail"]
        sums["both"] = {rt: sums["head"][rt] + sums["tail"][rt] for rt in RANK_TYPES}

    out: dict[Group, dict[str, float]] = {}
    for g, name in enumerate(names):
        metrics: dict[str, float] = {}
        present = [s for s in SIDES if s in counts and counts[s][g] > 0]
        out_sides = [*present, "both"] if len(present) == 2 else present
        for side in out_sides:
            n = counts[side][g]
            for rank_type in RANK_TYPES:
                means = (sums[side][rank_type][g] / n).tolist()
                metrics.update({f"{side}.{rank_type}.{m}": v for m, v in zip(METRICS, means)})
            metrics[f"{side}.num_queries"] = float(n)
        if metrics:
            out[name] = metrics
    return out
