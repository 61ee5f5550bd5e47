"""Analyses of Lin et al. 2018 §5.3: path diversity, to-many vs to-one relations, seen vs unseen queries.

* :class:`PathDiversityCallback` counts the unique paths explored during training (edge labels *and*
  intermediate entities, from the query's source; §5.3.2), per epoch and cumulatively; the counts are recorded
  as ``train.unique_paths`` / ``train.unique_paths_epoch`` metrics of the loop (so they reach ``losses.csv`` and
  the trackers).
* :func:`relation_type_breakdown` and :func:`seen_breakdown` split an evaluation result's metrics into to-many /
  to-one relations (§5.3.3) and seen / unseen queries (§5.3.4) through :mod:`kgreason.evaluation.breakdowns`.
"""

from __future__ import annotations

from typing import Any

import torch

from kgreason.data.dataset import Dataset
from kgreason.distributed.context import all_gather_objects
from kgreason.training.callbacks import TrainingCallback
from kgreason.typing import LongTensor

__all__ = ["PathDiversityCallback", "path_keys", "relation_type_breakdown", "seen_breakdown"]

_MIX = (0x9E3779B97F4A7C15 - 2**64, 0xBF58476D1CE4E5B9 - 2**64)  # odd 64-bit multipliers (as signed int64)


def path_keys(sources: LongTensor, relations: LongTensor, entities: LongTensor) -> LongTensor:
    """A 64-bit hash per path: ``sources: LongTensor[W]``, ``relations, entities: LongTensor[W, T]`` ->
    ``LongTensor[W]``. Distinct paths collide with probability about ``n^2 / 2^64`` (negligible)."""
    h = sources.long() * _MIX[0]
    for t in range(relations.shape[1]):
        h = (h ^ (h >> 29)) * _MIX[1] + relations[:, t].long()
        h = (h ^ (h >> 31)) * _MIX[0] + entities[:, t].long()
    return h


class PathDiversityCallback(TrainingCallback):
    """Counts unique paths sampled by a :class:`~kgreason.reasoning.trainer.WalkerTrainingLoop`.

    After every batch the loop's ``last_rollout`` is hashed (:func:`path_keys`); at the end of each epoch the
    number of new unique paths of the epoch and the cumulative count are recorded. ``self.counts`` holds
    ``(epoch, unique paths so far)``.
    """

    def __init__(self) -> None:
        self.seen: torch.Tensor = torch.empty(0, dtype=torch.long)
        self._epoch_keys: list[torch.Tensor] = []
        self.counts: list[tuple[int, int]] = []

    def post_batch(self, epoch: int, batch: Any, **kwargs: Any) -> None:
        rollout = getattr(self.loop, "last_rollout", None)
        if rollout is None:
            return
        keys = path_keys(rollout.sources, rollout.relations, rollout.entities)
        self._epoch_keys.append(torch.unique(keys).cpu())

    def post_epoch(self, epoch: int, epoch_loss: float, **kwargs: Any) -> None:
        if self._epoch_keys:
            epoch_keys = torch.unique(torch.cat(self._epoch_keys))
        else:
            epoch_keys = torch.empty(0, dtype=torch.long)
        self._epoch_keys = []
        gathered = all_gather_objects(epoch_keys)  # every rank's walks (one list in a single process)
        if len(gathered) > 1:
            epoch_keys = torch.unique(torch.cat(gathered))
        merged = torch.unique(torch.cat([self.seen, epoch_keys]))
        self.seen = merged
        self.counts.append((epoch, int(merged.numel())))
        self.loop.record_metrics(
            epoch,
            {
                "train.unique_paths": float(merged.numel()),
                "train.unique_paths_epoch": float(epoch_keys.numel()),
            },
        )

    def state_dict(self) -> dict[str, Any]:
        return {"seen": self.seen, "counts": [list(c) for c in self.counts]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seen = state["seen"].long().cpu()
        self.counts = [(int(e), int(n)) for e, n in state["counts"]]


def relation_type_breakdown(result: Any, dataset: Dataset) -> dict[Any, dict[str, float]]:
    """Metrics of to-many vs to-one relations (``ξ_r > 1.5`` over all known triples; §5.3.3)."""
    from kgreason.evaluation.breakdowns import breakdown

    return breakdown(result, dataset, by="relation_type")


def seen_breakdown(result: Any, dataset: Dataset) -> dict[Any, dict[str, float]]:
    """Metrics of seen vs unseen queries (a training triple shares the query's entity and relation; §5.3.4)."""
    from kgreason.evaluation.breakdowns import breakdown

    return breakdown(result, dataset, by="seen")
