"""The graph a path-reasoning agent walks on: padded per-entity action lists over train + inverse edges.

Conventions (see ``docs/architecture.md``):

* relations ``0..R-1`` are the base relations, ``r + R`` the inverse of ``r`` and ``2R`` is ``NO_OP`` (the
  self-loop that lets a walker stay put, i.e. stop early);
* action slot ``0`` of every entity is ``NO_OP`` to the entity itself and is always valid;
* the graph is built from **training** triples only; any triple given in ``exclude`` (valid/test links) and its
  inverse is removed before anything else, so evaluation links are never walkable;
* an entity with more than ``max_actions`` out-edges keeps the ``max_actions`` edges whose targets have the
  highest PageRank (Lin et al. 2018, §4.3); PageRank is computed here by power iteration on the undirected
  training graph (no precomputed file).

:class:`AnswerIndex` holds the known answers of ``(entity, relation)`` queries (for MINERVA's rule that the other
known answers of a training query are not valid final targets).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kgreason.typing import BoolTensor, FloatTensor, LongTensor

NO_OP_SLOT = 0

__all__ = [
    "NO_OP_SLOT",
    "ActionGraph",
    "AnswerIndex",
    "inverse_relation",
    "isin_rows",
    "normalize_triples",
    "pagerank",
]


def inverse_relation(relations: LongTensor, num_relations: int) -> LongTensor:
    """Inverse ids: ``r -> r + R`` for base relations, ``r + R -> r`` for inverse ones. ``NO_OP`` (``2R``) maps
    to itself."""
    inv = torch.where(relations < num_relations, relations + num_relations, relations - num_relations)
    return torch.where(relations == 2 * num_relations, relations, inv)


def normalize_triples(triples: LongTensor, num_relations: int) -> LongTensor:
    """Rewrite triples with an inverse relation ``(t, r + R, h)`` as the base triple ``(h, r, t)``.

    ``triples: LongTensor[n, 3]`` -> ``LongTensor[n, 3]`` with relations in ``[0, R)``.
    """
    triples = triples.long()
    inv = triples[:, 1] >= num_relations
    if not bool(inv.any()):
        return triples
    out = triples.clone()
    out[inv, 0] = triples[inv, 2]
    out[inv, 1] = triples[inv, 1] - num_relations
    out[inv, 2] = triples[inv, 0]
    return out


def pagerank(
    edges: LongTensor,
    num_entities: int,
    damping: float = 0.85,
    tol: float = 1e-10,
    max_iter: int = 200,
) -> FloatTensor:
    """PageRank of the **undirected** graph with the given edges, by vectorised power iteration.

    Args:
        edges: ``LongTensor[n, 2]`` of (node, node) pairs; each edge is used in both directions, parallel edges
            add weight, self-loops are ignored.
        num_entities: number of nodes ``E``.
        damping: probability of following an edge (the rest teleports uniformly).
        tol: stop when the L1 change between iterations falls below it.
        max_iter: iteration cap.

    Returns:
        ``FloatTensor[E]`` (float64) summing to 1. Isolated nodes spread their mass uniformly (dangling rule).
    """
    device = edges.device
    edges = edges[edges[:, 0] != edges[:, 1]]
    src = torch.cat([edges[:, 0], edges[:, 1]])
    dst = torch.cat([edges[:, 1], edges[:, 0]])
    deg = torch.bincount(src, minlength=num_entities).double()
    dangling = deg == 0
    inv_deg = torch.where(dangling, torch.zeros_like(deg), 1.0 / deg.clamp_min(1.0))
    rank = torch.full((num_entities,), 1.0 / max(num_entities, 1), dtype=torch.float64, device=device)
    for _ in range(max_iter):
        flow = torch.zeros_like(rank).index_add_(0, dst, (rank * inv_deg)[src])
        new = damping * (flow + rank[dangling].sum() / num_entities) + (1.0 - damping) / num_entities
        new = new / new.sum()
        delta = float((new - rank).abs().sum())
        rank = new
        if delta < tol:
            break
    return rank


@dataclass
class AnswerIndex:
    """Known answers of ``(entity, relation)`` queries as CSR over sorted query keys.

    Built from triples **with** inverses, so that ``(t, r + R)`` has the heads of ``r`` as answers.
    ``keys: LongTensor[q]`` sorted query keys ``entity * num_relation_ids + relation``; the answers of query ``i``
    are ``answers[indptr[i]:indptr[i + 1]]``.
    """

    num_entities: int
    num_relation_ids: int
    keys: LongTensor
    indptr: LongTensor
    answers: LongTensor

    @classmethod
    def from_triples(cls, triples: LongTensor, num_entities: int, num_relations: int) -> AnswerIndex:
        """``triples: LongTensor[n, 3]`` of base relations; their inverses are added here."""
        triples = normalize_triples(triples, num_relations)
        inv = torch.stack([triples[:, 2], triples[:, 1] + num_relations, triples[:, 0]], dim=1)
        both = torch.cat([triples, inv])
        nrel = 2 * num_relations
        key = both[:, 0] * nrel + both[:, 1]
        fact = torch.unique(key * num_entities + both[:, 2])  # sorted, deduplicated
        fkey, fans = fact // num_entities, fact % num_entities
        keys, counts = torch.unique_consecutive(fkey, return_counts=True)
        indptr = torch.zeros(len(keys) + 1, dtype=torch.long, device=triples.device)
        indptr[1:] = torch.cumsum(counts, 0)
        return cls(num_entities, nrel, keys, indptr, fans)

    def to(self, device: torch.device | str) -> AnswerIndex:
        return AnswerIndex(
            self.num_entities,
            self.num_relation_ids,
            self.keys.to(device),
            self.indptr.to(device),
            self.answers.to(device),
        )

    def dense(self, entities: LongTensor, relations: LongTensor) -> BoolTensor:
        """``BoolTensor[b, E]``: ``True`` at the known answers of each query ``(entities[i], relations[i])``."""
        b = entities.shape[0]
        out = torch.zeros(b, self.num_entities, dtype=torch.bool, device=entities.device)
        if b == 0 or self.keys.numel() == 0:
            return out
        q = entities.long() * self.num_relation_ids + relations.long()
        pos = torch.searchsorted(self.keys, q).clamp_max(self.keys.numel() - 1)
        found = self.keys[pos] == q
        start = torch.where(found, self.indptr[pos], torch.zeros_like(pos))
        count = torch.where(found, self.indptr[pos + 1] - self.indptr[pos], torch.zeros_like(pos))
        rows = torch.repeat_interleave(torch.arange(b, device=entities.device), count)
        offsets = torch.arange(rows.numel(), device=entities.device) - torch.repeat_interleave(
            torch.cumsum(count, 0) - count, count
        )
        cols = self.answers[torch.repeat_interleave(start, count) + offsets]
        out[rows, cols] = True
        return out

    def num_answers(self, entities: LongTensor, relations: LongTensor) -> LongTensor:
        """``LongTensor[b]``: number of known answers of each query (0 for an unseen query)."""
        if self.keys.numel() == 0:
            return torch.zeros_like(entities)
        q = entities.long() * self.num_relation_ids + relations.long()
        pos = torch.searchsorted(self.keys, q).clamp_max(self.keys.numel() - 1)
        found = self.keys[pos] == q
        return torch.where(found, self.indptr[pos + 1] - self.indptr[pos], torch.zeros_like(pos))


@dataclass
class ActionGraph:
    """Training graph with inverse edges, as CSR and as padded per-entity action tables.

    Attributes:
        num_entities: ``E``.
        num_relations: ``R`` base relations; edges use ids ``[0, 2R)``; ``NO_OP`` is ``2R``.
        triples: ``LongTensor[n, 3]`` the base training triples the graph was built from (after ``exclude``).
        indptr: ``LongTensor[E + 1]`` CSR row pointers of **all** out-edges (train + inverse, before the cap),
            sorted by (head, relation, tail).
        edge_relations: ``LongTensor[2n]`` relation of each CSR edge.
        edge_targets: ``LongTensor[2n]`` target of each CSR edge.
        action_relations: ``LongTensor[E, A]`` relation of each action slot; slot 0 is ``NO_OP``; padding holds
            ``NO_OP`` too.
        action_targets: ``LongTensor[E, A]`` target of each slot; slot 0 and padding point at the entity itself.
        action_mask: ``BoolTensor[E, A]`` valid slots (slot 0 always ``True``).
        pagerank: ``FloatTensor[E]`` (float64) PageRank of the undirected training graph, sums to 1.
        max_actions: the fan-out cap ``eta`` on real edges (``NO_OP`` comes on top); ``None`` = no cap.

    ``A = 1 + min(max_actions, largest out-degree)``. Kept edges of an entity are ordered by decreasing target
    PageRank (ties: relation, then target id).
    """

    num_entities: int
    num_relations: int
    triples: LongTensor
    indptr: LongTensor
    edge_relations: LongTensor
    edge_targets: LongTensor
    action_relations: LongTensor
    action_targets: LongTensor
    action_mask: BoolTensor
    pagerank: FloatTensor
    max_actions: int | None

    # ---- construction -------------------------------------------------------------------------------------

    @classmethod
    def from_triples(
        cls,
        train: LongTensor,
        num_entities: int,
        num_relations: int,
        max_actions: int | None = None,
        device: torch.device | str | None = None,
        exclude: LongTensor | None = None,
    ) -> ActionGraph:
        """Build the graph of ``train`` (base relations, ``LongTensor[n, 3]``) plus inverse edges.

        Args:
            train: training triples ``(h, r, t)`` with ``r`` in ``[0, R)`` (inverse ids are normalised).
            num_entities: ``E``.
            num_relations: ``R`` (base relations).
            max_actions: fan-out cap ``eta`` on real out-edges per entity (highest target PageRank kept);
                ``None`` keeps all.
            device: where the tensors live (default: that of ``train``).
            exclude: ``LongTensor[m, 3]`` triples (e.g. valid + test) removed from the graph together with their
                inverses.
        """
        device = torch.device(device) if device is not None else train.device
        if max_actions is not None and max_actions < 1:
            raise ValueError(f"max_actions must be >= 1 (or None for no cap), got {max_actions}")
        train = normalize_triples(train.to(device), num_relations)
        if train.numel():
            if int(train[:, [0, 2]].max()) >= num_entities or int(train.min()) < 0:
                raise ValueError(f"entity ids must lie in [0, {num_entities})")
            if int(train[:, 1].max()) >= num_relations:
                raise ValueError(f"relation ids must lie in [0, {2 * num_relations}) (base or inverse)")
        train = torch.unique(train, dim=0) if train.numel() else train.reshape(0, 3)
        if exclude is not None and exclude.numel():
            ex = normalize_triples(exclude.to(device), num_relations)
            train = train[~isin_rows(train, ex, num_entities, num_relations)]
        return cls._build(train, num_entities, num_relations, max_actions)

    @classmethod
    def from_dataset(
        cls, dataset: object, max_actions: int | None = None, device: torch.device | str | None = None
    ) -> ActionGraph:
        """The graph of ``dataset.train`` with ``dataset.valid`` and ``dataset.test`` links (and inverses) excluded."""
        from kgreason.data.dataset import Dataset

        if not isinstance(dataset, Dataset):
            raise TypeError(f"expected a kgreason.data.Dataset, got {type(dataset).__name__}")
        return cls.from_triples(
            dataset.train,
            dataset.num_entities,
            dataset.num_relations,
            max_actions=max_actions,
            device=device,
            exclude=torch.cat([dataset.valid, dataset.test]),
        )

    @classmethod
    def _build(
        cls, train: LongTensor, num_entities: int, num_relations: int, max_actions: int | None
    ) -> ActionGraph:
        device = train.device
        E, R = num_entities, num_relations
        heads = torch.cat([train[:, 0], train[:, 2]])
        rels = torch.cat([train[:, 1], train[:, 1] + R])
        tails = torch.cat([train[:, 2], train[:, 0]])
        # CSR sorted by (head, relation, tail)
        order = _lexsort([tails, rels, heads])
        heads, rels, tails = heads[order], rels[order], tails[order]
        counts = torch.bincount(heads, minlength=E)
        indptr = torch.zeros(E + 1, dtype=torch.long, device=device)
        indptr[1:] = torch.cumsum(counts, 0)

        pr = pagerank(train[:, [0, 2]], E)

        # order each entity's edges by decreasing target PageRank (stable: ties keep (relation, tail) order)
        by_pr = _lexsort([-pr[tails], heads])  # the CSR order is already (relation, tail) within a head
        h2, r2, t2 = heads[by_pr], rels[by_pr], tails[by_pr]
        rank = torch.arange(h2.numel(), device=device) - indptr[h2]
        keep = rank < max_actions if max_actions is not None else torch.ones_like(rank, dtype=torch.bool)
        h2, r2, t2, rank = h2[keep], r2[keep], t2[keep], rank[keep]
        max_degree = int(counts.max()) if counts.numel() else 0
        width = 1 + (max_degree if max_actions is None else min(max_actions, max_degree))

        self_ids = torch.arange(E, device=device)
        action_relations = torch.full((E, width), 2 * R, dtype=torch.long, device=device)
        action_targets = self_ids[:, None].expand(E, width).clone()
        action_mask = torch.zeros(E, width, dtype=torch.bool, device=device)
        action_mask[:, NO_OP_SLOT] = True
        action_relations[h2, rank + 1] = r2
        action_targets[h2, rank + 1] = t2
        action_mask[h2, rank + 1] = True
        return cls(
            num_entities=E,
            num_relations=R,
            triples=train,
            indptr=indptr,
            edge_relations=rels,
            edge_targets=tails,
            action_relations=action_relations,
            action_targets=action_targets,
            action_mask=action_mask,
            pagerank=pr,
            max_actions=max_actions,
        )

    # ---- properties and helpers ---------------------------------------------------------------------------

    @property
    def no_op(self) -> int:
        """Relation id of ``NO_OP`` (``2R``)."""
        return 2 * self.num_relations

    @property
    def num_relation_ids(self) -> int:
        """Relation ids used in actions: ``2R + 1`` (base, inverse, ``NO_OP``)."""
        return 2 * self.num_relations + 1

    @property
    def num_actions(self) -> int:
        """``A``: the width of the action tables (``NO_OP`` + at most ``max_actions`` edges)."""
        return int(self.action_relations.shape[1])

    @property
    def device(self) -> torch.device:
        return self.action_relations.device

    def out_degree(self) -> LongTensor:
        """``LongTensor[E]``: out-edges per entity in the full (uncapped) graph, inverse edges included."""
        return self.indptr[1:] - self.indptr[:-1]

    def edges(self) -> LongTensor:
        """``LongTensor[2n, 3]`` every (uncapped) edge ``(head, relation, tail)``, inverse edges included."""
        heads = torch.repeat_interleave(
            torch.arange(self.num_entities, device=self.device), self.out_degree()
        )
        return torch.stack([heads, self.edge_relations, self.edge_targets], dim=1)

    def has_edges(self, triples: LongTensor) -> BoolTensor:
        """``BoolTensor[m]``: whether each ``(h, r, t)`` (``r`` base or inverse) is an edge of the uncapped graph."""
        triples = triples.to(self.device).long()
        if triples.numel() == 0:
            return torch.zeros(0, dtype=torch.bool, device=self.device)
        return isin_rows(triples, self.edges(), self.num_entities, 2 * self.num_relations)

    def to(self, device: torch.device | str) -> ActionGraph:
        """A copy with every tensor on ``device``."""
        return ActionGraph(
            self.num_entities,
            self.num_relations,
            self.triples.to(device),
            self.indptr.to(device),
            self.edge_relations.to(device),
            self.edge_targets.to(device),
            self.action_relations.to(device),
            self.action_targets.to(device),
            self.action_mask.to(device),
            self.pagerank.to(device),
            self.max_actions,
        )

    def answer_index(self) -> AnswerIndex:
        """Known answers of every ``(entity, relation)`` query of the graph's triples (inverses included)."""
        return AnswerIndex.from_triples(self.triples, self.num_entities, self.num_relations)


def _lexsort(keys: list[torch.Tensor]) -> LongTensor:
    """Indices sorting by ``keys[-1]``, then ``keys[-2]``, ... (least significant key first, like numpy)."""
    n = keys[0].numel()
    order = torch.arange(n, device=keys[0].device)
    for k in keys:
        order = order[torch.sort(k[order], stable=True).indices]
    return order


def isin_rows(rows: LongTensor, table: LongTensor, num_entities: int, num_relation_ids: int) -> BoolTensor:
    """``BoolTensor[n]``: whether each ``(h, r, t)`` row of ``rows`` occurs in ``table`` (``[m, 3]``)."""
    if table.numel() == 0:
        return torch.zeros(rows.shape[0], dtype=torch.bool, device=rows.device)

    def key(x: LongTensor) -> LongTensor:
        return (x[:, 0] * num_relation_ids + x[:, 1]) * num_entities + x[:, 2]

    return torch.isin(key(rows), key(table))
