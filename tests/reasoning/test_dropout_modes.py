"""Embedding dropout per use (``embedding_dropout_mode="per_use"``) and the fast dropout masks."""

from __future__ import annotations

import pytest
import torch

from kgreason.reasoning.config import WalkerConfig
from kgreason.reasoning.masks import bernoulli_keep, dropout
from kgreason.reasoning.policy import WalkerPolicy

E, R, D, H = 30, 4, 16, 12


def make(mode: str, p: float = 0.3, ff: float = 0.0, scoring: str = "dense") -> WalkerPolicy:
    torch.manual_seed(0)
    return WalkerPolicy(
        E,
        R,
        embedding_dim=D,
        history_dim=H,
        embedding_dropout=p,
        ff_dropout=ff,
        entity_scoring=scoring,
        embedding_dropout_mode=mode,  # type: ignore[arg-type]
    )


def test_dropout_keeps_the_mean_and_drops_the_rate() -> None:
    torch.manual_seed(1)
    x = torch.full((400, 500), 2.0, requires_grad=True)
    y = dropout(x, 0.3)
    zero = (y == 0).float().mean().item()
    assert abs(zero - 0.3) < 0.01
    assert abs(y.mean().item() - 2.0) < 0.02
    kept = y[y != 0]
    assert torch.allclose(kept, torch.full_like(kept, 2.0 / 0.7))
    y.sum().backward()  # the gradient is the mask, scaled
    assert torch.equal(x.grad != 0, y != 0)
    assert dropout(x, 0.3, training=False) is x and dropout(x, 0.0) is x
    assert torch.count_nonzero(dropout(x, 1.0)) == 0
    keep = bernoulli_keep((1000, 100), 0.9, None, torch.device("cpu"))
    assert abs(keep.float().mean().item() - 0.1) < 0.01


def test_per_use_equals_table_mode_in_eval() -> None:
    table, per_use = make("table").eval(), make("per_use").eval()
    src = torch.tensor([0, 1, 2])
    rel, tgt = torch.randint(0, 2 * R + 1, (3, 7)), torch.randint(0, E, (3, 7))
    outs = []
    for p in (table, per_use):
        t = p.tables()
        assert t.use_dropout == 0.0
        hist = p.start_history(t, src)
        outs.append(p.scores(t, hist.top, src, torch.tensor([0, 1, 2]), rel, tgt))
    assert torch.allclose(outs[0], outs[1])


def test_per_use_dropout_gives_every_walker_its_own_noise() -> None:
    """With per-use dropout, walkers in the same state get different logits within one pass (table mode: the
    same), and the state side (LSTM input) differs per walker too."""
    W = 8
    src = torch.zeros(W, dtype=torch.long)  # all walkers in the same state
    rq = torch.zeros(W, dtype=torch.long)
    rel, tgt = torch.zeros(W, 5, dtype=torch.long), torch.arange(5).repeat(W, 1)
    for mode, distinct in (("table", False), ("per_use", True)):
        p = make(mode).train()
        t = p.tables()
        assert t.use_dropout == (0.3 if mode == "per_use" else 0.0)
        hist = p.start_history(t, src)
        logits = p.scores(t, hist.top, src, rq, rel, tgt)
        same_state = torch.allclose(hist.top, hist.top[:1].expand_as(hist.top))
        same_logits = torch.allclose(logits, logits[:1].expand_as(logits))
        assert same_state != distinct and same_logits != distinct, mode


@pytest.mark.parametrize("scoring", ["dense", "gather"])
def test_per_use_action_noise_matches_dropout_mean_and_variance(scoring: str) -> None:
    """The Gaussian stand-in for dropping every gathered action embedding independently has the mean and
    variance of the exact per-use dropout (estimated here by sampling the exact masks)."""
    p = make("per_use", p=0.3, scoring=scoring).train()
    t = p.tables()
    torch.manual_seed(3)
    x = torch.randn(1, 2 * D)
    rel, tgt = torch.tensor([[1, 2, 3]]), torch.tensor([[4, 5, 6]])
    n = 20000
    ours = p.action_logits(t, x.expand(n, -1), rel.expand(n, -1), tgt.expand(n, -1))
    emb = torch.cat([t.relation[rel[0]], t.entity[tgt[0]]], dim=-1)  # [3, 2d]
    exact = (dropout(emb.expand(n, -1, -1).contiguous(), 0.3) * x).sum(-1)  # [n, 3]
    with torch.no_grad():
        assert torch.allclose(ours.mean(0), exact.mean(0), atol=0.05 * exact.std(0).max().item() + 1e-3)
        assert torch.allclose(ours.var(0), exact.var(0), rtol=0.08)
    ours.sum().backward()  # gradients reach the embedding tables through the mean and the noise scale
    assert p.entity_embedding.weight.grad is not None and p.entity_embedding.weight.grad[4:7].abs().sum() > 0


def test_bad_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match="embedding_dropout_mode"):
        make("per_walker")
    with pytest.raises(ValueError, match="embedding_dropout_mode"):
        WalkerConfig(embedding_dropout_mode="sometimes")
