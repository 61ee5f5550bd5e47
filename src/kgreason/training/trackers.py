"""Result trackers: where a run's parameters and metrics go (console, CSV, JSONL, TensorBoard, MLflow).

A tracker receives ``start_run(params, total_steps, start_step)``, any number of
``log_metrics(metrics, step)`` and ``end_run(success)``. :class:`~kgreason.training.callbacks.TrackerCallback`
connects trackers to a training loop (epoch loss and learning rate each epoch, every recorded evaluation).

File trackers (CSV, JSONL) append; when a run resumes from epoch ``start_step`` they first drop the rows of
later steps (written before the run was killed), so the file never holds an epoch twice.
TensorBoard and MLflow are optional extras (``pip install kgreason[tensorboard]`` / ``[mlflow]``), imported
only when such a tracker is built.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path
from typing import IO, Any

from kgreason.io import atomic_open
from kgreason.registry import Registry

__all__ = [
    "TRACKERS",
    "CSVTracker",
    "ConsoleTracker",
    "JSONLTracker",
    "MLflowTracker",
    "ResultTracker",
    "TensorBoardTracker",
    "make_tracker",
]

TRACKERS: Registry[type[ResultTracker]] = Registry("tracker")


class ResultTracker:
    """Base tracker: every method is a no-op."""

    def start_run(
        self, params: dict[str, Any] | None = None, total_steps: int | None = None, start_step: int = 0
    ) -> None:
        """A run starts (or resumes after ``start_step`` completed steps) with ``params`` (its config)."""

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Metrics of ``step`` (the epoch), e.g. ``{"loss": 0.3, "valid.both.realistic.mrr": 0.8}``."""

    def end_run(self, success: bool = True) -> None:
        """The run ends (``success=False`` after an exception)."""


