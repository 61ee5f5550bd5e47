from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kgreason.data.graph import ActionGraph
from kgreason.reasoning.environment import ExtraActions, Queries, WalkEnvironment
from kgreason.reasoning.policy import WalkerPolicy
from kgreason.reasoning.reinforce import sample_rollouts

R = 2  # base relations; NO_OP = 4


def graph() -> ActionGraph:
    # (0, r0, 1), (0, r0, 2), (0, r1, 3), (1, r1, 2), (3, r1, 2)
    t = torch.tensor([[0, 0, 1], [0, 0, 2], [0, 1, 3], [1, 1, 2], [3, 1, 2]])
    return ActionGraph.from_triples(t, num_entities=5, num_relations=R)


def valid_actions(space, row: int) -> set[tuple[int, int]]:  # type: ignore[no-untyped-def]
    m = space.mask[row]
    return set(zip(space.relations[row][m].tolist(), space.targets[row][m].tolist()))


def test_query_edge_and_inverse_removed_in_training_only() -> None:
    env = WalkEnvironment(graph(), num_steps=2)
    q = Queries(torch.tensor([0]), torch.tensor([0]), torch.tensor([1]))  # trained on (0, r0, 1)
    ep = env.start(q, training=True)
    first = valid_actions(ep.actions(0, torch.tensor([0]), torch.tensor([0])), 0)
    assert (0, 1) not in first  # the query edge
    assert (4, 0) in first  # NO_OP
    # walker standing at the answer: the inverse edge (1, r0_inv, 0) is removed
    at_answer = valid_actions(ep.actions(0, torch.tensor([1]), torch.tensor([0])), 0)
    assert (0 + R, 0) not in at_answer and (1, 2) in at_answer
    # inference: everything available
    ep_inf = env.start(q, training=False)
    assert (0, 1) in valid_actions(ep_inf.actions(0, torch.tensor([0]), torch.tensor([0])), 0)


def test_other_answers_masked_at_last_step_only() -> None:
    env = WalkEnvironment(graph(), num_steps=2)
    # (0, r0, ?) has known answers {1, 2}; train on answer 1 -> 2 is banned as a final target
    q = Queries(torch.tensor([0]), torch.tensor([0]), torch.tensor([1]))
    ep = env.start(q, training=True)
    step0 = valid_actions(ep.actions(0, torch.tensor([0]), torch.tensor([0])), 0)
    assert (0, 2) in step0  # not the last step: other answers allowed
    # last step from entity 3: (3, r1, 2) targets the other answer 2 -> masked
    last = valid_actions(ep.actions(1, torch.tensor([3]), torch.tensor([0])), 0)
    assert (1, 2) not in last
    assert (1 + R, 0) in last  # back to the source is fine
    # the training answer itself stays reachable at the last step: from entity 2, r1_inv leads to 1
    last_from_2 = valid_actions(ep.actions(1, torch.tensor([2]), torch.tensor([0])), 0)
    assert (1 + R, 1) in last_from_2


def test_decoding_can_mask_every_known_answer_at_the_last_step() -> None:
    env = WalkEnvironment(graph(), num_steps=2)
    q = Queries(torch.tensor([0]), torch.tensor([0]))  # (0, r0, ?): known answers {1, 2}; no target
    plain = env.start(q, training=False)
    masked = env.start(q, training=False, mask_known_answers=True)
    # last step from entity 3: (3, r1, 2) reaches the known answer 2
    assert (1, 2) in valid_actions(plain.actions(1, torch.tensor([3]), torch.tensor([0])), 0)
    last = valid_actions(masked.actions(1, torch.tensor([3]), torch.tensor([0])), 0)
    assert (1, 2) not in last and (1 + R, 0) in last
    # from entity 0 both known answers go; NO_OP stays; the first step is untouched
    last0 = valid_actions(masked.actions(1, torch.tensor([0]), torch.tensor([0])), 0)
    assert not {(0, 1), (0, 2)} & last0 and (4, 0) in last0
    assert (0, 1) in valid_actions(masked.actions(0, torch.tensor([0]), torch.tensor([0])), 0)
    # the query edge itself stays an action (only training removes it)
    assert (0, 1) in valid_actions(masked.actions(0, torch.tensor([0]), torch.tensor([0])), 0)


def test_no_op_can_be_masked_on_a_known_answer_but_never_leaves_a_walker_without_actions() -> None:
    q = Queries(torch.tensor([0]), torch.tensor([0]), torch.tensor([1]))  # (0, r0, 1); 2 is another answer
    for training, mask_known in ((True, False), (False, True)):
        keep = WalkEnvironment(graph(), num_steps=2).start(q, training, mask_known_answers=mask_known)
        strict = WalkEnvironment(graph(), num_steps=2, mask_no_op_on_known_answers=True).start(
            q, training, mask_known_answers=mask_known
        )
        # a walker on entity 2 (another known answer) at the last step: it may stay only in `keep`
        assert (4, 2) in valid_actions(keep.actions(1, torch.tensor([2]), torch.tensor([0])), 0)
        on_2 = valid_actions(strict.actions(1, torch.tensor([2]), torch.tensor([0])), 0)
        assert (4, 2) not in on_2 and on_2  # its other edges remain
        # not the last step, or not on a known answer: NO_OP available
        assert (4, 2) in valid_actions(strict.actions(0, torch.tensor([2]), torch.tensor([0])), 0)
        assert (4, 3) in valid_actions(strict.actions(1, torch.tensor([3]), torch.tensor([0])), 0)
    # a walker whose every action is masked keeps NO_OP: entity 4 has no edges at all
    lone = WalkEnvironment(graph(), num_steps=2, mask_no_op_on_known_answers=True)
    ep = lone.start(q, training=True)
    assert ep.other_answers is not None
    ep.other_answers[0, 4] = True  # pretend 4 were another known answer
    assert valid_actions(ep.actions(1, torch.tensor([4]), torch.tensor([0])), 0) == {(4, 4)}


