"""The run directory every trainer writes the same way (KGE :func:`~kgreason.training.pipeline.pipeline`, the
walker's ``train_walker``, CPL's ``train_cpl``): start it, train into its checkpoints, finish it.

    prepare_run_dir(run_dir, cfg, ds, RESUMABLE_KEYS, resume=True, is_main=ctx.is_main)
    losses, seconds = timed_train(loop, cfg.epochs, checkpoints_dir(run_dir), cfg.checkpoint_every, resume=True)
    finish_run_dir(run_dir, loop.history, save_model=..., metric_keys=[key], title=..., metrics=m, is_main=...)

Files written here (each trainer adds its own model files)::

    config.json                  the run's config (every option, defaults filled in)
    entities.json relations.json vocabularies (position = id)
    checkpoints/checkpoint.pt    training state (the loop's; resumed automatically); checkpoints/best_weights.pt
    losses.csv losses.png        loss, learning rate, seconds and the chosen metrics per epoch
    metrics.json                 filtered test metrics, ``{side}.{rank_type}.{metric}``

Nothing here builds an evaluator: the trainers evaluate and pass the result in.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kgreason.config import config_defaults, config_to_dict, load_config_dict, resume_diff, save_config
from kgreason.data.dataset import Dataset
from kgreason.distributed.context import barrier
from kgreason.io import atomic_open
from kgreason.training.loop import CheckpointMismatchError, TrainingHistory, TrainingLoop

if TYPE_CHECKING:
    from kgreason.evaluation import EvaluationResult

__all__ = [
    "BEST_WEIGHTS_FILE",
    "CHECKPOINT_DIR",
    "CONFIG_FILE",
    "best_weights_path",
    "check_run_dir",
    "checkpoints_dir",
    "finish_run_dir",
    "plot_history",
    "prepare_run_dir",
    "resolve_dataset",
    "timed_train",
    "write_losses_csv",
    "write_run_config",
    "write_training_outputs",
]

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
BEST_WEIGHTS_FILE = "best_weights.pt"
LOSSES_FILE = "losses.csv"
LOSSES_PLOT = "losses.png"
METRICS_FILE = "metrics.json"


def checkpoints_dir(run_dir: Path | None) -> Path | None:
    """``run_dir/checkpoints`` (``None`` without a run directory)."""
    return run_dir / CHECKPOINT_DIR if run_dir is not None else None


def best_weights_path(checkpoint_dir: Path | None) -> Path | None:
    """``checkpoint_dir/best_weights.pt``, where early stopping keeps the best weights (``None``: in memory)."""
    return checkpoint_dir / BEST_WEIGHTS_FILE if checkpoint_dir is not None else None


def resolve_dataset(dataset: str | os.PathLike[str] | Dataset, data_dir: str | None) -> Dataset:
    """``dataset`` itself, or the dataset of that name or folder (:func:`kgreason.data.registry.load_dataset`)."""
    if isinstance(dataset, Dataset):
        return dataset
    from kgreason.data.registry import load_dataset

    return load_dataset(str(dataset), data_dir=data_dir)


def check_run_dir(run_dir: Path, config: Any, dataset: Dataset, resumable_keys: Collection[str]) -> None:
    """Refuse to continue a run directory made with another config (beyond ``resumable_keys``, raising
    :class:`~kgreason.training.loop.CheckpointMismatchError`) or another vocabulary."""
    cfg_path = run_dir / CONFIG_FILE
    if cfg_path.exists():
        diff = resume_diff(
            load_config_dict(cfg_path),
            config_to_dict(config),
            resumable_keys,
            defaults=config_defaults(type(config)),
        )
        if diff:
            raise CheckpointMismatchError(cfg_path, diff)
    if (run_dir / "entities.json").exists():
        dataset.check_vocabularies(run_dir)


def write_run_config(run_dir: Path, config: Any, dataset: Dataset) -> None:
    """Create ``run_dir`` and write ``config.json`` and the vocabularies (``entities.json``, ``relations.json``)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / CONFIG_FILE)
    dataset.save_vocabularies(run_dir)


