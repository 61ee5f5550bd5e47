"""Reasoning paths of decoded answers, as ids and as readable text.

A path from ``e_s`` is a list of steps ``(relation, entity, probability, origin)``. Text rendering:
``Obama --born_in--> Hawaii --located_in--> U.S.``; an inverse edge ``r + R`` is drawn backwards
(``U.S. <--located_in-- Hawaii``); ``NO_OP`` steps are left out of the text (the walker stayed put);
edges from an extra candidate source (origin ``>= 1``) carry the origin's name, e.g. ``--born_in[text]-->``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from kgreason.reasoning.beam_search import BeamSearchResult

__all__ = ["Answer", "Path", "PathStep", "answers_from_beam", "format_path"]


@dataclass
class PathStep:
    """One hop: ``relation`` id (``2R`` = ``NO_OP``), the ``entity`` reached, ``probability = pi(a_t | s_t)``,
    ``origin`` (0 = graph edge)."""

    relation: int
    entity: int
    probability: float
    origin: int = 0


@dataclass
class Path:
    """A path from ``source``: its steps and ``log_prob`` (sum of the steps' log-probabilities)."""

    source: int
    steps: list[PathStep]
    log_prob: float
    text: str = ""

    @property
    def probability(self) -> float:
        return math.exp(self.log_prob)

    @property
    def end(self) -> int:
        return self.steps[-1].entity if self.steps else self.source


@dataclass
class Answer:
    """A ranked answer: ``entity`` id (and ``label``), ``score`` = log-probability of its best path, the best
    ``paths`` leading to it (best first). With re-ranking (``rerank_weight = w > 0``) ``score`` is that
    log-probability plus ``w * log sigmoid f`` of the reward model, so ``probability`` is ``P(path) * sigmoid(f)^w``,
    a ranking score rather than a probability; each path's own ``log_prob`` is unchanged."""

    entity: int
    score: float
    paths: list[Path] = field(default_factory=list)
    label: str = ""

    @property
    def probability(self) -> float:
        return math.exp(self.score)

    def __str__(self) -> str:
        head = f"{self.label or self.entity}  (p={self.probability:.4g})"
        return "\n".join([head, *(f"    {p.text}" for p in self.paths)])


def format_path(
    path: Path,
    entity_label: Callable[[int], str],
    relation_label: Callable[[int], str],
    num_relations: int,
    origin_names: dict[int, str] | None = None,
) -> str:
    """Readable text of ``path``: ``A --r--> B <--s-- C`` (inverse relations drawn backwards, NO_OP left out).

    ``relation_label`` receives base relation ids ``[0, R)``; ``origin_names`` names non-graph origins
    (default ``"extra"``), shown as ``--r[text]-->``.
    """
    parts = [entity_label(path.source)]
    for step in path.steps:
        if step.relation == 2 * num_relations:  # NO_OP
            continue
        mark = ""
        if step.origin:
            mark = f"[{(origin_names or {}).get(step.origin, 'extra')}]"
        if step.relation >= num_relations:
            parts.append(f"<--{relation_label(step.relation - num_relations)}{mark}--")
        else:
            parts.append(f"--{relation_label(step.relation)}{mark}-->")
        parts.append(entity_label(step.entity))
    return " ".join(parts)


def answers_from_beam(
    result: BeamSearchResult,
    row: int,
    top_k: int,
    paths_per_answer: int = 3,
    entity_label: Callable[[int], str] | None = None,
    relation_label: Callable[[int], str] | None = None,
    num_relations: int | None = None,
    origin_names: dict[int, str] | None = None,
) -> list[Answer]:
    """The ``top_k`` answers of query ``row`` of a traced beam search, each with its best paths.

    ``result`` must come from ``beam_search(..., return_trace=True)``. Paths are the final-step candidates
    ending at the answer, best first (the first one's log-probability is the answer's score). With labels and
    ``num_relations`` given, each path gets its ``text``.
    """
    if not result.steps:
        raise ValueError("the beam search result has no trace; decode with return_trace=True")
    final = result.steps[-1]
    answers: list[Answer] = []
    source = int(result.queries.sources[row])
    ents = result.entities[row].tolist()
    scores = result.entity_scores[row].tolist()
    fin_entity = final.entity[row]
    fin_score = final.score[row]
    for ent, score in zip(ents[:top_k], scores[:top_k]):
        if ent < 0:
            break
        cand_scores = fin_score.masked_fill(fin_entity != ent, float("-inf"))
        n = min(paths_per_answer, int((cand_scores > float("-inf")).sum()))
        best = cand_scores.topk(n).indices.tolist() if n > 0 else []
        paths = [_backtrack(result, row, c, source) for c in best]
        label = entity_label(ent) if entity_label is not None else ""
        if entity_label is not None and relation_label is not None and num_relations is not None:
            for p in paths:
                p.text = format_path(p, entity_label, relation_label, num_relations, origin_names)
        answers.append(Answer(entity=ent, score=score, paths=paths, label=label))
    return answers


def _backtrack(result: BeamSearchResult, row: int, column: int, source: int) -> Path:
    steps_rev: list[PathStep] = []
    col = column
    log_prob = float(result.steps[-1].score[row, column])
    for step in reversed(result.steps):
        steps_rev.append(
            PathStep(
                relation=int(step.relation[row, col]),
                entity=int(step.entity[row, col]),
                probability=math.exp(float(step.step_log_prob[row, col])),
                origin=int(step.origin[row, col]),
            )
        )
        col = int(step.parent[row, col])
    return Path(source=source, steps=list(reversed(steps_rev)), log_prob=log_prob)
