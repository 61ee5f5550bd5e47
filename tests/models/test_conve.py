import copy
import types

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


def _layer_by_layer_maps(model: ConvE, img: torch.Tensor) -> torch.Tensor:
    """The feature maps as the layers compute them one after another (what ``_feature_maps`` fuses)."""
    return model.feature_map_dropout(torch.relu(model.bn_features(model.conv(img)))).flatten(1)


def _pair(**kwargs: float) -> tuple[ConvE, ConvE]:
    torch.manual_seed(0)
    fused = ConvE(NUM_ENTITIES, 3, embedding_dim=24, embedding_height=4, num_filters=5, **kwargs)
    with torch.no_grad():
        fused.bn_features.weight.uniform_(0.5, 2.0)
        fused.bn_features.bias.normal_()
        fused.conv.bias.normal_()
    layered = copy.deepcopy(fused)
    layered._feature_maps = types.MethodType(_layer_by_layer_maps, layered)  # type: ignore[method-assign]
    return fused, layered


def test_fused_feature_maps_match_the_layers_in_training() -> None:
    """Batch statistics from the patch moments: same scores, gradients and running statistics as conv -> bn ->
    relu applied one after another (dropouts off, so both draw nothing)."""
    fused, layered = _pair(
        input_dropout=0.0, feature_map_dropout=0.0, hidden_dropout=0.0, embedding_dropout=0.0
    )
    hr = random_triples(16, num_relations=6)[:, :2]
    for _ in range(2):  # the second call sees updated running statistics
        scores = [m.train().score_t(hr) for m in (fused, layered)]
        torch.testing.assert_close(scores[0], scores[1], atol=1e-5, rtol=1e-5)
        grads = [
            torch.autograd.grad(s.square().sum(), list(m.parameters()))
            for s, m in zip(scores, (fused, layered))
        ]
        for (name, _), a, b in zip(fused.named_parameters(), *grads):
            # the biases right before a batch norm get an exactly-zero gradient in theory: both sides are rounding
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4, msg=name)
        for key in ("running_mean", "running_var", "num_batches_tracked"):
            torch.testing.assert_close(getattr(fused.bn_features, key), getattr(layered.bn_features, key))
    assert fused.bn_features.num_batches_tracked.item() == 2


def test_fused_feature_maps_match_the_layers_in_eval() -> None:
    fused, layered = _pair()
    hr = random_triples(16, num_relations=6)[:, :2]
    with torch.no_grad():
        fused.train().score_t(hr)  # non-trivial running statistics
    layered.load_state_dict(fused.state_dict())
    with torch.no_grad():
        a, b = fused.eval().score_t(hr), layered.eval().score_t(hr)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_patch_moments_gradient_is_exact() -> None:
    """The batch-norm statistics' hand-written backward (one matmul) against autograd's numerical check."""
    from kgreason.models.conve import _PatchMoments

    x = torch.randn(3, 4, 5, dtype=torch.float64, requires_grad=True)
    mean, second = _PatchMoments.apply(x)
    assert torch.allclose(mean, x.mean(dim=(0, 2)))
    assert torch.allclose(second, torch.einsum("bkl,bjl->kj", x, x) / 15)
    assert torch.autograd.gradcheck(_PatchMoments.apply, (x,))


def test_feature_map_dropout_drops_whole_channels_per_example() -> None:
    fused, _ = _pair(feature_map_dropout=0.5)
    img = torch.randn(64, 1, 8, 6)
    with torch.no_grad():
        dropped = fused.train()._feature_maps(img).view(64, 5, -1)
        fused.feature_map_dropout.p = 0.0
        torch.manual_seed(1)
        plain = fused._feature_maps(img).view(64, 5, -1)
    ratio = torch.where(plain > 0, dropped / plain.clamp_min(1e-12), torch.nan)
    per_channel = ratio.nan_to_num(nan=-1.0).amax(-1)  # one value per (example, channel): 0 or 1 / (1 - p)
    live = (plain > 0).any(-1)
    torch.testing.assert_close(ratio.nanmean(-1)[live], per_channel[live])
    assert set(per_channel[live].round(decimals=4).unique().tolist()) == {0.0, 2.0}
    assert 0.35 < (per_channel[live] == 0).float().mean().item() < 0.65


