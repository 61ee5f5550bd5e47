"""Best-of-K starts for the walker: train ``K`` seeds for a few epochs, continue the one with the best validation
metric.

On Kinship the walker's quality depends strongly on its trajectory: of the runs in docs/benchmarks.md, some reach
dev tail MRR ~0.62 after 10 epochs and keep climbing, others sit near 0.45 and plateau far lower, with the same
configuration and another seed. The trajectory shows early, so ``WalkerConfig.restarts = K`` trains seeds
``seed, seed + 1, ..., seed + K - 1`` for ``restart_epochs`` epochs each (validation metric measured at the end),
and the run continues from the best candidate's checkpoint: selection on the validation split, like any other
hyper-parameter.

Run-directory layout (``output_dir``)::

    restarts/seed-<s>/    one ordinary walker run directory per candidate (resumable)
    restarts.json         candidates, their validation metric, the chosen seed (written once the choice is made)
    checkpoints/          the chosen candidate's checkpoints, copied, then continued by the main run

``config.json`` of the main run records the chosen seed; resuming with the original seed and the same ``restarts``
/ ``restart_epochs`` reads the choice back from ``restarts.json``.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kgreason.data import Dataset
from kgreason.distributed.context import barrier, is_main_process
from kgreason.io import read_json, write_json
from kgreason.reasoning.config import WalkerConfig
from kgreason.training.run_dir import CHECKPOINT_DIR, CONFIG_FILE

__all__ = ["RESTARTS_DIR", "RESTARTS_FILE", "RestartsMismatchError", "candidate_config", "select_start"]

RESTARTS_DIR = "restarts"
RESTARTS_FILE = "restarts.json"


class RestartsMismatchError(ValueError):
    """``restarts.json`` of a run directory was written with another base seed, ``restarts`` or ``restart_epochs``."""


def candidate_config(config: WalkerConfig, seed: int) -> WalkerConfig:
    """The config of the candidate with ``seed``: ``restart_epochs`` epochs, no restarts of its own."""
    return dataclasses.replace(config, seed=seed, epochs=config.restart_epochs, restarts=1)


def _record_key(config: WalkerConfig) -> dict[str, int]:
    return {"base_seed": config.seed, "restarts": config.restarts, "restart_epochs": config.restart_epochs}


def select_start(
    train: Callable[..., Any],
    dataset: Dataset,
    run_dir: Path | None,
    config: WalkerConfig,
    metric_key: str,
    *,
    resume: bool,
) -> WalkerConfig:
    """Run (or resume) the candidates and seed ``run_dir/checkpoints`` with the best; returns the config of the
    main run (``config`` with the chosen seed).

    ``train(dataset, reward_model_dir, output_dir, config, resume=..., evaluate=False)`` trains one candidate
    (:func:`kgreason.reasoning.train_walker`) and returns a result with ``.loop.history``; ``metric_key`` is the
    validation metric compared (higher is better; the last evaluation of each candidate counts).
    """
    if run_dir is None:
        raise ValueError("restarts > 1 needs an output directory (each candidate is a run directory)")
    if not config.eval_every or config.restart_epochs % config.eval_every:
        raise ValueError(
            f"restarts compare the validation metric after restart_epochs={config.restart_epochs} epochs: "
            f"eval_every ({config.eval_every}) must be > 0 and divide it"
        )
    record_path = run_dir / RESTARTS_FILE
    if not resume and is_main_process():  # a fresh start: forget an earlier choice and the main run's config
        record_path.unlink(missing_ok=True)
        (run_dir / CONFIG_FILE).unlink(missing_ok=True)
    if resume and record_path.exists():
        record = read_json(record_path)
        key = _record_key(config)
        if {k: record.get(k) for k in key} != key:
            raise RestartsMismatchError(
                f"{record_path}: written with { ({k: record.get(k) for k in key}) }, this run has {key}; "
                "pass the same seed / restarts / restart_epochs, or start afresh (--no-resume)"
            )
        return dataclasses.replace(config, seed=int(record["chosen_seed"]))

    candidates: list[dict[str, Any]] = []
    for k in range(config.restarts):
        seed = config.seed + k
        directory = run_dir / RESTARTS_DIR / f"seed-{seed}"
        result = train(
            dataset,
            config.reward_model_dir,
            directory,
            candidate_config(config, seed),
            resume=resume,
            evaluate=False,
        )
        history = result.loop.history.metric(metric_key)
        if not history:
            raise RuntimeError(f"candidate {directory} recorded no {metric_key!r}")
        candidates.append(
            {
                "seed": seed,
                "dir": str(directory.relative_to(run_dir)),
                metric_key: history[-1][1],
                "epoch": history[-1][0],
            }
        )
    best = max(candidates, key=lambda c: float(c[metric_key]))  # the first of equals
    if is_main_process():
        source = run_dir / str(best["dir"]) / CHECKPOINT_DIR
        target = run_dir / CHECKPOINT_DIR
        staging = run_dir / f".{CHECKPOINT_DIR}.restart-tmp"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(source, staging)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        write_json(
            record_path,
            {
                **_record_key(config),
                "metric": metric_key,
                "candidates": candidates,
                "chosen_seed": best["seed"],
            },
        )
    barrier()
    return dataclasses.replace(config, seed=int(best["seed"]))
