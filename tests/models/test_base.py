"""The KGE model interface, checked on every registered model."""

from __future__ import annotations

import json

import pytest
import torch
from kge_helpers import MODEL_NAMES, NUM_ENTITIES, NUM_RELATIONS, make_model, random_triples

import kgreason.models.base as base
from kgreason.models import MODELS, KGEModel, model_from_config
from kgreason.registry import UnknownNameError

ATOL = 1e-4


@pytest.fixture(params=["dense", "gathered"])
def candidate_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Per-query candidates scored via all entities + pick ("dense") or via gathered rows ("gathered")."""
    ratio = 10**6 if request.param == "dense" else 0
    monkeypatch.setattr(base, "DENSE_CANDIDATE_RATIO", ratio)
    monkeypatch.setattr(base, "DENSE_CANDIDATE_RATIO_L1", ratio)
    return request.param


def test_registry_names_and_lookup() -> None:
    assert MODELS.names() == ["complex", "conve", "distmult", "rotate", "transe", "tucker"]
    assert MODELS.get("ComplEx") is MODELS.get("complex")
    assert MODELS.get("Trans-E").__name__ == "TransE"
    assert MODELS.get("TuckER").name == "tucker"
    assert all(issubclass(MODELS.get(n), KGEModel) for n in MODELS.names())


def test_unknown_model_suggests_close_names() -> None:
    with pytest.raises(UnknownNameError, match=r"Unknown model 'complx'.*Did you mean: 'complex'") as info:
        MODELS.make("complx", num_entities=3, num_relations=1)
    assert "conve" in str(info.value)  # lists the known names


def test_default_inverse_relations() -> None:
    expected = {
        "transe": False,
        "rotate": False,
        "distmult": True,
        "complex": True,
        "conve": True,
        "tucker": True,
    }
    for name, inv in expected.items():
        model = MODELS.make(name, num_entities=5, num_relations=2)
        assert model.inverse_relations is inv
        assert model.num_relations_embedded == (4 if inv else 2)
        assert model.default_training["loop"] in ("lcwa", "slcwa")
        assert model.default_training["lr"] > 0


def test_shapes(model_name: str, inverse: bool) -> None:
    model = make_model(model_name, inverse).eval()
    b, k = 5, 4
    hrt = random_triples(b)
    tails = torch.randint(NUM_ENTITIES, (b, k))
    assert model.score_hrt(hrt).shape == (b,)
    assert model(hrt).shape == (b,)
    assert model.score_t(hrt[:, :2]).shape == (b, NUM_ENTITIES)
    assert model.score_t(hrt[:, :2], tails).shape == (b, k)
    assert model.score_t(hrt[:, :2], tails[0]).shape == (b, k)
    assert model.score_h(hrt[:, 1:]).shape == (b, NUM_ENTITIES)
    assert model.score_h(hrt[:, 1:], tails).shape == (b, k)
    assert model.score_h(hrt[:, 1:], tails[0]).shape == (b, k)
    assert model.score_r(hrt[:, [0, 2]]).shape == (b, model.num_relations_embedded)
    for scores in (model.score_t(hrt[:, :2]), model.score_h(hrt[:, 1:]), model.score_r(hrt[:, [0, 2]])):
        assert scores.dtype == torch.float32 and torch.isfinite(scores).all()


def test_tail_scores_consistent(model_name: str, inverse: bool, candidate_path: str) -> None:
    model = make_model(model_name, inverse).eval()
    hrt = random_triples(7, num_relations=model.num_relations_embedded)
    b = len(hrt)
    with torch.no_grad():
        full = model.score_t(hrt[:, :2])
        single = model.score_hrt(hrt)
        torch.testing.assert_close(full[torch.arange(b), hrt[:, 2]], single, atol=ATOL, rtol=1e-4)
        tails = torch.randint(NUM_ENTITIES, (b, 6))
        torch.testing.assert_close(
            model.score_t(hrt[:, :2], tails), full.gather(1, tails), atol=ATOL, rtol=1e-4
        )
        shared = torch.tensor([3, 0, 10, 3])
        torch.testing.assert_close(model.score_t(hrt[:, :2], shared), full[:, shared], atol=ATOL, rtol=1e-4)


def test_head_scores_consistent(model_name: str, inverse: bool, candidate_path: str) -> None:
    model = make_model(model_name, inverse).eval()
    hrt = random_triples(7)
    b, R = len(hrt), NUM_RELATIONS
    with torch.no_grad():
        full = model.score_h(hrt[:, 1:])
        if inverse:
            # reciprocal: heads of (r, t) are tails of (t, r + R)
            inv = torch.stack([hrt[:, 2], hrt[:, 1] + R, hrt[:, 0]], dim=1)
            torch.testing.assert_close(full, model.score_t(inv[:, :2]))
            expected = model.score_hrt(inv)
        else:
            expected = model.score_hrt(hrt)
        torch.testing.assert_close(full[torch.arange(b), hrt[:, 0]], expected, atol=ATOL, rtol=1e-4)
        heads = torch.randint(NUM_ENTITIES, (b, 5))
        torch.testing.assert_close(
            model.score_h(hrt[:, 1:], heads), full.gather(1, heads), atol=ATOL, rtol=1e-4
        )
        shared = torch.tensor([1, 9])
        torch.testing.assert_close(model.score_h(hrt[:, 1:], shared), full[:, shared], atol=ATOL, rtol=1e-4)


def test_inverse_of_an_inverse_relation(model_name: str) -> None:
    model = make_model(model_name, True).eval()
    hrt = random_triples(4)
    with torch.no_grad():
        # score_h((r + R, t)) asks for heads of an inverse relation: the tails of (t, r)
        rt = torch.stack([hrt[:, 1] + NUM_RELATIONS, hrt[:, 2]], dim=1)
        torch.testing.assert_close(model.score_h(rt), model.score_t(hrt[:, [2, 1]]))
    assert model.inverse_relation(torch.tensor([0, 2, 3, 5])).tolist() == [3, 5, 0, 2]
    with pytest.raises(RuntimeError, match="inverse_relations=False"):
        make_model(model_name, False).inverse_relation(torch.tensor([0]))


def test_relation_scores_consistent(model_name: str, inverse: bool) -> None:
    model = make_model(model_name, inverse).eval()
    hrt = random_triples(6, num_relations=model.num_relations_embedded)
    with torch.no_grad():
        full = model.score_r(hrt[:, [0, 2]])
        torch.testing.assert_close(
            full[torch.arange(len(hrt)), hrt[:, 1]], model.score_hrt(hrt), atol=ATOL, rtol=1e-4
        )


def test_deterministic_initialisation(model_name: str) -> None:
    a, b, c = make_model(model_name, seed=3), make_model(model_name, seed=3), make_model(model_name, seed=4)
    sa, sb, sc = ({k: v.clone() for k, v in m.state_dict().items()} for m in (a, b, c))
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key])
    assert any(not torch.equal(sa[k], sc[k]) for k in sa if sa[k].is_floating_point())
    # reset_parameters draws fresh values from the global RNG, reproducibly
    torch.manual_seed(5)
    a.reset_parameters()
    first = {k: v.clone() for k, v in a.state_dict().items()}
    assert any(not torch.equal(first[k], sa[k]) for k in sa if sa[k].is_floating_point())
    torch.manual_seed(5)
    a.reset_parameters()
    for key, value in a.state_dict().items():
        torch.testing.assert_close(value, first[key])


def test_config_is_json_and_rebuilds(model_name: str) -> None:
    model = make_model(model_name, inverse_relations=not MODELS.get(model_name)(2, 1).inverse_relations)
    cfg = json.loads(json.dumps(model.config))
    assert cfg["name"] == model_name
    assert cfg["num_entities"] == NUM_ENTITIES and cfg["num_relations"] == NUM_RELATIONS
    rebuilt = model_from_config(cfg)
    assert type(rebuilt) is type(model) and rebuilt.config == model.config
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }


def test_scores_have_gradients(model_name: str) -> None:
    model = make_model(model_name).train()
    hr = random_triples(6)[:, :2]
    model.score_t(hr).sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.entity.weight.grad.abs().sum() > 0


def test_training_batch_of_one_row(model_name: str) -> None:
    model = make_model(model_name).train()
    out = model.score_t(torch.tensor([[1, 0]]))
    assert out.shape == (1, NUM_ENTITIES) and torch.isfinite(out).all()


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        (torch.tensor([1, 0]), ValueError, r"hr must be a LongTensor\[batch, 2\]"),
        (torch.tensor([[1, 0, 2]]), ValueError, r"hr must be a LongTensor\[batch, 2\]"),
        (torch.tensor([[1.0, 0.0]]), TypeError, "integer ids"),
    ],
)
def test_bad_queries_are_rejected(bad: torch.Tensor, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        make_model("distmult").score_t(bad)


def test_bad_candidates_are_rejected() -> None:
    model = make_model("distmult")
    with pytest.raises(ValueError, match=r"tails must be LongTensor\[2, k\]"):
        model.score_t(torch.tensor([[1, 0], [2, 1]]), torch.zeros(3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="hrt must be"):
        model.score_hrt(torch.tensor([[1, 0]]))
    with pytest.raises(ValueError, match="positive integer"):
        MODELS.make("distmult", num_entities=0, num_relations=2)


def _overfit_graph() -> torch.Tensor:
    """Heads 0-3, tails 4-7; (h, r) -> t and (r, t) -> h are functions, so every training triple can rank first on
    both sides, for every model (no cycle for the translations, heads and tails apart for symmetric DistMult)."""
    return torch.tensor([[0, 0, 4], [1, 0, 5], [2, 0, 6], [3, 0, 7], [0, 1, 5], [1, 1, 6], [2, 1, 7]])


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_overfits_a_tiny_graph(name: str) -> None:
    torch.manual_seed(0)
    kwargs = {"embedding_dim": 32, "embedding_height": 4} if name == "conve" else {"embedding_dim": 16}
    model = MODELS.make(name, num_entities=8, num_relations=2, **kwargs)
    triples = _overfit_graph()
    eye = torch.eye(8)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    bce = torch.nn.BCEWithLogitsLoss()
    model.train()
    for _ in range(100):
        opt.zero_grad()
        loss = bce(model.score_t(triples[:, :2]), eye[triples[:, 2]]) + bce(
            model.score_h(triples[:, 1:]), eye[triples[:, 0]]
        )
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        tail_best = model.score_t(triples[:, :2]).argmax(dim=1)
        head_best = model.score_h(triples[:, 1:]).argmax(dim=1)
    assert torch.equal(tail_best, triples[:, 2])
    assert torch.equal(head_best, triples[:, 0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(model_name: str, inverse: bool) -> None:
    model = make_model(model_name, inverse).eval()
    hrt = random_triples(5)
    with torch.no_grad():
        expected = (model.score_t(hrt[:, :2]), model.score_h(hrt[:, 1:]), model.score_r(hrt[:, [0, 2]]))
        model.cuda()
        dev = hrt.cuda()
        got = (model.score_t(dev[:, :2]), model.score_h(dev[:, 1:]), model.score_r(dev[:, [0, 2]]))
        tails = torch.randint(NUM_ENTITIES, (5, 3), device="cuda")
        assert model.score_t(dev[:, :2], tails).device.type == "cuda"
    for e, g in zip(expected, got):
        assert g.device.type == "cuda"
        torch.testing.assert_close(g.cpu(), e, atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("p", [1, 2])
def test_kernels_agree_on_both_candidate_paths(p: int, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    query, table = torch.randn(4, 6), torch.randn(9, 6)
    index = torch.randint(9, (4, 3))
    zq, zt = torch.randn(4, 6, dtype=torch.complex64), torch.randn(9, 6, dtype=torch.complex64)
    dot_full = query @ table.T
    lp_full = (query[:, None] - table[None]).abs().pow(p).sum(-1).pow(1 / p)
    cl1_full = (zq[:, None] - zt[None]).abs().sum(-1)
    for ratio in (0, 10**6):
        monkeypatch.setattr(base, "DENSE_CANDIDATE_RATIO", ratio)
        monkeypatch.setattr(base, "DENSE_CANDIDATE_RATIO_L1", ratio)
        torch.testing.assert_close(base.dot_scores(query, table, index), dot_full.gather(1, index))
        torch.testing.assert_close(base.lp_distances(query, table, p, index), lp_full.gather(1, index))
        torch.testing.assert_close(base.complex_l1_distances(zq, zt, index), cl1_full.gather(1, index))
    torch.testing.assert_close(base.dot_scores(query, table, index[0]), dot_full[:, index[0]])
    torch.testing.assert_close(base.lp_distances(query, table, p), lp_full)
