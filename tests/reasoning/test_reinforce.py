from __future__ import annotations

import pytest
import torch

from kgreason.data import Dataset
from kgreason.data.graph import ActionGraph
from kgreason.reasoning.environment import Queries, WalkEnvironment
from kgreason.reasoning.policy import WalkerPolicy, masked_log_softmax
from kgreason.reasoning.reinforce import (
    MovingAverageBaseline,
    action_dropout_distribution,
    leave_one_out_baseline,
    reinforce_loss,
    sample_actions,
    sample_rollouts,
)


def setup(ds: Dataset, steps: int = 2) -> tuple[WalkerPolicy, WalkEnvironment]:
    torch.manual_seed(0)
    env = WalkEnvironment(ActionGraph.from_dataset(ds), num_steps=steps)
    policy = WalkerPolicy(
        ds.num_entities, ds.num_relations, embedding_dim=16, history_dim=16, history_layers=2
    )
    return policy, env


def test_sample_actions_draws_only_positive_weights_with_right_frequencies() -> None:
    w = torch.tensor([[0.0, 1.0, 0.0, 3.0, 0.0]]).expand(40000, 5)
    g = torch.Generator().manual_seed(0)
    idx = sample_actions(w, g)
    counts = torch.bincount(idx, minlength=5).float() / len(idx)
    assert counts[[0, 2, 4]].sum() == 0
    assert counts[3].item() == pytest.approx(0.75, abs=0.01)


def test_action_dropout_distribution() -> None:
    p = torch.tensor([[0.2, 0.3, 0.5, 0.0]])
    mask = torch.tensor([[True, True, True, False]])
    assert action_dropout_distribution(p, mask, 0.0, 1e-10) is p
    g = torch.Generator().manual_seed(0)
    all_dropped = action_dropout_distribution(p, mask, 1.0 - 1e-12, 1e-10, g)
    assert torch.allclose(all_dropped, torch.tensor([[1e-10, 1e-10, 1e-10, 0.0]]))  # uniform over valid
    w = action_dropout_distribution(p.expand(1000, 4), mask.expand(1000, 4), 0.5, 1e-10, g)
    assert (w[:, 3] == 0).all()
    kept = w > 1e-9
    assert kept[:, :3].float().mean().item() == pytest.approx(0.5, abs=0.05)


def test_rollout_log_probs_are_unperturbed_policy_with_gradients(rule_ds: Dataset) -> None:
    policy, env = setup(rule_ds)
    policy.eval()  # no dropout, so the policy can be recomputed exactly
    q = Queries.from_triples(rule_ds.train[:6])
    ep = env.start(q, training=True)
    ro = sample_rollouts(
        policy, ep, num_rollouts=4, action_dropout=0.9, generator=torch.Generator().manual_seed(1)
    )
    assert ro.log_probs.shape == (24, 2) and ro.entities.shape == (24, 2)
    assert ro.log_probs.requires_grad
    # recompute log pi(a_t | s_t) step by step with the unperturbed policy
    t = policy.tables()
    qidx = ro.query_index
    hist = policy.start_history(t, q.sources).index(qidx)
    cur = q.sources[qidx]
    for step in range(2):
        if step > 0:
            hist = policy.advance(t, hist, None, ro.relations[:, step - 1], ro.entities[:, step - 1])
            cur = ro.entities[:, step - 1]
        sp = ep.actions(step, cur, qidx)
        x = policy.policy_vector(t, hist.top, cur, q.relations[qidx])
        lp = masked_log_softmax(policy.action_logits(t, x, sp.relations, sp.targets), sp.mask)
        hit = (sp.relations == ro.relations[:, step : step + 1]) & (
            sp.targets == ro.entities[:, step : step + 1]
        )
        chosen = lp.masked_fill(~hit, float("-inf")).max(dim=1).values
        assert torch.allclose(ro.log_probs[:, step], chosen, atol=1e-5)
    # gradients reach the policy through log pi
    loss = reinforce_loss(ro.log_probs, ro.entropy, torch.rand(24), entropy_weight=0.1)
    loss.backward()
    assert policy.w2.weight.grad is not None and policy.w2.weight.grad.abs().sum() > 0
    assert policy.lstm_ih[1].grad is not None and policy.lstm_ih[1].grad.abs().sum() > 0


def test_first_step_shared_per_query(rule_ds: Dataset) -> None:
    policy, env = setup(rule_ds, steps=1)
    ep = env.start(Queries.from_triples(rule_ds.train[:3]), training=True)
    ro = sample_rollouts(policy, ep, num_rollouts=50)
    assert torch.equal(ro.query_index, torch.arange(3).repeat_interleave(50))
    # the entropy of the first step is the same for every rollout of a query
    ent = ro.entropy[:, 0].view(3, 50)
    assert torch.allclose(ent, ent[:, :1].expand(3, 50))
    assert ro.sources.tolist() == rule_ds.train[:3, 0].repeat_interleave(50).tolist()


def test_reinforce_loss_formula() -> None:
    logp = torch.tensor([[-1.0, -2.0], [-0.5, -0.5]], requires_grad=True)
    ent = torch.tensor([[1.0, 3.0], [2.0, 2.0]])
    r = torch.tensor([1.0, 0.2])
    loss = reinforce_loss(logp, ent, r, baseline=0.2, entropy_weight=0.1)
    expected = ((-(0.8) * -3.0 - 0.1 * 2.0) + (-(0.0) * -1.0 - 0.1 * 2.0)) / 2
    assert loss.item() == pytest.approx(expected)
    loss.backward()
    assert torch.allclose(logp.grad, torch.tensor([[-0.4, -0.4], [0.0, 0.0]]))
    norm = reinforce_loss(logp, ent, torch.tensor([1.0, 0.0]), normalize_advantage=True)
    assert torch.isfinite(norm)


def test_moving_average_baseline() -> None:
    b = MovingAverageBaseline(decay=0.5)
    b.update(torch.tensor([1.0, 1.0]))
    b.update(torch.tensor([0.0]))
    assert b.value == pytest.approx(0.25)
    c = MovingAverageBaseline(0.9)
    c.load_state_dict(b.state_dict())
    assert c.value == b.value
    with pytest.raises(ValueError):
        MovingAverageBaseline(1.0)


def test_leave_one_out_baseline_is_the_mean_of_the_other_rollouts_of_the_query() -> None:
    rewards = torch.tensor([1.0, 0.0, 0.5, 0.2, 0.2, 0.2])  # two queries, three rollouts each
    b = leave_one_out_baseline(rewards, 3)
    assert torch.allclose(b, torch.tensor([0.25, 0.75, 0.5, 0.2, 0.2, 0.2]))
    # a query whose rollouts all earn the same reward gives no policy gradient
    logp = torch.zeros(6, 2, requires_grad=True)
    reinforce_loss(logp, torch.zeros(6, 2), rewards, baseline=b).backward()
    assert logp.grad is not None
    assert torch.allclose(logp.grad[3:], torch.zeros(3, 2), atol=1e-7)
    assert logp.grad[0, 0] < 0 < logp.grad[1, 0]  # the best rollout is pushed up, the worst down
    assert torch.equal(leave_one_out_baseline(rewards, 1), torch.zeros(6))
    with pytest.raises(ValueError, match="num_rollouts=4"):
        leave_one_out_baseline(rewards, 4)
