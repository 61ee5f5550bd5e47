"""Terminal rewards: binary hits and knowledge-based reward shaping (Lin et al. 2018, eq. 1 and 7).

``R(s_T) = R_b(s_T) + (1 - R_b(s_T)) * sigmoid(f(e_s, r_q, e_T))`` where ``R_b = 1`` iff the walk ends at the
query's training answer and ``f`` is a frozen, pre-trained KGE model (any registered :mod:`kgreason.models`
model). Without a shaper the reward is binary.

Queries with an inverse relation ``r + R`` are scored as the base triple ``(e_T, r, e_s)``, so every model works,
reciprocal or not.

Calibration (not in the paper): ``sigmoid f`` is a probability only for a model trained with a per-triple sigmoid
loss. A model trained with the 1-N softmax cross-entropy has scores defined up to a per-query shift (on Kinship
its sigmoid exceeds 0.1 for 99.8% of the wrong answers), and label smoothing and dropout leave even BCE models
under-confident. :func:`fit_platt_scaling` fits ``sigmoid(a f + b)`` (Platt scaling) to the known answers of
validation queries; :meth:`RewardShaper.set_calibration` applies it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kgreason.data.triples import add_inverse_triples
from kgreason.reasoning.environment import Queries
from kgreason.training.samplers import triple_keys
from kgreason.typing import FloatTensor, LongTensor

__all__ = ["RewardShaper", "binary_reward", "fit_platt_scaling", "shaped_reward"]


class RewardShaper(nn.Module):
    """A frozen KGE model giving ``sigmoid f(e_s, r_q, e_T)`` for walk end points.

    Args:
        model: a :class:`kgreason.models.KGEModel` (anything with ``score_t(hr, tails)`` and
            ``score_h(rt, heads)``); it is put in eval mode and its parameters are frozen.
        num_relations: ``R`` base relations (to recognise inverse query relations).
        scale, shift: the reward is ``sigmoid(scale * f + shift)`` (default ``1, 0``: the paper's ``sigmoid f``;
            see :func:`fit_platt_scaling`).
    """

    def __init__(self, model: nn.Module, num_relations: int, scale: float = 1.0, shift: float = 0.0) -> None:
        super().__init__()
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.num_relations = num_relations
        self.scale, self.shift = 1.0, 0.0
        self.set_calibration(scale, shift)

    def set_calibration(self, scale: float, shift: float) -> None:
        """Score end points by ``sigmoid(scale * f + shift)`` from now on (``1, 0``: uncalibrated)."""
        if not (math.isfinite(scale) and math.isfinite(shift)):
            raise ValueError(f"reward calibration must be finite, got scale={scale}, shift={shift}")
        self.scale, self.shift = float(scale), float(shift)

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
        if self.scale != 1.0 or self.shift != 0.0:
            out.mul_(self.scale).add_(self.shift)
        return out


@torch.no_grad()
def fit_platt_scaling(
    shaper: RewardShaper,
    triples: LongTensor,
    known: LongTensor,
    num_entities: int,
    max_queries: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Platt scaling of a reward model: ``(a, b)`` minimising the binary cross-entropy of ``sigmoid(a f + b)``
    against the known answers, over every entity of the queries of ``triples``.

    Args:
        shaper: the reward model; its current calibration is ignored (the fit starts from raw scores).
        triples: ``LongTensor[n, 3]`` whose queries ``(h, r, ?)`` and inverse queries ``(t, r + R, ?)`` are used
            (the validation split: the model was trained on the training triples, whose scores are
            over-confident).
        known: ``LongTensor[m, 3]`` the triples that count as true (e.g. train + validation); base relation ids.
        num_entities: ``E``.
        max_queries: at most this many distinct queries (a fixed random subset; ``E`` scores each: the fit holds
            two ``[max_queries, E]`` float tensors, about 16 MB per 1,000 entities at the default).
        seed: seed of that subset.

    Returns:
        ``(scale, shift)`` for :meth:`RewardShaper.set_calibration`.
    """
    if len(triples) == 0:
        raise ValueError("reward calibration needs validation triples, and the split is empty")
    R, E = shaper.num_relations, int(num_entities)
    device = triples.device
    queries = torch.unique(add_inverse_triples(triples, R)[:, :2], dim=0)
    if len(queries) > max_queries:
        gen = torch.Generator().manual_seed(seed)
        queries = queries[torch.randperm(len(queries), generator=gen)[:max_queries].to(device)]
    known_keys = triple_keys(add_inverse_triples(known.to(device), R), E, 2 * R)
    first = triple_keys(torch.nn.functional.pad(queries, (0, 1)), E, 2 * R)  # key of (h, r, entity 0)
    labels = torch.isin(first[:, None] + torch.arange(E, device=device), known_keys).float()
    scale, shift = shaper.scale, shaper.shift
    shaper.set_calibration(1.0, 0.0)
    try:
        scores = shaper._scores(queries[:, 0], queries[:, 1], None)
    finally:
        shaper.set_calibration(scale, shift)
    a = torch.ones((), device=device, requires_grad=True)
    b = torch.zeros((), device=device, requires_grad=True)
    opt = torch.optim.LBFGS([a, b], max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(a * scores + b, labels)
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return float(a.detach()), float(b.detach())


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