@TRACKERS.register("console", "tqdm")
class ConsoleTracker(ResultTracker):
    """A tqdm progress bar over epochs showing the last loss; evaluations are printed as they arrive."""

    def __init__(
        self, stream: IO[str] | None = None, disable: bool = False, keys: list[str] | None = None
    ) -> None:
        self.stream = stream
        self.disable = disable
        self.keys = keys
        self._bar: Any = None

    def start_run(
        self, params: dict[str, Any] | None = None, total_steps: int | None = None, start_step: int = 0
    ) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(
            total=total_steps,
            initial=start_step,
            unit="epoch",
            file=self.stream or sys.stderr,
            disable=self.disable,
            dynamic_ncols=True,
        )

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        if self._bar is None:
            return
        shown = {k: v for k, v in metrics.items() if self.keys is None or k in self.keys}
        if "loss" in metrics:
            self._bar.n = step
            self._bar.set_postfix(loss=f"{metrics['loss']:.4g}", refresh=True)
        others = {k: v for k, v in shown.items() if k not in ("loss", "learning_rate")}
        if others and not self.disable:
            text = ", ".join(f"{k}={v:.4g}" for k, v in sorted(others.items()))
            self._bar.write(f"epoch {step}: {text}", file=self.stream or sys.stderr)

    def end_run(self, success: bool = True) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class _FileTracker(ResultTracker):
    """Append-only file of rows keyed by step; resuming at ``start_step`` drops rows of later steps."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fh: IO[str] | None = None

    def _step_of_line(self, line: str) -> int | None:  # pragma: no cover - overridden
        raise NotImplementedError

    def start_run(
        self, params: dict[str, Any] | None = None, total_steps: int | None = None, start_step: int = 0
    ) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
            kept = (
                []  # a fresh run replaces the file
                if start_step == 0
                else [ln for ln in lines if (s := self._step_of_line(ln)) is None or s <= start_step]
            )
            with atomic_open(self.path, "w", encoding="utf-8") as fh:
                fh.writelines(kept)
        self._fh = open(self.path, "a", encoding="utf-8", newline="")

    def end_run(self, success: bool = True) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


@TRACKERS.register("csv")
class CSVTracker(_FileTracker):
    """Long-format CSV ``step,key,value``, one row per metric, flushed after every call."""

    header = "step,key,value\n"

    def _step_of_line(self, line: str) -> int | None:
        head = line.split(",", 1)[0]
        return int(head) if head.isdigit() else None

    def start_run(
        self, params: dict[str, Any] | None = None, total_steps: int | None = None, start_step: int = 0
    ) -> None:
        super().start_run(params, total_steps, start_step)
        assert self._fh is not None
        if self.path.stat().st_size == 0:
            self._fh.write(self.header)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        if self._fh is None:
            raise RuntimeError("CSVTracker.log_metrics before start_run")
        writer = csv.writer(self._fh, lineterminator="\n")
        for key, value in metrics.items():
            writer.writerow([step, key, repr(float(value))])
        self._fh.flush()


@TRACKERS.register("jsonl", "json")
class JSONLTracker(_FileTracker):
    """One JSON object per call: ``{"step": 3, "metrics": {...}}``; the params as ``{"params": {...}}``."""

    def _step_of_line(self, line: str) -> int | None:
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            return None
        return int(obj["step"]) if isinstance(obj, dict) and "step" in obj else None

    def start_run(
        self, params: dict[str, Any] | None = None, total_steps: int | None = None, start_step: int = 0
    ) -> None:
        super().start_run(params, total_steps, start_step)
        if params is not None and start_step == 0:
            self._write({"params": params})

    def _write(self, obj: dict[str, Any]) -> None:
        if self._fh is None:
            raise RuntimeError("JSONLTracker used before start_run")
        self._fh.write(json.dumps(obj, sort_keys=True, default=str) + "\n")
        self._fh.flush()

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self._write({"step": step, "metrics": {k: float(v) for k, v in metrics.items()}})


@TRACKERS.register("tensorboard")
class TensorBoardTracker(ResultTracker):
    """Scalars to a TensorBoard log directory (needs the ``tensorboard`` package)."""

    def __init__(self, log_dir: str | os.PathLike[str]) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "TensorBoardTracker needs the optional 'tensorboard' package: pip install 'kgreason[tensorboard]'"
            ) from exc
        self.writer = SummaryWriter(log_dir=str(log_dir))

    def start_run(
        self, params: dict[str, Any] | None = None, total_steps: int | None = None, start_step: int = 0
    ) -> None:
        if params:
            self.writer.add_text(
                "config", "```\n" + json.dumps(params, indent=2, default=str) + "\n```", start_step
            )

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, float(value), step)
        self.writer.flush()

    def end_run(self, success: bool = True) -> None:
        self.writer.close()


@TRACKERS.register("mlflow")
class MLflowTracker(ResultTracker):
    """Params and metrics to MLflow (needs the ``mlflow`` package); ``tracking_uri``/``experiment`` optional."""

    def __init__(
        self, tracking_uri: str | None = None, experiment: str | None = None, run_name: str | None = None
    ):
        try:
            import mlflow
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "MLflowTracker needs the optional 'mlflow' package: pip install 'kgreason[mlflow]'"
            ) from exc
        self.mlflow = mlflow
        if tracking_uri:
            mlflow.set_tracking_uri(tracking_uri)
        if experiment:
            mlflow.set_experiment(experiment)
        self.run_name = run_name

    def start_run(
        self, params: dict[str, Any] | None = None, total_steps: int | None = None, start_step: int = 0
    ) -> None:  # pragma: no cover - needs mlflow
        self.mlflow.start_run(run_name=self.run_name)
        if params:
            flat = _flatten(params)
            self.mlflow.log_params({k: str(v)[:500] for k, v in flat.items()})

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:  # pragma: no cover - needs mlflow
        self.mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)

    def end_run(self, success: bool = True) -> None:  # pragma: no cover - needs mlflow
        self.mlflow.end_run(status="FINISHED" if success else "FAILED")


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def make_tracker(tracker: str | ResultTracker, **kwargs: Any) -> ResultTracker:
    """A tracker by name (``"console"``, ``"csv"``, ``"jsonl"``, ``"tensorboard"``, ``"mlflow"``) or as given."""
    if isinstance(tracker, ResultTracker):
        return tracker
    return TRACKERS.get(tracker)(**kwargs)
