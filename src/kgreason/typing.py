"""Type aliases used across kgreason (shapes are documented where the aliases are used)."""

from __future__ import annotations

from typing import Literal, Protocol, TypeAlias

import torch

LongTensor: TypeAlias = torch.Tensor
FloatTensor: TypeAlias = torch.Tensor
BoolTensor: TypeAlias = torch.Tensor

Side = Literal["head", "tail", "both"]
RankType = Literal["optimistic", "pessimistic", "realistic"]
Target = Literal["head", "relation", "tail"]


class Scorer(Protocol):
    """Anything evaluation can rank: scores of every candidate entity for a batch of queries (higher = better)."""

    def score_t(self, hr: LongTensor) -> FloatTensor:
        """``hr: LongTensor[b, 2]`` (head, relation) -> ``FloatTensor[b, num_entities]``."""
        ...

    def score_h(self, rt: LongTensor) -> FloatTensor:
        """``rt: LongTensor[b, 2]`` (relation, tail) -> ``FloatTensor[b, num_entities]``."""
        ...


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/``"auto"`` -> CUDA when available, else CPU; otherwise the device named."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA device is available (use --device cpu)")
    return dev