def test_network_runs_once_per_query_for_candidate_subsets() -> None:
    model = ConvE(NUM_ENTITIES, 3, embedding_dim=24, embedding_height=4, num_filters=4)
    rows: list[int] = []
    model.fc.register_forward_hook(lambda mod, inp, out: rows.append(inp[0].shape[0]))
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


def _reference_network_maps(model: ConvE, img: torch.Tensor) -> torch.Tensor:
    """MultiHopKG's feature maps: conv -> relu -> element-wise dropout, no batch norm."""
    return model.feature_map_dropout(torch.relu(model.conv(img))).flatten(1)


def test_without_feature_batch_norm_matches_conv_relu_in_training_and_eval() -> None:
    torch.manual_seed(0)
    fused = ConvE(
        NUM_ENTITIES, 3, embedding_dim=24, embedding_height=4, num_filters=5, feature_batch_norm=False,
        input_dropout=0.0, feature_map_dropout=0.0, hidden_dropout=0.0, embedding_dropout=0.0,
    )  # fmt: skip
    assert fused.bn_features is None and "bn_features.weight" not in fused.state_dict()
    with torch.no_grad():
        fused.conv.bias.normal_()
    layered = copy.deepcopy(fused)
    layered._feature_maps = types.MethodType(_reference_network_maps, layered)  # type: ignore[method-assign]
    hr = random_triples(16, num_relations=6)[:, :2]
    for train in (True, False):
        scores = [m.train(train).score_t(hr) for m in (fused, layered)]
        torch.testing.assert_close(scores[0], scores[1], atol=1e-5, rtol=1e-5)
        grads = [torch.autograd.grad(s.square().sum(), [m.conv.weight, m.conv.bias]) for s, m in zip(scores, (fused, layered))]  # fmt: skip
        for a, b in zip(*grads):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
        # the conv bias is no longer cancelled by a batch norm: it gets a real gradient
        assert grads[0][1].abs().max() > 1e-3


def test_element_feature_map_dropout_drops_single_pixels() -> None:
    torch.manual_seed(0)
    model = ConvE(
        NUM_ENTITIES, 3, embedding_dim=24, embedding_height=4, num_filters=5, feature_map_dropout=0.5,
        feature_map_dropout_mode="element",
    )  # fmt: skip
    assert isinstance(model.feature_map_dropout, torch.nn.Dropout)
    img = torch.randn(64, 1, 8, 6)
    with torch.no_grad():
        torch.manual_seed(1)
        dropped = model.train()._feature_maps(img).view(64, 5, -1)
        model.feature_map_dropout.p = 0.0
        torch.manual_seed(1)
        plain = model._feature_maps(img).view(64, 5, -1)
    live = plain > 0
    ratio = (dropped[live] / plain[live]).round(decimals=4)
    assert set(ratio.unique().tolist()) == {0.0, 2.0}
    assert 0.45 < (ratio == 0).float().mean().item() < 0.55
    # within a channel some pixels are kept and others dropped (channel dropout keeps or drops them all)
    per_channel_kept = torch.where(live, (dropped > 0).float(), torch.nan).nanmean(-1)
    mixed = (per_channel_kept > 0) & (per_channel_kept < 1)
    assert mixed.float().mean().item() > 0.9


def test_reference_network_options_round_trip_and_validate(tmp_path) -> None:
    from kgreason.models.io import load_model, save_model

    model = ConvE(
        NUM_ENTITIES, 3, embedding_dim=24, embedding_height=4, feature_batch_norm=False,
        feature_map_dropout_mode="element",
    ).eval()  # fmt: skip
    hr = random_triples(4)[:, :2]
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m").eval()
    assert loaded.bn_features is None and loaded.feature_map_dropout_mode == "element"
    with torch.no_grad():
        torch.testing.assert_close(loaded.score_t(hr), model.score_t(hr))
    with pytest.raises(
        ValueError, match="feature_map_dropout_mode must be 'channel' or 'element', got 'pixel'"
    ):
        ConvE(5, 2, embedding_dim=24, embedding_height=4, feature_map_dropout_mode="pixel")
