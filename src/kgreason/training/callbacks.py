"""Training callbacks: extend a :class:`~kgreason.training.loop.TrainingLoop` without subclassing it.

Every callback has ``self.loop`` (the loop it is attached to, with all its attributes) and ``self.model``
(``self.loop.model``). Override any of the hooks; the loop calls them with keyword arguments::

    on_train_start()
    on_epoch_start(epoch)                     # epochs are numbered from 1
    on_batch(epoch, batch, batch_loss)        # after backward, before the optimiser step; batch_loss: float
    pre_step(**kwargs)                        # just before optimizer.step(): gradient clipping goes here
    post_batch(epoch, batch)                  # after the optimiser step
    post_epoch(epoch, epoch_loss)             # loop.epoch == epoch; evaluation and early stopping run here
    on_metrics(epoch, metrics)                # whenever loop.record_metrics(...) is called (evaluations)
    on_epoch_end(epoch)                       # after every post_epoch: the epoch's state is final (checkpoints)
    post_train(losses)                        # after the last epoch (or an early stop)
    on_exception(exc)                         # any exception, before it propagates

A callback stops training by setting ``self.loop.stop_training = True`` (effective at the end of the epoch).
Callbacks with state implement ``state_dict`` / ``load_state_dict``; it is saved in checkpoints.

Distributed runs (docs/distributed.md): callbacks run on every rank, where they see identical parameters,
gradients (after DDP's all-reduce), losses and metrics, so gradient clipping, evaluation (sharded) and early
stopping decide alike; rank 0's ``stop_training`` is then broadcast. A callback whose hooks only have side
effects (files, trackers, printing) sets ``main_process_only = True`` and runs on rank 0 alone
(:class:`TrackerCallback`, :class:`CheckpointCallback`); :class:`EarlyStoppingCallback` writes ``best_path``
from rank 0 only.

The two examples of the PyKEEN documentation work as written::

    from kgreason.training.callbacks import TrainingCallback

    class BatchLossReportCallback(TrainingCallback):
        def on_batch(self, epoch: int, batch, batch_loss: float):
            print(epoch, batch_loss)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from kgreason.distributed.context import is_main_process
from kgreason.training.stoppers import EarlyStopper, larger_is_better_for
from kgreason.training.trackers import ResultTracker, make_tracker
from kgreason.training.utils import clip_grad_norm_, clip_grad_value_

if TYPE_CHECKING:
    from torch import nn

    from kgreason.training.loop import TrainingLoop

__all__ = [
    "BatchLossReportCallback",
    "CheckpointCallback",
    "EarlyStoppingCallback",
    "EvaluationCallback",
    "GradientClippingCallback",
    "GradientValueClippingCallback",
    "MultiTrainingCallback",
    "TrackerCallback",
    "TrainingCallback",
]


class TrainingCallback:
    """Base class of callbacks: every hook is a no-op. Subclasses need not call ``super().__init__()``."""

    _loop: TrainingLoop | None = None
    #: in a distributed run, call this callback's hooks on rank 0 only (for callbacks with side effects only:
    #: one that changes the model, the gradients or ``stop_training`` must run on every rank)
    main_process_only: ClassVar[bool] = False

    def register_loop(self, loop: TrainingLoop) -> None:
        """Attach to ``loop`` (done by the loop itself)."""
        self._loop = loop

    @property
    def loop(self) -> TrainingLoop:
        """The training loop this callback is attached to."""
        if self._loop is None:
            raise RuntimeError(f"{type(self).__name__} is not attached to a training loop yet")
        return self._loop

    @property
    def model(self) -> nn.Module:
        """The model being trained (``self.loop.model``)."""
        return self.loop.model

    def on_train_start(self, **kwargs: Any) -> None:
        """Training starts (after resuming from a checkpoint, if any)."""

    def on_epoch_start(self, epoch: int, **kwargs: Any) -> None:
        """Epoch ``epoch`` (1-based) starts."""

    def on_batch(self, epoch: int, batch: Any, batch_loss: float, **kwargs: Any) -> None:
        """A batch's loss was computed and back-propagated (before the optimiser step)."""

    def pre_step(self, **kwargs: Any) -> None:
        """Called just before ``optimizer.step()``."""

    def post_batch(self, epoch: int, batch: Any, **kwargs: Any) -> None:
        """Called after ``optimizer.step()``."""

    def post_epoch(self, epoch: int, epoch_loss: float, **kwargs: Any) -> None:
        """Epoch ``epoch`` is complete; ``epoch_loss`` is its mean batch loss (weighted by batch size)."""

    def on_metrics(self, epoch: int, metrics: dict[str, float], **kwargs: Any) -> None:
        """Metrics were recorded with :meth:`TrainingLoop.record_metrics` (e.g. an evaluation)."""

    def on_epoch_end(self, epoch: int, **kwargs: Any) -> None:
        """After every callback's ``post_epoch`` and the loop's own checkpoint: the epoch's state is final."""

    def post_train(self, losses: list[float], **kwargs: Any) -> None:
        """Training is over; ``losses`` holds every epoch's loss."""

    def on_exception(self, exc: BaseException, **kwargs: Any) -> None:
        """An exception is about to propagate out of :meth:`TrainingLoop.train`."""

    def state_dict(self) -> dict[str, Any]:
        """State to save in checkpoints (none by default)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""


class MultiTrainingCallback(TrainingCallback):
    """Calls several callbacks, in order, at every hook."""

    def __init__(self, callbacks: TrainingCallback | Sequence[TrainingCallback] | None = None) -> None:
        if callbacks is None:
            callbacks = []
        elif isinstance(callbacks, TrainingCallback):
            callbacks = [callbacks]
        self.callbacks: list[TrainingCallback] = list(callbacks)

    def __iter__(self) -> Iterator[TrainingCallback]:
        return iter(self.callbacks)

    def __len__(self) -> int:
        return len(self.callbacks)

    def append(self, callback: TrainingCallback) -> None:
        """Add ``callback`` (attached to this loop, if any)."""
        self.callbacks.append(callback)
        if self._loop is not None:
            callback.register_loop(self._loop)

    def register_loop(self, loop: TrainingLoop) -> None:
        super().register_loop(loop)
        for cb in self.callbacks:
            cb.register_loop(loop)

    def _active(self) -> list[TrainingCallback]:
        """The callbacks to call on this rank (``main_process_only`` ones on rank 0 only)."""
        if is_main_process():
            return self.callbacks
        return [cb for cb in self.callbacks if not cb.main_process_only]

    def on_train_start(self, **kwargs: Any) -> None:
        for cb in self._active():
            cb.on_train_start(**kwargs)

    def on_epoch_start(self, epoch: int, **kwargs: Any) -> None:
        for cb in self._active():
            cb.on_epoch_start(epoch=epoch, **kwargs)

    def on_batch(self, epoch: int, batch: Any, batch_loss: float, **kwargs: Any) -> None:
        for cb in self._active():
            cb.on_batch(epoch=epoch, batch=batch, batch_loss=batch_loss, **kwargs)

    def pre_step(self, **kwargs: Any) -> None:
        for cb in self._active():
            cb.pre_step(**kwargs)

    def post_batch(self, epoch: int, batch: Any, **kwargs: Any) -> None:
        for cb in self._active():
            cb.post_batch(epoch=epoch, batch=batch, **kwargs)

    def post_epoch(self, epoch: int, epoch_loss: float, **kwargs: Any) -> None:
        for cb in self._active():
            cb.post_epoch(epoch=epoch, epoch_loss=epoch_loss, **kwargs)

    def on_metrics(self, epoch: int, metrics: dict[str, float], **kwargs: Any) -> None:
        for cb in self._active():
            cb.on_metrics(epoch=epoch, metrics=metrics, **kwargs)

    def on_epoch_end(self, epoch: int, **kwargs: Any) -> None:
        for cb in self._active():
            cb.on_epoch_end(epoch=epoch, **kwargs)

    def post_train(self, losses: list[float], **kwargs: Any) -> None:
        for cb in self._active():
            cb.post_train(losses=losses, **kwargs)

    def on_exception(self, exc: BaseException, **kwargs: Any) -> None:
        for cb in self._active():
            cb.on_exception(exc=exc, **kwargs)

    def state_dict(self) -> dict[str, Any]:
        """``{"<index>:<ClassName>": state}`` for every callback with a non-empty state."""
        out = {}
        for i, cb in enumerate(self.callbacks):
            state = cb.state_dict()
            if state:
                out[f"{i}:{type(cb).__name__}"] = state
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for i, cb in enumerate(self.callbacks):
            key = f"{i}:{type(cb).__name__}"
            if key in state:
                cb.load_state_dict(state[key])


class BatchLossReportCallback(TrainingCallback):
    """Keeps every batch loss in ``self.batch_losses`` as ``(epoch, batch_index, loss)``; prints it with
    ``report`` (a callable such as ``print`` or ``logger.info``) every ``every`` batches."""

    def __init__(self, report: Callable[[str], Any] | None = None, every: int = 1) -> None:
        self.report = report
        self.every = every
        self.batch_losses: list[tuple[int, int, float]] = []

    def on_batch(self, epoch: int, batch: Any, batch_loss: float, **kwargs: Any) -> None:
        index = self.loop.batch_index
        self.batch_losses.append((epoch, index, batch_loss))
        if self.report is not None and index % self.every == 0:
            self.report(f"epoch {epoch} batch {index}: loss {batch_loss:.6g}")


class GradientClippingCallback(TrainingCallback):
    """Clips the gradient norm of the model's parameters before each step (``torch.nn.utils.clip_grad_norm_``).

    ``self.last_norm`` holds the total norm before clipping of the last step.
    """

    def __init__(self, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = True) -> None:
        self.max_norm = max_norm
        self.norm_type = norm_type
        self.error_if_nonfinite = error_if_nonfinite
        self.last_norm: float | None = None

    def pre_step(self, **kwargs: Any) -> None:
        norm = clip_grad_norm_(
            self.model.parameters(),
            max_norm=self.max_norm,
            norm_type=self.norm_type,
            error_if_nonfinite=self.error_if_nonfinite,
        )
        self.last_norm = float(norm)


class GradientValueClippingCallback(TrainingCallback):
    """Clamps every gradient entry into ``[-clip_value, clip_value]`` before each step
    (``torch.nn.utils.clip_grad_value_``)."""

    def __init__(self, clip_value: float) -> None:
        self.clip_value = clip_value

    def pre_step(self, **kwargs: Any) -> None:
        clip_grad_value_(self.model.parameters(), clip_value=self.clip_value)


class EvaluationCallback(TrainingCallback):
    """Evaluates every ``every`` epochs and records the metrics in the loop (``loop.record_metrics``).

    Args:
        evaluator: any object with ``evaluate(scorer, triples, sides=...) -> result`` where ``result.metrics`` is
            a ``dict[str, float]`` (e.g. :class:`kgreason.evaluation.RankBasedEvaluator`), built by the caller.
        triples: ``LongTensor[n, 3]`` to evaluate on (e.g. the validation split).
        scorer: what to evaluate; ``None`` means the loop's model. A callable taking no argument is called at
            each evaluation to get the scorer (for wrappers that must see the current weights).
        split: name prefixed to every metric key: ``"valid"`` gives ``"valid.both.realistic.mrr"``.
        every: evaluate after epochs ``every, 2*every, ...``.
        sides: forwarded to ``evaluate``.

    The model is put in eval mode (and gradients off) during evaluation, then back in train mode.
    ``self.results`` holds ``(epoch, result)`` of every evaluation of this run (not saved in checkpoints; the
    metrics are, in ``loop.history.metrics``).
    """

    def __init__(
        self,
        evaluator: Any,
        triples: torch.Tensor,
        scorer: Any = None,
        split: str = "valid",
        every: int = 1,
        sides: Sequence[str] = ("head", "tail"),
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.evaluator = evaluator
        self.triples = triples
        self.scorer = scorer
        self.split = split
        self.every = every
        self.sides = tuple(sides)
        self.results: list[tuple[int, Any]] = []

    def evaluate(self) -> Any:
        """Evaluate now and return the evaluator's result (nothing is recorded)."""
        scorer = self.scorer if self.scorer is not None else self.model
        if callable(scorer) and not hasattr(scorer, "score_t"):
            scorer = scorer()
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                return self.evaluator.evaluate(scorer, self.triples.to(self.loop.device), sides=self.sides)
        finally:
            self.model.train(was_training)

    def post_epoch(self, epoch: int, epoch_loss: float, **kwargs: Any) -> None:
        if epoch % self.every != 0:
            return
        result = self.evaluate()
        self.results.append((epoch, result))
        prefix = f"{self.split}." if self.split else ""
        self.loop.record_metrics(epoch, {f"{prefix}{k}": float(v) for k, v in result.metrics.items()})


