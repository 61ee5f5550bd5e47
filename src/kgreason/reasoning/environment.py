"""The walk environment: batched walkers of ``T`` steps over an :class:`~kgreason.data.graph.ActionGraph`.

A walker answering the query ``(e_s, r_q, ?)`` starts at ``e_s`` and at each step picks one action
``(relation, target)`` among the out-edges of its current entity (action slot 0 is ``NO_OP``, the self-loop).

Training masks (MINERVA's rules, Lin et al. 2018 §2.4 footnote 1), for a walker trained on ``(e_s, r_q, e_o)``:

* the query edge ``(e_s, r_q, e_o)`` and its inverse ``(e_o, r_q^-1, e_s)`` are never available as actions;
* at the last step, actions whose target is another known answer of ``(e_s, r_q)`` (other than ``e_o``) are
  masked.

``NO_OP`` is never masked, so a walker always has at least one action (the reference implementation crashes
when masking empties an action set).

**Extra candidate actions.** A :class:`CandidateSource` (e.g. edges proposed by a text extractor for open KG
reasoning) may append per-walker actions ``(relation, target, origin)`` after the graph's slots at every step.
The same training masks apply to them; ``origin`` (0 = graph, ``>= 1`` = the source's own codes) is carried into
rollouts and beam-search paths so a path can say where each edge came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from kgreason.data.graph import NO_OP_SLOT, ActionGraph, AnswerIndex, inverse_relation
from kgreason.typing import BoolTensor, LongTensor

GRAPH_ORIGIN = 0

__all__ = [
    "GRAPH_ORIGIN",
    "ActionSpace",
    "CandidateSource",
    "Episode",
    "ExtraActions",
    "Queries",
    "WalkEnvironment",
]


@dataclass
class Queries:
    """A batch of queries ``(e_s, r_q, ?)``.

    ``sources, relations: LongTensor[B]`` (relations base ``[0, R)`` or inverse ``[R, 2R)``);
    ``targets: LongTensor[B] | None`` — the answer each query is trained on (``None`` at inference).
    """

    sources: LongTensor
    relations: LongTensor
    targets: LongTensor | None = None

    def __len__(self) -> int:
        return int(self.sources.shape[0])

    @classmethod
    def from_triples(cls, triples: LongTensor) -> Queries:
        """Queries ``(h, r, ?)`` with answers ``t`` from ``triples: LongTensor[B, 3]``."""
        return cls(triples[:, 0], triples[:, 1], triples[:, 2])


@dataclass
class ExtraActions:
    """Per-walker candidate actions appended after the graph's action slots.

    ``relations, targets: LongTensor[W, K]``, ``mask: BoolTensor[W, K]`` (valid entries), ``origin:
    LongTensor[W, K]`` (``>= 1``; 0 is reserved for graph edges).
    """

    relations: LongTensor
    targets: LongTensor
    mask: BoolTensor
    origin: LongTensor


class CandidateSource(Protocol):
    """Proposes extra actions for the walkers at a step (e.g. text-extracted edges)."""

    def __call__(
        self, step: int, current: LongTensor, query_index: LongTensor, queries: Queries
    ) -> ExtraActions | None:
        """``current, query_index: LongTensor[W]`` -> extra actions for those ``W`` walkers (or ``None``)."""
        ...


@dataclass
class ActionSpace:
    """The actions of ``W`` walkers at one step.

    ``relations, targets: LongTensor[W, A]``; ``mask: BoolTensor[W, A]`` (valid actions; column 0 is ``NO_OP`` and
    always valid); ``origin: LongTensor[W, A] | None`` (``None`` = every action is a graph edge).
    """

    relations: LongTensor
    targets: LongTensor
    mask: BoolTensor
    origin: LongTensor | None = None

    @property
    def num_actions(self) -> int:
        return int(self.relations.shape[1])

    def select(self, rows: LongTensor, cols: LongTensor) -> tuple[LongTensor, LongTensor, LongTensor | None]:
        """``(relation, target, origin)`` of action ``cols[i]`` of row ``rows[i]`` (``LongTensor[n]`` each)."""
        origin = self.origin[rows, cols] if self.origin is not None else None
        return self.relations[rows, cols], self.targets[rows, cols], origin


class WalkEnvironment:
    """Batched walks of ``num_steps`` steps over ``graph``.

    Args:
        graph: the action graph (built from training triples only).
        num_steps: path length ``T`` (2 or 3 in the paper).
        known_answers: answers of training queries for the last-step mask (default: the graph's own triples).
        candidate_source: optional per-step provider of extra actions.
        mask_no_op_on_known_answers: the last-step mask also takes ``NO_OP`` from a walker standing on another
            known answer, so no walk ends there (the reference code's masking); ``NO_OP`` then stays only for a
            walker left without any other action. ``False``: ``NO_OP`` is always available.
    """

    def __init__(
        self,
        graph: ActionGraph,
        num_steps: int,
        known_answers: AnswerIndex | None = None,
        candidate_source: CandidateSource | None = None,
        mask_no_op_on_known_answers: bool = False,
    ) -> None:
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        self.graph = graph
        self.num_steps = num_steps
        self.known_answers = (known_answers if known_answers is not None else graph.answer_index()).to(
            graph.device
        )
        self.candidate_source = candidate_source
        self.mask_no_op_on_known_answers = mask_no_op_on_known_answers

    @property
    def num_entities(self) -> int:
        return self.graph.num_entities

    @property
    def num_relations(self) -> int:
        return self.graph.num_relations

    @property
    def device(self) -> torch.device:
        return self.graph.device

    def start(self, queries: Queries, training: bool, mask_known_answers: bool = False) -> Episode:
        """Begin walks for ``queries``; with ``training`` (and targets given) the training masks apply.

        ``mask_known_answers`` (decoding, not training): at the last step no edge leads to a known answer of
        ``(e_s, r_q)`` -- the last-step part of the training masks, without a target to exempt (``NO_OP`` as in
        training: see ``mask_no_op_on_known_answers``). A walker trained under that mask never learned to keep
        probability off the known answers, so decoding without it spreads the last step's softmax over them; the
        reference code decodes with it.
        """
        queries = Queries(
            queries.sources.to(self.device),
            queries.relations.to(self.device),
            queries.targets.to(self.device) if queries.targets is not None else None,
        )
        return Episode(self, queries, training and queries.targets is not None, mask_known_answers)


class Episode:
    """One batch of walks: the queries plus what the masks need, computed once per batch."""

    def __init__(
        self, env: WalkEnvironment, queries: Queries, training: bool, mask_known_answers: bool = False
    ) -> None:
        self.env = env
        self.queries = queries
        self.training = training
        self.inverse_relations = inverse_relation(queries.relations, env.num_relations)
        self.other_answers: BoolTensor | None = None
        if training:
            assert queries.targets is not None
            other = env.known_answers.dense(queries.sources, queries.relations)  # [B, E]
            other[torch.arange(len(queries), device=env.device), queries.targets] = False
            self.other_answers = other
        elif mask_known_answers:
            self.other_answers = env.known_answers.dense(queries.sources, queries.relations)

    def actions(self, step: int, current: LongTensor, query_index: LongTensor) -> ActionSpace:
        """Actions of walkers at ``current: LongTensor[W]`` answering queries ``query_index: LongTensor[W]``.

        Returns the graph's action slots of ``current`` (plus any extra candidates) with the training masks
        applied; ``NO_OP`` (column 0) stays valid.
        """
        g = self.env.graph
        relations = g.action_relations[current]
        targets = g.action_targets[current]
        mask = g.action_mask[current]
        origin: LongTensor | None = None
        source = self.env.candidate_source
        extra = source(step, current, query_index, self.queries) if source is not None else None
        if extra is not None:
            origin = torch.cat(
                [torch.full_like(relations, GRAPH_ORIGIN), extra.origin.to(relations.device).long()], dim=1
            )
            relations = torch.cat([relations, extra.relations.long()], dim=1)
            targets = torch.cat([targets, extra.targets.long()], dim=1)
            mask = torch.cat([mask, extra.mask.bool()], dim=1)
        if self.training:
            self._apply_training_masks(step, current, query_index, relations, targets, mask)
            self._keep_no_op(step, mask)
        elif self.other_answers is not None and step == self.env.num_steps - 1:
            self._mask_other_answers(query_index, targets, mask)
            self._keep_no_op(step, mask)
        return ActionSpace(relations, targets, mask, origin)

    def _keep_no_op(self, step: int, mask: BoolTensor) -> None:
        """Make ``NO_OP`` valid again after the masks: always, or (``mask_no_op_on_known_answers``, last step)
        only where no other action is left -- a walker never ends up without an action."""
        if self.env.mask_no_op_on_known_answers and step == self.env.num_steps - 1:
            mask[:, NO_OP_SLOT] |= ~mask.any(dim=1)
        else:
            mask[:, NO_OP_SLOT] = True

    def _mask_other_answers(self, query_index: LongTensor, targets: LongTensor, mask: BoolTensor) -> None:
        """Clear (in place) the actions whose target is in ``other_answers`` of the walker's query."""
        assert self.other_answers is not None
        num_e = self.env.num_entities
        mask &= ~self.other_answers.view(-1)[query_index.unsqueeze(1) * num_e + targets]

    def _apply_training_masks(
        self,
        step: int,
        current: LongTensor,
        query_index: LongTensor,
        relations: LongTensor,
        targets: LongTensor,
        mask: BoolTensor,
    ) -> None:
        """Clear (in place) the query edge, its inverse and, at the last step, the other known answers."""
        q = self.queries
        assert q.targets is not None
        es, eo = q.sources[query_index], q.targets[query_index]
        # the query edge can only be an action of walkers standing at e_s or e_o: look at those rows only
        rows = torch.nonzero((current == es) | (current == eo)).squeeze(1)
        if rows.numel():
            r_rel, r_tgt, r_cur = relations[rows], targets[rows], current[rows]
            r_qi = query_index[rows]
            r_es, r_eo = es[rows].unsqueeze(1), eo[rows].unsqueeze(1)
            rq, rq_inv = q.relations[r_qi].unsqueeze(1), self.inverse_relations[r_qi].unsqueeze(1)
            banned = (r_cur.unsqueeze(1) == r_es) & (r_rel == rq) & (r_tgt == r_eo)
            banned |= (r_cur.unsqueeze(1) == r_eo) & (r_rel == rq_inv) & (r_tgt == r_es)
            mask[rows] = mask[rows] & ~banned
        if step == self.env.num_steps - 1 and self.other_answers is not None:
            self._mask_other_answers(query_index, targets, mask)
