"""Beam-search decoding and the :class:`WalkerScorer` adapter for rank-based evaluation.

Decoding (Lin et al. 2018, §4.3): keep the ``K`` best path prefixes (by path log-probability) per query at each
step; at the last step every unique entity reached by any expanded path gets the **maximum** score over its
paths, and the ``K`` best unique entities form the answer list. Scores are path log-probabilities
(``log prod_t pi(a_t | s_t)``).

**Unreached entities.** :class:`WalkerScorer` returns ``FloatTensor[b, E]`` with ``-inf`` for every entity not in
the final beam. The rank-based evaluator ranks ``-inf`` entities tied behind every finite score (optimistic rank:
right after the last reached entity; pessimistic: last; realistic: their mean). So a test answer the beam never
reaches gets the expected rank of a uniformly random order among the unreached entities — an honest number,
unlike "rank 0 / reciprocal rank 0" conventions.

**Re-ranking by the reward model** (optional, not in the paper): :func:`rerank` orders the ``K`` answers of the
final beam by ``log P(best path) + w * log sigmoid f(e_s, r_q, e)`` with the walker's KGE reward model ``f``
(:class:`WalkerScorer` with ``reranker`` and ``rerank_weight = w``). Only answers the beam reached are
re-ordered -- each keeps its paths -- and unreached entities stay at ``-inf``.

Computation is batched over queries and beams; dead beams (fewer than ``K`` valid prefixes) are compacted away
before the LSTM and policy run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from kgreason.data.graph import inverse_relation
from kgreason.reasoning.environment import ActionSpace, Queries, WalkEnvironment
from kgreason.reasoning.policy import WalkerPolicy, masked_log_softmax
from kgreason.reasoning.reward import RewardShaper
from kgreason.typing import FloatTensor, LongTensor

__all__ = ["BeamSearchResult", "BeamStep", "WalkerScorer", "beam_search", "rerank"]


@dataclass
class BeamStep:
    """One decoding step for ``B`` queries and ``k`` beam entries (or final candidates).

    ``parent: LongTensor[B, k]`` index into the previous step's beam (0 at the first step);
    ``relation, entity, origin: LongTensor[B, k]`` the action taken (origin 0 = graph edge);
    ``step_log_prob: FloatTensor[B, k]`` ``log pi(a_t | s_t)``; ``score: FloatTensor[B, k]`` path log-probability
    (``-inf`` for empty entries).
    """

    parent: LongTensor
    relation: LongTensor
    entity: LongTensor
    origin: LongTensor
    step_log_prob: FloatTensor
    score: FloatTensor


@dataclass
class BeamSearchResult:
    """Decoded answers of ``B`` queries.

    ``scores: FloatTensor[B, E]`` best-path log-probability of each answer in the final beam, ``-inf`` elsewhere;
    ``entities: LongTensor[B, K]`` the answers, best first (``-1`` pads queries with fewer than ``K`` answers);
    ``entity_scores: FloatTensor[B, K]`` their scores (``-inf`` at padding);
    ``steps``: the kept beams of steps ``0..T-2`` and, last, **all** final-step candidates (only with
    ``return_trace``; used by :mod:`kgreason.reasoning.paths` to recover the best paths of each answer).
    """

    queries: Queries
    scores: FloatTensor
    entities: LongTensor
    entity_scores: FloatTensor
    steps: list[BeamStep] = field(default_factory=list)


@torch.no_grad()
def beam_search(
    policy: WalkerPolicy,
    env: WalkEnvironment,
    queries: Queries,
    beam_size: int,
    return_trace: bool = False,
    mask_known_answers: bool = False,
) -> BeamSearchResult:
    """Beam-search the ``T``-step paths of ``queries`` (targets ignored; no training masks).

    Args:
        policy: the trained policy (switched to eval mode by the caller, e.g. :class:`WalkerScorer`).
        env: the environment (graph, number of steps, optional extra candidates).
        queries: ``B`` queries ``(sources, relations)``.
        beam_size: ``K``, prefixes kept per query per step and answers returned per query.
        return_trace: also keep the per-step beams for path extraction.
        mask_known_answers: at the last step, no edge leads to an answer of ``(e_s, r_q)`` already in the
            environment's known answers (the training graph), as during training (MINERVA's rule) and as the
            reference code decodes (:meth:`WalkEnvironment.start`); ``NO_OP`` is masked as in training (kept,
            unless the environment's ``mask_no_op_on_known_answers``), so a known answer is at most reached by a
            walker already standing on it.

    Returns:
        :class:`BeamSearchResult`.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    episode = env.start(
        Queries(queries.sources, queries.relations), training=False, mask_known_answers=mask_known_answers
    )
    q = episode.queries
    B, T, E = len(q), env.num_steps, env.num_entities
    device = q.sources.device
    tables = policy.tables()
    history = policy.start_history(tables, q.sources)
    hist_pos = torch.arange(B, device=device)  # full beam row -> row of `history` (alive rows only)
    current = q.sources  # [B * k_prev]
    score = torch.zeros(B, 1, device=device)  # [B, k_prev]
    rel = ent = None
    parent_full: LongTensor | None = None
    steps: list[BeamStep] = []
    k_prev = 1
    for t in range(T):
        n_full = B * k_prev
        flat_score = score.reshape(-1)
        alive = torch.nonzero(flat_score > float("-inf")).squeeze(1)  # rows worth expanding
        qidx = alive // k_prev
        if t > 0:
            assert rel is not None and ent is not None and parent_full is not None
            history = policy.advance(tables, history, hist_pos[parent_full[alive]], rel[alive], ent[alive])
        cur = current[alive]
        actions = episode.actions(t, cur, qidx)
        logits = policy.scores(
            tables, history.top, cur, q.relations[qidx], actions.relations, actions.targets
        )
        logp = masked_log_softmax(logits, actions.mask)
        A = actions.num_actions
        alive_total = flat_score[alive].unsqueeze(1) + logp  # [n_alive, A]
        if t == T - 1:
            # max over paths per unique final entity, then the K best unique entities
            best = torch.full((B * E,), float("-inf"), device=device)
            flat_index = (qidx.unsqueeze(1) * E + actions.targets).reshape(-1)
            best.scatter_reduce_(0, flat_index, alive_total.reshape(-1), reduce="amax", include_self=True)
            best = best.view(B, E)
            k = min(beam_size, E)
            top_score, top_ent = best.topk(k, dim=1)
            scores = torch.full_like(best, float("-inf")).scatter_(1, top_ent, top_score)
            top_ent = top_ent.masked_fill(top_score == float("-inf"), -1)
            if return_trace:
                steps.append(_final_candidates(actions, alive, logp, alive_total, B, k_prev))
            return BeamSearchResult(q, scores, top_ent, top_score, steps)
        total = torch.full((n_full, A), float("-inf"), device=device)
        total[alive] = alive_total
        total = total.view(B, k_prev * A)
        k = min(beam_size, k_prev * A)
        top_score, top_idx = total.topk(k, dim=1)  # [B, k]
        parent_in_beam, action = top_idx // A, top_idx % A
        parent_full = (torch.arange(B, device=device).unsqueeze(1) * k_prev + parent_in_beam).reshape(-1)
        pos = torch.full((n_full,), -1, dtype=torch.long, device=device)
        pos[alive] = torch.arange(alive.numel(), device=device)
        hist_pos = pos
        rows = pos[parent_full].clamp_min(0)  # dead picks (score -inf) point anywhere valid
        rel = actions.relations[rows, action.reshape(-1)]
        ent = actions.targets[rows, action.reshape(-1)]
        if return_trace:
            org = (
                actions.origin[rows, action.reshape(-1)]
                if actions.origin is not None
                else torch.zeros_like(rel)
            )
            steps.append(
                BeamStep(
                    parent=parent_in_beam,
                    relation=rel.view(B, k),
                    entity=ent.view(B, k),
                    origin=org.view(B, k),
                    step_log_prob=logp[rows, action.reshape(-1)].view(B, k),
                    score=top_score,
                )
            )
        current = ent
        score = top_score
        k_prev = k
    raise AssertionError("unreachable")


def _final_candidates(
    actions: ActionSpace, alive: LongTensor, logp: FloatTensor, alive_total: FloatTensor, B: int, k_prev: int
) -> BeamStep:
    """All final-step candidates (``k_prev * A`` per query, ``-inf`` score for dead rows) as a :class:`BeamStep`."""
    device = logp.device
    A = actions.num_actions
    n_full = B * k_prev

    def full(values: torch.Tensor, fill: float) -> torch.Tensor:
        out = torch.full((n_full, A), fill, dtype=values.dtype, device=device)
        out[alive] = values
        return out.view(B, k_prev * A)

    parent = (torch.arange(k_prev * A, device=device) // A).unsqueeze(0).expand(B, -1)
    origin = actions.origin if actions.origin is not None else torch.zeros_like(actions.relations)
    return BeamStep(
        parent=parent,
        relation=full(actions.relations, 0),
        entity=full(actions.targets, 0),
        origin=full(origin, 0),
        step_log_prob=full(logp, float("-inf")),
        score=full(alive_total, float("-inf")),
    )


def rerank(result: BeamSearchResult, log_scores: FloatTensor, weight: float) -> BeamSearchResult:
    """``result`` with its answers re-ordered by ``scores + weight * log_scores`` (``log_scores: FloatTensor[B, E]``,
    e.g. :meth:`RewardShaper.log_scores`). Entities outside the final beam keep ``-inf``; the trace (paths) is
    unchanged, so every answer keeps its paths. ``weight`` 0 returns ``result`` itself."""
    if not weight >= 0.0:
        raise ValueError(f"rerank weight must be >= 0, got {weight}")
    if weight == 0.0:
        return result
    if log_scores.shape != result.scores.shape:
        raise ValueError(
            f"log_scores must have shape {tuple(result.scores.shape)}, got {tuple(log_scores.shape)}"
        )
    reached = result.scores > float("-inf")
    scores = torch.where(reached, result.scores + weight * log_scores.to(result.scores), float("-inf"))
    k = result.entities.shape[1]
    top_score, top_ent = scores.topk(k, dim=1)
    top_ent = top_ent.masked_fill(top_score == float("-inf"), -1)
    return BeamSearchResult(result.queries, scores, top_ent, top_score, result.steps)


class WalkerScorer:
    """Scorer protocol adapter: beam-search scores of every entity (``-inf`` for unreached ones).

    ``score_t((h, r))`` decodes the query ``(h, r, ?)``; ``score_h((r, t))`` decodes ``(t, r^-1, ?)`` (head queries as
    inverse-relation tail queries — meaningful when the walker was trained on inverse queries too).

    Args:
        policy: the policy (eval mode is set during scoring and restored afterwards).
        env: the environment to walk.
        beam_size: ``K``.
        batch_size: queries decoded at once (memory grows with ``batch_size * K * A``; on CPU, tensors beyond
            ~32 MB are slower to allocate, so moderate batches decode faster).
        reranker, rerank_weight: re-rank the beam's answers by ``path log-prob + rerank_weight * log sigmoid f``
            with this reward model (:func:`rerank`); ``None`` or weight 0: the paper's ranking.
        mask_known_answers: decode without last-step edges to known answers of the query (:func:`beam_search`);
            filtered evaluation ignores those answers' own scores anyway; the other answers' scores change.
    """

    def __init__(
        self,
        policy: WalkerPolicy,
        env: WalkEnvironment,
        beam_size: int,
        batch_size: int = 32,
        reranker: RewardShaper | None = None,
        rerank_weight: float = 0.0,
        mask_known_answers: bool = False,
    ) -> None:
        if rerank_weight > 0.0 and reranker is None:
            raise ValueError(f"rerank_weight={rerank_weight} needs a reranker (the reward model)")
        if not rerank_weight >= 0.0:
            raise ValueError(f"rerank_weight must be >= 0, got {rerank_weight}")
        self.policy = policy
        self.env = env
        self.beam_size = beam_size
        self.batch_size = batch_size
        self.reranker = reranker
        self.rerank_weight = rerank_weight
        self.mask_known_answers = mask_known_answers

    @property
    def num_entities(self) -> int:
        return self.env.num_entities

    @property
    def device(self) -> torch.device:
        """Where queries are decoded (the evaluator sends queries here)."""
        return self.env.device

    def decode(self, queries: Queries, return_trace: bool = False) -> BeamSearchResult:
        """Beam search in eval mode (dropout off), re-ranked if a reranker is set."""
        was_training = self.policy.training
        self.policy.eval()
        try:
            result = beam_search(
                self.policy,
                self.env,
                queries,
                self.beam_size,
                return_trace=return_trace,
                mask_known_answers=self.mask_known_answers,
            )
        finally:
            self.policy.train(was_training)
        if self.reranker is not None and self.rerank_weight > 0.0:
            q = result.queries
            result = rerank(result, self.reranker.log_scores(q.sources, q.relations), self.rerank_weight)
        return result

    def score_t(self, hr: LongTensor) -> FloatTensor:
        """``hr: LongTensor[b, 2]`` -> ``FloatTensor[b, E]`` (log-prob of the best path; ``-inf`` if unreached)."""
        hr = hr.to(self.env.device)
        outs = [self.decode(Queries(chunk[:, 0], chunk[:, 1])).scores for chunk in hr.split(self.batch_size)]
        if not outs:
            return torch.empty(0, self.num_entities, device=self.env.device)
        return torch.cat(outs)

    def score_h(self, rt: LongTensor) -> FloatTensor:
        """``rt: LongTensor[b, 2]`` -> ``FloatTensor[b, E]`` via the inverse query ``(t, r + R, ?)``."""
        rt = rt.to(self.env.device)
        inv = inverse_relation(rt[:, 0], self.env.num_relations)
        return self.score_t(torch.stack([rt[:, 1], inv], dim=1))
