"""sLCWA training: each positive triple against ``num_negs_per_pos`` sampled negatives."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from kgreason.training.kge import KGETrainingLoop
from kgreason.training.losses import Loss
from kgreason.training.samplers import HEAD, RELATION, TAIL, NegativeSampler, make_negative_sampler

__all__ = ["SLCWABatch", "SLCWATrainingLoop"]


class SLCWABatch(NamedTuple):
    """Positive triples with their sampled negatives: what :meth:`SLCWATrainingLoop.batch_loss` trains on.

    ``positives: LongTensor[b, 3]``, ``negatives: LongTensor[b, k, 3]``, ``valid: BoolTensor[b, k]`` (negatives
    that are not known positives; ``None`` unless filtered). Sub-batches and distributed shards are row slices.
    """

    positives: torch.Tensor
    negatives: torch.Tensor
    valid: torch.Tensor | None


class SLCWATrainingLoop(KGETrainingLoop):
    """Stochastic local closed world assumption: a random subset of the head/tail corruptions of each positive
    is trained as false.

    Args:
        model, triples: see :class:`~kgreason.training.kge.KGETrainingLoop`.
        negative_sampler: ``"uniform"`` (default), ``"bernoulli"``, ``"pseudo_typed"`` or a built sampler.
        negative_sampler_kwargs: its keyword arguments (e.g. ``{"corruption": ["head", "relation", "tail"]}``).
        num_negs_per_pos: negatives per positive.
        filtered: drop sampled negatives that are known positives (the training triples, or
            ``filter_triples``) from the loss.
        filter_triples: the known positives for ``filtered`` (base relation ids).
        loss: default ``"softplus"``; any loss supporting sLCWA.
        **kwargs: see :class:`~kgreason.training.kge.KGETrainingLoop` and
            :class:`~kgreason.training.loop.TrainingLoop`.

    With a reciprocal model (``inverse_relations``) the loop trains on triples plus inverse triples and
    corrupts tails only. Negatives are scored with their positive as candidate lists (see :meth:`score`).

    Negatives are drawn for a whole batch at once (:meth:`prepare_batch`), before sub-batching and, in a
    distributed run, before sharding: every rank trains on the negatives a single process would draw.
    """

    def __init__(
        self,
        model: nn.Module,
        triples: torch.Tensor,
        negative_sampler: str | NegativeSampler = "uniform",
        negative_sampler_kwargs: dict[str, Any] | None = None,
        num_negs_per_pos: int = 1,
        filtered: bool = False,
        filter_triples: torch.Tensor | None = None,
        loss: str | Loss = "softplus",
        **kwargs: Any,
    ) -> None:
        super().__init__(model, triples, loss=loss, **kwargs)
        if not self.loss.supports_slcwa:
            raise ValueError(f"loss {type(self.loss).__name__} cannot be used with sLCWA training")
        sampler_kwargs = dict(negative_sampler_kwargs or {})
        if self.reciprocal:
            corruption: Sequence[str] = sampler_kwargs.pop("corruption", ("tail",))
            if tuple(corruption) != ("tail",):
                raise ValueError(
                    "a model with inverse_relations is trained on inverse triples with tail corruption only; "
                    f"got corruption={list(corruption)}"
                )
            sampler_kwargs["corruption"] = ("tail",)
            if isinstance(negative_sampler, str) and negative_sampler.lower() == "bernoulli":
                raise ValueError(
                    "Bernoulli sampling chooses head or tail; with inverse relations only tails are corrupted"
                )
        # one corrupted side per positive: each positive is then scored on that side only (half the work of
        # scoring every positive on both sides); a sampler built by the caller is used as it is
        sampler_kwargs.setdefault("side_per_positive", True)
        if filter_triples is not None and self.reciprocal:
            from kgreason.data.triples import add_inverse_triples

            filter_triples = add_inverse_triples(
                torch.as_tensor(filter_triples, dtype=torch.long), self.num_relations
            )
        self.negative_sampler = make_negative_sampler(
            negative_sampler,
            self.triples,
            self.num_entities,
            self.num_relation_ids,
            num_negs_per_pos=num_negs_per_pos,
            filtered=filtered,
            filter_triples=None if filter_triples is None else filter_triples.to(self.device),
            **sampler_kwargs,
        ).to(self.device)
        self.num_negs_per_pos = self.negative_sampler.num_negs_per_pos

    def prepare_batch(self, batch: torch.Tensor) -> SLCWABatch:
        """``batch``: ``LongTensor[b]`` indices into ``self.triples`` -> the positives with their negatives,
        sampled with ``self.generator``."""
        positives = self.triples[batch]
        negatives, valid = self.negative_sampler.sample(positives, generator=self.generator)
        return SLCWABatch(positives, negatives, valid)

    def batch_size_of(self, batch: torch.Tensor | SLCWABatch) -> int:
        return int(batch.positives.shape[0]) if isinstance(batch, SLCWABatch) else len(batch)

    def batch_loss(self, batch: torch.Tensor | SLCWABatch) -> torch.Tensor:
        """``batch``: an :class:`SLCWABatch`, or ``LongTensor[b]`` indices into ``self.triples`` (negatives are
        then sampled here, see :meth:`prepare_batch`)."""
        if not isinstance(batch, SLCWABatch):
            batch = self.prepare_batch(batch)
        self._reset_regularization()
        positives, negatives, valid = batch.positives, batch.negatives, batch.valid
        grouping = self._side_order(positives, negatives)
        if grouping is None:
            pos_scores, neg_scores = self.score(positives, negatives)
        else:  # rows grouped by corrupted side; the loss is a mean over rows, so their order does not matter
            order, counts = grouping
            valid = None if valid is None else valid[order]
            pos_scores, neg_scores = self._score_grouped(positives[order], negatives[order], counts)
        # float32 losses under bf16 autocast (a no-op in float32)
        return self._with_regularization(self.loss.slcwa(pos_scores.float(), neg_scores.float(), valid))

    def score(self, positives: torch.Tensor, negatives: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores ``[b]`` of ``positives[b, 3]`` and ``[b, k]`` of ``negatives[b, k, 3]``.

        One call per corrupted side, each scoring the positive and all its candidates of that side at once:
        ``score_t(hr, tails=[b, 1 + k])``, ``score_h(rt, heads=[b, 1 + k])``, ``score_r(ht)`` (gathered);
        each negative takes the score of the side it corrupts. Scoring per query with a candidate list
        encodes the query once and is far faster than ``score_hrt`` on ``b * (1 + k)`` separate triples.
        When every positive's negatives corrupt one side (``side_per_positive``, the loop's default), each
        positive is scored on that side only.
        """
        grouping = self._side_order(positives, negatives)
        if grouping is not None:
            order, counts = grouping
            pos_scores, neg_scores = self._score_grouped(positives[order], negatives[order], counts)
            inverse = torch.empty_like(order)
            inverse[order] = torch.arange(order.numel(), device=order.device)
            return pos_scores[inverse], neg_scores[inverse]
        sides = self.negative_sampler.corruption
        parts: dict[int, torch.Tensor] = {}
        pos_score: torch.Tensor | None = None
        for side in ("tail", "head", "relation"):
            if side in sides:
                col = {"tail": TAIL, "head": HEAD, "relation": RELATION}[side]
                scores = self._score_side(col, positives, negatives)
                pos_score, parts[col] = (scores[:, 0] if pos_score is None else pos_score), scores[:, 1:]
        assert pos_score is not None
        if len(parts) == 1:
            return pos_score, next(iter(parts.values()))
        # the corrupted column of each negative: the one that differs from its positive
        column = (negatives != positives.unsqueeze(1)).long().argmax(dim=-1)
        neg_score = torch.zeros_like(next(iter(parts.values())))
        for col, values in parts.items():
            neg_score = torch.where(column == col, values, neg_score)
        return pos_score, neg_score

    def _score_side(self, column: int, positives: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        """``[b, 1 + k]``: the positive and the ``column`` values of its negatives as candidates of the
        positive's query on that side."""
        candidates = torch.cat([positives[:, column : column + 1], negatives[:, :, column]], dim=1)
        if column == TAIL:
            return self.model.score_t(positives[:, :2], tails=candidates)  # type: ignore[operator]
        if column == HEAD:
            return self.model.score_h(positives[:, 1:], heads=candidates)  # type: ignore[operator]
        return self.model.score_r(positives[:, [0, 2]]).gather(1, candidates)  # type: ignore[operator]

    def _side_order(
        self, positives: torch.Tensor, negatives: torch.Tensor
    ) -> tuple[torch.Tensor, list[int]] | None:
        """When several sides are corrupted but each positive's negatives all corrupt the same one: a row order
        grouping the positives by that column (head, relation, tail) and the size of each group; else ``None``."""
        if len(self.negative_sampler.corruption) < 2 or negatives.shape[1] == 0:
            return None
        column = (negatives != positives.unsqueeze(1)).long().argmax(dim=-1)  # [b, k]
        first = column[:, 0]
        if not bool((column == first.unsqueeze(1)).all()):
            return None
        return torch.argsort(first, stable=True), torch.bincount(first, minlength=3).tolist()

    def _score_grouped(
        self, positives: torch.Tensor, negatives: torch.Tensor, counts: list[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores of rows grouped by corrupted column (``counts[c]`` rows corrupt column ``c``, in order)."""
        n_head, n_relation, n_tail = counts
        both = n_head and n_tail and not n_relation and hasattr(self.model, "score_h_and_t")
        if both:  # both entity sides: one model call (one table lookup)
            head_cands = torch.cat([positives[:n_head, HEAD : HEAD + 1], negatives[:n_head, :, HEAD]], dim=1)
            tail_cands = torch.cat([positives[n_head:, TAIL : TAIL + 1], negatives[n_head:, :, TAIL]], dim=1)
            scores = self.model.score_h_and_t(  # type: ignore[operator]
                positives[:n_head, 1:], head_cands, positives[n_head:, :2], tail_cands
            )
            return scores[:, 0], scores[:, 1:]
        parts, start = [], 0
        for col, n in enumerate(counts):
            if n:
                parts.append(
                    self._score_side(col, positives[start : start + n], negatives[start : start + n])
                )
                start += n
        scores = parts[0] if len(parts) == 1 else torch.cat(parts)
        return scores[:, 0], scores[:, 1:]
