"""On-policy rollouts with action dropout, and the REINFORCE objective (Lin et al. 2018, eq. 5-6, 8-9).

Rollouts: every query gets ``N`` i.i.d. walks. The first step is identical for all ``N`` walks of a query, so it
is computed once per query and ``N`` actions are sampled from it; later steps run per walker. No LSTM step is
taken after the last action. There is no Python loop over queries, rollouts or actions.

Action dropout (eq. 8-9): actions are *sampled* from ``pi~ ∝ pi * m + eps * (1 - m)`` over the valid actions,
``m_i ~ Bernoulli(1 - alpha)``; log-probabilities (and so gradients) use the unperturbed ``pi``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from kgreason.reasoning.environment import ActionSpace, Episode, Queries
from kgreason.reasoning.masks import bernoulli_keep
from kgreason.reasoning.policy import MASKED_LOGIT, PolicyTables, WalkerPolicy, masked_log_softmax
from kgreason.typing import BoolTensor, FloatTensor, LongTensor

__all__ = [
    "MovingAverageBaseline",
    "SamplingHook",
    "bernoulli_keep",
    "leave_one_out_baseline",
    "Rollout",
    "action_dropout_distribution",
    "reinforce_loss",
    "sample_actions",
    "sample_rollouts",
]


@dataclass
class Rollout:
    """``W = B * N`` sampled walks (walker ``w`` answers query ``w // N``).

    ``relations, entities: LongTensor[W, T]`` — the relation taken and the entity reached at each step;
    ``origins: LongTensor[W, T] | None`` — action origin (0 = graph; ``None`` when no extra candidates);
    ``log_probs: FloatTensor[W, T]`` — ``log pi(a_t | s_t)`` of the unperturbed policy (differentiable);
    ``entropy: FloatTensor[W, T]`` — entropy of ``pi(. | s_t)`` (differentiable).
    """

    queries: Queries
    num_rollouts: int
    query_index: LongTensor
    relations: LongTensor
    entities: LongTensor
    origins: LongTensor | None
    log_probs: FloatTensor
    entropy: FloatTensor

    @property
    def final_entities(self) -> LongTensor:
        """``LongTensor[W]``: where each walk ends."""
        return self.entities[:, -1]

    @property
    def sources(self) -> LongTensor:
        """``LongTensor[W]``: the source entity of each walk."""
        return self.queries.sources[self.query_index]

    def hits(self) -> BoolTensor:
        """``BoolTensor[W]``: whether each walk ends at its query's training answer."""
        assert self.queries.targets is not None
        return self.final_entities == self.queries.targets[self.query_index]


def action_dropout_distribution(
    probs: FloatTensor,
    mask: BoolTensor,
    rate: float,
    epsilon: float,
    generator: torch.Generator | None = None,
    num_samples: int | None = None,
) -> FloatTensor:
    """Sampling weights ``pi * m + eps * (1 - m)`` restricted to valid actions (eq. 8; unnormalised).

    ``probs: FloatTensor[n, A]``, ``mask: BoolTensor[n, A]``. With ``num_samples = k`` every row gets ``k``
    independent dropout masks and the result is ``FloatTensor[n * k, A]`` (row ``i * k + j`` = sample ``j`` of
    row ``i``); otherwise ``FloatTensor[n, A]``. With ``rate == 0`` the weights are ``probs`` (repeated).
    Rows whose kept actions all have zero mass become uniform over the valid actions.
    """
    n, A = probs.shape
    k = 1 if num_samples is None else num_samples
    if rate <= 0.0:
        return probs if k == 1 else probs.repeat_interleave(k, dim=0)
    keep = bernoulli_keep((n, k, A), rate, generator, probs.device)
    weights = torch.where(keep, probs.unsqueeze(1), epsilon) * mask.unsqueeze(1)
    return weights.view(n * k, A)


def sample_actions(weights: FloatTensor, generator: torch.Generator | None = None) -> LongTensor:
    """One index per row of ``weights: FloatTensor[n, A]`` (non-negative, unnormalised) -> ``LongTensor[n]``.

    Inverse-CDF sampling: only entries with positive weight can be drawn.
    """
    cdf = torch.cumsum(weights, dim=1)
    total = cdf[:, -1:]
    u = torch.rand(total.shape, generator=generator, device=weights.device, dtype=weights.dtype) * total
    u = torch.minimum(u, total * (1.0 - 1e-6))
    return torch.searchsorted(cdf, u, right=True).squeeze(1).clamp_max(weights.shape[1] - 1)


#: ``hook(step, weights, actions, rows) -> weights``: adjusts the (unnormalised, non-negative) sampling weights
#: ``FloatTensor[n, A]`` of a step before actions are drawn; row ``i`` of ``weights`` belongs to row ``rows[i]`` of
#: ``actions`` (the first step is computed once per query and sampled ``N`` times). Used e.g. by CPL's adaptive
#: sampling to raise the priority of text edges; log-probabilities (and so gradients) keep the unperturbed policy.
SamplingHook = Callable[[int, FloatTensor, ActionSpace, LongTensor], FloatTensor]


def _policy_step(
    policy: WalkerPolicy,
    tables: PolicyTables,
    history_top: FloatTensor,
    current: LongTensor,
    query_relations: LongTensor,
    actions: ActionSpace,
) -> tuple[FloatTensor, FloatTensor, FloatTensor]:
    """``(log pi [n, A], pi [n, A], entropy [n])``; invalid actions get log-probability :data:`MASKED_LOGIT`
    (probability exactly 0), which keeps ``p log p`` finite without another mask."""
    logits = policy.scores(tables, history_top, current, query_relations, actions.relations, actions.targets)
    logp = masked_log_softmax(logits, actions.mask, fill=MASKED_LOGIT)
    # exp of hugely negative inputs takes a slow path on CPU: clamp first, then zero the invalid actions
    probs = logp.clamp_min(-80.0).exp() * actions.mask
    entropy = -(probs * logp).sum(dim=1)
    return logp, probs, entropy


def sample_rollouts(
    policy: WalkerPolicy,
    episode: Episode,
    num_rollouts: int,
    action_dropout: float = 0.0,
    epsilon: float = 1e-10,
    generator: torch.Generator | None = None,
    sampling_hook: SamplingHook | None = None,
) -> Rollout:
    """Sample ``num_rollouts`` walks of ``episode.env.num_steps`` steps per query.

    Args:
        policy: the policy (in train mode for dropout).
        episode: the batch of ``B`` queries (:meth:`WalkEnvironment.start`).
        num_rollouts: ``N`` walks per query.
        action_dropout: ``alpha``, the probability of dropping an action from the sampling distribution.
        epsilon: smoothing of dropped actions.
        generator: random generator on the policy's device (for reproducible sampling).
        sampling_hook: optional :data:`SamplingHook` applied to the sampling weights of every step (after action
            dropout).

    Returns:
        a :class:`Rollout` with ``W = B * N`` walks, query-major (walker ``w`` answers query ``w // N``).
    """
    queries = episode.queries
    B, N, T = len(queries), num_rollouts, episode.env.num_steps
    device = queries.sources.device
    tables = policy.tables()
    qidx_b = torch.arange(B, device=device)
    qidx = qidx_b.repeat_interleave(N)

    # step 0: the policy runs once per query; N actions are sampled from it (each with its own dropout mask)
    history = policy.start_history(tables, queries.sources)
    actions = episode.actions(0, queries.sources, qidx_b)
    logp, probs, entropy = _policy_step(
        policy, tables, history.top, queries.sources, queries.relations, actions
    )
    weights = action_dropout_distribution(probs.detach(), actions.mask, action_dropout, epsilon, generator, N)
    if sampling_hook is not None:
        weights = sampling_hook(0, weights, actions, qidx)
    choice = sample_actions(weights, generator)  # [W]
    rel, ent, org = actions.select(qidx, choice)
    logps = [logp[qidx, choice]]
    entropies = [entropy[qidx]]
    relations, entities, origins = [rel], [ent], [org]
    parent: LongTensor | None = qidx
    rows = torch.arange(B * N, device=device)
    for t in range(1, T):
        history = policy.advance(tables, history, parent, rel, ent)
        parent = None
        actions = episode.actions(t, ent, qidx)
        logp, probs, entropy = _policy_step(
            policy, tables, history.top, ent, queries.relations[qidx], actions
        )
        entropies.append(entropy)
        weights = action_dropout_distribution(
            probs.detach(), actions.mask, action_dropout, epsilon, generator
        )
        if sampling_hook is not None:
            weights = sampling_hook(t, weights, actions, rows)
        choice = sample_actions(weights, generator)
        logps.append(logp[rows, choice])
        rel, ent, org = actions.select(rows, choice)
        relations.append(rel)
        entities.append(ent)
        origins.append(org)
    has_origin = any(o is not None for o in origins)
    origin_t = (
        torch.stack([o if o is not None else torch.zeros_like(relations[0]) for o in origins], dim=1)
        if has_origin
        else None
    )
    return Rollout(
        queries=queries,
        num_rollouts=N,
        query_index=qidx,
        relations=torch.stack(relations, dim=1),
        entities=torch.stack(entities, dim=1),
        origins=origin_t,
        log_probs=torch.stack(logps, dim=1),
        entropy=torch.stack(entropies, dim=1),
    )


class MovingAverageBaseline:
    """``b <- decay * b + (1 - decay) * mean(R)`` (updated after each batch; starts at 0)."""

    def __init__(self, decay: float = 0.9) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"baseline decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.value = 0.0

    def update(self, rewards: FloatTensor) -> None:
        self.value = self.decay * self.value + (1.0 - self.decay) * float(rewards.detach().mean())

    def state_dict(self) -> dict[str, float]:
        return {"value": self.value, "decay": self.decay}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.value = float(state["value"])
        self.decay = float(state.get("decay", self.decay))


def leave_one_out_baseline(rewards: FloatTensor, num_rollouts: int) -> FloatTensor:
    """Per-walker baseline: the mean reward of the *other* ``N - 1`` rollouts of the same query.

    ``rewards: FloatTensor[B * N]`` query-major (walker ``w`` answers query ``w // N``) -> ``FloatTensor[B * N]``
    (no gradient). Unbiased, since walker ``w``'s baseline does not depend on its own action (the "REINFORCE
    leave-one-out" estimator of Kool et al. 2019): a walk is pushed up only when it did better than its query's
    other walks, and queries whose walks all fail (or all succeed) give no policy gradient at all. With ``N = 1``
    the baseline is 0.
    """
    if num_rollouts < 1 or rewards.numel() % num_rollouts:
        raise ValueError(f"{rewards.numel()} rewards are not whole groups of num_rollouts={num_rollouts}")
    r = rewards.detach().reshape(-1, num_rollouts)
    if num_rollouts == 1:
        return torch.zeros_like(rewards).detach()
    return ((r.sum(dim=1, keepdim=True) - r) / (num_rollouts - 1)).reshape(-1)


def reinforce_loss(
    log_probs: FloatTensor,
    entropy: FloatTensor,
    rewards: FloatTensor,
    baseline: float | FloatTensor = 0.0,
    entropy_weight: float = 0.0,
    normalize_advantage: bool = False,
) -> FloatTensor:
    """REINFORCE with ``gamma = 1`` and an entropy bonus (eq. 6).

    ``loss = mean_w[ -(R_w - b) * sum_t log pi(a_t) - beta * mean_t H_t ]``.

    Args:
        log_probs: ``FloatTensor[W, T]`` of the taken actions.
        entropy: ``FloatTensor[W, T]`` policy entropy per step.
        rewards: ``FloatTensor[W]`` terminal rewards (no gradient).
        baseline: subtracted from the rewards: a number (e.g. a moving average) or ``FloatTensor[W]`` per walker
            (e.g. :func:`leave_one_out_baseline`).
        entropy_weight: ``beta``.
        normalize_advantage: standardise advantages within the batch.

    Returns:
        a scalar loss tensor.
    """
    advantage = rewards.detach() - (baseline.detach() if isinstance(baseline, torch.Tensor) else baseline)
    if normalize_advantage and advantage.numel() > 1:
        advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
    pg = -(advantage.unsqueeze(1) * log_probs).sum(dim=1)
    return (pg - entropy_weight * entropy.mean(dim=1)).mean()
