"""How the two CPL agents work together (Fu et al. 2019, §3.3): the joint action space, the extractor's reward,
the edges that stay, adaptive sampling and the "text edges on positive paths" statistic of Fig. 4.

**Joint action space.** At every step the reasoner at ``e_t`` chooses among the KG edges of ``e_t`` (the walk
graph, origin 0) and the edges the extractor suggests out of ``e_t`` from the corpus (origin
:data:`SUGGESTED`), plus the text edges kept from earlier positive paths (origin :data:`KEPT`).
:class:`TextCandidateSource` plugs into :class:`~kgreason.reasoning.environment.WalkEnvironment` as its
``candidate_source``: suggestions are made *per walker and per step* and handed to the environment as extra
actions -- the shared graph is never written to. The extractor *samples* its ``k`` suggestions from its policy
only while it is the agent being trained (exploration for REINFORCE, ``explore=True``); otherwise -- while the
reasoner is trained, and at inference -- it acts with its ``k`` most probable edges, so the reasoner learns with
the extractor it will be deployed with. "No relation" and edges already in the graph are never suggested.

**Extractor reward** (γ = 0, step-wise): a text edge taken at step ``t`` of a walk that ends at the answer earns
reward 1 at ``t``, every other suggestion 0 (:func:`rewarded_text_edges`); zero rewards give no gradient.

**Edges that stay.** Rewarded edges are kept in a :class:`TextEdgeMemory` (an overlay of text edges, both
directions, with how often each was rewarded) and offered again from then on, training and inference; the other
suggestions vanish when the agents move on. The memory is a module buffer, so checkpoints and the best
validation weights carry it.

**Adaptive sampling** (§4.2): :class:`AdaptiveSampling` is a sampling hook of
:func:`~kgreason.reasoning.reinforce.sample_rollouts` that raises the priority of text edges: with probability
``lambda`` (annealed to 0) a walker draws its action from the policy *restricted to the text edges on offer*
instead of from the whole policy (a uniform draw would mostly reward lucky, wrongly labelled edges). The training
loop uses it for *extra* walks whose positive paths go to the replay memory, the kept edges and the extractor's
reward, giving both agents positive experience with text edges early in joint training; the reasoner's
on-policy REINFORCE term never sees these off-policy walks (on the family data, mixing them in without an
importance correction made the reasoner collapse). :class:`GuidedSampling` is the reference code's variant (a
warm start of paths to the answer that prefer corpus edges): the extra walks only take actions from which the
training answer can still be reached (hop counts over graph edges and corpus pairs), text edges first.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from kgreason.data.graph import ActionGraph
from kgreason.open.extractor import FactExtractor
from kgreason.reasoning.beam_search import BeamSearchResult
from kgreason.reasoning.environment import ActionSpace, ExtraActions, Queries
from kgreason.reasoning.policy import WalkerPolicy
from kgreason.reasoning.reinforce import Rollout
from kgreason.typing import BoolTensor, FloatTensor, LongTensor

__all__ = [
    "KEPT",
    "ORIGIN_NAMES",
    "SUGGESTED",
    "AdaptiveSampling",
    "CollaborativeAgents",
    "GuidedSampling",
    "TextCandidateSource",
    "TextEdgeMemory",
    "beam_text_share",
    "hops_to",
    "reachability_adjacency",
    "rewarded_text_edges",
    "uses_text",
]

#: origin code of an edge the extractor suggests at this step
SUGGESTED = 1
#: origin code of a text edge kept from an earlier positive path
KEPT = 2
#: how paths name the origins (both are text edges)
ORIGIN_NAMES = {SUGGESTED: "text", KEPT: "text"}


class TextEdgeMemory(nn.Module):
    """Text edges that lay on positive training paths, with their reward counts (never the walk graph itself).

    Buffers (saved in the state dict; loading resizes them): ``edges: LongTensor[n, 3]`` rows ``(e, r, e')`` with
    ``r`` in ``[0, 2R)`` (both directions of every kept fact are stored), ``counts: LongTensor[n]`` times rewarded.
    :meth:`edges_out` offers the ``max_per_entity`` most rewarded edges out of each entity among those rewarded at
    least ``min_count`` times (an edge on one lucky walk is not enough).

    Args:
        num_entities: ``E``.
        num_relations: ``R`` (base relations; edge ids ``[0, 2R)``).
        max_per_entity: cap on edges offered out of one entity.
        min_count: rewards needed before an edge is offered.
    """

    edges: torch.Tensor
    counts: torch.Tensor

    def __init__(
        self, num_entities: int, num_relations: int, max_per_entity: int = 16, min_count: int = 1
    ) -> None:
        super().__init__()
        if max_per_entity < 1:
            raise ValueError(f"max_per_entity must be >= 1, got {max_per_entity}")
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        self.num_entities = num_entities
        self.num_relations = num_relations
        self.max_per_entity = max_per_entity
        self.min_count = min_count
        self.register_buffer("edges", torch.zeros(0, 3, dtype=torch.long))
        self.register_buffer("counts", torch.zeros(0, dtype=torch.long))
        self._table: tuple[LongTensor, LongTensor, BoolTensor] | None = None

    def __len__(self) -> int:
        """Edges remembered (offered or not yet)."""
        return int(self.edges.shape[0])

    def num_offered(self) -> int:
        """Edges rewarded at least ``min_count`` times."""
        return int((self.counts >= self.min_count).sum())

    def _key(self, edges: LongTensor) -> LongTensor:
        return (edges[:, 0] * (2 * self.num_relations) + edges[:, 1]) * self.num_entities + edges[:, 2]

    def _unkey(self, keys: LongTensor) -> LongTensor:
        E, R2 = self.num_entities, 2 * self.num_relations
        return torch.stack([keys // (E * R2), (keys // E) % R2, keys % E], dim=1)

    @torch.no_grad()
    def add(self, edges: LongTensor) -> None:
        """Count ``edges: LongTensor[m, 3]`` (``(e, r, e')``, ``r`` in ``[0, 2R)``) as rewarded once more each; the
        inverse of every edge is counted with it."""
        if edges.numel() == 0:
            return
        R = self.num_relations
        edges = edges.to(self.edges.device).long()
        inverse = torch.stack([edges[:, 2], (edges[:, 1] + R) % (2 * R), edges[:, 0]], dim=1)
        keys = torch.cat([self._key(self.edges), self._key(edges), self._key(inverse)])
        weights = torch.cat([self.counts, torch.ones(2 * len(edges), dtype=torch.long, device=keys.device)])
        uniq, inv = torch.unique(keys, return_inverse=True)
        counts = torch.zeros(len(uniq), dtype=torch.long, device=keys.device).index_add_(0, inv, weights)
        self.edges = self._unkey(uniq)
        self.counts = counts
        self._table = None

    def clear(self) -> None:
        self.edges = self.edges.new_zeros(0, 3)
        self.counts = self.counts.new_zeros(0)
        self._table = None

    def _build_table(self) -> tuple[LongTensor, LongTensor, BoolTensor]:
        device = self.edges.device
        E = self.num_entities
        if len(self) == 0:
            empty = torch.zeros(E, 0, dtype=torch.long, device=device)
            return empty, empty.clone(), torch.zeros(E, 0, dtype=torch.bool, device=device)
        # order by (entity, -count, key): the most rewarded edges of an entity first
        order = torch.argsort(self.counts, descending=True, stable=True)
        order = order[torch.argsort(self.edges[order, 0], stable=True)]
        heads = self.edges[order, 0]
        first = torch.zeros(E + 1, dtype=torch.long, device=device)
        first[1:] = torch.cumsum(torch.bincount(heads, minlength=E), 0)
        rank = torch.arange(len(order), device=device) - first[heads]
        keep = (rank < self.max_per_entity) & (self.counts[order] >= self.min_count)
        order, heads, rank = order[keep], heads[keep], rank[keep]
        width = int(rank.max()) + 1 if rank.numel() else 0
        relations = torch.zeros(E, width, dtype=torch.long, device=device)
        targets = torch.zeros(E, width, dtype=torch.long, device=device)
        mask = torch.zeros(E, width, dtype=torch.bool, device=device)
        relations[heads, rank] = self.edges[order, 1]
        targets[heads, rank] = self.edges[order, 2]
        mask[heads, rank] = True
        return relations, targets, mask

    def edges_out(self, entities: LongTensor) -> tuple[LongTensor, LongTensor, BoolTensor]:
        """Kept edges out of ``entities: LongTensor[W]``: ``(relations, targets: LongTensor[W, M], mask:
        BoolTensor[W, M])``, most rewarded first (``M = 0`` when the memory is empty)."""
        if self._table is None or self._table[0].device != self.edges.device:
            self._table = self._build_table()
        relations, targets, mask = self._table
        entities = entities.to(relations.device)
        return relations[entities], targets[entities], mask[entities]

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: Any,
        strict: bool,
        missing: list[str],
        unexpected: list[str],
        errors: list[str],
    ) -> None:
        for name in ("edges", "counts"):  # the memory grows: take the saved size
            saved = state_dict.get(prefix + name)
            if saved is not None:
                setattr(self, name, torch.empty_like(saved, device=getattr(self, name).device))
        self._table = None
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing, unexpected, errors)


class TextCandidateSource:
    """The extractor's side of the joint action space: a
    :class:`~kgreason.reasoning.environment.CandidateSource` for :class:`WalkEnvironment`.

    At every step it returns, for each walker at ``e_t``, the extractor's ``k`` suggestions out of ``e_t`` (origin
    :data:`SUGGESTED`) followed by the kept text edges of ``e_t`` not among them (origin :data:`KEPT`).

    Args:
        extractor: the fact-extraction agent.
        k: suggestions per walker and step.
        threshold: optional minimum confidence of a suggestion.
        memory: kept text edges (``None``: none are kept).
        generator: random generator for exploration (on the extractor's device; the training loop sets it).

        mask_query_pair: on training queries ``(e_s, r_q, e_o)`` (targets known), drop text edges between ``e_s``
            and ``e_o`` (any relation, either direction): a sentence about the query pair states the answer, and
            a walker trained to read it off such a sentence learns a shortcut that held-out queries do not have.
        exclude_kept: kept edges count as graph edges for the extractor: its ``k`` suggestions are its best (or
            sampled) edges *beyond* the kept ones of ``e_t``, so a suggestion never repeats a kept edge (``False``:
            the top-``k`` may repeat kept edges, which are then offered once, as suggestions).

    ``enabled`` switches the source off (e.g. while the reasoner is pre-trained on the KG alone); ``explore``
    makes the extractor sample its suggestions from its policy (Gumbel top-``k``, one draw per walker) instead of
    taking its ``k`` most probable edges (the training loop sets it during the extractor's turns).
    """

    def __init__(
        self,
        extractor: FactExtractor,
        k: int = 5,
        threshold: float | None = None,
        memory: TextEdgeMemory | None = None,
        generator: torch.Generator | None = None,
        mask_query_pair: bool = True,
        exclude_kept: bool = False,
    ) -> None:
        self.extractor = extractor
        self.k = k
        self.threshold = threshold
        self.memory = memory
        self.generator = generator
        self.mask_query_pair = mask_query_pair
        self.exclude_kept = exclude_kept
        self.enabled = True
        self.explore = False

    def __call__(
        self, step: int, current: LongTensor, query_index: LongTensor, queries: Queries
    ) -> ExtraActions | None:
        """Extra actions of walkers at ``current: LongTensor[W]``: ``[W, k + M]`` tensors (see the class doc)."""
        if not self.enabled:
            return None
        kept = self.memory.edges_out(current) if self.memory is not None and len(self.memory) else None
        # with ``exclude_kept`` ask for k + M and drop the kept ones: the best (or sampled) k beyond them
        extra_width = kept[0].shape[1] if kept is not None and self.exclude_kept else 0
        beyond = extra_width > 0
        width = self.k + extra_width
        s = self.extractor.suggest(
            current, width, self.threshold, sample=self.explore, generator=self.generator
        )
        relations, targets, mask = s.relations, s.targets, s.mask
        if kept is not None:
            m_rel, m_tgt, m_mask = (x.to(relations.device) for x in kept)
            same = (m_rel.unsqueeze(2) == relations.unsqueeze(1)) & (
                m_tgt.unsqueeze(2) == targets.unsqueeze(1)
            )
            if beyond:
                mask = mask & ~(same & m_mask.unsqueeze(2)).any(dim=1)
                relations, targets, mask = _first_valid(relations, targets, mask, self.k)
            else:
                m_mask = m_mask & ~(same & mask.unsqueeze(1)).any(dim=2)
            origin = torch.cat([torch.full_like(relations, SUGGESTED), torch.full_like(m_rel, KEPT)], dim=1)
            relations = torch.cat([relations, m_rel], dim=1)
            targets = torch.cat([targets, m_tgt], dim=1)
            mask = torch.cat([mask, m_mask], dim=1)
        else:
            origin = torch.full_like(relations, SUGGESTED)
        if self.mask_query_pair and queries.targets is not None:
            es = queries.sources[query_index].to(targets.device).unsqueeze(1)
            eo = queries.targets[query_index].to(targets.device).unsqueeze(1)
            here = current.to(targets.device).unsqueeze(1)
            mask = mask & ~(((here == es) & (targets == eo)) | ((here == eo) & (targets == es)))
        return ExtraActions(relations, targets, mask, origin)


def _first_valid(
    relations: LongTensor, targets: LongTensor, mask: BoolTensor, k: int
) -> tuple[LongTensor, LongTensor, BoolTensor]:
    """The first ``k`` valid entries of each row (order kept), padded with invalid ones: ``[W, k]`` each."""
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)[:, :k]
    return (
        torch.gather(relations, 1, order),
        torch.gather(targets, 1, order),
        torch.gather(mask, 1, order),
    )


class AdaptiveSampling:
    """Sampling hook raising the priority of text edges (§4.2): the sampling distribution of a walker with text
    edges on offer becomes ``(1 - lambda) q + lambda q_text`` with ``q`` the (dropout-perturbed) policy and
    ``q_text`` the policy restricted to the valid text edges and renormalised (uniform over them if the policy gives
    them no mass). ``rate`` (``lambda``) is set by the training loop each epoch (annealed)."""

    def __init__(self, rate: float = 0.0) -> None:
        self.rate = rate

    def __call__(
        self, step: int, weights: FloatTensor, actions: ActionSpace, rows: LongTensor
    ) -> FloatTensor:
        """``weights: FloatTensor[n, A]`` (row ``i`` belongs to action row ``rows[i]``) -> adjusted weights."""
        if self.rate <= 0.0 or actions.origin is None:
            return weights
        text = ((actions.origin > 0) & actions.mask)[rows]
        has_text = text.any(dim=1, keepdim=True)
        q = weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-30)
        return torch.where(has_text, (1.0 - self.rate) * q + self.rate * _restrict(q, text), q)


def reachability_adjacency(graph: ActionGraph, pairs: LongTensor | None = None) -> torch.Tensor:
    """Undirected adjacency (sparse COO ``FloatTensor[E, E]``) of the graph's action slots and the corpus's entity
    pairs (``pairs: LongTensor[P, 2]``, the pairs that have a bag): every edge a walker can be offered -- a graph
    edge, a suggestion or a kept text edge -- joins a pair of it, so hop counts over it are lower bounds of the
    joint action space's (the training query's own edge included, so they can be too optimistic by one)."""
    E = graph.num_entities
    rows = torch.arange(E, device=graph.device).unsqueeze(1).expand_as(graph.action_targets)
    valid = graph.action_mask.clone()
    valid[:, 0] = False  # NO_OP
    src, dst = rows[valid], graph.action_targets[valid]
    if pairs is not None and pairs.numel():
        pairs = pairs.to(graph.device)
        src, dst = torch.cat([src, pairs[:, 0], pairs[:, 1]]), torch.cat([dst, pairs[:, 1], pairs[:, 0]])
    keys = torch.unique(torch.cat([src * E + dst, dst * E + src]))
    index = torch.stack([keys // E, keys % E])  # sorted and unique: already coalesced
    values = torch.ones(keys.shape[0], device=graph.device)
    return torch.sparse_coo_tensor(index, values, (E, E), check_invariants=False, is_coalesced=True)


def hops_to(adjacency: torch.Tensor, targets: LongTensor, max_hops: int) -> LongTensor:
    """``LongTensor[E, B]``: hops from every entity to each of ``targets: LongTensor[B]`` over ``adjacency``
    (:func:`reachability_adjacency`), ``max_hops + 1`` where more than ``max_hops`` are needed (one sparse product
    per hop)."""
    E, B = adjacency.shape[0], targets.shape[0]
    cols = torch.arange(B, device=targets.device)
    reach = torch.zeros(E, B, device=targets.device)
    reach[targets, cols] = 1.0
    hops = torch.full((E, B), max_hops + 1, dtype=torch.long, device=targets.device)
    hops[targets, cols] = 0
    for k in range(1, max_hops + 1):
        reach = ((adjacency @ reach) + reach).clamp_max(1.0)
        hops = torch.where((reach > 0) & (hops > k), torch.full_like(hops, k), hops)
    return hops


class GuidedSampling(AdaptiveSampling):
    """Adaptive sampling as a warm start towards the answer (the reference code's version of §4.2: its first joint
    iterations replace rollouts by shortest paths to the answer that prefer corpus edges). A walker may only take
    actions from which the training answer is still reachable in the steps left (hop counts over graph edges and
    corpus pairs, :func:`hops_to`; ``NO_OP`` counts as staying), and among those it takes a text edge with priority
    ``rate`` (``lambda``, as :class:`AdaptiveSampling`), following the policy within each group. Walkers with no
    such action follow the plain policy. :meth:`aim` sets the batch's answers before each sampling.

    Args:
        adjacency: :func:`reachability_adjacency` of the walk graph and the corpus pairs.
        num_steps: ``T``.
    """

    def __init__(self, adjacency: torch.Tensor, num_steps: int, rate: float = 0.0) -> None:
        super().__init__(rate)
        self.adjacency = adjacency
        self.num_steps = num_steps
        self._hops: LongTensor | None = None  # [E, B]
        self._query: LongTensor | None = None  # [W] query of each walker

    def aim(self, targets: LongTensor, num_rollouts: int) -> None:
        """Answers of the ``B`` queries about to be walked (``num_rollouts`` walkers each, query-major)."""
        self._hops = hops_to(self.adjacency, targets, self.num_steps - 1)
        self._query = torch.arange(targets.shape[0], device=targets.device).repeat_interleave(num_rollouts)

    def __call__(
        self, step: int, weights: FloatTensor, actions: ActionSpace, rows: LongTensor
    ) -> FloatTensor:
        if self.rate <= 0.0:
            return weights
        if self._hops is None or self._query is None or self._query.shape[0] != weights.shape[0]:
            raise RuntimeError("GuidedSampling.aim(targets, num_rollouts) must be called before sampling")
        left = self.num_steps - 1 - step  # steps after this action
        targets = actions.targets[rows]
        ok = actions.mask[rows] & (self._hops[targets, self._query.unsqueeze(1)] <= left)
        has_ok = ok.any(dim=1, keepdim=True)
        q = weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-30)
        q_ok = _restrict(q, ok)
        if actions.origin is not None:
            text = ok & (actions.origin[rows] > 0)
            mixed = (1.0 - self.rate) * q_ok + self.rate * _restrict(q, text)
            q_ok = torch.where(text.any(dim=1, keepdim=True), mixed, q_ok)
        return torch.where(has_ok, q_ok, q)


def _restrict(q: FloatTensor, allowed: BoolTensor) -> FloatTensor:
    """``q`` restricted to ``allowed`` and renormalised per row (uniform over ``allowed`` where ``q`` gives it no
    mass; rows without any allowed entry come out all zero)."""
    part = q * allowed
    mass = part.sum(dim=1, keepdim=True)
    uniform = allowed.to(q.dtype) / allowed.sum(dim=1, keepdim=True).clamp_min(1).to(q.dtype)
    return torch.where(mass > 0, part / mass.clamp_min(1e-30), uniform)


class CollaborativeAgents(nn.Module):
    """The two agents (and the kept text edges) as one module, so that one optimiser, checkpoint and best-weights
    snapshot cover them all.

    ``policy``: the reasoner (:class:`~kgreason.reasoning.policy.WalkerPolicy`); ``extractor``: the fact extractor
    (``None`` for the KG-only baselines); ``memory``: kept text edges (``None`` when not kept).
    """

    def __init__(
        self,
        policy: WalkerPolicy,
        extractor: FactExtractor | None = None,
        memory: TextEdgeMemory | None = None,
    ) -> None:
        super().__init__()
        self.policy = policy
        self.extractor = extractor
        self.memory = memory


# ---- rewards and statistics -----------------------------------------------------------------------------------


def uses_text(origins: LongTensor | None) -> BoolTensor:
    """``BoolTensor[W]``: whether each walk of ``origins: LongTensor[W, T]`` took a text edge (all ``False`` for
    ``None``, i.e. no candidate source)."""
    if origins is None:
        raise ValueError("the rollout has no origins (it was sampled without a candidate source)")
    return (origins > 0).any(dim=1)


def rewarded_text_edges(rollout: Rollout, positive: BoolTensor, suggested_only: bool = False) -> LongTensor:
    """The text edges taken on positive walks, each with step-wise reward 1 (the extractor's experience, γ = 0).

    ``positive: BoolTensor[W]`` (e.g. ``rollout.hits()``) -> ``LongTensor[m, 3]`` rows ``(e_t, r, e_{t+1})`` (``r``
    in ``[0, 2R)``), one per text step of a positive walk (repeats kept: each is one experience).
    ``suggested_only``: only the edges the extractor suggested at that step (origin :data:`SUGGESTED`), not kept
    edges taken again.
    """
    if rollout.origins is None:
        return torch.zeros(0, 3, dtype=torch.long, device=rollout.entities.device)
    prev = torch.cat([rollout.sources.unsqueeze(1), rollout.entities[:, :-1]], dim=1)  # [W, T]
    text = rollout.origins == SUGGESTED if suggested_only else rollout.origins > 0
    take = text & positive.unsqueeze(1)
    return torch.stack([prev[take], rollout.relations[take], rollout.entities[take]], dim=1)


def beam_text_share(result: BeamSearchResult, targets: LongTensor) -> tuple[BoolTensor, BoolTensor]:
    """For decoded queries with known answers: whether the answer is among the beam's final answers (``reached``),
    and whether its best path uses a text edge (the "suggested edge / positive path" statistic of Fig. 4, on decoded
    paths).

    ``result`` from ``beam_search(..., return_trace=True)``; ``targets: LongTensor[B]``. Returns ``(reached,
    text): BoolTensor[B]`` each. Vectorised over queries (one pass back through the ``T`` steps).
    """
    if not result.steps:
        raise ValueError("the beam search result has no trace; decode with return_trace=True")
    final = result.steps[-1]
    targets = targets.to(final.entity.device)
    rows = torch.arange(final.entity.shape[0], device=final.entity.device)
    score = final.score.masked_fill(final.entity != targets.unsqueeze(1), float("-inf"))
    best_score, col = score.max(dim=1)
    reached = (best_score > float("-inf")) & (result.entities == targets.unsqueeze(1)).any(dim=1)
    text = final.origin[rows, col] > 0
    col = final.parent[rows, col]
    for step in reversed(result.steps[:-1]):
        text |= step.origin[rows, col] > 0
        col = step.parent[rows, col]
    return reached, text & reached
