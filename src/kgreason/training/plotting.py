"""Plots of a run's training curve (matplotlib, imported lazily with the non-interactive Agg backend)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from kgreason.io import atomic_open

__all__ = ["plot_losses"]


def plot_losses(
    losses: Sequence[float],
    path: str | os.PathLike[str],
    metric: Sequence[tuple[int, float]] | None = None,
    metric_name: str | None = None,
    title: str | None = None,
) -> Path:
    """Save a PNG of the mean loss per epoch (epoch ``i + 1`` is ``losses[i]``), with an optional evaluation
    metric (``(epoch, value)`` pairs, e.g. ``history.metric("valid.both.realistic.mrr")``) on a second axis.

    Needs matplotlib (``pip install 'kgreason[plot]'``); the file is written atomically.
    """
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("plotting needs matplotlib: pip install 'kgreason[plot]'") from exc

    path = Path(path)
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    try:
        epochs = list(range(1, len(losses) + 1))
        ax.plot(epochs, list(losses), color="tab:blue", label="training loss")
        ax.set_xlabel("epoch")
        ax.set_ylabel("mean training loss", color="tab:blue")
        if losses and min(losses) > 0 and max(losses) / max(min(losses), 1e-12) > 50:
            ax.set_yscale("log")
        if metric:
            ax2 = ax.twinx()
            xs, ys = zip(*metric)
            ax2.plot(xs, ys, "o-", color="tab:orange", label=metric_name or "metric")
            ax2.set_ylabel(metric_name or "metric", color="tab:orange")
        if title:
            ax.set_title(title)
        fig.tight_layout()
        with atomic_open(path, "wb") as fh:
            fig.savefig(fh, format="png")
    finally:
        plt.close(fig)
    return path
