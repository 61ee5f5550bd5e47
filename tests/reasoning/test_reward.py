from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from kgreason.data import Dataset
from kgreason.reasoning.environment import Queries
from kgreason.reasoning.reward import RewardShaper, binary_reward, fit_platt_scaling, shaped_reward


class FakeKGE(nn.Module):
    """f(h, r, t) = h + 10 r - t (as logits), scored like a KGE model."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.calls: list[str] = []

    def f(self, h: torch.Tensor, r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return (h + 10 * r - t).float() / 10

    def score_t(self, hr: torch.Tensor, tails: torch.Tensor) -> torch.Tensor:
        self.calls.append("t")
        return self.f(hr[:, :1], hr[:, 1:], tails)

    def score_h(self, rt: torch.Tensor, heads: torch.Tensor) -> torch.Tensor:
        self.calls.append("h")
        return self.f(heads, rt[:, :1], rt[:, 1:])


def test_shaped_reward_formula() -> None:
    R = 3
    kge = FakeKGE()
    shaper = RewardShaper(kge, num_relations=R)
    assert not any(p.requires_grad for p in shaper.parameters())
    shaper.train()
    assert not shaper.model.training
    # query 0: (2, r1, ?) answer 5; query 1: inverse relation r0 + R from 4, answer 1
    q = Queries(torch.tensor([2, 4]), torch.tensor([1, 0 + R]), torch.tensor([5, 1]))
    final = torch.tensor([5, 7, 1, 0])  # 2 rollouts per query
    rewards = shaped_reward(q, final, 2, shaper)
    expected = torch.tensor(
        [
            1.0,  # hit
            torch.sigmoid(torch.tensor((2 + 10 * 1 - 7) / 10)).item(),
            1.0,  # hit
            # inverse query (4, r0_inv, 0) is scored as the base triple (0, r0, 4)
            torch.sigmoid(torch.tensor((0 + 10 * 0 - 4) / 10)).item(),
        ]
    )
    assert torch.allclose(rewards, expected, atol=1e-6)
    assert sorted(kge.calls) == ["h", "t"]
    binary = shaped_reward(q, final, 2, None)
    assert binary.tolist() == [1.0, 0.0, 1.0, 0.0]
    assert binary_reward(q, torch.tensor([0, 0, 1, 1]), final).tolist() == [1.0, 0.0, 1.0, 0.0]


def test_reward_shaper_from_kgreason_run_dir(tmp_path: Path) -> None:
    models = pytest.importorskip("kgreason.models")
    torch.manual_seed(0)
    model = models.MODELS.make("distmult", num_entities=6, num_relations=2, embedding_dim=8)
    models.save_model(model, tmp_path)
    shaper = RewardShaper.from_run_dir(tmp_path)
    sources, relations = torch.tensor([0, 1]), torch.tensor([1, 3])
    ends = torch.tensor([[2, 3], [4, 5]])
    got = shaper(sources, relations, ends)
    with torch.no_grad():
        model.eval()
        fwd = torch.sigmoid(model.score_hrt(torch.tensor([[0, 1, 2], [0, 1, 3]])))
        # the inverse query (1, r1_inv, ?) is the head query (?, r1, 1) of the model
        inv = torch.sigmoid(model.score_h(torch.tensor([[1, 1]]), heads=torch.tensor([[4, 5]])))[0]
    assert torch.allclose(got[0], fwd, atol=1e-5) and torch.allclose(got[1], inv, atol=1e-5)
    with pytest.raises(FileNotFoundError):
        RewardShaper.from_run_dir(tmp_path / "missing")


class TableKGE(nn.Module):
    """Scores read from a fixed table ``f[h, r, t]``, with ``score_t`` / ``score_h`` over every entity."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = nn.Parameter(table)
        self.num_entities = table.shape[0]

    def score_t(self, hr: torch.Tensor, tails: torch.Tensor | None = None) -> torch.Tensor:
        scores = self.table[hr[:, 0], hr[:, 1]]
        return scores if tails is None else scores.gather(1, tails)

    def score_h(self, rt: torch.Tensor, heads: torch.Tensor | None = None) -> torch.Tensor:
        scores = self.table[:, rt[:, 0], rt[:, 1]].t()
        return scores if heads is None else scores.gather(1, heads)


