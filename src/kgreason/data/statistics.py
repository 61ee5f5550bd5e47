"""Dataset statistics: sizes, train degrees and per-relation answer-set cardinality (to-many vs. to-one).

The cardinality of relation ``r`` follows MultiHopKG (Lin et al. 2018, §5.3.3): ``ξ_r`` is the average
number of correct answers of the queries ``(h, r, ?)`` with topic relation ``r``, counted over the triples
given (for a dataset: train + valid + test). ``r`` is *to-many* when ``ξ_r > 1.5``, else *to-one*. The
head-side counterpart (``side="head"``) averages over the queries ``(?, r, t)``, i.e. the tail queries of the
inverse relation ``r + R``.

:func:`relation_cardinality` and :func:`to_many_mask` work on id tensors alone (no Python loop per triple) so
that evaluation breakdowns can reuse them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from kgreason.data.dataset import SPLITS, Dataset

Side = Literal["tail", "head"]
TO_MANY_THRESHOLD = 1.5


def _check_triples(triples: torch.Tensor, num_relations: int) -> None:
    if triples.dim() != 2 or triples.shape[1] != 3:
        raise ValueError(
            f"triples must be a LongTensor[n, 3] of (head, relation, tail), got shape {tuple(triples.shape)}"
        )
    if triples.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"triples must hold integer ids, got dtype {triples.dtype}")
    if num_relations < 1:
        raise ValueError(f"num_relations must be positive, got {num_relations}")
    if len(triples):
        rmin, rmax = int(triples[:, 1].min()), int(triples[:, 1].max())
        if rmin < 0 or rmax >= num_relations:
            bad = rmin if rmin < 0 else rmax
            raise ValueError(
                f"relation id {bad} out of range [0, {num_relations}) (pass the number of relations)"
            )
        if int(triples[:, [0, 2]].min()) < 0:
            raise ValueError("entity ids must be non-negative")


def relation_cardinality(triples: torch.Tensor, num_relations: int, side: Side = "tail") -> torch.Tensor:
    """Average answer-set size ``ξ_r`` of every relation.

    Args:
        triples: ``LongTensor[n, 3]`` of (head, relation, tail) ids; duplicates are counted once.
        num_relations: ``R``; relation ids must lie in ``[0, R)`` (pass ``2R`` for triples with inverses).
        side: ``"tail"`` averages ``|{t : (h, r, t)}|`` over the queries ``(h, r, ?)``; ``"head"`` averages
            ``|{h : (h, r, t)}|`` over the queries ``(?, r, t)``.

    Returns:
        ``FloatTensor[R]`` on the device of ``triples``: answers per query (≥ 1) for each relation, ``NaN`` for a
        relation without triples (no queries to average over).
    """
    _check_triples(triples, num_relations)
    triples = triples.long()
    device = triples.device
    if side == "tail":
        query_ent, answer_ent = triples[:, 0], triples[:, 2]
    elif side == "head":
        query_ent, answer_ent = triples[:, 2], triples[:, 0]
    else:
        raise ValueError(f"side must be 'tail' or 'head', got {side!r}")
    rel = triples[:, 1]
    num_entities = int(triples[:, [0, 2]].max()) + 1 if len(triples) else 1
    query_key = query_ent * num_relations + rel  # one integer per (query entity, relation)
    if num_entities * num_entities * num_relations < 2**62:
        fact_key = torch.unique(query_key * num_entities + answer_ent)
        fact_rel = (fact_key // num_entities) % num_relations
    else:  # ids too large for one int64 key: dedupe the rows instead
        facts = torch.unique(torch.stack([query_ent, rel, answer_ent], dim=1), dim=0)
        fact_rel = facts[:, 1]
    query_rel = torch.unique(query_key) % num_relations
    answers = torch.bincount(fact_rel, minlength=num_relations).double()
    queries = torch.bincount(query_rel, minlength=num_relations).double()
    xi = answers / queries  # 0/0 -> NaN for relations without triples
    return xi.float().to(device)


def to_many_mask(
    triples: torch.Tensor, num_relations: int, threshold: float = TO_MANY_THRESHOLD, side: Side = "tail"
) -> torch.Tensor:
    """``BoolTensor[R]``: ``True`` where ``ξ_r > threshold`` (to-many); relations without triples are ``False``.

    Index it with a split's relation column to classify examples: ``to_many_mask(all_t, R)[test[:, 1]]``.
    """
    xi = relation_cardinality(triples, num_relations, side=side)
    return torch.nan_to_num(xi, nan=0.0) > threshold


@dataclass
class RelationStatistics:
    """One base relation: triples per split and its answer-set cardinality over all splits.

    ``tails_per_query`` is ``ξ_r`` of the queries ``(h, r, ?)``; ``heads_per_query`` that of ``(?, r, t)``
    (the inverse relation's tail queries). ``NaN`` when the relation has no triples.
    """

    relation_id: int
    label: str
    num_triples: dict[str, int]
    tails_per_query: float
    heads_per_query: float
    to_many: bool
    inverse_to_many: bool

    @property
    def num_train(self) -> int:
        return self.num_triples.get("train", 0)


@dataclass
class DatasetStatistics:
    """Summary of a :class:`~kgreason.data.Dataset`; :func:`format_table` renders it as text.

    ``degree_*``: number of training triples an entity takes part in (in-degree + out-degree; a self-loop
    counts twice), over all ``num_entities`` vocabulary entries. ``to_many_fraction[split]``: share of the
    split's triples whose relation is to-many (tail side; the "%" of MultiHopKG's Table 4).
    """

    name: str
    num_entities: int
    num_relations: int
    num_triples: dict[str, int]
    num_dropped_unseen: dict[str, int]
    num_duplicates: dict[str, int]
    degree_mean: float
    degree_median: float
    degree_max: int
    degree_min: int
    to_many_threshold: float
    to_many_fraction: dict[str, float]
    relations: list[RelationStatistics] = field(default_factory=list)

    @property
    def num_to_many(self) -> int:
        """Number of to-many relations (tail side)."""
        return sum(r.to_many for r in self.relations)


def _median(values: torch.Tensor) -> float:
    """Median of a 1-d tensor; the mean of the two middle values for an even count."""
    if values.numel() == 0:
        return float("nan")
    s = values.double().sort().values
    n = s.numel()
    return float(s[n // 2]) if n % 2 else float((s[n // 2 - 1] + s[n // 2]) / 2)


def dataset_statistics(ds: Dataset, threshold: float = TO_MANY_THRESHOLD) -> DatasetStatistics:
    """Compute :class:`DatasetStatistics` of ``ds`` (degrees over train; cardinalities over all splits)."""
    num_e, num_r = ds.num_entities, ds.num_relations
    train = ds.train
    degree = torch.bincount(torch.cat([train[:, 0], train[:, 2]]), minlength=num_e)
    all_t = ds.all_triples()
    xi_tail = relation_cardinality(all_t, num_r, side="tail")
    xi_head = relation_cardinality(all_t, num_r, side="head")
    many_tail = torch.nan_to_num(xi_tail, nan=0.0) > threshold
    many_head = torch.nan_to_num(xi_head, nan=0.0) > threshold
    per_split = {s: torch.bincount(ds.split(s)[:, 1], minlength=num_r).tolist() for s in SPLITS}
    fraction = {
        s: float(many_tail[ds.split(s)[:, 1]].double().mean()) if len(ds.split(s)) else float("nan")
        for s in SPLITS
    }
    relations = [
        RelationStatistics(
            relation_id=r,
            label=ds.relations.label(r),
            num_triples={s: per_split[s][r] for s in SPLITS},
            tails_per_query=float(xi_tail[r]),
            heads_per_query=float(xi_head[r]),
            to_many=bool(many_tail[r]),
            inverse_to_many=bool(many_head[r]),
        )
        for r in range(num_r)
    ]
    return DatasetStatistics(
        name=ds.name,
        num_entities=num_e,
        num_relations=num_r,
        num_triples={s: len(ds.split(s)) for s in SPLITS},
        num_dropped_unseen={s: ds.reports[s].num_dropped_unseen for s in SPLITS if s in ds.reports},
        num_duplicates={s: ds.reports[s].num_duplicates for s in SPLITS if s in ds.reports},
        degree_mean=float(degree.double().mean()) if num_e else float("nan"),
        degree_median=_median(degree),
        degree_max=int(degree.max()) if num_e else 0,
        degree_min=int(degree.min()) if num_e else 0,
        to_many_threshold=threshold,
        to_many_fraction=fraction,
        relations=relations,
    )


def _fit(label: str, width: int) -> str:
    """``label`` cut to ``width`` characters, keeping its end (the informative part of Freebase paths)."""
    return label if len(label) <= width else "..." + label[-(width - 3) :]


def _kind(many: bool, xi: float) -> str:
    return "-" if xi != xi else ("to-many" if many else "to-one")  # xi != xi: NaN


def format_table(stats: DatasetStatistics, max_label_width: int = 48) -> str:
    """Plain aligned text: a summary block, then one row per relation (counts, ξ of both sides, type)."""
    splits = [s for s in SPLITS if s in stats.num_triples]
    lines = [f"Dataset {stats.name}"]

    def row(key: str, value: str) -> None:
        lines.append(f"  {key:<26}{value}")

    row("entities", f"{stats.num_entities:,}")
    row("relations", f"{stats.num_relations:,}")
    row("triples", "  ".join(f"{s} {stats.num_triples[s]:,}" for s in splits))
    if any(stats.num_dropped_unseen.values()):
        row("dropped (unseen in train)", "  ".join(f"{s} {n:,}" for s, n in stats.num_dropped_unseen.items()))
    if any(stats.num_duplicates.values()):
        row("duplicates removed", "  ".join(f"{s} {n:,}" for s, n in stats.num_duplicates.items()))
    row(
        "train degree (in+out)",
        f"mean {stats.degree_mean:.2f}  median {stats.degree_median:g}  "
        f"min {stats.degree_min}  max {stats.degree_max}",
    )
    row(
        f"to-many (xi > {stats.to_many_threshold:g})",
        f"{stats.num_to_many} of {stats.num_relations} relations",
    )
    row("to-many share of triples", "  ".join(f"{s} {100 * stats.to_many_fraction[s]:.1f}%" for s in splits))

    lines.append("")
    lines.append("Relations (xi = answers per query over all splits; tail: (h, r, ?), head: (?, r, t))")
    width = max([len("relation")] + [len(_fit(r.label, max_label_width)) for r in stats.relations])
    id_w = max(2, len(str(stats.num_relations - 1)))
    count_w = {s: max([len(s)] + [len(f"{r.num_triples[s]:,}") for r in stats.relations]) for s in splits}
    header = (
        f"  {'id':>{id_w}}  {'relation':<{width}}  "
        + "  ".join(f"{s:>{count_w[s]}}" for s in splits)
        + f"  {'xi tail':>7}  {'xi head':>7}  {'tail type':<9}  {'head type':<9}"
    )
    lines.append(header)
    lines.append("  " + "-" * (len(header) - 2))
    for r in stats.relations:
        lines.append(
            f"  {r.relation_id:>{id_w}}  {_fit(r.label, max_label_width):<{width}}  "
            + "  ".join(f"{r.num_triples[s]:>{count_w[s]},}" for s in splits)
            + f"  {r.tails_per_query:>7.2f}  {r.heads_per_query:>7.2f}"
            + f"  {_kind(r.to_many, r.tails_per_query):<9}  {_kind(r.inverse_to_many, r.heads_per_query):<9}"
        )
    return "\n".join(line.rstrip() for line in lines)
