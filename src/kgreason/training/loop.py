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

Distributed runs (started with ``torchrun``; see docs/distributed.md) use the same loop: every rank draws the
same global batches from the shared ``self.generator`` (and :meth:`TrainingLoop.prepare_batch` draws per-batch
randomness such as negatives there, on the whole batch), trains on its shard of each
(:meth:`TrainingLoop.shard_batch`) through ``DistributedDataParallel``, and reduces the loss over ranks, so
``on_batch`` and ``post_epoch`` see the global loss and the parameters follow a single-process run with the same
global batch size. Checkpoints are written by rank 0 (then a barrier), rank 0's ``stop_training`` is broadcast
after ``post_epoch`` so every rank stops together, and a lost rank raises :class:`RankFailureError`.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from kgreason.config import config_defaults, config_to_dict, resume_diff
from kgreason.distributed.context import (
    RankFailureError,
    all_reduce,
    barrier,
    broadcast_object,
    init_distributed,
    is_communication_error,
)
from kgreason.distributed.ddp import data_parallel_loss
from kgreason.distributed.sampler import rank_seed, shard_batch, shard_bounds, split_examples
from kgreason.training.callbacks import MultiTrainingCallback, TrainingCallback
from kgreason.training.optim import make_lr_scheduler, make_optimizer
from kgreason.training.utils import get_rng_state, has_batch_norm, resolve_device, set_rng_state

