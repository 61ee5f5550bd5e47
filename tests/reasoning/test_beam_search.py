from __future__ import annotations

import math

import pytest
import torch

from kgreason.data.graph import ActionGraph
from kgreason.reasoning.beam_search import WalkerScorer, beam_search
from kgreason.reasoning.environment import Queries, WalkEnvironment
from kgreason.reasoning.paths import Path, PathStep, answers_from_beam, format_path
from kgreason.reasoning.policy import WalkerPolicy, masked_log_softmax

E, R = 7, 2  # entity 6 is isolated (never reachable)
TRIPLES = torch.tensor([[0, 0, 1], [0, 1, 2], [1, 0, 3], [2, 0, 3], [2, 1, 4], [3, 1, 5], [1, 1, 4]])


def setup(steps: int = 2) -> tuple[WalkerPolicy, WalkEnvironment]:
    torch.manual_seed(3)
    policy = WalkerPolicy(E, R, embedding_dim=8, history_dim=8, history_layers=2).eval()
    env = WalkEnvironment(ActionGraph.from_triples(TRIPLES, E, R), num_steps=steps)
    return policy, env


def all_paths(
    policy: WalkerPolicy, env: WalkEnvironment, source: int, relation: int
) -> list[tuple[list, float]]:
    """Every T-step path from ``source`` with its log-probability, by explicit enumeration (test oracle)."""
    t = policy.tables()
    g = env.graph
    out = []

    def expand(hist, cur: int, path: list, logp: float, step: int) -> None:  # type: ignore[no-untyped-def]
        x = policy.policy_vector(t, hist.top, torch.tensor([cur]), torch.tensor([relation]))
        rel, tgt, mask = (
            g.action_relations[cur : cur + 1],
            g.action_targets[cur : cur + 1],
            g.action_mask[cur : cur + 1],
        )
        lp = masked_log_softmax(policy.action_logits(t, x, rel, tgt), mask)[0]
        for a in range(rel.shape[1]):
            if not mask[0, a]:
                continue
            r, e = int(rel[0, a]), int(tgt[0, a])
            new = path + [(r, e, float(lp[a]))]
            if step == env.num_steps - 1:
                out.append((new, logp + float(lp[a])))
            else:
                nxt = policy.advance(t, hist, None, torch.tensor([r]), torch.tensor([e]))
                expand(nxt, e, new, logp + float(lp[a]), step + 1)

    with torch.no_grad():
        expand(policy.start_history(t, torch.tensor([source])), source, [], 0.0, 0)
    return out


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_exhaustive_beam_gives_max_over_paths(steps: int) -> None:
    policy, env = setup(steps)
    queries = Queries(torch.tensor([0, 3, 6]), torch.tensor([0, 1 + R, 1]))
    res = beam_search(policy, env, queries, beam_size=1000, return_trace=True)
    assert res.scores.shape == (3, E)
    for row, (s, r) in enumerate(zip(queries.sources.tolist(), queries.relations.tolist())):
        paths = all_paths(policy, env, s, r)
        best: dict[int, float] = {}
        for path, lp in paths:
            end = path[-1][1]
            best[end] = max(best.get(end, -math.inf), lp)
        for e in range(E):
            if e in best:
                assert res.scores[row, e].item() == pytest.approx(best[e], abs=1e-5)
            else:
                assert res.scores[row, e].item() == -math.inf
        ranked = [e for e in res.entities[row].tolist() if e >= 0]
        assert ranked == sorted(best, key=lambda e: -best[e])
        # best paths of each answer: the first one has the answer's score and is a real path
        answers = answers_from_beam(res, row, top_k=10, paths_per_answer=2)
        for ans in answers:
            top = ans.paths[0]
            assert top.end == ans.entity
            assert top.log_prob == pytest.approx(ans.score, abs=1e-5)
            oracle = {tuple((a, b) for a, b, _ in p): lp for p, lp in paths}
            key = tuple((st.relation, st.entity) for st in top.steps)
            assert oracle[key] == pytest.approx(top.log_prob, abs=1e-5)
            assert sum(math.log(st.probability) for st in top.steps) == pytest.approx(top.log_prob, abs=1e-5)
            if len(ans.paths) > 1:
                assert ans.paths[1].log_prob <= ans.paths[0].log_prob


