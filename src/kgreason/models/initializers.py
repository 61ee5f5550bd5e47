"""Initialisers of embedding tables, chosen by name (registry ``INITIALIZERS``).

A model's ``entity_initializer`` / ``relation_initializer`` name one of these; ``None`` keeps the model's own
default (the one its paper's code uses). Each fills a ``[rows, width]`` table in place from the global torch RNG
and returns it. Two conventions of "Xavier" exist for an embedding table, and they differ a lot on large graphs:

* ``xavier_uniform`` / ``xavier_normal``: torch's, treating the table as a ``rows x width`` weight matrix --
  std ``sqrt(2 / (rows + width))``, so the embeddings shrink as the graph grows (0.007 for wn18rr's 40,559
  entities at width 128). Dettmers et al.'s ConvE and MultiHopKG initialise this way; kgreason's defaults.
* ``xavier_uniform_per_row`` / ``xavier_normal_per_row``: each row on its own (fan = the row's width only) --
  std ``sqrt(2 / width)``, independent of the number of entities (0.125 at width 128). PyKEEN's
  ``xavier_uniform_`` / ``xavier_normal_`` follow this convention.

The width is the table's real width: ``2 * embedding_dim`` for ComplEx (interleaved real and imaginary parts).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from kgreason.registry import Registry

__all__ = ["INITIALIZERS", "Initializer"]

#: fills a ``[rows, width]`` table in place (global torch RNG) and returns it
Initializer = Callable[[torch.Tensor], torch.Tensor]

INITIALIZERS: Registry[Initializer] = Registry("initializer")


def _width(table: torch.Tensor) -> int:
    if table.dim() != 2:
        raise ValueError(
            f"an embedding initialiser expects a [rows, width] table, got shape {tuple(table.shape)}"
        )
    return int(table.shape[1])


@INITIALIZERS.register("xavier_uniform")
def xavier_uniform(table: torch.Tensor) -> torch.Tensor:
    """torch's Xavier uniform over the whole table: ``U(-a, a)``, ``a = sqrt(6 / (rows + width))``."""
    _width(table)
    return nn.init.xavier_uniform_(table)


@INITIALIZERS.register("xavier_normal")
def xavier_normal(table: torch.Tensor) -> torch.Tensor:
    """torch's Xavier normal over the whole table: ``N(0, 2 / (rows + width))``."""
    _width(table)
    return nn.init.xavier_normal_(table)


@INITIALIZERS.register("xavier_uniform_per_row")
def xavier_uniform_per_row(table: torch.Tensor) -> torch.Tensor:
    """Each row Xavier uniform with fan = its width: ``U(-a, a)``, ``a = sqrt(6 / width)`` (std ``sqrt(2 / width)``)."""
    bound = math.sqrt(6.0 / _width(table))
    with torch.no_grad():
        return table.uniform_(-bound, bound)


@INITIALIZERS.register("xavier_normal_per_row")
def xavier_normal_per_row(table: torch.Tensor) -> torch.Tensor:
    """Each row Xavier normal with fan = its width: ``N(0, 2 / width)``."""
    std = math.sqrt(2.0 / _width(table))
    with torch.no_grad():
        return table.normal_(0.0, std)
