"""Filtered ranks of true answers among all entities, computed batch-wise without a loop per query.

Conventions (higher score = better):

- ``optimistic`` rank = 1 + #(candidates scoring strictly higher than the true answer);
- ``pessimistic`` rank = 1 + #(candidates scoring higher *or equal*), the true answer itself not counted,
  i.e. every tie is counted against the model;
- ``realistic`` rank = mean of the two (the expected rank when ties are broken uniformly at random).

*Candidates* are all entities except the other known true answers of the query (filtered setting): an
entity ``e != true`` is removed when the filter set holds ``(h, r, e)`` (tail queries) or ``(e, r, t)``
(head queries). The true answer itself is always kept.

``-inf`` scores are allowed (e.g. entities a beam search never reached): they tie with each other behind
every finite score. If the *true* answer scores ``-inf`` it shares that tie block, so its optimistic rank
is 1 + #(candidates with a score > -inf), its pessimistic rank counts every remaining candidate, and the
realistic rank is the mean over the tie block. ``NaN`` scores raise :class:`ValueError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

Side = Literal["head", "tail"]
RANK_TYPES: tuple[str, ...] = ("optimistic", "pessimistic", "realistic")

# Above this many entities a float32 sum of 0/1 indicators is no longer exact.
_FLOAT32_EXACT = 2**24
# Scores per block of rows and per CPU thread compared at once (512 KiB of float32: the block and its work
# buffer stay in L2 between the passes; measured 2-4x faster than whole-batch passes).
_CPU_CHUNK_ELEMENTS = 2**17


class FilterIndex:
    """Known answers of every ``(h, r, ?)`` and ``(?, r, t)`` query, as two CSR indexes built once.

    For tail queries the key of ``(h, r)`` is ``h * num_keys_r + r``; the distinct keys are sorted and
    ``offsets[i]:offsets[i + 1]`` delimits the answers (tails) of the ``i``-th key in ``answers``. Head
    queries use ``t * num_keys_r + r`` and hold heads. Duplicate triples are removed.

    Args:
        triples: ``LongTensor[m, 3]`` of known true (head, relation, tail) triples (train + valid + test).
        num_entities: number of entities ``E``; every entity id must lie in ``[0, E)``.
    """

    def __init__(self, triples: torch.Tensor, num_entities: int) -> None:
        triples = _check_triples(triples, num_entities, "filter_triples")
        self.num_entities = int(num_entities)
        self.num_keys_r = int(triples[:, 1].max()) + 1 if len(triples) else 1
        tail_index = self._build(triples[:, 0], triples[:, 1], triples[:, 2])
        self.num_triples = len(tail_index[2])
        self._index: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {
            "tail": tail_index,
            "head": self._build(triples[:, 2], triples[:, 1], triples[:, 0]),
        }

    def _build(
        self, anchor: torch.Tensor, relation: torch.Tensor, answer: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(unique query keys [q], offsets [q + 1], answers [m'])`` with duplicates removed."""
        keys = anchor * self.num_keys_r + relation
        width = max(1, self.num_entities)
        if (int(keys.max()) + 1 if len(keys) else 1) * width < 2**62:
            # one int64 per (query, answer): sorting it groups by query, unique drops duplicate triples
            pairs = torch.unique(keys * width + answer)
            keys, answer = pairs // width, pairs % width
        else:  # ids too large for one key: lexicographic order by two stable sorts, then drop repeats
            order = torch.argsort(answer, stable=True)
            order = order[torch.argsort(keys[order], stable=True)]
            keys, answer = keys[order], answer[order]
            new = torch.ones_like(keys, dtype=torch.bool)
            new[1:] = (keys[1:] != keys[:-1]) | (answer[1:] != answer[:-1])
            keys, answer = keys[new], answer[new]
        unique_keys, counts = torch.unique_consecutive(keys, return_counts=True)
        offsets = torch.zeros(len(unique_keys) + 1, dtype=torch.long, device=keys.device)
        torch.cumsum(counts, dim=0, out=offsets[1:])
        return unique_keys, offsets, answer

    @property
    def device(self) -> torch.device:
        return self._index["tail"][0].device

    def to(self, device: torch.device | str) -> FilterIndex:
        """Move the index to ``device`` in place (no copy when already there) and return ``self``."""
        device = torch.device(device)
        if self.device != device:
            self._index = {side: tuple(t.to(device) for t in idx) for side, idx in self._index.items()}  # type: ignore[misc]
        return self

    def answers(self, queries: torch.Tensor, side: Side) -> tuple[torch.Tensor, torch.Tensor]:
        """All known answers of a batch of queries, as flat (row, entity) pairs.

        Args:
            queries: ``LongTensor[b, 2]``: ``(h, r)`` rows for ``side="tail"``, ``(r, t)`` rows for ``"head"``.
            side: which position the queries ask for.

        Returns:
            ``rows: LongTensor[k]`` (query row in ``[0, b)``) and ``entities: LongTensor[k]`` (a known answer
            of that query), sorted by row.
        """
        unique_keys, offsets, answers = self._index[side]
        if side == "tail":
            anchor, relation = queries[:, 0], queries[:, 1]
        else:
            relation, anchor = queries[:, 0], queries[:, 1]
        b = len(queries)
        device = unique_keys.device
        if len(unique_keys) == 0 or b == 0:
            empty = torch.empty(0, dtype=torch.long, device=device)
            return empty, empty
        known_r = relation < self.num_keys_r  # an unknown relation has no answers (and must not alias a key)
        keys = anchor * self.num_keys_r + relation
        pos = torch.searchsorted(unique_keys, keys).clamp_(max=len(unique_keys) - 1)
        found = (unique_keys[pos] == keys) & known_r
        start = offsets[pos]
        count = torch.where(found, offsets[pos + 1] - start, torch.zeros_like(start))
        total = int(count.sum())
        rows = torch.repeat_interleave(torch.arange(b, device=device), count, output_size=total)
        # pair j of row i sits at start[i] + (j - first[i]), first[i] being the row's first output position
        shift = start - (torch.cumsum(count, 0) - count)
        flat = torch.arange(total, device=device).add_(
            torch.repeat_interleave(shift, count, output_size=total)
        )
        return rows, answers[flat]


