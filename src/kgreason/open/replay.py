"""Replay memory of positive reasoning paths (CPL §4.2, "replay memories ... to increase training efficiency").

A record is one walk that reached its query's answer, stored as **one row** so its fields can never be shuffled
apart (the reference implementation shuffled query, path and reward arrays independently)::

    [e_s, r_q, e_o, r_1..r_T, e_1..e_T, o_1..o_T]     LongTensor[3 + 3T]

``r_t, e_t`` is the action taken at step ``t`` and ``o_t`` its origin (0 = graph edge, >= 1 = text edge). A replay
update re-scores exactly these actions under the current policy (:func:`replay_log_probs`, teacher forcing) -- it
never re-samples them. Identical records are stored once; when full, the oldest record is overwritten.
"""

from __future__ import annotations

from typing import Any

import torch

from kgreason.reasoning.analysis import path_keys
from kgreason.reasoning.environment import Episode, Queries, WalkEnvironment
from kgreason.reasoning.policy import MASKED_LOGIT, WalkerPolicy, masked_log_softmax
from kgreason.reasoning.reinforce import Rollout
from kgreason.typing import BoolTensor, FloatTensor, LongTensor

__all__ = ["ReplayBatch", "ReplayMemory", "replay_log_probs"]


class ReplayBatch:
    """Records split into fields: ``queries`` (:class:`Queries` with targets) and ``relations, entities, origins:
    LongTensor[n, T]``."""

    def __init__(self, rows: LongTensor, num_steps: int) -> None:
        T = num_steps
        self.queries = Queries(rows[:, 0], rows[:, 1], rows[:, 2])
        self.relations = rows[:, 3 : 3 + T]
        self.entities = rows[:, 3 + T : 3 + 2 * T]
        self.origins = rows[:, 3 + 2 * T : 3 + 3 * T]

    def __len__(self) -> int:
        return int(self.relations.shape[0])

    def text_edges(self, origin: int | None = None) -> LongTensor:
        """``LongTensor[m, 3]``: the text edges ``(e_t, r, e_{t+1})`` of these (positive) paths; with ``origin``
        only those of that origin code (e.g. the extractor's suggestions)."""
        prev = torch.cat([self.queries.sources.unsqueeze(1), self.entities[:, :-1]], dim=1)
        take = self.origins > 0 if origin is None else self.origins == origin
        return torch.stack([prev[take], self.relations[take], self.entities[take]], dim=1)


class ReplayMemory:
    """A ring buffer of positive paths (see the module docstring).

    Args:
        capacity: records kept.
        num_steps: ``T``.
        device: where the records live.
    """

    def __init__(self, capacity: int, num_steps: int, device: torch.device | str = "cpu") -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.num_steps = num_steps
        self.device = torch.device(device)
        self.rows = torch.zeros(capacity, 3 + 3 * num_steps, dtype=torch.long, device=self.device)
        self.keys = torch.zeros(capacity, dtype=torch.long, device=self.device)
        self.size = 0
        self.position = 0

    def __len__(self) -> int:
        return self.size

    @staticmethod
    def _keys(rows: LongTensor, num_steps: int) -> LongTensor:
        T = num_steps
        # hash of (query relation, answer, origins) folded into the path hash from the source
        head = rows[:, 0] * 1_000_003 + rows[:, 1] * 7919 + rows[:, 2]
        steps = rows[:, 3 : 3 + T] * 4 + rows[:, 3 + 2 * T :].clamp(max=3)
        return path_keys(head, steps, rows[:, 3 + T : 3 + 2 * T])

    @torch.no_grad()
    def add_rollout(self, rollout: Rollout, positive: BoolTensor) -> int:
        """Store the walks of ``rollout`` flagged by ``positive: BoolTensor[W]``; returns how many new records
        were stored."""
        q = rollout.queries
        assert q.targets is not None
        idx = rollout.query_index[positive]
        origins = rollout.origins if rollout.origins is not None else torch.zeros_like(rollout.relations)
        rows = torch.cat(
            [
                torch.stack([q.sources[idx], q.relations[idx], q.targets[idx]], dim=1),
                rollout.relations[positive],
                rollout.entities[positive],
                origins[positive],
            ],
            dim=1,
        )
        return self.add(rows)

    @torch.no_grad()
    def add(self, rows: LongTensor) -> int:
        """Store records ``rows: LongTensor[n, 3 + 3T]`` not yet in the memory; returns how many were new."""
        if rows.numel() == 0:
            return 0
        rows = rows.to(self.device).long()
        keys = self._keys(rows, self.num_steps)
        keys, first = _unique_first(keys)
        rows = rows[first]
        new = ~torch.isin(keys, self.keys[: self.size])
        rows, keys = rows[new], keys[new]
        n = min(len(rows), self.capacity)
        if n == 0:
            return 0
        rows, keys = rows[len(rows) - n :], keys[len(keys) - n :]
        slots = (self.position + torch.arange(n, device=self.device)) % self.capacity
        self.rows[slots] = rows
        self.keys[slots] = keys
        self.position = (self.position + n) % self.capacity
        self.size = min(self.size + n, self.capacity)
        return n

    def sample(self, n: int, generator: torch.Generator | None = None) -> ReplayBatch:
        """``min(n, len(self))`` records drawn uniformly without replacement (with ``generator``)."""
        n = min(n, self.size)
        gen_device = generator.device if generator is not None else self.device
        pick = torch.randperm(self.size, generator=generator, device=gen_device)[:n].to(self.device)
        return ReplayBatch(self.rows[pick], self.num_steps)

    def state_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows[: self.size].cpu() if self.size < self.capacity else self.rows.cpu(),
            "keys": self.keys.cpu(),
            "size": self.size,
            "position": self.position,
            "capacity": self.capacity,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["capacity"]) != self.capacity:
            raise ValueError(f"replay capacity {state['capacity']} in the state, {self.capacity} here")
        rows = state["rows"].to(self.device)
        self.rows.zero_()
        self.rows[: len(rows)] = rows
        self.keys = state["keys"].to(self.device)
        self.size = int(state["size"])
        self.position = int(state["position"])