__all__ = [
    "CHECKPOINT_NAME",
    "CheckpointMismatchError",
    "NonFiniteLossError",
    "PRECISIONS",
    "RankFailureError",
    "TrainingHistory",
    "TrainingLoop",
    "resolve_precision",
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


#: names of :class:`TrainingLoop`'s ``precision`` -> autocast dtype (``None``: plain float32)
PRECISIONS: dict[str, torch.dtype | None] = {
    "fp32": None,
    "float32": None,
    "32": None,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "bf16-mixed": torch.bfloat16,
}


def resolve_precision(precision: str) -> torch.dtype | None:
    """The autocast dtype of a ``precision`` name (``"fp32"`` -> ``None``, ``"bf16"`` -> ``torch.bfloat16``);
    an unknown name raises ``ValueError`` listing the known ones."""
    key = str(precision).strip().lower().replace("_", "-")
    if key not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose fp32 or bf16 (mixed bfloat16)")
    return PRECISIONS[key]


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
        device: ``None``/``"auto"`` (CUDA when available), or any torch device. Under ``torchrun`` a CUDA
            device without an index is this process's GPU (``cuda:<LOCAL_RANK>``).
        seed: seeds ``self.generator`` (shuffling, negative sampling). ``None`` draws a seed from torch's
            global generator (so ``torch.manual_seed`` makes the run reproducible too). In a distributed run
            every rank must use the same seed.
        callbacks: callbacks (or one) to call at every hook.
        config: the run's config dataclass (or a JSON-ready dict of it); saved in checkpoints and compared
            when resuming. Given a dataclass, a key missing from an older checkpoint's config matches the
            field's default.
        precision: ``"fp32"`` (default) or ``"bf16"``: mixed precision -- each :meth:`batch_loss` runs under
            ``torch.autocast(dtype=torch.bfloat16)`` on the loop's device (matmuls and convolutions in bfloat16,
            parameters, gradients and optimiser state in float32; the backward pass outside autocast, as
            PyTorch recommends). Worth it on CUDA and on CPUs with bfloat16 matrix units (AMX, AVX512-BF16);
            slower elsewhere. See docs/training.md.
    """

    #: config keys allowed to differ when resuming (see :class:`CheckpointMismatchError`)
    resumable_keys: frozenset[str] = RESUMABLE_KEYS
    #: distributed runs: tell DDP that some parameters may get no gradient in a step (slower when true)
    ddp_find_unused_parameters: bool = False

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
        config: dict[str, Any] | Any | None = None,
        precision: str = "fp32",
    ) -> None:
        if scheduler_step not in ("epoch", "batch"):
            raise ValueError(f"scheduler_step must be 'epoch' or 'batch', got {scheduler_step!r}")
        if sub_batch_size is not None and sub_batch_size < 1:
            raise ValueError(f"sub_batch_size must be positive, got {sub_batch_size}")
        #: this process's place in a ``torchrun`` run (rank 0 of 1 otherwise); joins the run if needed
        self.distributed = init_distributed(device)
        self.device = (
            self.distributed.resolve_device(device)
            if self.distributed.is_distributed
            else resolve_device(device)
        )
        self.model = model.to(self.device)
        #: ``None`` (float32) or the autocast dtype of :meth:`batch_loss` (see ``precision``)
        self.autocast_dtype = resolve_precision(precision)
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
        #: defaults of the config's fields (empty for a dict config), see :func:`kgreason.config.config_diff`
        self.config_defaults: dict[str, Any] = {}
        self.config: dict[str, Any] | None
        if dataclasses.is_dataclass(config) and not isinstance(config, type):
            self.config_defaults = config_defaults(type(config))
            self.config = config_to_dict(config)
        else:
            self.config = config  # type: ignore[assignment]
        self.epoch = 0
        self.num_epochs = 0
        self.batch_index = 0
        self.stop_training = False
        self.history = TrainingHistory()
        self.last_finite_loss: float | None = None
        self.checkpoint_path: Path | None = None
        #: last epoch written to ``checkpoint_path`` by this run (``None``: none yet)
        self.last_checkpoint_epoch: int | None = None
        self._ddp: Any = None  # DistributedDataParallel over batch_loss, built by train() when distributed
        self._rank_generator: torch.Generator | None = None  # this rank's own stream inside batch_loss

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

        Works for tensors (split along dim 0) and tuples, named tuples, lists or dicts of tensors sharing dim 0
        (``None`` entries kept); override otherwise.
        """
        try:
            return split_examples(batch, size)
        except NotImplementedError:
            raise NotImplementedError(
                f"{type(self).__name__} cannot split a {type(batch).__name__} batch"
            ) from None

    def prepare_batch(self, batch: Any) -> Any:
        """Turn a batch of :meth:`batches` into what :meth:`batch_loss` takes (default: unchanged).

        Called once per batch on the *whole* batch, before sub-batching and, in a distributed run, on every
        rank before sharding, with ``self.generator`` in the state all ranks share: randomness drawn here for
        the whole batch (e.g. sLCWA negatives) is what a single process would draw.
        """
        return batch

    def shard_batch(self, batch: Any, rank: int, world_size: int) -> Any:
        """Rank ``rank``'s part of a prepared global ``batch`` (distributed runs only): its contiguous shard
        (:func:`kgreason.distributed.sampler.shard_batch`). Override for batch types it cannot slice."""
        return shard_batch(batch, rank, world_size)

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
        from kgreason.training.checkpoint import save_checkpoint

        self._check_sub_batching()
        ckpt_path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None
        self.checkpoint_path = ckpt_path
        if ckpt_path is not None and resume:
            state = self._read_checkpoint(ckpt_path)
            if state is not None:
                self.load_state_dict(state, path=ckpt_path)
                self.last_checkpoint_epoch = self.epoch
        self.num_epochs = num_epochs
        self.stop_training = self.history.stopped_early
        self.model.train()
        try:
            if self.distributed.is_distributed and self._ddp is None:
                self._ddp = data_parallel_loss(
                    self.model,
                    self.batch_loss,
                    self.device,
                    find_unused_parameters=self.ddp_find_unused_parameters,
                )
            self.callbacks.on_train_start()
            epoch = self.epoch
            while not self.stop_training and self.epoch < num_epochs:
                epoch = self.epoch + 1
                self._train_epoch(epoch)
                if ckpt_path is not None and (
                    epoch % checkpoint_every == 0 or epoch == num_epochs or self.stop_training
                ):
                    if self.distributed.is_main:
                        save_checkpoint(self, ckpt_path)
                    barrier()
                    self.last_checkpoint_epoch = epoch
                self.callbacks.on_epoch_end(epoch=epoch)
            self.callbacks.post_train(losses=self.losses)
        except BaseException as exc:
            if self.distributed.is_distributed and is_communication_error(exc):
                failure = RankFailureError(self._rank_failure_message(exc))
                self.callbacks.on_exception(failure)
                raise failure from exc
            self.callbacks.on_exception(exc)
            raise
        return list(self.losses)

    def _read_checkpoint(self, path: Path) -> dict[str, Any] | None:
        """The checkpoint at ``path`` (``None`` when there is none); in a distributed run rank 0 reads it and
        sends it to every rank (so only rank 0 needs the file), errors included."""
        from kgreason.training.checkpoint import load_checkpoint

        if not self.distributed.is_distributed:
            return load_checkpoint(path, map_location=self.device) if path.exists() else None
        payload: tuple[str, Any] = ("ok", None)
        if self.distributed.is_main:
            try:
                payload = ("ok", load_checkpoint(path, map_location="cpu") if path.exists() else None)
            except Exception as exc:  # every rank raises it, rather than waiting for rank 0
                payload = ("error", exc)
        kind, value = broadcast_object(payload)
        if kind == "error":
            raise value
        return value

    def _rank_failure_message(self, exc: BaseException) -> str:
        ctx = self.distributed
        where = f"rank {ctx.rank} of {ctx.world_size}"
        saved = (
            f"The last checkpoint, {self.checkpoint_path} (epoch {self.last_checkpoint_epoch}), is intact: start "
            "the run again (any number of processes) to resume from it."
            if self.checkpoint_path is not None and self.last_checkpoint_epoch is not None
            else "No checkpoint was written by this run (pass checkpoint_dir to keep progress)."
        )
        return (
            f"{where} lost contact with the other ranks during epoch {self.epoch + 1}: another rank died, was "
            f"killed or hung longer than the timeout ({type(exc).__name__}: {exc}). {saved}"
        )

    def _train_epoch(self, epoch: int) -> None:
        start = time.perf_counter()
        self.model.train()
        if self.distributed.is_distributed:
            self._seed_rank_streams(epoch)
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
        if self.distributed.is_distributed:
            # rank 0's decision (early stopping or any callback) holds everywhere: all ranks stop together
            self.stop_training = bool(broadcast_object(self.stop_training))
        if self.stop_training:
            self.history.stopped_early = True

    def _seed_rank_streams(self, epoch: int) -> None:
        """Distributed runs: seed this rank's own random streams for ``epoch`` from ``(seed, epoch, rank)``: the
        generator :meth:`batch_loss` sees as ``self.generator`` and torch's global one (dropout)."""
        seed = rank_seed(self.seed, epoch, self.distributed.rank)
        if self._rank_generator is None:
            self._rank_generator = torch.Generator(device=self.device)
        self._rank_generator.manual_seed(seed)
        torch.manual_seed(rank_seed(seed, 1))

    def _train_batch(self, epoch: int, batch: Any) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        prepared = self.prepare_batch(batch)
        if self.distributed.is_distributed:
            batch_loss = self._distributed_backward(epoch, prepared)
        else:
            batch_loss = self._backward(epoch, prepared)
        self.last_finite_loss = batch_loss
        self.callbacks.on_batch(epoch=epoch, batch=batch, batch_loss=batch_loss)
        self.callbacks.pre_step()
        self.optimizer.step()
        self.callbacks.post_batch(epoch=epoch, batch=batch)
        if self.lr_scheduler is not None and self.scheduler_step == "batch":
            self._step_scheduler(batch_loss)
        return batch_loss

    def _backward(self, epoch: int, batch: Any) -> float:
        """Loss and gradient of a whole batch in one process (sub-batches accumulated); returns the loss."""
        if self.sub_batch_size is not None and self.batch_size_of(batch) > self.sub_batch_size:
            parts = self.split_batch(batch, self.sub_batch_size)
            total_size = self.batch_size_of(batch)
            shares = [self.batch_size_of(p) / total_size for p in parts]
        else:
            parts, shares = [batch], [1.0]
        batch_loss = 0.0
        for part, share in zip(parts, shares):
            with self.autocast():
                loss = self.batch_loss(part).float()
            if loss.dim() != 0:
                raise ValueError(f"batch_loss must return a scalar, got shape {tuple(loss.shape)}")
            value = float(loss.detach())
            if not math.isfinite(value):
                self.optimizer.zero_grad(set_to_none=True)
                raise NonFiniteLossError(epoch, self.batch_index, value, self.last_finite_loss)
            (loss * share if share != 1.0 else loss).backward()
            batch_loss += value * share
        return batch_loss

    def _distributed_backward(self, epoch: int, batch: Any) -> float:
        """This rank's share of the gradient of a global batch, averaged over ranks by DDP; returns the global
        loss (identical on every rank).

        Rank ``r`` computes the loss of its shard (in ``k`` sub-batches, ``k`` the same on every rank) with its
        own generator, each part weighted by ``world_size * size / batch size``: DDP's average over ranks is then
        the gradient of the whole batch's mean loss whatever the shard sizes. A rank whose shard (or part) is
        empty computes a stand-in example with weight 0, so that it still joins DDP's all-reduce. The losses are
        summed over ranks before the last backward, so a non-finite loss on any rank stops every rank.
        """
        ctx, ddp = self.distributed, self._ddp
        assert ddp is not None, "train() builds the DDP wrapper"
        world = ctx.world_size
        total = self.batch_size_of(batch)
        local = self.shard_batch(batch, ctx.rank, world)
        n_local = self.batch_size_of(local)
        largest = shard_bounds(total, 0, world)[1]  # the biggest shard's size
        k = 1 if self.sub_batch_size is None else max(1, -(-largest // self.sub_batch_size))
        parts: list[Any] = self.split_batch(local, -(-n_local // k)) if n_local > 0 else []
        weights = [self.batch_size_of(p) * world / total for p in parts]
        while len(parts) < k:  # stand-ins keep the number of DDP forward/backward calls equal on all ranks
            parts.append(self.split_batch(batch, 1)[0])
            weights.append(0.0)
        shared, self.generator = self.generator, self._rank_generator  # type: ignore[assignment]
        try:
            contribution, bad = 0.0, False
            for i, (part, weight) in enumerate(zip(parts, weights)):
                last = i == k - 1
                with contextlib.nullcontext() if last else ddp.no_sync():
                    with self.autocast():
                        loss = ddp(part).float()
                    if loss.dim() != 0:
                        raise ValueError(f"batch_loss must return a scalar, got shape {tuple(loss.shape)}")
                    value = float(loss.detach())
                    bad = bad or not math.isfinite(value)
                    contribution += value * weight / world
                    if not last and not bad:
                        (loss * weight if weight != 1.0 else loss).backward()
            reduced = all_reduce([contribution, float(bad)])
            batch_loss = float(reduced[0])
            if reduced[1] > 0:
                self.optimizer.zero_grad(set_to_none=True)
                raise NonFiniteLossError(epoch, self.batch_index, batch_loss, self.last_finite_loss)
            (loss * weight if weight != 1.0 else loss).backward()  # DDP averages the gradients here
        finally:
            self.generator = shared
        return batch_loss

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The context :meth:`batch_loss` runs in: ``torch.autocast`` in bfloat16 when ``precision="bf16"``,
        else a no-op."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

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
        diff = resume_diff(saved or {}, self.config or {}, self.resumable_keys, defaults=self.config_defaults)
        if diff:
            raise CheckpointMismatchError(path, diff)
