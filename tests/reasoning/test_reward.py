from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from kgreason.reasoning.environment import Queries
from kgreason.reasoning.reward import RewardShaper, binary_reward, shaped_reward


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
