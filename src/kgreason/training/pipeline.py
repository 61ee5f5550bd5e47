"""Train and evaluate a KGE model in one call, with a complete run directory.

    result = pipeline(dataset="umls", model="complex", loop="lcwa", output_dir="runs/umls-complex")
    print(result.metrics.format())

Unset training options come from the model's ``default_training`` (see :mod:`kgreason.training.config`), so
``pipeline(dataset="umls", model="complex")`` trains ComplEx the way it should be trained (LCWA, BCE with label
smoothing), not with one loss for every model.

Run directory (``output_dir``)::

    config.json                 the resolved KGEConfig (every option, defaults filled in)
    entities.json relations.json  vocabularies (position = id)
    checkpoints/checkpoint.pt   training state (atomic; resumed automatically when the run is started again)
    checkpoints/best_weights.pt best weights so far (with early stopping)
    model.pt model.json         the final model (the best one with early stopping), kgreason.models.save_model
    losses.csv losses.png       loss (and learning rate, seconds, validation MRR when evaluated) per epoch
    metrics.json                filtered test metrics, both sides, ``{side}.{rank_type}.{metric}``

Under ``torchrun`` (docs/distributed.md) every process runs ``pipeline`` with the same arguments: the loop
trains data-parallel, evaluation is sharded over the ranks, and rank 0 alone writes the run directory.

``evaluate_run(run_dir)`` re-evaluates a saved run. The only place the training layer builds an evaluator is
here (and :func:`evaluate_run`); loops and callbacks take one from their caller. The run directory is started
and finished by :mod:`kgreason.training.run_dir`, as for the walker and CPL.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from kgreason.config import config_from_dict, load_config_dict, unknown_keys_error
from kgreason.data.dataset import Dataset
from kgreason.distributed.context import init_distributed
from kgreason.training.callbacks import (
    EarlyStoppingCallback,
    EvaluationCallback,
    GradientClippingCallback,
    GradientValueClippingCallback,
    TrackerCallback,
    TrainingCallback,
)
from kgreason.training.config import RESUMABLE_KEYS, KGEConfig, resolve_config
from kgreason.training.kge import KGETrainingLoop
from kgreason.training.lcwa import LCWATrainingLoop, SymmetricLCWATrainingLoop
from kgreason.training.run_dir import (
    CONFIG_FILE,
    best_weights_path,
    checkpoints_dir,
    finish_run_dir,
    prepare_run_dir,
    resolve_dataset,
    timed_train,
    write_losses_csv,
)
from kgreason.training.slcwa import SLCWATrainingLoop
from kgreason.training.utils import resolve_device, set_seed

if TYPE_CHECKING:
    from kgreason.evaluation import EvaluationResult

__all__ = ["PipelineResult", "build_training_loop", "evaluate_run", "pipeline", "write_losses_csv"]


@dataclass
class PipelineResult:
    """What :func:`pipeline` returns.

    ``metrics`` is the filtered test evaluation (both sides) or ``None`` with ``evaluate=False``;
    ``best_epoch`` the epoch of the restored weights with early stopping (else ``None``).
    """

    config: KGEConfig
    model: nn.Module
    dataset: Dataset
    loop: KGETrainingLoop
    losses: list[float]
    metrics: EvaluationResult | None
    run_dir: Path | None
    train_seconds: float
    stopped_early: bool
    best_epoch: int | None


def _make_config(config: KGEConfig | None, values: dict[str, Any]) -> KGEConfig:
    cfg = dataclasses.replace(config) if config is not None else KGEConfig()
    known = {f.name for f in dataclasses.fields(KGEConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise unknown_keys_error("pipeline option", unknown, sorted(known))
    return dataclasses.replace(cfg, **{k: v for k, v in values.items() if v is not None})


def build_training_loop(
    config: KGEConfig,
    model: nn.Module,
    dataset: Dataset,
    callbacks: Sequence[TrainingCallback] | None = None,
) -> KGETrainingLoop:
    """The training loop a *resolved* ``config`` describes (see :func:`~kgreason.training.config.resolve_config`),
    training ``model`` on ``dataset.train``; the config is attached (checkpoints compare it when resuming)."""
    common: dict[str, Any] = {
        "num_entities": dataset.num_entities,
        "num_relations": dataset.num_relations,
        "loss": config.loss,
        "loss_kwargs": config.loss_kwargs,
        "batch_size": config.batch_size,
        "optimizer": config.optimizer,
        "optimizer_kwargs": config.optimizer_kwargs,
        "lr": config.lr,
        "lr_scheduler": config.scheduler,
        "lr_scheduler_kwargs": config.scheduler_kwargs,
        "scheduler_step": config.scheduler_step,
        "scheduler_metric": config.scheduler_metric,
        "sub_batch_size": config.sub_batch_size,
        "precision": config.precision,
        "device": config.device,
        "seed": config.seed,
        "callbacks": list(callbacks or []),
        "config": config,
    }
    name = (config.loop or "").lower().replace("-", "_")
    loop: KGETrainingLoop
    if name == "slcwa":
        loop = SLCWATrainingLoop(
            model,
            dataset.train,
            negative_sampler=config.negative_sampler or "uniform",
            negative_sampler_kwargs=config.negative_sampler_kwargs,
            num_negs_per_pos=config.num_negatives or 1,
            filtered=bool(config.filter_negatives),
            **common,
        )
    elif name == "lcwa":
        loop = LCWATrainingLoop(model, dataset.train, target=config.target, **common)  # type: ignore[arg-type]
    elif name.replace("_", "") == "symmetriclcwa":
        loop = SymmetricLCWATrainingLoop(model, dataset.train, **common)
    else:
        raise ValueError(f"Unknown training loop {config.loop!r}; choose slcwa, lcwa or symmetric_lcwa")
    loop.resumable_keys = RESUMABLE_KEYS
    return loop


def pipeline(
    dataset: str | Dataset | None = None,
    model: str | None = None,
    loop: str | None = None,
    output_dir: str | os.PathLike[str] | None = None,
    *,
    config: KGEConfig | None = None,
    callbacks: Sequence[TrainingCallback] | None = None,
    resume: bool = True,
    evaluate: bool = True,
    **overrides: Any,
) -> PipelineResult:
    """Train a KGE model and evaluate it on the test split.

    Args:
        dataset: a dataset name (loaded with :func:`kgreason.data.registry.load_dataset`) or a
            :class:`~kgreason.data.Dataset`.
        model: a model name in :data:`kgreason.models.MODELS` (``"complex"``, ``"rotate"``, ...).
        loop: ``"slcwa"``, ``"lcwa"`` or ``"symmetric_lcwa"`` (default: the model's).
        output_dir: the run directory (see the module docstring); ``None`` keeps everything in memory.
        config: a base :class:`KGEConfig`; ``dataset``/``model``/``loop``/``overrides`` replace its fields.
        callbacks: extra training callbacks (after the built-in ones).
        resume: continue from ``output_dir/checkpoints/checkpoint.pt`` when it exists (its config must match
            except for ``epochs``, ``device`` and other :data:`~kgreason.training.config.RESUMABLE_KEYS`).
        evaluate: evaluate on the test split at the end (``metrics.json``).
        **overrides: any :class:`KGEConfig` field (``lr=0.01``, ``epochs=50``, ``model_kwargs={...}``).

    Under ``torchrun`` the run is data-parallel (``batch_size`` is the global batch, split over the ranks);
    every rank returns the same metrics and rank 0 writes the run directory.
    """
    values: dict[str, Any] = dict(overrides)
    if isinstance(dataset, str):
        values["dataset"] = dataset
    elif isinstance(dataset, Dataset):
        values["dataset"] = dataset.name
    values["model"], values["loop"] = model, loop
    cfg = _make_config(config, values)
    cfg = resolve_config(cfg)
    ctx = init_distributed(cfg.device)  # joins a torchrun run; nothing otherwise
    cfg.device = str(ctx.resolve_device(cfg.device) if ctx.is_distributed else resolve_device(cfg.device))

    ds = resolve_dataset(dataset if isinstance(dataset, Dataset) else cfg.dataset, cfg.data_dir)
    run_dir = Path(output_dir) if output_dir is not None else None
    prepare_run_dir(run_dir, cfg, ds, RESUMABLE_KEYS, resume=resume, is_main=ctx.is_main)

    from kgreason.models import MODELS

    set_seed(cfg.seed)
    kge_model = MODELS.make(
        cfg.model, dict(cfg.model_kwargs), num_entities=ds.num_entities, num_relations=ds.num_relations
    )
    builtin, early = _builtin_callbacks(cfg, ds, run_dir)
    training_loop = build_training_loop(cfg, kge_model, ds, callbacks=[*builtin, *(callbacks or [])])

    losses, seconds = timed_train(
        training_loop, int(cfg.epochs or 0), checkpoints_dir(run_dir), cfg.checkpoint_every, resume
    )
    kge_model.eval()

    metrics = None
    if evaluate:
        from kgreason.evaluation import evaluate_dataset

        with torch.no_grad():
            metrics = evaluate_dataset(
                kge_model, ds, "test", ("head", "tail"), batch_size=cfg.eval_batch_size, device=cfg.device
            )
    from kgreason.models import save_model

    metric_key = f"{cfg.eval_split}.{cfg.early_stopping_metric}"
    finish_run_dir(
        run_dir,
        training_loop.history,
        save_model=lambda directory: save_model(kge_model, directory),  # type: ignore[arg-type]
        metric_keys=[metric_key],
        title=f"{cfg.model} on {cfg.dataset} ({cfg.loop})",
        metrics=metrics,
        is_main=ctx.is_main,
    )
    return PipelineResult(
        config=cfg,
        model=kge_model,
        dataset=ds,
        loop=training_loop,
        losses=losses,
        metrics=metrics,
        run_dir=run_dir,
        train_seconds=seconds,
        stopped_early=training_loop.history.stopped_early,
        best_epoch=early.best_epoch if early is not None else None,
    )


def _builtin_callbacks(
    cfg: KGEConfig, ds: Dataset, run_dir: Path | None
) -> tuple[list[TrainingCallback], EarlyStoppingCallback | None]:
    callbacks: list[TrainingCallback] = []
    if cfg.grad_clip_norm is not None:
        callbacks.append(GradientClippingCallback(cfg.grad_clip_norm))
    if cfg.grad_clip_value is not None:
        callbacks.append(GradientValueClippingCallback(cfg.grad_clip_value))
    if cfg.eval_every:
        from kgreason.evaluation import RankBasedEvaluator

        evaluator = RankBasedEvaluator(
            ds.all_triples(), num_entities=ds.num_entities, batch_size=cfg.eval_batch_size, device=cfg.device
        )
        callbacks.append(
            EvaluationCallback(
                evaluator, ds.split(cfg.eval_split), split=cfg.eval_split, every=cfg.eval_every
            )
        )
    early = None
    if cfg.early_stopping:
        early = EarlyStoppingCallback(
            metric=f"{cfg.eval_split}.{cfg.early_stopping_metric}",
            patience=cfg.patience,
            delta=cfg.early_stopping_delta,
            relative=cfg.early_stopping_relative,
            best_path=best_weights_path(checkpoints_dir(run_dir)),
        )
        callbacks.append(early)
    trackers: list[Any] = []
    for name in cfg.trackers:
        key = name.lower()
        if key in ("csv", "jsonl", "json", "tensorboard") and run_dir is None:
            continue  # file trackers need a run directory
        if key == "csv":
            from kgreason.training.trackers import CSVTracker

            trackers.append(CSVTracker(run_dir / "history.csv"))  # type: ignore[operator]
        elif key in ("jsonl", "json"):
            from kgreason.training.trackers import JSONLTracker

            trackers.append(JSONLTracker(run_dir / "history.jsonl"))  # type: ignore[operator]
        elif key == "tensorboard":
            from kgreason.training.trackers import TensorBoardTracker

            trackers.append(TensorBoardTracker(run_dir / "tensorboard"))  # type: ignore[operator]
        else:
            trackers.append(name)
    if trackers:
        callbacks.append(TrackerCallback(trackers))
    return callbacks, early


def evaluate_run(
    run_dir: str | os.PathLike[str],
    split: str = "test",
    data_dir: str | os.PathLike[str] | None = None,
    dataset: Dataset | None = None,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    sides: Sequence[str] = ("head", "tail"),
) -> EvaluationResult:
    """Re-evaluate the model saved in ``run_dir`` on ``split`` (filtered with train + valid + test).

    The dataset is the run's (``config.json``), loaded from ``data_dir`` (default: the run's ``data_dir``, then
    ``$KGREASON_DATA_DIR``), or ``dataset`` when given; its vocabularies must equal the run's.
    """
    from kgreason.evaluation import RankBasedEvaluator
    from kgreason.models import load_model

    run_dir = Path(run_dir)
    raw = load_config_dict(run_dir / CONFIG_FILE)
    cfg = config_from_dict(KGEConfig, raw)
    ds = (
        dataset
        if dataset is not None
        else resolve_dataset(cfg.dataset, str(data_dir) if data_dir else cfg.data_dir)
    )
    ds.check_vocabularies(run_dir)
    dev = resolve_device(device)
    model = load_model(run_dir, map_location=dev)
    model.eval()
    evaluator = RankBasedEvaluator(
        ds.all_triples(), num_entities=ds.num_entities, batch_size=batch_size, device=dev
    )
    with torch.no_grad():
        return evaluator.evaluate(model, ds.split(split), sides=tuple(sides))