def test_masking_never_leaves_a_walker_without_actions() -> None:
    # entity 0's only edge is the query edge; entity 1's only edge back is its inverse; self-loop fact too
    t = torch.tensor([[0, 0, 1], [2, 0, 2]])
    g = ActionGraph.from_triples(t, num_entities=3, num_relations=1)
    env = WalkEnvironment(g, num_steps=1)
    q = Queries(torch.tensor([0, 2]), torch.tensor([0, 0]), torch.tensor([1, 2]))
    ep = env.start(q, training=True)
    space = ep.actions(0, q.sources, torch.arange(2))
    assert space.mask[:, 0].all()
    assert valid_actions(space, 0) == {(2, 0)}  # only NO_OP left
    assert valid_actions(space, 1) == {(2, 2)}
    policy = WalkerPolicy(3, 1, embedding_dim=8, history_dim=8, history_layers=1)
    ro = sample_rollouts(policy, ep, num_rollouts=5, action_dropout=0.5)
    assert torch.isfinite(ro.log_probs).all()
    assert (ro.relations == 2).all()


def test_extra_candidates_are_appended_with_origin_and_masked() -> None:
    def source(step, current, query_index, queries):  # type: ignore[no-untyped-def]
        W = current.shape[0]
        # one text edge per walker: (r1, 4) and a copy of the query edge (r0, 1) that must be masked
        rel = torch.tensor([[1, 0]]).expand(W, 2)
        tgt = torch.tensor([[4, 1]]).expand(W, 2)
        return ExtraActions(rel, tgt, torch.ones(W, 2, dtype=torch.bool), torch.ones(W, 2, dtype=torch.long))

    env = WalkEnvironment(graph(), num_steps=2, candidate_source=source)
    q = Queries(torch.tensor([0]), torch.tensor([0]), torch.tensor([1]))
    space = env.start(q, training=True).actions(0, torch.tensor([0]), torch.tensor([0]))
    A = graph().num_actions
    assert space.num_actions == A + 2
    assert space.origin is not None and space.origin[0, :A].eq(0).all() and space.origin[0, A:].eq(1).all()
    assert bool(space.mask[0, A]) and not bool(space.mask[0, A + 1])
    policy = WalkerPolicy(5, R, embedding_dim=8, history_dim=8, history_layers=2)
    ro = sample_rollouts(policy, env.start(q, training=True), num_rollouts=16)
    assert ro.origins is not None and ro.origins.shape == (16, 2)


@pytest.mark.realdata
def test_umls_rollouts_respect_masks_and_decode(shared_data: Path) -> None:
    from kgreason.data import Dataset
    from kgreason.data.graph import AnswerIndex
    from kgreason.reasoning.beam_search import WalkerScorer

    torch.manual_seed(0)
    ds = Dataset.from_directory(shared_data / "umls")
    g = ActionGraph.from_dataset(ds, max_actions=400)
    env = WalkEnvironment(g, num_steps=2)
    R_ = ds.num_relations
    policy = WalkerPolicy(ds.num_entities, R_, embedding_dim=32, history_dim=32, history_layers=2)
    batch = ds.train[torch.randperm(len(ds.train))[:64]]
    q = Queries.from_triples(batch)
    ro = sample_rollouts(policy, env.start(q, training=True), num_rollouts=20, action_dropout=0.5)
    es, rq, eo = (x[ro.query_index] for x in (q.sources, q.relations, q.targets))  # type: ignore[union-attr]
    prev = es
    for t in range(2):
        rel, ent = ro.relations[:, t], ro.entities[:, t]
        assert not ((prev == es) & (rel == rq) & (ent == eo)).any()
        assert not ((prev == eo) & (rel == rq + R_) & (ent == es)).any()
        prev = ent
    others = AnswerIndex.from_triples(ds.train, ds.num_entities, R_).dense(es, rq)
    others[torch.arange(len(es)), eo] = False
    moved = ro.relations[:, 1] != 2 * R_
    assert not others[torch.arange(len(es)), ro.entities[:, 1]][moved].any()
    scores = WalkerScorer(policy.eval(), env, beam_size=32).score_t(ds.valid[:40, :2])
    assert scores.shape == (40, ds.num_entities)
    assert (torch.isfinite(scores).sum(1) <= 32).all() and torch.isfinite(scores).any(1).all()