@dataclass
class BatchRanks:
    """Ranks of one batch of queries; every field is ``[b]`` on the scores' device."""

    optimistic: torch.Tensor  # FloatTensor[b]
    pessimistic: torch.Tensor  # FloatTensor[b]
    realistic: torch.Tensor  # FloatTensor[b]
    num_candidates: torch.Tensor  # LongTensor[b]: entities left after filtering (true answer included)


@torch.no_grad()
def compute_ranks(
    scores: torch.Tensor,
    true_entities: torch.Tensor,
    filter_rows: torch.Tensor | None = None,
    filter_entities: torch.Tensor | None = None,
    chunk_elements: int | None = None,
) -> BatchRanks:
    """Filtered optimistic / pessimistic / realistic ranks of the true answers of a batch.

    Each rank is counted over all entities with two vectorised comparisons of the score matrix, then
    corrected by subtracting the contribution of the filtered entities (a sparse gather), so the scores
    are never modified.

    Args:
        scores: ``FloatTensor[b, E]``, higher = better; ``-inf`` allowed, ``NaN`` raises ``ValueError``.
        true_entities: ``LongTensor[b]``, the true answer of each query.
        filter_rows, filter_entities: ``LongTensor[k]`` pairs ``(row, entity)`` of known answers to remove
            (see :meth:`FilterIndex.answers`); pairs naming the true answer itself are ignored.
        chunk_elements: the comparisons run over blocks of whole rows of about this many scores, so that
            the block and its 0/1 work buffer stay in the CPU cache between passes. ``None``: ``2**17`` per
            intra-op thread on the CPU, the whole batch on other devices.

    Returns:
        :class:`BatchRanks` with ``FloatTensor[b]`` ranks on ``scores.device`` (float32; float64 from
        ``E >= 2**23`` on, where float32 could not hold every realistic ``.5`` rank exactly).
    """
    if scores.dim() != 2:
        raise ValueError(f"scores must be [batch, num_entities], got shape {tuple(scores.shape)}")
    b, num_entities = scores.shape
    device = scores.device
    true_entities = true_entities.to(device)
    true_scores = scores.gather(1, true_entities.unsqueeze(1))  # [b, 1]

    if chunk_elements is None:
        on_cpu = device.type == "cpu"
        chunk_elements = _CPU_CHUNK_ELEMENTS * torch.get_num_threads() if on_cpu else b * num_entities
    rows_per_chunk = max(1, min(b, chunk_elements // max(1, num_entities)))
    # 0/1 indicators written into a float buffer and summed: much faster than summing a bool tensor, and
    # exact while E < 2**24 in float32.
    count_dtype = torch.float32 if num_entities < _FLOAT32_EXACT else torch.float64
    work = torch.empty(rows_per_chunk * num_entities, dtype=count_dtype, device=device)
    greater = torch.empty(b, dtype=count_dtype, device=device)
    greater_equal = torch.empty(b, dtype=count_dtype, device=device)
    row_sums = torch.empty(b, dtype=scores.dtype, device=device)
    for start in range(0, b, rows_per_chunk):  # cache-sized blocks of rows, each compared at once
        stop = min(start + rows_per_chunk, b)
        block, threshold = scores[start:stop], true_scores[start:stop]
        buf = work[: (stop - start) * num_entities].view(stop - start, num_entities)
        torch.sum(torch.gt(block, threshold, out=buf), dim=1, out=greater[start:stop])
        torch.sum(torch.ge(block, threshold, out=buf), dim=1, out=greater_equal[start:stop])
        torch.sum(block, dim=1, out=row_sums[start:stop])
    _check_no_nan(scores, row_sums)
    greater_count = greater.round_().long()
    greater_equal_count = greater_equal.round_().long()

    num_filtered = torch.zeros(b, dtype=torch.long, device=device)
    if filter_rows is not None and filter_entities is not None and len(filter_rows):
        rows = filter_rows.to(device)
        ents = filter_entities.to(device)
        if scores.is_contiguous():
            known_scores = scores.view(-1).take(rows * num_entities + ents)
        else:
            known_scores = scores[rows, ents]
        known_threshold = true_scores.view(-1)[rows]
        # A listed true answer adds 0 to ">" and 1 to ">=" and to the filtered count; it is added back below.
        listed_true = (ents == true_entities[rows]).long()
        greater_count.scatter_add_(0, rows, (known_scores > known_threshold).long().neg_())
        greater_equal_count.scatter_add_(0, rows, (known_scores >= known_threshold).long().neg_())
        greater_equal_count.scatter_add_(0, rows, listed_true)
        num_filtered.scatter_add_(0, rows, 1 - listed_true)

    rank_dtype = torch.float32 if num_entities < _FLOAT32_EXACT // 2 else torch.float64  # exact halves
    optimistic = (1 + greater_count).to(rank_dtype)
    pessimistic = greater_equal_count.to(rank_dtype)  # counts the true answer itself: 1 + #others >= true
    return BatchRanks(
        optimistic=optimistic,
        pessimistic=pessimistic,
        realistic=(optimistic + pessimistic) / 2,
        num_candidates=num_entities - num_filtered,
    )


def _check_no_nan(scores: torch.Tensor, row_sums: torch.Tensor) -> None:
    """Raise ``ValueError`` naming the first row with a NaN score (exact check of rows whose sum is NaN)."""
    suspect = torch.isnan(row_sums)  # NaN entries, or +inf and -inf in one row
    if bool(suspect.any()):
        rows = suspect.nonzero().squeeze(1)
        has_nan = torch.isnan(scores[rows]).any(dim=1)
        if bool(has_nan.any()):
            row = int(rows[has_nan][0])
            raise ValueError(
                f"scorer returned NaN scores (first in batch row {row}); ranks are undefined. "
                "Use -inf for entities that should rank last."
            )


def _check_triples(triples: torch.Tensor, num_entities: int, name: str) -> torch.Tensor:
    if not isinstance(triples, torch.Tensor) or triples.dim() != 2 or triples.shape[1] != 3:
        shape = tuple(triples.shape) if isinstance(triples, torch.Tensor) else type(triples).__name__
        raise ValueError(f"{name} must be a LongTensor[n, 3] of (head, relation, tail) ids, got {shape}")
    if triples.dtype.is_floating_point or triples.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer ids, got dtype {triples.dtype}")
    triples = triples.long()
    if len(triples):
        ents = triples[:, [0, 2]]
        if int(ents.min()) < 0 or int(ents.max()) >= num_entities:
            raise ValueError(
                f"{name}: entity ids must lie in [0, {num_entities}), found "
                f"[{int(ents.min())}, {int(ents.max())}]"
            )
        if int(triples[:, 1].min()) < 0:
            raise ValueError(f"{name}: relation ids must be non-negative")
    return triples
