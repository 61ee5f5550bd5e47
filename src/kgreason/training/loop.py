"""The one generic training driver, shared by the KGE loops (sLCWA, LCWA) and the RL walker.

A subclass says *what* a batch is and *what* its loss is; :class:`TrainingLoop` does the rest: epochs,
gradient steps, sub-batching (gradient accumulation), learning-rate schedules, callbacks, non-finite loss
detection, checkpoints with every random state, and resuming.

Nothing here assumes a KGE model: a subclass implements

* :meth:`TrainingLoop.batches` -- this epoch's batches (shuffled with ``self.generator``),
* :meth:`TrainingLoop.batch_loss` -- the scalar loss of one batch (regulariser included),

and optionally :meth:`TrainingLoop.batch_size_of` and :meth:`TrainingLoop.split_batch` (for sub-batching),
and :meth:`TrainingLoop.extra_state_dict` / :meth:`TrainingLoop.load_extra_state_dict` for state of its own.

Order of events in :meth:`TrainingLoop.train` (epochs are numbered from 1)::

    [resume from checkpoint_dir/checkpoint.pt if present]
    on_train_start()
    for epoch in self.epoch + 1 .. num_epochs:
        on_epoch_start(epoch)
        for batch in batches(epoch):
            zero_grad; for each sub-batch: loss = batch_loss(sub) * share; check finite; loss.backward()
            on_batch(epoch=epoch, batch=batch, batch_loss=loss)    # loss: float, averaged over the batch
            pre_step()                                              # e.g. gradient clipping
            optimizer.step()
            post_batch(epoch=epoch, batch=batch)
            [scheduler.step() if scheduler_step == "batch"]
        self.epoch = epoch
        [scheduler.step() if scheduler_step == "epoch"]
        post_epoch(epoch=epoch, epoch_loss=mean loss)               # evaluation, early stopping, trackers
        [save checkpoint every checkpoint_every epochs, at the last epoch and when stopping]
        on_epoch_end(epoch=epoch)                                   # e.g. CheckpointCallback
        break if self.stop_training
    post_train(losses=self.losses)
    # any exception: on_exception(exc), then re-raised
"""

from __future__ import annotations

import abc
import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from kgreason.config import config_diff
from kgreason.training.callbacks import MultiTrainingCallback, TrainingCallback
from kgreason.training.optim import make_lr_scheduler, make_optimizer
from kgreason.training.utils import get_rng_state, has_batch_norm, resolve_device, set_rng_state

__all__ = [
    "CHECKPOINT_NAME",
    "CheckpointMismatchError",
    "NonFiniteLossError",
    "TrainingHistory",
    "TrainingLoop",
]

CHECKPOINT_NAME = "checkpoint.pt"
SchedulerStep = Literal["epoch", "batch"]

#: Config keys that may change between a checkpoint and its resumption (more epochs, another device, ...).
RESUMABLE_KEYS = frozenset(
    {"epochs", "num_epochs", "device", "output_dir", "checkpoint_every", "num_workers"}
)


class NonFiniteLossError(RuntimeError):
    """A batch produced a NaN or infinite loss; the optimiser step was not taken.

    Attributes: ``epoch`` (1-based), ``batch`` (0-based index within the epoch), ``loss`` (the bad value) and
    ``last_finite_loss`` (the last finite batch loss of this run, ``None`` when there was none).
    """

    def __init__(self, epoch: int, batch: int, loss: float, last_finite_loss: float | None) -> None:
        self.epoch = epoch
        self.batch = batch
        self.loss = loss
        self.last_finite_loss = last_finite_loss
        last = "none yet" if last_finite_loss is None else f"{last_finite_loss:.6g}"
        super().__init__(
            f"Non-finite loss ({loss}) in epoch {epoch}, batch {batch}; last finite batch loss: {last}. "
            "Try a lower learning rate, gradient clipping, or check the inputs."
        )