def prepare_run_dir(
    run_dir: Path | None,
    config: Any,
    dataset: Dataset,
    resumable_keys: Collection[str],
    *,
    resume: bool,
    is_main: bool,
) -> None:
    """Start a (possibly distributed) run in ``run_dir`` (no-op for ``None``): with ``resume`` every rank checks the
    directory (:func:`check_run_dir`), then rank 0 writes it (:func:`write_run_config`)."""
    if run_dir is None:
        return
    if resume:
        check_run_dir(run_dir, config, dataset, resumable_keys)
    barrier()  # every rank has checked the directory before rank 0 writes to it
    if is_main:
        write_run_config(run_dir, config, dataset)


def timed_train(
    loop: TrainingLoop, num_epochs: int, checkpoint_dir: Path | None, checkpoint_every: int, resume: bool
) -> tuple[list[float], float]:
    """``loop.train(...)`` checkpointing into ``checkpoint_dir``; returns its epoch losses and the seconds spent."""
    start = time.perf_counter()
    losses = loop.train(
        num_epochs, checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every, resume=resume
    )
    return losses, time.perf_counter() - start


def write_losses_csv(
    history: TrainingHistory, path: str | os.PathLike[str], metric_keys: Sequence[str] = ()
) -> Path:
    """``epoch,loss,learning_rate,seconds[,<metric>...]`` per epoch, atomically; metric cells are empty for
    epochs without an evaluation."""
    path = Path(path)
    present = [k for k in metric_keys if history.metric(k)]
    by_key = {k: dict(history.metric(k)) for k in present}
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(",".join(["epoch", "loss", "learning_rate", "seconds", *present]) + "\n")
        for i, loss in enumerate(history.losses):
            epoch = i + 1
            row = [str(epoch), repr(loss), repr(history.learning_rates[i]), f"{history.seconds[i]:.4f}"]
            row += [repr(by_key[k][epoch]) if epoch in by_key[k] else "" for k in present]
            fh.write(",".join(row) + "\n")
    return path


def plot_history(history: TrainingHistory, path: Path, metric_key: str, title: str) -> None:
    """The loss curve (and ``metric_key`` where evaluated) as a PNG; nothing without matplotlib (an optional
    extra)."""
    try:
        from kgreason.training.plotting import plot_losses

        plot_losses(
            history.losses,
            path,
            metric=history.metric(metric_key) or None,
            metric_name=metric_key,
            title=title,
        )
    except ImportError:  # matplotlib is an optional extra
        pass


def write_training_outputs(
    run_dir: Path,
    history: TrainingHistory,
    metric_keys: Sequence[str],
    title: str,
    metrics: EvaluationResult | None = None,
) -> None:
    """``losses.csv`` (with the epochs' ``metric_keys``), ``losses.png`` (titled ``title``, with the first of
    ``metric_keys``, the model-selection metric) and, when given, ``metrics.json``."""
    write_losses_csv(history, run_dir / LOSSES_FILE, metric_keys=metric_keys)
    plot_history(history, run_dir / LOSSES_PLOT, metric_keys[0], title)
    if metrics is not None:
        metrics.save(run_dir / METRICS_FILE)


def finish_run_dir(
    run_dir: Path | None,
    history: TrainingHistory,
    *,
    save_model: Callable[[Path], object],
    metric_keys: Sequence[str],
    title: str,
    metrics: EvaluationResult | None,
    is_main: bool,
) -> None:
    """Complete a (possibly distributed) run in ``run_dir`` (no-op for ``None``): rank 0 saves the model
    (``save_model(run_dir)``) and :func:`write_training_outputs`; every rank returns once it is written."""
    if run_dir is None:
        return
    if is_main:
        save_model(run_dir)
        write_training_outputs(run_dir, history, metric_keys, title, metrics)
    barrier()  # the run directory is complete when any rank returns
