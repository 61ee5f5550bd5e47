"""kgreason: reasoning over knowledge graphs.

Layers (lower never import higher): data -> models -> training -> evaluation -> reasoning -> open -> cli.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "pipeline"]


def pipeline(*args: Any, **kwargs: Any) -> Any:
    """Train and evaluate a KGE model in one call; see :func:`kgreason.training.pipeline.pipeline`."""
    from kgreason.training.pipeline import pipeline as _pipeline

    return _pipeline(*args, **kwargs)
