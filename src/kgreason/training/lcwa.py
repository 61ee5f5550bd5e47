"""LCWA (KvsAll / 1-N) training: every query scored against all candidates with multi-hot labels.

The label structure is built once per loop, vectorised (:class:`MultiLabelIndex`): distinct queries by
``torch.unique`` and their answers in one CSR array. A batch's dense ``[b, num_classes]`` labels are then made
with one ``repeat_interleave`` and one ``index_put_``, no Python loop over queries.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from kgreason.training.kge import KGETrainingLoop
from kgreason.training.losses import Loss

__all__ = ["LCWATrainingLoop", "MultiLabelIndex", "SymmetricLCWATrainingLoop"]

Target = Literal["head", "relation", "tail"]
#: for each target: the columns forming the query and the column holding the answer
_QUERY_COLUMNS: dict[str, tuple[list[int], int]] = {
    "tail": ([0, 1], 2),
    "head": ([1, 2], 0),
    "relation": ([0, 2], 1),
}


class MultiLabelIndex:
    """Distinct queries of some triples and the set of answers of each, in CSR form.

    Args:
        queries: ``LongTensor[n, 2]``, the query part of each triple (e.g. ``(h, r)``).
        answers: ``LongTensor[n]``, the answer of each triple (e.g. ``t``).
        num_classes: number of possible answers (columns of the label matrix).

    Attributes: ``queries[m, 2]`` (distinct, sorted), ``query_of[n]`` (index of each triple's query),
    ``offsets[m + 1]`` and ``answers[n']`` (the distinct answers of query ``i`` are
    ``answers[offsets[i]:offsets[i + 1]]``).
    """

    def __init__(self, queries: torch.Tensor, answers: torch.Tensor, num_classes: int) -> None:
        self.num_classes = int(num_classes)
        pairs = torch.cat([queries, answers.unsqueeze(1)], dim=1)
        unique_triples = torch.unique(pairs, dim=0)  # sorted by query, then answer; duplicates dropped
        self.queries, self.query_of = torch.unique(queries, dim=0, return_inverse=True)
        _, per_query = torch.unique_consecutive(unique_triples[:, :2], dim=0, return_counts=True)
        self.offsets = torch.zeros(len(self.queries) + 1, dtype=torch.long, device=queries.device)
        self.offsets[1:] = torch.cumsum(per_query, 0)
        self.answers = unique_triples[:, 2].contiguous()

    def __len__(self) -> int:
        return int(self.queries.shape[0])

    def label_positions(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(rows, cols)``: the positions of the ones in :meth:`labels` of the queries ``index[b]`` (distinct
        pairs; ``rows`` ascending)."""
        start = self.offsets[index]
        counts = self.offsets[index + 1] - start
        rows = torch.repeat_interleave(torch.arange(index.numel(), device=index.device), counts)
        first = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
        within = torch.arange(rows.numel(), device=index.device) - first
        return rows, self.answers[start[rows] + within]

    def labels(self, index: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Dense multi-hot labels ``[b, num_classes]`` of the queries ``index[b]``."""
        rows, cols = self.label_positions(index)
        labels = torch.zeros(index.numel(), self.num_classes, dtype=dtype, device=index.device)
        labels.index_put_((rows, cols), torch.ones((), dtype=dtype, device=index.device))
        return labels


def build_label_index(triples: torch.Tensor, target: str, num_classes: int) -> MultiLabelIndex:
    """The :class:`MultiLabelIndex` of ``triples[n, 3]`` for predicting ``target`` (head, relation or tail)."""
    query_cols, answer_col = _QUERY_COLUMNS[target]
    return MultiLabelIndex(triples[:, query_cols], triples[:, answer_col], num_classes)


class LCWATrainingLoop(KGETrainingLoop):
    """Local closed world assumption: each distinct query (``(h, r)`` for ``target="tail"``) is scored against
    every entity (relation), its known answers in the training triples are positives, all others negatives.

    Args:
        model, triples: see :class:`~kgreason.training.kge.KGETrainingLoop`.
        target: ``"tail"`` (default; ``score_t``), ``"head"`` (``score_h``) or ``"relation"`` (``score_r``).
        loss: default ``"bce"``; ``"bce"``/``"softplus"``/``"cross_entropy"`` (label smoothing through
            ``loss_kwargs={"label_smoothing": 0.1}``).
        **kwargs: see :class:`~kgreason.training.kge.KGETrainingLoop` (``batch_size`` counts queries) and
            :class:`~kgreason.training.loop.TrainingLoop` (``sub_batch_size`` bounds memory: at most
            ``sub_batch_size x num_entities`` scores and labels at once).

    A reciprocal model (``inverse_relations``) trains on triples plus inverse triples; ``target`` must then be
    ``"tail"`` (or ``"relation"``, over the ``2R`` relation ids).
    """

    def __init__(
        self,
        model: nn.Module,
        triples: torch.Tensor,
        target: Target = "tail",
        loss: str | Loss = "bce",
        **kwargs: Any,
    ) -> None:
        super().__init__(model, triples, loss=loss, **kwargs)
        if target not in _QUERY_COLUMNS:
            raise ValueError(f"target must be 'head', 'relation' or 'tail', got {target!r}")
        if self.reciprocal and target == "head":
            raise ValueError(
                "a model with inverse_relations predicts heads as tails of inverse triples: use target='tail'"
            )
        if not self.loss.supports_lcwa:
            raise ValueError(f"loss {type(self.loss).__name__} cannot be used with LCWA training")
        self.target: Target = target
        num_classes = self.num_relation_ids if target == "relation" else self.num_entities
        self.label_index = build_label_index(self.triples, target, num_classes)

    @property
    def num_examples(self) -> int:
        return len(self.label_index)

    def batch_loss(self, batch: torch.Tensor) -> torch.Tensor:
        """``batch``: ``LongTensor[b]`` indices of distinct queries."""
        self._reset_regularization()
        queries = self.label_index.queries[batch]
        scores = self.score(queries).float()  # float32 loss under bf16 autocast (a no-op in float32)
        rows, cols = self.label_index.label_positions(batch)
        return self._with_regularization(self.loss.lcwa_sparse(scores, rows, cols))

    def score(self, queries: torch.Tensor) -> torch.Tensor:
        """Scores ``[b, num_classes]`` of every candidate for ``queries[b, 2]``."""
        if self.target == "tail":
            return self.model.score_t(queries)  # type: ignore[operator]
        if self.target == "head":
            return self.model.score_h(queries)  # type: ignore[operator]
        return self.model.score_r(queries)  # type: ignore[operator]


class SymmetricLCWATrainingLoop(KGETrainingLoop):
    """LCWA over triples scoring heads and tails at once: for each training triple ``(h, r, t)`` all tails of
    ``(h, r)`` and all heads of ``(r, t)`` are scored; the loss is the mean of the two LCWA losses, labels from
    the training triples. Not for reciprocal models (use :class:`LCWATrainingLoop`, whose inverse triples
    already train both directions).
    """

    def __init__(
        self, model: nn.Module, triples: torch.Tensor, loss: str | Loss = "bce", **kwargs: Any
    ) -> None:
        super().__init__(model, triples, loss=loss, **kwargs)
        if self.reciprocal:
            raise ValueError(
                "SymmetricLCWATrainingLoop scores heads directly; a model with inverse_relations should use "
                "LCWATrainingLoop(target='tail'), which trains on inverse triples"
            )
        if not self.loss.supports_lcwa:
            raise ValueError(f"loss {type(self.loss).__name__} cannot be used with LCWA training")
        self.tail_index = build_label_index(self.triples, "tail", self.num_entities)
        self.head_index = build_label_index(self.triples, "head", self.num_entities)

    def batch_loss(self, batch: torch.Tensor) -> torch.Tensor:
        """``batch``: ``LongTensor[b]`` indices of training triples."""
        self._reset_regularization()
        triples = self.triples[batch]
        tail_scores = self.model.score_t(triples[:, :2]).float()  # type: ignore[operator]
        head_scores = self.model.score_h(triples[:, 1:]).float()  # type: ignore[operator]
        tail_labels = self.tail_index.labels(self.tail_index.query_of[batch], dtype=tail_scores.dtype)
        head_labels = self.head_index.labels(self.head_index.query_of[batch], dtype=head_scores.dtype)
        loss = 0.5 * (self.loss.lcwa(tail_scores, tail_labels) + self.loss.lcwa(head_scores, head_labels))
        return self._with_regularization(loss)
