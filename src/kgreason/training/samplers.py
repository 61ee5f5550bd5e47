"""Negative samplers for sLCWA training: corrupt positive triples into presumed-false ones.

Every sampler maps ``positives: LongTensor[b, 3]`` to ``(negatives: LongTensor[b, k, 3], valid: BoolTensor[b, k]
| None)`` with ``k = num_negs_per_pos``; ``negatives[i, j]`` is ``positives[i]`` with exactly one column
replaced (head, relation or tail), never by the value it had. With ``filtered=True``, negatives that are known
positives (any triple passed as ``filter_triples``, by default the training triples) are marked invalid in
``valid`` -- losses ignore them -- instead of being trained as false.

Samplers (registry :data:`NEGATIVE_SAMPLERS`):

* ``uniform`` (alias ``basic``): the corrupted column is drawn uniformly among ``corruption`` (default head and
  tail), the new value uniformly among all others.
* ``bernoulli`` (Wang et al. 2014): head or tail with per-relation probability ``P(head) = tph / (tph + hpt)``
  (tails per head, heads per tail): 1-to-N relations get their heads corrupted more often, which produces
  fewer false negatives.
* ``pseudo_typed``: a head is replaced by another entity seen as a head of the same relation in training,
  a tail by another seen tail ("pseudo types"); when a relation has a single such entity, any entity is used.

All sampling is vectorised and runs on the device of the triples with the generator given to ``sample``.
Membership tests hash a triple to one int64 key ``(h * R + r) * E + t`` and search a sorted key tensor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from kgreason.registry import Registry

__all__ = [
    "NEGATIVE_SAMPLERS",
    "BernoulliNegativeSampler",
    "NegativeSampler",
    "PseudoTypedNegativeSampler",
    "TripleSet",
    "UniformNegativeSampler",
    "make_negative_sampler",
    "triple_keys",
]

NEGATIVE_SAMPLERS: Registry[type[NegativeSampler]] = Registry("negative sampler")

HEAD, RELATION, TAIL = 0, 1, 2
_SIDE_COLUMN = {"head": HEAD, "relation": RELATION, "tail": TAIL}


def triple_keys(triples: torch.Tensor, num_entities: int, num_relations: int) -> torch.Tensor:
    """One int64 key per triple, ``(h * R + r) * E + t``: ``[..., 3] -> [...]`` (a bijection for valid ids)."""
    if num_entities * num_entities * num_relations >= 2**63:
        raise OverflowError("too many entities/relations to hash triples into int64 keys")
    return (triples[..., 0] * num_relations + triples[..., 1]) * num_entities + triples[..., 2]


class TripleSet:
    """A set of triples for fast vectorised membership tests (sorted int64 keys + ``torch.searchsorted``)."""

    def __init__(self, triples: torch.Tensor, num_entities: int, num_relations: int) -> None:
        self.num_entities = int(num_entities)
        self.num_relations = int(num_relations)
        self.keys = torch.unique(triple_keys(triples.long(), self.num_entities, self.num_relations))  # sorted

    def to(self, device: torch.device | str) -> TripleSet:
        self.keys = self.keys.to(device)
        return self

    def __len__(self) -> int:
        return int(self.keys.numel())

    def contains(self, triples: torch.Tensor) -> torch.Tensor:
        """``triples[..., 3] -> BoolTensor[...]``: whether each triple is in the set."""
        query = triple_keys(triples, self.num_entities, self.num_relations)
        if self.keys.numel() == 0:
            return torch.zeros_like(query, dtype=torch.bool)
        keys = self.keys.to(query.device)
        pos = torch.searchsorted(keys, query).clamp_(max=keys.numel() - 1)
        return keys[pos] == query


class NegativeSampler:
    """Base sampler: uniform corruption of the columns in ``corruption``.

    Args:
        triples: ``LongTensor[n, 3]``, the training triples (statistics of Bernoulli/pseudo-typed sampling, and the
            default filter set).
        num_entities: ``E``.
        num_relations: number of relation ids in ``triples`` (``2R`` when they include inverse triples).
        num_negs_per_pos: ``k``, negatives per positive.
        corruption: columns that may be corrupted, among ``"head"``, ``"relation"``, ``"tail"``.
        filtered: mark negatives that are known positives as invalid (returned mask).
        filter_triples: known positives for filtering; default ``triples``.
        side_per_positive: draw the corrupted column once per positive, for all its ``k`` negatives (as
            PyKEEN's basic sampler and the RotatE reference, which corrupt a whole positive -- or batch -- on one
            side), instead of once per negative. Each negative's column has the same distribution either way;
            :class:`~kgreason.training.slcwa.SLCWATrainingLoop` then scores each positive on one side only.
    """

    def __init__(
        self,
        triples: torch.Tensor,
        num_entities: int,
        num_relations: int,
        num_negs_per_pos: int = 1,
        corruption: Sequence[str] = ("head", "tail"),
        filtered: bool = False,
        filter_triples: torch.Tensor | None = None,
        side_per_positive: bool = False,
    ) -> None:
        if num_negs_per_pos < 1:
            raise ValueError(f"num_negs_per_pos must be >= 1, got {num_negs_per_pos}")
        bad = [c for c in corruption if c not in _SIDE_COLUMN]
        if bad or not corruption:
            raise ValueError(
                f"corruption must be a non-empty subset of head, relation, tail; got {list(corruption)}"
            )
        if "relation" in corruption and num_relations < 2:
            raise ValueError("relation corruption needs at least 2 relations")
        self.num_entities = int(num_entities)
        self.num_relations = int(num_relations)
        self.num_negs_per_pos = int(num_negs_per_pos)
        self.corruption = tuple(dict.fromkeys(corruption))
        self.columns = torch.tensor([_SIDE_COLUMN[c] for c in self.corruption], dtype=torch.long)
        self.side_per_positive = bool(side_per_positive)
        self.filtered = bool(filtered)
        self.filter_set = (
            TripleSet(triples if filter_triples is None else filter_triples, num_entities, num_relations)
            if filtered
            else None
        )

    def to(self, device: torch.device | str) -> NegativeSampler:
        """Move the sampler's tensors to ``device``."""
        for name, value in vars(self).items():
            if isinstance(value, torch.Tensor):
                setattr(self, name, value.to(device))
        if self.filter_set is not None:
            self.filter_set.to(device)
        return self

    # ---- pieces subclasses override ----------------------------------------------------------------------

    def choose_columns(self, positives: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Which column each negative corrupts: ``LongTensor[b, k]`` of 0 (head), 1 (relation), 2 (tail)."""
        b, k = positives.shape[0], self.num_negs_per_pos
        columns = self.columns.to(positives.device)
        if columns.numel() == 1:
            return columns.expand(b, k).clone()
        if self.side_per_positive:
            pick = torch.randint(columns.numel(), (b, 1), device=positives.device, generator=generator)
            return columns[pick].expand(b, k)
        pick = torch.randint(columns.numel(), (b, k), device=positives.device, generator=generator)
        return columns[pick]

    def replacement_entities(
        self, positives: torch.Tensor, column: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        """New entity ids for the entity columns: ``LongTensor[b, k]`` (entries where ``column`` is the relation
        are ignored). Must differ from the entity they replace."""
        original = torch.where(column == HEAD, positives[:, None, HEAD], positives[:, None, TAIL])
        return _uniform_excluding(original, self.num_entities, generator)

    # ---- sampling ---------------------------------------------------------------------------------------

    def sample(
        self, positives: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``positives[b, 3] -> (negatives[b, k, 3], valid[b, k] or None)``; ``valid`` only when ``filtered``."""
        column = self.choose_columns(positives, generator)
        negatives = positives.unsqueeze(1).repeat(1, self.num_negs_per_pos, 1)
        entities = self.replacement_entities(positives, column, generator)
        if "relation" in self.corruption:
            relations = _uniform_excluding(
                positives[:, None, RELATION].expand_as(column), self.num_relations, generator
            )
            new_values = torch.where(column == RELATION, relations, entities)
        else:
            new_values = entities
        negatives.scatter_(2, column.unsqueeze(-1), new_values.unsqueeze(-1))
        valid = None if self.filter_set is None else ~self.filter_set.contains(negatives)
        return negatives, valid


def _uniform_excluding(original: torch.Tensor, n: int, generator: torch.Generator | None) -> torch.Tensor:
    """Uniform ids in ``0..n-1`` other than ``original`` (same shape): draw in ``0..n-2``, shift those ``>=``."""
    draw = torch.randint(n - 1, original.shape, device=original.device, generator=generator)
    return draw + (draw >= original).long()


@NEGATIVE_SAMPLERS.register("uniform", "basic")
class UniformNegativeSampler(NegativeSampler):
    """Uniform corruption (see :class:`NegativeSampler`)."""


@NEGATIVE_SAMPLERS.register("bernoulli")
class BernoulliNegativeSampler(NegativeSampler):
    """Head or tail corruption with the per-relation probability ``P(head) = tph / (tph + hpt)`` (Wang et al.).

    ``tph[r]`` is the mean number of distinct tails per (head, r) and ``hpt[r]`` of heads per (r, tail), over
    ``triples``; ``self.head_probability[r]`` holds ``P(head)``. ``corruption`` must be head and tail.
    """

    def __init__(self, triples: torch.Tensor, num_entities: int, num_relations: int, **kwargs: Any) -> None:
        corruption = tuple(kwargs.pop("corruption", ("head", "tail")))
        if sorted(corruption) != ["head", "tail"]:
            raise ValueError(
                f"Bernoulli sampling corrupts heads and tails; got corruption={list(corruption)}"
            )
        super().__init__(triples, num_entities, num_relations, corruption=corruption, **kwargs)
        self.head_probability = bernoulli_head_probability(triples, num_relations)

    def choose_columns(self, positives: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        b, k = positives.shape[0], self.num_negs_per_pos
        p_head = self.head_probability.to(positives.device)[positives[:, RELATION]]
        u = torch.rand((b, 1 if self.side_per_positive else k), device=positives.device, generator=generator)
        return torch.where(u < p_head.unsqueeze(1), HEAD, TAIL).expand(b, k)


def bernoulli_head_probability(triples: torch.Tensor, num_relations: int) -> torch.Tensor:
    """``FloatTensor[R]``: ``tph / (tph + hpt)`` per relation (0.5 for relations without triples)."""
    triples = triples.long()
    r = triples[:, RELATION]
    ones = torch.ones_like(r, dtype=torch.float64)
    n_triples = torch.zeros(num_relations, dtype=torch.float64, device=triples.device).index_add_(0, r, ones)

    def distinct_per_relation(cols: list[int]) -> torch.Tensor:
        pairs = torch.unique(triples[:, cols], dim=0)  # distinct (r, entity) pairs
        counts = torch.zeros(num_relations, dtype=torch.float64, device=triples.device)
        return counts.index_add_(
            0, pairs[:, 0], torch.ones(len(pairs), dtype=torch.float64, device=triples.device)
        )

    n_heads = distinct_per_relation([RELATION, HEAD])
    n_tails = distinct_per_relation([RELATION, TAIL])
    tph = n_triples / n_heads.clamp(min=1)  # tails per head
    hpt = n_triples / n_tails.clamp(min=1)  # heads per tail
    prob = torch.where(n_triples > 0, tph / (tph + hpt).clamp(min=1e-12), torch.full_like(tph, 0.5))
    return prob.float()


@NEGATIVE_SAMPLERS.register("pseudo_typed", "pseudotyped", "typed")
class PseudoTypedNegativeSampler(NegativeSampler):
    """Entities are replaced by others seen in the same position of the same relation in ``triples``.

    For each relation the heads (and tails) seen in training are kept in one CSR structure (sorted unique
    ``(r, entity)`` pairs plus offsets), so a batch draws all its replacements with a few tensor operations.
    The replaced entity itself is excluded; when nothing else is left (a relation with a single head or tail)
    any other entity is used.
    """

    def __init__(self, triples: torch.Tensor, num_entities: int, num_relations: int, **kwargs: Any) -> None:
        super().__init__(triples, num_entities, num_relations, **kwargs)
        if "relation" in self.corruption:
            raise ValueError("pseudo-typed sampling corrupts heads and tails only")
        self.head_pool, self.head_offsets, self.head_keys = _relation_pools(
            triples, HEAD, num_relations, num_entities
        )
        self.tail_pool, self.tail_offsets, self.tail_keys = _relation_pools(
            triples, TAIL, num_relations, num_entities
        )

    def replacement_entities(
        self, positives: torch.Tensor, column: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        rel = positives[:, None, RELATION].expand_as(column)
        heads = positives[:, None, HEAD].expand_as(column)
        tails = positives[:, None, TAIL].expand_as(column)
        new_heads = self._draw(self.head_pool, self.head_offsets, self.head_keys, rel, heads, generator)
        new_tails = self._draw(self.tail_pool, self.tail_offsets, self.tail_keys, rel, tails, generator)
        return torch.where(column == HEAD, new_heads, new_tails)

    def _draw(
        self,
        pool: torch.Tensor,
        offsets: torch.Tensor,
        keys: torch.Tensor,
        rel: torch.Tensor,
        original: torch.Tensor,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """Uniform draws from ``rel``'s pool without ``original`` (shape of ``rel``); any other entity when the
        pool holds nothing else."""
        start = offsets[rel]
        size = offsets[rel + 1] - start
        query = rel * self.num_entities + original
        pos = torch.searchsorted(keys, query).clamp(max=keys.numel() - 1)
        found = keys[pos] == query
        own = pos - start  # the original's index in its pool, where found
        choices = size - found.long()
        u = torch.rand(rel.shape, device=rel.device, generator=generator)
        draw = torch.minimum((u * choices).long(), (choices - 1).clamp(min=0))
        draw = draw + (found & (draw >= own)).long()
        typed = pool[(start + draw).clamp(max=pool.numel() - 1)]
        fallback = _uniform_excluding(original, self.num_entities, generator)
        return torch.where(choices > 0, typed, fallback)


def _relation_pools(
    triples: torch.Tensor, column: int, num_relations: int, num_entities: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Distinct entities of ``column`` per relation: ``(pool[m], offsets[R + 1], keys[m])``; relation ``r``'s
    entities are ``pool[offsets[r]:offsets[r + 1]]`` (sorted) and ``keys = r * E + entity`` (sorted)."""
    pairs = torch.unique(triples[:, [RELATION, column]].long(), dim=0)  # sorted by (r, entity)
    counts = torch.bincount(pairs[:, 0], minlength=num_relations)
    offsets = torch.zeros(num_relations + 1, dtype=torch.long, device=triples.device)
    offsets[1:] = torch.cumsum(counts, 0)
    keys = pairs[:, 0] * num_entities + pairs[:, 1]
    return pairs[:, 1].contiguous(), offsets, keys


def make_negative_sampler(
    sampler: str | NegativeSampler,
    triples: torch.Tensor,
    num_entities: int,
    num_relations: int,
    **kwargs: Any,
) -> NegativeSampler:
    """A sampler by name (``"uniform"``/``"basic"``, ``"bernoulli"``, ``"pseudo_typed"``) or as given."""
    if isinstance(sampler, NegativeSampler):
        return sampler
    cls = NEGATIVE_SAMPLERS.get(sampler)
    return cls(triples, num_entities, num_relations, **kwargs)