def test_platt_scaling_recovers_the_calibration_of_the_answers() -> None:
    # answers drawn with probability sigmoid(2 f - 1): the fit must find a = 2, b = -1
    E, R = 60, 4
    gen = torch.Generator().manual_seed(0)
    table = torch.randn(E, R, E, generator=gen) * 2
    answer = torch.rand(E, R, E, generator=gen) < torch.sigmoid(2 * table - 1)
    known = answer.nonzero()
    shaper = RewardShaper(TableKGE(table), num_relations=R)
    shaper.set_calibration(5.0, 5.0)  # the fit starts from the raw scores whatever the current calibration
    queries = torch.stack(
        [
            torch.arange(E).repeat_interleave(R),
            torch.arange(R).repeat(E),
            torch.zeros(E * R, dtype=torch.long),
        ],
        1,
    )
    a, b = fit_platt_scaling(shaper, queries, known, E, max_queries=10_000)
    assert a == pytest.approx(2.0, abs=0.15) and b == pytest.approx(-1.0, abs=0.15)
    assert (shaper.scale, shaper.shift) == (5.0, 5.0)
    # a subset of the queries gives nearly the same fit, deterministically
    sub = fit_platt_scaling(shaper, queries, known, E, max_queries=100)
    assert sub == fit_platt_scaling(shaper, queries, known, E, max_queries=100)
    assert sub[0] == pytest.approx(2.0, abs=0.4)
    with pytest.raises(ValueError, match="empty"):
        fit_platt_scaling(shaper, queries[:0], known, E)


def test_calibrated_rewards_and_log_scores() -> None:
    R = 3
    shaper = RewardShaper(FakeKGE(), num_relations=R, scale=2.0, shift=-1.0)
    sources, relations, ends = torch.tensor([2, 4]), torch.tensor([1, 0 + R]), torch.tensor([[7], [0]])
    raw = torch.tensor([[(2 + 10 * 1 - 7) / 10], [(0 + 10 * 0 - 4) / 10]])
    assert torch.allclose(shaper(sources, relations, ends), torch.sigmoid(2 * raw - 1), atol=1e-6)
    shaper.set_calibration(1.0, 0.0)
    assert torch.allclose(shaper(sources, relations, ends), torch.sigmoid(raw), atol=1e-6)
    with pytest.raises(ValueError, match="finite"):
        shaper.set_calibration(float("nan"), 0.0)


def test_a_walker_run_with_platt_calibration_records_and_reuses_it(tmp_path: Path, rule_ds: Dataset) -> None:
    from kgreason.models import MODELS, save_model
    from kgreason.reasoning.config import WalkerConfig
    from kgreason.reasoning.trainer import REWARD_CALIBRATION_FILE, load_walker, train_walker

    torch.manual_seed(0)
    kge = MODELS.make(
        "distmult", num_entities=rule_ds.num_entities, num_relations=rule_ds.num_relations, embedding_dim=8
    )
    save_model(kge, tmp_path / "rm")
    cfg = WalkerConfig(
        dataset="rule", num_steps=2, num_rollouts=4, max_actions=None, embedding_dim=8, history_dim=8,
        history_layers=1, batch_size=32, epochs=1, eval_every=0, beam_size=8, seed=0, device="cpu",
        reward_calibration="platt", rerank_weight=1.0,
    )  # fmt: skip
    train_walker(rule_ds, tmp_path / "rm", tmp_path / "walker", cfg, evaluate=False)
    fit = json.loads((tmp_path / "walker" / REWARD_CALIBRATION_FILE).read_text())
    expected = fit_platt_scaling(
        RewardShaper(kge, rule_ds.num_relations), rule_ds.valid, torch.cat([rule_ds.train, rule_ds.valid]),
        rule_ds.num_entities,
    )  # fmt: skip
    assert fit["method"] == "platt" and (fit["scale"], fit["shift"]) == pytest.approx(expected)
    assert fit["scale"] != pytest.approx(1.0)
    walker = load_walker(tmp_path / "walker")  # the re-ranker scores with the run's calibration
    assert walker.reranker is not None
    assert (walker.reranker.scale, walker.reranker.shift) == pytest.approx(expected)
    with pytest.raises(ValueError, match="reward_calibration"):
        WalkerConfig(reward_calibration="isotonic")
