from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from kgreason.reasoning.policy import WalkerPolicy, load_policy, masked_log_softmax, save_policy

E, R, D, H = 30, 4, 16, 12


def make(scoring: str = "auto", layers: int = 3) -> WalkerPolicy:
    torch.manual_seed(0)
    return WalkerPolicy(E, R, embedding_dim=D, history_dim=H, history_layers=layers, entity_scoring=scoring)  # type: ignore[arg-type]


def test_shapes() -> None:
    p = make()
    t = p.tables()
    assert t.entity.shape == (E, D) and t.relation.shape == (2 * R + 2, D)
    src = torch.tensor([0, 1, 2])
    hist = p.start_history(t, src)
    assert len(hist) == 3 and hist.top.shape == (3, H) and len(hist.h) == 3
    parent = torch.tensor([0, 0, 1, 2, 2])
    nxt = p.advance(t, hist, parent, torch.tensor([0, 1, 2, 3, 8]), torch.tensor([5, 6, 7, 8, 9]))
    assert len(nxt) == 5
    x = p.policy_vector(t, nxt.top, torch.tensor([5, 6, 7, 8, 9]), torch.tensor([0, 0, 1, 2, 2]))
    assert x.shape == (5, 2 * D)
    rel = torch.randint(0, 2 * R + 1, (5, 7))
    tgt = torch.randint(0, E, (5, 7))
    assert p.action_logits(t, x, rel, tgt).shape == (5, 7)


@pytest.mark.parametrize("scoring", ["dense", "gather"])
def test_factorised_scores_equal_concatenation_formula(scoring: str) -> None:
    p = make(scoring)
    t = p.tables()
    x = torch.randn(6, 2 * D)
    rel = torch.randint(0, 2 * R + 1, (6, 9))
    tgt = torch.randint(0, E, (6, 9))
    naive = (torch.cat([t.relation[rel], t.entity[tgt]], dim=-1) * x.unsqueeze(1)).sum(-1)  # A_t x, eq. 4
    assert torch.allclose(p.action_logits(t, x, rel, tgt), naive, atol=1e-5)


def test_policy_vector_equals_mlp_on_concatenated_state() -> None:
    p = make()
    t = p.tables()
    h = torch.randn(40, H)  # more ids than table rows -> table path; fewer -> gather path (both tested)
    for n in (40, 3):
        cur = torch.randint(0, E, (n,))
        rq = torch.randint(0, 2 * R, (n,))
        state = torch.cat([t.entity[cur], h[:n], t.relation[rq]], dim=-1)
        expected = p.w2(torch.relu(p.w1(state)))
        assert torch.allclose(p.policy_vector(t, h[:n], cur, rq), expected, atol=1e-5)


def test_lstm_matches_torch_lstm() -> None:
    p = make(layers=2)
    t = p.tables()
    ref = nn.LSTM(2 * D, H, num_layers=2)
    perm = torch.cat([torch.arange(0, 2 * H), torch.arange(3 * H, 4 * H), torch.arange(2 * H, 3 * H)])
    inv = torch.argsort(perm)  # ours: (i, f, o, g); torch: (i, f, g, o)
    with torch.no_grad():
        for layer in range(2):
            getattr(ref, f"weight_ih_l{layer}").copy_(p.lstm_ih[layer][inv])
            getattr(ref, f"weight_hh_l{layer}").copy_(p.lstm_hh[layer][inv])
            getattr(ref, f"bias_ih_l{layer}").copy_(p.lstm_bias[layer][inv])
            getattr(ref, f"bias_hh_l{layer}").zero_()
    src = torch.tensor([3, 4])
    rels = torch.tensor([1, 5])
    ents = torch.tensor([7, 9])
    h0 = p.start_history(t, src)
    h1 = p.advance(t, h0, None, rels, ents)
    seq = torch.stack(
        [
            torch.cat([t.relation[torch.full_like(src, p.start_relation)], t.entity[src]], -1),
            torch.cat([t.relation[rels], t.entity[ents]], -1),
        ]
    )
    out, (hn, cn) = ref(seq)
    assert torch.allclose(h0.top, out[0], atol=1e-5)
    assert torch.allclose(h1.top, out[1], atol=1e-5)
    assert torch.allclose(torch.stack(h1.c), cn, atol=1e-5)