def test_small_beam_keeps_best_unique_entities_and_unreached_is_minus_inf() -> None:
    policy, env = setup(2)
    queries = Queries(torch.tensor([0, 6]), torch.tensor([0, 0]))
    res = beam_search(policy, env, queries, beam_size=2)
    reached = torch.isfinite(res.scores)
    assert reached.sum(1).tolist() == [2, 1]  # isolated entity 6 only reaches itself (NO_OP)
    assert res.entities[1].tolist() == [6, -1]
    assert res.scores[1, 6].item() == pytest.approx(0.0, abs=1e-6)  # NO_OP twice with probability 1


def test_scorer_tail_and_head_queries_and_evaluator() -> None:
    policy, env = setup(2)
    scorer = WalkerScorer(policy, env, beam_size=4, batch_size=2)
    hr = torch.tensor([[0, 0], [1, 1], [2, 0]])
    scores = scorer.score_t(hr)
    assert scores.shape == (3, E) and (torch.isfinite(scores).sum(1) <= 4).all()
    rt = torch.tensor([[0, 3], [1, 5]])
    head = scorer.score_h(rt)
    expected = scorer.score_t(torch.tensor([[3, 0 + R], [5, 1 + R]]))
    assert torch.equal(head, expected)
    assert scorer.device == env.device
    evaluation = pytest.importorskip("kgreason.evaluation")
    evaluator = evaluation.RankBasedEvaluator(TRIPLES, num_entities=E, batch_size=2)
    result = evaluator.evaluate(scorer, torch.tensor([[0, 0, 1], [2, 1, 6]]), sides=("tail",))
    assert 0.0 < result.metrics["tail.realistic.mrr"] <= 1.0
    # entity 6 is never reached: it ranks tied behind all reached entities
    ranks = result.ranks["tail"]["realistic"]
    assert ranks[1].item() > torch.isfinite(scorer.score_t(torch.tensor([[2, 1]]))).sum().item()


def test_format_path() -> None:
    labels = ["Obama", "McCain", "U.S.", "Hawaii"]
    rels = ["endorsed_by", "live_in", "located_in"]
    path = Path(
        0,
        [PathStep(0, 1, 0.5), PathStep(1, 2, 0.5), PathStep(2 + 3, 3, 0.5), PathStep(6, 3, 1.0)],
        math.log(0.125),
    )
    text = format_path(path, labels.__getitem__, rels.__getitem__, num_relations=3)
    assert text == "Obama --endorsed_by--> McCain --live_in--> U.S. <--located_in-- Hawaii"
    tagged = Path(0, [PathStep(1, 2, 1.0, origin=1)], 0.0)
    assert (
        format_path(tagged, labels.__getitem__, rels.__getitem__, 3, {1: "text"})
        == "Obama --live_in[text]--> U.S."
    )


def test_masking_known_answers_leaves_them_only_to_no_op_and_renormalises_the_last_step() -> None:
    policy, env = setup(2)
    queries = Queries(torch.tensor([0, 1]), torch.tensor([0, 1]))  # (0, r0, ?) knows 1; (1, r1, ?) knows 4
    known = {0: {1}, 1: {4}}
    no_op = 2 * R
    plain = beam_search(policy, env, queries, beam_size=E, return_trace=True)
    masked = beam_search(policy, env, queries, beam_size=E, return_trace=True, mask_known_answers=True)
    last_plain, last = plain.steps[-1], masked.steps[-1]
    for b, answers in known.items():
        for e in answers:
            into = (last_plain.entity[b] == e) & (last_plain.score[b] > float("-inf"))
            assert bool((last_plain.relation[b][into] != no_op).any())  # reached by an edge when not masked
            into = (last.entity[b] == e) & (last.score[b] > float("-inf"))
            assert bool((last.relation[b][into] == no_op).all())  # masked: only by staying there
            assert masked.scores[b, e] <= plain.scores[b, e] + 1e-6
    # every other answer reached by both keeps or raises its score: the last step's softmax loses mass only
    both = (plain.scores > float("-inf")) & (masked.scores > float("-inf"))
    for b, answers in known.items():
        both[b, list(answers)] = False
    assert both.any()
    assert bool((masked.scores[both] >= plain.scores[both] - 1e-6).all())
    scorer = WalkerScorer(policy, env, beam_size=E, mask_known_answers=True)
    assert torch.allclose(scorer.score_t(torch.tensor([[0, 0], [1, 1]])), masked.scores)
