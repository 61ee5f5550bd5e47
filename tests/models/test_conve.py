import pytest
import torch
import torch.nn.functional as F
from kge_helpers import NUM_ENTITIES, random_triples

from kgreason.models import ConvE


def _manual(model: ConvE, hrt: torch.Tensor) -> torch.Tensor:
    """ConvE in eval mode, written out with functional ops."""
    h, r, t = hrt.unbind(1)
    eh, er = model.entity.weight[h], model.relation.weight[r]
    img = torch.cat([eh.view(-1, 1, 4, 6), er.view(-1, 1, 4, 6)], dim=2)

    def bn(x: torch.Tensor, m: torch.nn.Module) -> torch.Tensor:
        return F.batch_norm(x, m.running_mean, m.running_var, m.weight, m.bias, False, 0.0, m.eps)

    x = F.relu(bn(model.conv(bn(img, model.bn_input)), model.bn_features))
    x = F.relu(bn(model.fc(x.flatten(1)), model.bn_hidden))
    return (x * model.entity.weight[t]).sum(-1) + model.entity_bias[t]


def test_score_matches_written_out_network() -> None:
    torch.manual_seed(0)
    model = ConvE(NUM_ENTITIES, 3, embedding_dim=24, embedding_height=4, num_filters=5)
    with torch.no_grad():  # non-trivial batch-norm statistics and bias
        model.train()
        model.score_t(random_triples(32, num_relations=6)[:, :2])
        model.entity_bias.normal_()
    model.eval()
    hrt = random_triples(7, num_relations=6)
    with torch.no_grad():
        torch.testing.assert_close(model.score_hrt(hrt), _manual(model, hrt), atol=1e-5, rtol=1e-5)


def test_network_runs_once_per_query_for_candidate_subsets() -> None:
    model = ConvE(NUM_ENTITIES, 3, embedding_dim=24, embedding_height=4, num_filters=4)
    rows: list[int] = []
    model.conv.register_forward_hook(lambda mod, inp, out: rows.append(inp[0].shape[0]))
    model.score_t(random_triples(6)[:, :2], torch.randint(NUM_ENTITIES, (6, 10)))
    assert rows == [6]


def test_entity_bias_shifts_scores() -> None:
    model = ConvE(NUM_ENTITIES, 3, embedding_dim=24, embedding_height=4).eval()
    hr = random_triples(3)[:, :2]
    with torch.no_grad():
        before = model.score_t(hr)
        model.entity_bias[2] += 5.0
        torch.testing.assert_close(model.score_t(hr) - before, torch.eye(NUM_ENTITIES)[2].expand(3, -1) * 5.0)


def test_defaults_follow_dettmers() -> None:
    model = ConvE(20, 4)
    assert (model.embedding_height, model.embedding_width) == (10, 20)
    assert model.conv.out_channels == 32 and model.conv.kernel_size == (3, 3)
    assert model.fc.in_features == 32 * 18 * 18
    assert (model.input_dropout.p, model.feature_map_dropout.p, model.hidden_dropout.p) == (0.2, 0.2, 0.3)
    assert model.inverse_relations and model.default_training["label_smoothing"] == 0.1


def test_bad_reshape() -> None:
    with pytest.raises(ValueError, match="not divisible by embedding_height"):
        ConvE(5, 2, embedding_dim=30, embedding_height=7)
    with pytest.raises(ValueError, match="kernel_size"):
        ConvE(5, 2, embedding_dim=4, embedding_height=2, kernel_size=3)
