"""Early stopping: the bookkeeping of "has the metric stopped improving?", independent of any loop.

Semantics (also in docs/training.md):

* The stopper sees one value per **evaluation** (not per epoch): :meth:`EarlyStopper.report`.
* The first value is always an improvement. A later value ``v`` improves on the best value ``b`` when
  ``v - b > delta`` (absolute, ``relative=False``) or ``v - b > delta * |b|`` (relative, the default), with
  the signs flipped for metrics where smaller is better (``larger_is_better=False``: mean rank, loss).
  ``delta=0`` therefore means "strictly better"; ties are not improvements.
* ``patience`` counts consecutive evaluations without improvement; the stopper says stop at the evaluation
  that brings that count to ``patience``. With ``patience=2`` and values 0.5, 0.6, 0.59, 0.58 it stops at the
  4th evaluation, and the best epoch is that of 0.6.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["EarlyStopper", "larger_is_better_for"]


def larger_is_better_for(metric: str) -> bool:
    """Whether a metric key is better when larger: ``False`` for mean rank (``*.mr``) and losses."""
    last = metric.rsplit(".", 1)[-1].lower()
    return not (last in {"mr", "mean_rank", "loss", "adjusted_mean_rank"} or last.endswith("loss"))


@dataclass
class EarlyStopper:
    """Tracks the best value of a metric and decides when to stop.

    Args:
        patience: evaluations without improvement after which to stop (>= 1).
        delta: minimal improvement (``>= 0``), relative to ``|best|`` or absolute.
        relative: whether ``delta`` is relative (default) or absolute.
        larger_is_better: direction of the metric.
    """

    patience: int = 5
    delta: float = 0.0
    relative: bool = True
    larger_is_better: bool = True
    best_value: float | None = None
    best_epoch: int | None = None
    num_bad_evaluations: int = 0
    num_evaluations: int = 0
    stopped: bool = False

    def __post_init__(self) -> None:
        if self.patience < 1:
            raise ValueError(f"patience must be >= 1 (evaluations), got {self.patience}")
        if self.delta < 0:
            raise ValueError(f"delta must be >= 0, got {self.delta}")

    def is_improvement(self, value: float) -> bool:
        """Whether ``value`` improves on the best value so far by more than ``delta``."""
        if self.best_value is None:
            return True
        if math.isnan(value):
            return False
        gain = value - self.best_value if self.larger_is_better else self.best_value - value
        threshold = self.delta * abs(self.best_value) if self.relative else self.delta
        return gain > threshold

    def report(self, epoch: int, value: float) -> bool:
        """Record the value of one evaluation (after ``epoch``); return whether training should stop now."""
        self.num_evaluations += 1
        if self.is_improvement(value):
            self.best_value = float(value)
            self.best_epoch = int(epoch)
            self.num_bad_evaluations = 0
        else:
            self.num_bad_evaluations += 1
        self.stopped = self.num_bad_evaluations >= self.patience
        return self.stopped

    @property
    def improved(self) -> bool:
        """Whether the last reported value was an improvement."""
        return self.num_evaluations > 0 and self.num_bad_evaluations == 0

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)
