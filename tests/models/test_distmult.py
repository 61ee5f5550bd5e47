import torch
from kge_helpers import NUM_ENTITIES, random_triples

from kgreason.models import DistMult


def test_score_is_trilinear_product() -> None:
    torch.manual_seed(0)
    model = DistMult(NUM_ENTITIES, 3, embedding_dim=12)
    hrt = random_triples(8, num_relations=6)
    ent, rel = model.entity.weight.detach(), model.relation.weight.detach()
    h, r, t = hrt.unbind(1)
    with torch.no_grad():
        torch.testing.assert_close(model.score_hrt(hrt), (ent[h] * rel[r] * ent[t]).sum(-1))
        torch.testing.assert_close(model.score_t(hrt[:, :2]), (ent[h] * rel[r]) @ ent.T)


def test_symmetric_without_inverse_relations_not_with() -> None:
    torch.manual_seed(0)
    direct = DistMult(NUM_ENTITIES, 3, embedding_dim=12, inverse_relations=False)
    hrt = random_triples(6)
    with torch.no_grad():
        torch.testing.assert_close(direct.score_h(hrt[:, 1:]), direct.score_t(hrt[:, [2, 1]]))
        reciprocal = DistMult(NUM_ENTITIES, 3, embedding_dim=12)
        assert reciprocal.relation.weight.shape == (6, 12)
        assert not torch.allclose(reciprocal.score_h(hrt[:, 1:]), reciprocal.score_t(hrt[:, [2, 1]]))


def test_defaults() -> None:
    model = DistMult(NUM_ENTITIES, 3)
    assert model.embedding_dim == 200 and model.inverse_relations
    assert model.default_training["loop"] == "lcwa" and model.default_training["loss"] == "bce"
