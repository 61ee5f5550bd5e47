"""Terminal rewards: binary hits and knowledge-based reward shaping (Lin et al. 2018, eq. 1 and 7).

``R(s_T) = R_b(s_T) + (1 - R_b(s_T)) * sigmoid(f(e_s, r_q, e_T))`` where ``R_b = 1`` iff the walk ends at the
query's training answer and ``f`` is a frozen, pre-trained KGE model (any registered :mod:`kgreason.models`
model). Without a shaper the reward is binary.

Queries with an inverse relation ``r + R`` are scored as the base triple ``(e_T, r, e_s)``, so every model works,
reciprocal or not.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kgreason.reasoning.environment import Queries
from kgreason.typing import FloatTensor, LongTensor

__all__ = ["RewardShaper", "binary_reward", "shaped_reward"]


class RewardShaper(nn.Module):
    """A frozen KGE model giving ``sigmoid f(e_s, r_q, e_T)`` for walk end points.

    Args:
        model: a :class:`kgreason.models.KGEModel` (anything with ``score_t(hr, tails)`` and
            ``score_h(rt, heads)``); it is put in eval mode and its parameters are frozen.
        num_relations: ``R`` base relations (to recognise inverse query relations).
    """

    def __init__(self, model: nn.Module, num_relations: int) -> None:
        super().__init__()
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.num_relations = num_relations

    def train(self, mode: bool = True) -> RewardShaper:
        """The shaper stays in eval mode (no dropout, frozen batch-norm statistics)."""
        super().train(False)
        return self

    @classmethod
    def from_run_dir(
        cls,
        run_dir: str | os.PathLike[str],
        num_relations: int | None = None,
        device: torch.device | str | None = None,
    ) -> RewardShaper:
        """Load the KGE model saved in a kgreason KGE run directory (``model.pt`` + ``model.json``)."""
        from kgreason.models import load_model

        run_dir = Path(run_dir)
        if not (run_dir / "model.json").exists():
            raise FileNotFoundError(f"{run_dir}: no model.json (expected a kgreason KGE run directory)")
        model: Any = load_model(run_dir)
        if device is not None:
            model = model.to(device)
        nr = num_relations if num_relations is not None else int(model.num_relations)
        return cls(model, nr)

    @torch.no_grad()
    def log_scores(self, sources: LongTensor, relations: LongTensor) -> FloatTensor:
        """``log sigmoid f(e_s, r_q, e)`` for every entity ``e``: ``FloatTensor[b, E]`` (inverse query relations
        scored as the base triple, as in :meth:`forward`)."""
        return torch.nn.functional.logsigmoid(self._scores(sources, relations, None))

    @torch.no_grad()
    def forward(self, sources: LongTensor, relations: LongTensor, ends: LongTensor) -> FloatTensor:
        """``sigmoid f`` of ``(sources[b], relations[b], ends[b, k])`` -> ``FloatTensor[b, k]``.

        The model is run once per query row on the ``k`` candidate end points.
        """
        return torch.sigmoid(self._scores(sources, relations, ends))

    def _scores(self, sources: LongTensor, relations: LongTensor, ends: LongTensor | None) -> FloatTensor:
        """Float32 ``f`` of the end points ``ends[b, k]`` (``None``: every entity): tail queries through
        ``score_t``, inverse ones ``r + R`` as head queries of the base relation through ``score_h``."""
        model: Any = self.model
        R = self.num_relations
        shape = ends.shape if ends is not None else (len(sources), int(model.num_entities))
        out = torch.empty(shape, dtype=torch.float32, device=sources.device)
        fwd = relations < R
        if bool(fwd.any()):
            hr = torch.stack([sources[fwd], relations[fwd]], dim=1)
            kw = {} if ends is None else {"tails": ends[fwd]}
            out[fwd] = model.score_t(hr, **kw).float()
        inv = ~fwd
        if bool(inv.any()):
            rt = torch.stack([relations[inv] - R, sources[inv]], dim=1)
            kw = {} if ends is None else {"heads": ends[inv]}
            out[inv] = model.score_h(rt, **kw).float()
        return out


def binary_reward(queries: Queries, query_index: LongTensor, final_entities: LongTensor) -> FloatTensor:
    """``R_b``: ``FloatTensor[W]``, 1 where the walk ends at its query's training answer, else 0."""
    assert queries.targets is not None, "training queries need targets"
    return (final_entities == queries.targets[query_index]).float()


def shaped_reward(
    queries: Queries,
    final_entities: LongTensor,
    num_rollouts: int,
    shaper: RewardShaper | None,
) -> FloatTensor:
    """Eq. 7 for query-major walks (walker ``w`` answers query ``w // num_rollouts``) -> ``FloatTensor[W]``.

    Binary when ``shaper`` is ``None``.
    """
    B = len(queries)
    qidx = torch.arange(B, device=final_entities.device).repeat_interleave(num_rollouts)
    hit = binary_reward(queries, qidx, final_entities)
    if shaper is None:
        return hit
    soft = shaper(queries.sources, queries.relations, final_entities.view(B, num_rollouts)).reshape(-1)
    return hit + (1.0 - hit) * soft
