import torch
from kge_helpers import NUM_ENTITIES, random_triples

from kgreason.models import ComplEx
from kgreason.models.base import as_complex, as_real


def _complex_table(w: torch.Tensor) -> torch.Tensor:
    return torch.complex(w[:, 0::2], w[:, 1::2])  # interleaved (real, imaginary) pairs


def test_score_is_real_part_of_complex_trilinear_product() -> None:
    torch.manual_seed(0)
    model = ComplEx(NUM_ENTITIES, 3, embedding_dim=8, inverse_relations=False).eval()  # no embedding dropout
    assert model.entity.weight.shape == (NUM_ENTITIES, 16)
    ent, rel = _complex_table(model.entity.weight.detach()), _complex_table(model.relation.weight.detach())
    hrt = random_triples(9)
    h, r, t = hrt.unbind(1)
    with torch.no_grad():
        torch.testing.assert_close(model.score_hrt(hrt), (ent[h] * rel[r] * ent[t].conj()).real.sum(-1))
        every_head = (ent.unsqueeze(0) * rel[r].unsqueeze(1) * ent[t].conj().unsqueeze(1)).real.sum(-1)
        torch.testing.assert_close(model.score_h(hrt[:, 1:]), every_head, atol=1e-5, rtol=1e-5)
        every_rel = (ent[h].unsqueeze(1) * rel.unsqueeze(0) * ent[t].conj().unsqueeze(1)).real.sum(-1)
        torch.testing.assert_close(model.score_r(hrt[:, [0, 2]]), every_rel, atol=1e-5, rtol=1e-5)


def test_can_be_antisymmetric() -> None:
    torch.manual_seed(0)
    model = ComplEx(NUM_ENTITIES, 3, embedding_dim=8, inverse_relations=False)
    hrt = random_triples(5)
    with torch.no_grad():
        assert not torch.allclose(model.score_hrt(hrt), model.score_hrt(hrt[:, [2, 1, 0]]))


def test_complex_views_round_trip() -> None:
    x = torch.arange(8.0).view(2, 4)
    z = as_complex(x)
    assert z.shape == (2, 2) and z[0, 1] == torch.complex(torch.tensor(2.0), torch.tensor(3.0))
    torch.testing.assert_close(as_real(z), x)


def test_xavier_initialisation_scale() -> None:
    torch.manual_seed(0)
    model = ComplEx(1000, 10, embedding_dim=100)
    bound = (6 / (1000 + 200)) ** 0.5
    w = model.entity.weight
    assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound
    assert model.inverse_relations and model.relation.weight.shape == (20, 200)


def test_embedding_dropout_only_in_training() -> None:
    torch.manual_seed(0)
    model = ComplEx(NUM_ENTITIES, 3, embedding_dim=8)
    assert model.config["embedding_dropout"] == 0.3
    hr = random_triples(4)[:, :2]
    with torch.no_grad():
        model.train()
        assert not torch.equal(model.score_t(hr), model.score_t(hr))  # fresh masks per call
        model.eval()
        torch.testing.assert_close(model.score_t(hr), model.score_t(hr))
    plain = ComplEx(NUM_ENTITIES, 3, embedding_dim=8, embedding_dropout=0.0)
    plain.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(plain.train().score_t(hr), model.eval().score_t(hr))