def test_shared_parent_advance_equals_expanded_advance() -> None:
    p = make()
    t = p.tables()
    hist = p.start_history(t, torch.tensor([1, 2]))
    parent = torch.tensor([0, 0, 0, 1, 1])
    rel, ent = torch.tensor([0, 1, 2, 3, 8]), torch.tensor([5, 6, 7, 8, 9])
    shared = p.advance(t, hist, parent, rel, ent)
    expanded = p.advance(t, hist.index(parent), None, rel, ent)
    for a, b in zip(shared.h + shared.c, expanded.h + expanded.c):
        assert torch.allclose(a, b, atol=1e-6)


def test_masked_log_softmax() -> None:
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.0, 5.0, 1.0]])
    mask = torch.tensor([[True, False, True], [True, False, False]])
    lp = masked_log_softmax(logits, mask)
    assert torch.isinf(lp[0, 1]) and torch.allclose(lp[0, [0, 2]].exp().sum(), torch.tensor(1.0))
    assert lp[1, 0] == 0.0


def test_save_load_roundtrip(tmp_path: Path) -> None:
    p = make()
    save_policy(p, tmp_path)
    q = load_policy(tmp_path)
    assert q.config() == p.config()
    for (k, a), (_, b) in zip(p.state_dict().items(), q.state_dict().items()):
        assert torch.equal(a, b), k
    assert not q.training


def test_xavier_init_and_bad_args() -> None:
    p = make()
    bound = (6 / (E + D)) ** 0.5
    assert p.entity_embedding.weight.abs().max() <= bound + 1e-6
    with pytest.raises(ValueError):
        WalkerPolicy(E, R, entity_scoring="nope")  # type: ignore[arg-type]


@pytest.mark.parametrize("scoring", ["dense", "gather"])
def test_scores_with_folded_w2_equal_unfolded(scoring: str) -> None:
    p = make(scoring)
    p.train()  # ff_dropout = 0: folding applies in training too
    t = p.tables()
    h = torch.randn(5, H)
    cur, rq = torch.randint(0, E, (5,)), torch.randint(0, 2 * R, (5,))
    rel, tgt = torch.randint(0, 2 * R + 1, (5, 9)), torch.randint(0, E, (5, 9))
    expected = p.action_logits(t, p.policy_vector(t, h, cur, rq), rel, tgt)
    got = p.scores(t, h, cur, rq, rel, tgt)
    assert torch.allclose(got, expected, atol=1e-5)
    assert (t.folded is not None) == (scoring == "dense")
    got.sum().backward()  # gradients reach W2 through the folded tables
    assert p.w2.weight.grad is not None and p.w2.weight.grad.abs().sum() > 0


def test_gathered_dot_matches_naive_values_and_gradients(monkeypatch: pytest.MonkeyPatch) -> None:
    from kgreason.reasoning import policy as policy_module

    monkeypatch.setattr(policy_module, "GATHER_CHUNK_ELEMENTS", 50)  # force several chunks
    torch.manual_seed(0)
    x = torch.randn(7, 5, dtype=torch.float64, requires_grad=True)
    table = torch.randn(11, 5, dtype=torch.float64, requires_grad=True)
    index = torch.randint(0, 11, (7, 4))
    out = policy_module.gathered_dot(x, table, index)
    naive = (table[index] * x.unsqueeze(1)).sum(-1)
    assert torch.allclose(out, naive)
    assert torch.autograd.gradcheck(lambda a, b: policy_module.gathered_dot(a, b, index), (x, table))
