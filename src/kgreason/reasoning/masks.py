"""Fast random masks for the walker's hot path: Bernoulli keep-masks and dropout built on them.

``torch.bernoulli_`` (behind ``nn.Dropout``) is several times slower on CPU than drawing 16 random bits per entry
from 64-bit integers; with embedding, feed-forward and action dropout on every step it was 13% of a Kinship
training step.
"""

from __future__ import annotations

import torch

from kgreason.typing import BoolTensor, FloatTensor

__all__ = ["bernoulli_keep", "dropout"]


def bernoulli_keep(
    shape: tuple[int, ...], rate: float, generator: torch.Generator | None, device: torch.device
) -> BoolTensor:
    """``BoolTensor[shape]``, each entry ``True`` with probability ``1 - rate`` (resolution ``2^-16``).

    Draws 16 random bits per entry from 64-bit integers (about 3x faster than ``torch.rand`` on CPU).
    """
    threshold = -32768 + int(round(rate * 65536))
    if threshold > 32767:
        return torch.zeros(shape, dtype=torch.bool, device=device)
    n = 1
    for s in shape:
        n *= s
    bits = torch.randint(
        -(2**63), 2**63 - 1, ((n + 3) // 4,), generator=generator, device=device, dtype=torch.int64
    )
    return (bits.view(torch.int16)[:n] >= threshold).view(shape)


def dropout(x: FloatTensor, rate: float, training: bool = True) -> FloatTensor:
    """Inverted dropout of ``x`` (entries zeroed with probability ``rate``, the rest scaled by ``1 / (1 - rate)``),
    like ``F.dropout`` but with a :func:`bernoulli_keep` mask; the identity when not ``training`` or ``rate == 0``."""
    if not training or rate <= 0.0:
        return x
    if rate >= 1.0:
        return torch.zeros_like(x)
    keep = bernoulli_keep(tuple(x.shape), rate, None, x.device)
    return x.masked_fill(~keep, 0.0) * (1.0 / (1.0 - rate))
