import pytest
import torch
from kge_helpers import NUM_ENTITIES, random_triples

from kgreason.models import REGULARIZERS, ComplEx, DistMult, LpRegularizer, N3Regularizer
from kgreason.registry import UnknownNameError


def test_lp_against_hand_computation() -> None:
    a = torch.tensor([[1.0, -2.0], [0.0, 3.0]])  # rows: 1 + 4 = 5, 9 -> mean 7
    b = torch.tensor([[2.0, 0.0, -1.0]])  # 4 + 1 = 5
    assert LpRegularizer(weight=0.5, p=2)([a, b]).item() == pytest.approx(0.5 * (7 + 5))
    # p = 1: rows 3, 3 -> mean 3; b: 3
    assert LpRegularizer(weight=2.0, p=1)([a, b]).item() == pytest.approx(2.0 * (3 + 3))
    # leading dimensions are all rows: [1, 2, 2] has the same rows as a
    assert LpRegularizer(weight=1.0)([a.unsqueeze(0)]).item() == pytest.approx(7)


def test_n3_uses_complex_moduli() -> None:
    z = torch.complex(torch.tensor([[3.0, 0.0], [0.0, 1.0]]), torch.tensor([[4.0, 2.0], [0.0, 0.0]]))
    # moduli: row 0 = (5, 2) -> 125 + 8 = 133; row 1 = (0, 1) -> 1; mean 67
    assert N3Regularizer(weight=0.1)([z]).item() == pytest.approx(6.7)
    real = torch.tensor([[-1.0, 2.0]])
    assert N3Regularizer(weight=1.0)([real, real]).item() == pytest.approx(18.0)


def test_registry_and_validation() -> None:
    assert REGULARIZERS.names() == ["lp", "n3"]
    assert isinstance(REGULARIZERS.make("N3"), N3Regularizer)
    assert REGULARIZERS.make("lp", {"weight": 0.1, "p": 3}).config == {"weight": 0.1, "p": 3.0}
    with pytest.raises(UnknownNameError, match="Did you mean: 'n3'"):
        REGULARIZERS.get("n4")
    with pytest.raises(ValueError, match="weight"):
        LpRegularizer(weight=-1.0)
    with pytest.raises(ValueError, match="p must be"):
        LpRegularizer(p=0.5)
    with pytest.raises(ValueError, match="at least one factor"):
        N3Regularizer()([])


def test_model_accumulates_penalty_of_used_embeddings_until_read() -> None:
    torch.manual_seed(0)
    model = DistMult(
        NUM_ENTITIES, 3, embedding_dim=6, regularizer="lp", regularizer_kwargs={"weight": 0.5}
    ).train()
    hr = random_triples(5)[:, :2]
    ent, rel = model.entity.weight, model.relation.weight

    def lp(x: torch.Tensor) -> torch.Tensor:
        return x.pow(2).sum(-1).mean()

    model.score_t(hr)  # all entities: query rows only
    expected = 0.5 * (lp(ent[hr[:, 0]]) + lp(rel[hr[:, 1]]))
    tails = torch.randint(NUM_ENTITIES, (5, 4))
    model.score_t(hr, tails)  # a candidate subset: its rows too
    expected = expected + 0.5 * (lp(ent[hr[:, 0]]) + lp(rel[hr[:, 1]]) + lp(ent[tails]))
    term = model.regularization_term()
    torch.testing.assert_close(term, expected)
    term.backward()
    assert ent.grad is not None and ent.grad.abs().sum() > 0
    assert model.regularization_term().item() == 0.0  # reset after reading
    model.eval()
    model.score_t(hr)
    assert model.regularization_term().item() == 0.0  # not in eval mode
    model.train()
    with torch.no_grad():
        model.score_t(hr)
    assert model.regularization_term().item() == 0.0  # not without gradients


def test_complex_n3_sees_complex_factors() -> None:
    torch.manual_seed(0)
    model = ComplEx(NUM_ENTITIES, 3, embedding_dim=4, regularizer="n3", regularizer_kwargs={"weight": 0.2})
    hrt = random_triples(6)
    model.score_hrt(hrt)
    ent, rel = model.entity.weight, model.relation.weight

    def n3(w: torch.Tensor) -> torch.Tensor:
        return (w[:, 0::2].square() + w[:, 1::2].square()).sqrt().pow(3).sum(-1).mean()

    expected = 0.2 * (n3(ent[hrt[:, 0]]) + n3(rel[hrt[:, 1]]) + n3(ent[hrt[:, 2]]))
    torch.testing.assert_close(model.regularization_term(), expected)
    assert model.config["regularizer"] == "n3" and model.config["regularizer_kwargs"] == {"weight": 0.2}


def test_no_regularizer_gives_zero() -> None:
    model = DistMult(NUM_ENTITIES, 3, embedding_dim=6).train()
    model.score_t(random_triples(3)[:, :2])
    term = model.regularization_term()
    assert term.shape == () and term.item() == 0.0