class EarlyStoppingCallback(TrainingCallback):
    """Stops training when ``metric`` has not improved for ``patience`` evaluations; keeps the best weights.

    ``metric`` is a key recorded through ``loop.record_metrics`` (e.g. by :class:`EvaluationCallback`:
    ``"valid.both.realistic.mrr"``), or ``"loss"`` for the training loss of every epoch. Improvement, delta and
    patience follow :class:`~kgreason.training.stoppers.EarlyStopper` (see docs/training.md).

    On every improvement the weights are copied (to CPU) and, with ``best_path``, written there atomically
    (``torch.save`` of the state dict). At the end of training (early stop *or* last epoch),
    ``restore_best=True`` loads the best weights back into the model. The stopper state and the best weights
    are saved in checkpoints, so resuming keeps counting where the run left off.
    """

    def __init__(
        self,
        metric: str = "valid.both.realistic.mrr",
        patience: int = 5,
        delta: float = 0.0,
        relative: bool = True,
        larger_is_better: bool | None = None,
        restore_best: bool = True,
        best_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.metric = metric
        self.stopper = EarlyStopper(
            patience=patience,
            delta=delta,
            relative=relative,
            larger_is_better=larger_is_better_for(metric) if larger_is_better is None else larger_is_better,
        )
        self.restore_best = restore_best
        self.best_path = Path(best_path) if best_path is not None else None
        self.best_state: dict[str, torch.Tensor] | None = None

    @property
    def best_epoch(self) -> int | None:
        return self.stopper.best_epoch

    @property
    def best_value(self) -> float | None:
        return self.stopper.best_value

    def _report(self, epoch: int, value: float) -> None:
        stop = self.stopper.report(epoch, value)
        if self.stopper.improved:
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
            if self.best_path is not None and is_main_process():
                from kgreason.io import atomic_torch_save

                atomic_torch_save(self.best_state, self.best_path)
        if stop:
            self.loop.stop_training = True

    def on_metrics(self, epoch: int, metrics: dict[str, float], **kwargs: Any) -> None:
        if self.metric == "loss":
            return
        if self.metric in metrics:
            self._report(epoch, float(metrics[self.metric]))
            return
        family = self.metric.split(".", 1)[0] + "."
        if any(k.startswith(family) for k in metrics):
            raise KeyError(
                f"early-stopping metric {self.metric!r} not among the recorded metrics: {', '.join(sorted(metrics))}"
            )

    def post_epoch(self, epoch: int, epoch_loss: float, **kwargs: Any) -> None:
        if self.metric == "loss":
            self._report(epoch, epoch_loss)

    def post_train(self, losses: list[float], **kwargs: Any) -> None:
        if self.restore_best and self.best_state is not None:
            self.model.load_state_dict(self.best_state)

    def state_dict(self) -> dict[str, Any]:
        return {"stopper": self.stopper.state_dict(), "best_state": self.best_state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stopper.load_state_dict(state["stopper"])
        self.best_state = state.get("best_state")


class TrackerCallback(TrainingCallback):
    """Sends the loop's config, each epoch's ``loss`` and ``learning_rate`` and every recorded metric to
    trackers (instances or names: ``"console"``, ``"csv"``, ``"jsonl"``, ``"tensorboard"``, ``"mlflow"``).
    Runs on rank 0 only in a distributed run (losses and metrics are already reduced over ranks)."""

    main_process_only = True

    def __init__(self, trackers: ResultTracker | str | Sequence[ResultTracker | str]) -> None:
        if isinstance(trackers, ResultTracker | str):
            trackers = [trackers]
        self.trackers = [make_tracker(t) for t in trackers]

    def on_train_start(self, **kwargs: Any) -> None:
        for t in self.trackers:
            t.start_run(params=self.loop.config, total_steps=self.loop.num_epochs, start_step=self.loop.epoch)

    def post_epoch(self, epoch: int, epoch_loss: float, **kwargs: Any) -> None:
        for t in self.trackers:
            t.log_metrics({"loss": epoch_loss, "learning_rate": self.loop.learning_rate}, step=epoch)

    def on_metrics(self, epoch: int, metrics: dict[str, float], **kwargs: Any) -> None:
        for t in self.trackers:
            t.log_metrics(metrics, step=epoch)

    def post_train(self, losses: list[float], **kwargs: Any) -> None:
        for t in self.trackers:
            t.end_run(success=True)

    def on_exception(self, exc: BaseException, **kwargs: Any) -> None:
        for t in self.trackers:
            t.end_run(success=False)


class CheckpointCallback(TrainingCallback):
    """Writes extra checkpoints ``directory/checkpoint_epoch{N}.pt`` every ``every`` epochs (atomically), keeping
    the last ``keep`` of them (``None``: all). For resumable runs use ``train(checkpoint_dir=...)``, which keeps
    one ``checkpoint.pt``; this callback is for keeping a series (e.g. to compare epochs later). Rank 0 writes
    them in a distributed run."""

    main_process_only = True

    def __init__(self, directory: str | os.PathLike[str], every: int = 1, keep: int | None = None) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.directory = Path(directory)
        self.every = every
        self.keep = keep
        self.paths: list[Path] = []

    def on_epoch_end(self, epoch: int, **kwargs: Any) -> None:
        if epoch % self.every != 0:
            return
        from kgreason.training.checkpoint import save_checkpoint

        path = self.directory / f"checkpoint_epoch{epoch}.pt"
        save_checkpoint(self.loop, path)
        self.paths.append(path)
        if self.keep is not None:
            while len(self.paths) > self.keep:
                old = self.paths.pop(0)
                old.unlink(missing_ok=True)
