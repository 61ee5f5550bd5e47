import torch
import torch.nn.functional as F
from kge_helpers import NUM_ENTITIES, random_triples

from kgreason.models import TuckER


def test_score_is_core_contraction() -> None:
    torch.manual_seed(0)
    model = TuckER(NUM_ENTITIES, 3, embedding_dim=10, relation_dim=6)
    with torch.no_grad():  # non-trivial batch-norm statistics
        model.train()
        model.score_t(random_triples(32, num_relations=6)[:, :2])
    model.eval()
    hrt = random_triples(7, num_relations=6)
    h, r, t = hrt.unbind(1)

    def bn(x: torch.Tensor, m: torch.nn.BatchNorm1d) -> torch.Tensor:
        return F.batch_norm(x, m.running_mean, m.running_var, m.weight, m.bias, False, 0.0, m.eps)

    with torch.no_grad():
        x = bn(model.entity.weight[h], model.bn_input)
        x = torch.einsum("bi,kij,bk->bj", x, model.core, model.relation.weight[r])
        expected = (bn(x, model.bn_hidden) * model.entity.weight[t]).sum(-1)
        torch.testing.assert_close(model.score_hrt(hrt), expected, atol=1e-4, rtol=1e-4)


def test_query_computed_once_for_candidate_subsets() -> None:
    model = TuckER(NUM_ENTITIES, 3, embedding_dim=10)
    calls: list[int] = []
    model.bn_input.register_forward_hook(lambda mod, inp, out: calls.append(inp[0].shape[0]))
    model.score_t(random_triples(5)[:, :2], torch.randint(NUM_ENTITIES, (5, 9)))
    assert calls == [5]


def test_defaults() -> None:
    model = TuckER(20, 4)
    assert model.relation_dim == 200 and model.core.shape == (200, 200, 200)
    assert (model.input_dropout.p, model.hidden_dropout1.p, model.hidden_dropout2.p) == (0.3, 0.4, 0.5)
    assert model.core.abs().max() <= 1.0 and model.inverse_relations