class CheckpointMismatchError(ValueError):
    """A checkpoint was written with a different config than the loop resuming it; lists the differing keys."""

    def __init__(self, path: str | os.PathLike[str] | None, differences: Sequence[str]) -> None:
        self.differences = list(differences)
        where = f" {path}" if path else ""
        super().__init__(
            f"Cannot resume from checkpoint{where}: its config differs from the current one in "
            f"{len(self.differences)} key(s):\n  "
            + "\n  ".join(self.differences)
            + "\nStart a fresh run (another output directory, or resume=False) or restore the old settings."
        )


@dataclass
class TrainingHistory:
    """What a run has done so far (saved in checkpoints).

    ``losses[i]`` (mean batch loss), ``learning_rates[i]`` (at the start of the epoch) and ``seconds[i]``
    belong to epoch ``i + 1``. ``metrics`` holds one
    record per :meth:`TrainingLoop.record_metrics` call: ``{"epoch": e, "<key>": value, ...}``.
    """

    losses: list[float] = field(default_factory=list)
    learning_rates: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    metrics: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False

    def state_dict(self) -> dict[str, Any]:
        return {
            "losses": list(self.losses),
            "learning_rates": list(self.learning_rates),
            "seconds": list(self.seconds),
            "metrics": [dict(m) for m in self.metrics],
            "stopped_early": self.stopped_early,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.losses = list(state["losses"])
        self.learning_rates = list(state["learning_rates"])
        self.seconds = list(state["seconds"])
        self.metrics = [dict(m) for m in state["metrics"]]
        self.stopped_early = bool(state["stopped_early"])

    def metric(self, key: str) -> list[tuple[int, float]]:
        """``(epoch, value)`` of every record holding ``key``."""
        return [(int(m["epoch"]), float(m[key])) for m in self.metrics if key in m]


class TrainingLoop(abc.ABC):
    """Generic mini-batch training of ``model`` (see the module docstring for the order of events).

    Args:
        model: the module to train; moved to ``device``.
        optimizer: a ``torch.optim`` class name (``"Adam"``, ``"adagrad"``, ...), an optimiser class, or a built
            optimiser over the model's parameters.
        optimizer_kwargs: keyword arguments of the optimiser (e.g. ``weight_decay``).
        lr: learning rate (``None``: the optimiser's own default).
        lr_scheduler: a ``torch.optim.lr_scheduler`` class name, class or built scheduler; ``None`` for none.
        lr_scheduler_kwargs: its keyword arguments (``{"step_size": 10, "gamma": 0.5}``).
        scheduler_step: ``"epoch"`` (default) or ``"batch"``: when the scheduler is stepped.
        scheduler_metric: for ``ReduceLROnPlateau``: ``None``/``"loss"`` steps it with the training loss (of the
            epoch or the batch); any other key (e.g. ``"valid.both.realistic.mrr"``) steps it with that metric
            whenever a new value is recorded by :meth:`record_metrics` (so a metric evaluated every 5 epochs
            steps it every 5 epochs).
        sub_batch_size: split each batch into sub-batches of at most this many examples and accumulate their
            gradients (bounded memory, same gradient as the whole batch for mean-reduced losses). Refused for
            models with batch-norm layers, whose statistics would then be computed per sub-batch.
        device: ``None``/``"auto"`` (CUDA when available), or any torch device.
        seed: seeds ``self.generator`` (shuffling, negative sampling). ``None`` draws a seed from torch's
            global generator (so ``torch.manual_seed`` makes the run reproducible too).
        callbacks: callbacks (or one) to call at every hook.
        config: a JSON-ready dict describing the run; saved in checkpoints and compared when resuming.
    """

    #: config keys allowed to differ when resuming (see :class:`CheckpointMismatchError`)
    resumable_keys: frozenset[str] = RESUMABLE_KEYS

    def __init__(
        self,
        model: nn.Module,
        optimizer: str | type[torch.optim.Optimizer] | torch.optim.Optimizer = "Adam",
        optimizer_kwargs: dict[str, Any] | None = None,
        lr: float | None = None,
        lr_scheduler: str | type | Any | None = None,
        lr_scheduler_kwargs: dict[str, Any] | None = None,
        scheduler_step: SchedulerStep = "epoch",
        scheduler_metric: str | None = None,
        sub_batch_size: int | None = None,
        device: str | torch.device | None = None,
        seed: int | None = None,
        callbacks: TrainingCallback | Sequence[TrainingCallback] | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        if scheduler_step not in ("epoch", "batch"):
            raise ValueError(f"scheduler_step must be 'epoch' or 'batch', got {scheduler_step!r}")
        if sub_batch_size is not None and sub_batch_size < 1:
            raise ValueError(f"sub_batch_size must be positive, got {sub_batch_size}")
        self.device = resolve_device(device)
        self.model = model.to(self.device)
        self.optimizer = make_optimizer(optimizer, self.model.parameters(), lr=lr, **(optimizer_kwargs or {}))
        self.lr_scheduler = (
            None
            if lr_scheduler is None
            else make_lr_scheduler(lr_scheduler, self.optimizer, **(lr_scheduler_kwargs or {}))
        )
        self.scheduler_step: SchedulerStep = scheduler_step
        self.scheduler_metric = scheduler_metric
        self.sub_batch_size = sub_batch_size
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        self.seed = int(seed)
        self.generator = torch.Generator(device=self.device).manual_seed(self.seed)
        self.callbacks = MultiTrainingCallback(callbacks)
        self.callbacks.register_loop(self)
        self.config: dict[str, Any] | None = config
        self.epoch = 0
        self.num_epochs = 0
        self.batch_index = 0
        self.stop_training = False
        self.history = TrainingHistory()
        self.last_finite_loss: float | None = None
        self.checkpoint_path: Path | None = None

    # ---- what a subclass provides ---------------------------------------------------------------------

    @abc.abstractmethod
    def batches(self, epoch: int) -> Iterable[Any]:
        """This epoch's batches, in an order drawn from ``self.generator`` (``epoch`` is 1-based)."""

    @abc.abstractmethod
    def batch_loss(self, batch: Any) -> torch.Tensor:
        """The scalar loss of ``batch`` (averaged over its examples; regularisation included)."""

    def batch_size_of(self, batch: Any) -> int:
        """Number of examples in ``batch`` (weights batches in the epoch loss); ``len(batch)`` by default."""
        try:
            return len(batch)
        except TypeError:
            return 1

    def split_batch(self, batch: Any, size: int) -> list[Any]:
        """``batch`` cut into consecutive sub-batches of at most ``size`` examples (for ``sub_batch_size``).

        Works for tensors (split along dim 0) and tuples/lists of tensors sharing dim 0; override otherwise.
        """
        if isinstance(batch, torch.Tensor):
            return list(torch.split(batch, size))
        if isinstance(batch, tuple | list) and all(isinstance(x, torch.Tensor) for x in batch):
            parts = [torch.split(x, size) for x in batch]
            return [type(batch)(p) if isinstance(batch, tuple) else list(p) for p in zip(*parts)]
        raise NotImplementedError(f"{type(self).__name__} cannot split a {type(batch).__name__} batch")

    def extra_state_dict(self) -> dict[str, Any]:
        """State of the subclass beyond model/optimiser/RNG (saved in checkpoints)."""
        return {}

    def load_extra_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Restore :meth:`extra_state_dict`."""

    # ---- metrics ---------------------------------------------------------------------------------------

    def record_metrics(self, epoch: int, metrics: dict[str, float]) -> None:
        """Store ``metrics`` (e.g. ``{"valid.both.realistic.mrr": 0.8}``) in the history and tell the callbacks
        (``on_metrics``), which is how trackers, early stopping and ``ReduceLROnPlateau`` see evaluations."""
        record = {"epoch": float(epoch), **{k: float(v) for k, v in metrics.items()}}
        self.history.metrics.append(record)
        self.callbacks.on_metrics(epoch=epoch, metrics=dict(metrics))
        if (
            self._is_plateau()
            and self.scheduler_metric not in (None, "loss")
            and self.scheduler_metric in metrics
        ):
            self.lr_scheduler.step(float(metrics[self.scheduler_metric]))  # type: ignore[union-attr]

    @property
    def losses(self) -> list[float]:
        """Mean training loss of every completed epoch."""
        return self.history.losses

    @property
    def learning_rate(self) -> float:
        """The current learning rate of the first parameter group."""
        return float(self.optimizer.param_groups[0]["lr"])

    # ---- training --------------------------------------------------------------------------------------

    def train(
        self,
        num_epochs: int,
        checkpoint_dir: str | Path | None = None,
        checkpoint_every: int = 1,
        resume: bool = True,
    ) -> list[float]:
        """Train until ``num_epochs`` epochs are complete in total (resumed epochs count) or a callback stops.

        With ``checkpoint_dir``, ``checkpoint_dir/checkpoint.pt`` is written atomically every
        ``checkpoint_every`` epochs, at the last epoch and when stopping early; with ``resume`` an existing one
        is loaded first (its config must match, see :class:`CheckpointMismatchError`), so a killed run
        continues where its last checkpoint left off and ends with the same weights as an uninterrupted run.

        Returns the mean loss of every epoch, resumed ones included.
        """
        if num_epochs < 0:
            raise ValueError(f"num_epochs must be >= 0, got {num_epochs}")
        if checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
        from kgreason.training.checkpoint import load_checkpoint, save_checkpoint

        self._check_sub_batching()
        ckpt_path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None
        self.checkpoint_path = ckpt_path
        if ckpt_path is not None and resume and ckpt_path.exists():
            self.load_state_dict(load_checkpoint(ckpt_path, map_location=self.device), path=ckpt_path)
        self.num_epochs = num_epochs
        self.stop_training = self.history.stopped_early
        self.model.train()
        try:
            self.callbacks.on_train_start()
            epoch = self.epoch
            while not self.stop_training and self.epoch < num_epochs:
                epoch = self.epoch + 1
                self._train_epoch(epoch)
                if ckpt_path is not None and (
                    epoch % checkpoint_every == 0 or epoch == num_epochs or self.stop_training
                ):
                    save_checkpoint(self, ckpt_path)
                self.callbacks.on_epoch_end(epoch=epoch)
            self.callbacks.post_train(losses=self.losses)
        except BaseException as exc:
            self.callbacks.on_exception(exc)
            raise
        return list(self.losses)

    def _train_epoch(self, epoch: int) -> None:
        start = time.perf_counter()
        self.model.train()
        self.callbacks.on_epoch_start(epoch=epoch)
        learning_rate = self.learning_rate
        total, count = 0.0, 0
        for index, batch in enumerate(self.batches(epoch)):
            self.batch_index = index
            loss = self._train_batch(epoch, batch)
            n = self.batch_size_of(batch)
            total += loss * n
            count += n
        epoch_loss = total / max(count, 1)
        self.epoch = epoch
        self.history.losses.append(epoch_loss)
        self.history.learning_rates.append(learning_rate)
        self.history.seconds.append(time.perf_counter() - start)
        if self.lr_scheduler is not None and self.scheduler_step == "epoch":
            self._step_scheduler(epoch_loss)
        self.callbacks.post_epoch(epoch=epoch, epoch_loss=epoch_loss)
        if self.stop_training:
            self.history.stopped_early = True

    def _train_batch(self, epoch: int, batch: Any) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        if self.sub_batch_size is not None and self.batch_size_of(batch) > self.sub_batch_size:
            parts = self.split_batch(batch, self.sub_batch_size)
            total_size = self.batch_size_of(batch)
            shares = [self.batch_size_of(p) / total_size for p in parts]
        else:
            parts, shares = [batch], [1.0]
        batch_loss = 0.0
        for part, share in zip(parts, shares):
            loss = self.batch_loss(part)
            if loss.dim() != 0:
                raise ValueError(f"batch_loss must return a scalar, got shape {tuple(loss.shape)}")
            value = float(loss.detach())
            if not math.isfinite(value):
                self.optimizer.zero_grad(set_to_none=True)
                raise NonFiniteLossError(epoch, self.batch_index, value, self.last_finite_loss)
            (loss * share if share != 1.0 else loss).backward()
            batch_loss += value * share
        self.last_finite_loss = batch_loss
        self.callbacks.on_batch(epoch=epoch, batch=batch, batch_loss=batch_loss)
        self.callbacks.pre_step()
        self.optimizer.step()
        self.callbacks.post_batch(epoch=epoch, batch=batch)
        if self.lr_scheduler is not None and self.scheduler_step == "batch":
            self._step_scheduler(batch_loss)
        return batch_loss

    def _is_plateau(self) -> bool:
        return isinstance(self.lr_scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)

    def _step_scheduler(self, loss: float) -> None:
        assert self.lr_scheduler is not None
        if self._is_plateau():
            if self.scheduler_metric in (None, "loss"):
                self.lr_scheduler.step(loss)
            # otherwise stepped by record_metrics when the metric arrives
        else:
            self.lr_scheduler.step()

    def _check_sub_batching(self) -> None:
        if self.sub_batch_size is not None and has_batch_norm(self.model):
            raise ValueError(
                f"sub_batch_size={self.sub_batch_size} with a batch-norm model ({type(self.model).__name__}): "
                "batch-norm statistics would be computed per sub-batch, so training would differ from whole "
                "batches. Lower batch_size instead (or use sub_batch_size=None)."
            )

    # ---- state -------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue training exactly: model, optimiser, scheduler, all RNG states (Python,
        NumPy, torch, CUDA, ``self.generator``), completed epochs, history, callback states and config."""
        return {
            "format": 1,
            "loop": type(self).__name__,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": None if self.lr_scheduler is None else self.lr_scheduler.state_dict(),
            "rng": get_rng_state(self.generator),
            "epoch": self.epoch,
            "last_finite_loss": self.last_finite_loss,
            "history": self.history.state_dict(),
            "callbacks": self.callbacks.state_dict(),
            "config": self.config,
            "extra": self.extra_state_dict(),
        }

    def load_state_dict(
        self, state: dict[str, Any], path: str | os.PathLike[str] | None = None, check_config: bool = True
    ) -> None:
        """Restore :meth:`state_dict`. With ``check_config``, a config that differs from ``self.config`` (beyond
        :attr:`resumable_keys`) raises :class:`CheckpointMismatchError` listing the differing keys."""
        if check_config:
            self.check_config(state.get("config"), path=path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.lr_scheduler is not None and state.get("lr_scheduler") is not None:
            self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        set_rng_state(state["rng"], self.generator)
        self.epoch = int(state["epoch"])
        self.last_finite_loss = state.get("last_finite_loss")
        self.history.load_state_dict(state["history"])
        self.callbacks.load_state_dict(state.get("callbacks") or {})
        self.load_extra_state_dict(state.get("extra") or {})

    def check_config(self, saved: dict[str, Any] | None, path: str | os.PathLike[str] | None = None) -> None:
        """Raise :class:`CheckpointMismatchError` when ``saved`` differs from ``self.config`` in a key that is
        not in :attr:`resumable_keys`."""
        if saved is None and self.config is None:
            return
        diff = config_diff(saved or {}, self.config or {})
        diff = [d for d in diff if d.split(":", 1)[0].split(".")[0] not in self.resumable_keys]
        if diff:
            raise CheckpointMismatchError(path, diff)