def _unique_first(keys: LongTensor) -> tuple[LongTensor, LongTensor]:
    """Unique ``keys`` and the position of each one's first occurrence."""
    uniq, inv = torch.unique(keys, return_inverse=True)
    pos = torch.arange(len(keys), device=keys.device)
    first = torch.full((len(uniq),), len(keys), dtype=torch.long, device=keys.device)
    first = first.scatter_reduce(0, inv, pos, reduce="amin")
    return uniq, first


def replay_log_probs(policy: WalkerPolicy, env: WalkEnvironment, batch: ReplayBatch) -> FloatTensor:
    """``log pi(a_t | s_t)`` of the stored actions of ``batch`` under the current policy -> ``FloatTensor[n, T]``.

    Teacher forcing: the walk follows the stored path; at each step the action space is the environment's
    (graph edges, the current text candidates, the training masks), and the stored action is added to it when it
    is not there (e.g. a text edge the extractor no longer suggests), so the log-probability is always defined.
    """
    T = batch.relations.shape[1]
    device = env.device
    targets = batch.queries.targets
    assert targets is not None, "replayed queries carry their answers"
    q = Queries(*(x.to(device) for x in (batch.queries.sources, batch.queries.relations, targets)))
    episode: Episode = env.start(q, training=True)
    n = len(batch)
    rows = torch.arange(n, device=device)
    rel, ent = batch.relations.to(device), batch.entities.to(device)
    tables = policy.tables()
    history = policy.start_history(tables, q.sources)
    current = q.sources
    out = []
    for t in range(T):
        if t > 0:
            history = policy.advance(tables, history, None, rel[:, t - 1], ent[:, t - 1])
        actions = episode.actions(t, current, rows)
        match = (
            (actions.relations == rel[:, t : t + 1]) & (actions.targets == ent[:, t : t + 1]) & actions.mask
        )
        found = match.any(dim=1)
        relations = torch.cat([actions.relations, rel[:, t : t + 1]], dim=1)
        targets = torch.cat([actions.targets, ent[:, t : t + 1]], dim=1)
        mask = torch.cat([actions.mask, ~found.unsqueeze(1)], dim=1)
        logits = policy.scores(tables, history.top, current, q.relations, relations, targets)
        logp = masked_log_softmax(logits, mask, fill=MASKED_LOGIT)
        col = torch.where(found, match.float().argmax(dim=1), torch.full_like(rows, relations.shape[1] - 1))
        out.append(logp[rows, col])
        current = ent[:, t]
    return torch.stack(out, dim=1)
