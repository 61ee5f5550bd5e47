"""Embedding-table initialisers chosen by name (``entity_initializer`` / ``relation_initializer``)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from kge_helpers import MODEL_NAMES

from kgreason.models import MODELS, model_from_config
from kgreason.models.initializers import INITIALIZERS
from kgreason.registry import UnknownNameError


def test_registered_names() -> None:
    assert INITIALIZERS.names() == [
        "xavier_normal",
        "xavier_normal_per_row",
        "xavier_uniform",
        "xavier_uniform_per_row",
    ]


@pytest.mark.parametrize(
    ("name", "expected_std"),
    [
        ("xavier_uniform", lambda rows, width: math.sqrt(2.0 / (rows + width))),
        ("xavier_normal", lambda rows, width: math.sqrt(2.0 / (rows + width))),
        ("xavier_uniform_per_row", lambda rows, width: math.sqrt(2.0 / width)),
        ("xavier_normal_per_row", lambda rows, width: math.sqrt(2.0 / width)),
    ],
)
@pytest.mark.parametrize("rows", [200, 20_000])
def test_standard_deviation_follows_its_convention(name: str, expected_std, rows: int) -> None:
    torch.manual_seed(0)
    width = 64
    table = torch.empty(rows, width)
    out = INITIALIZERS.get(name)(table)
    assert out is table  # in place
    assert abs(table.mean().item()) < 0.05 * expected_std(rows, width)
    assert table.std().item() == pytest.approx(expected_std(rows, width), rel=0.05)


def test_per_row_scale_does_not_shrink_with_the_graph() -> None:
    torch.manual_seed(0)
    small, large = torch.empty(100, 128), torch.empty(40_000, 128)
    INITIALIZERS.get("xavier_normal_per_row")(small)
    INITIALIZERS.get("xavier_normal_per_row")(large)
    assert large.std().item() == pytest.approx(small.std().item(), rel=0.1)
    INITIALIZERS.get("xavier_normal")(large)
    assert large.std().item() < small.std().item() / 10  # torch's convention: ~0.007 vs 0.125


def test_not_a_table_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"\[rows, width\] table, got shape \(3, 4, 5\)"):
        INITIALIZERS.get("xavier_normal_per_row")(torch.empty(3, 4, 5))


@pytest.mark.parametrize("model_name", MODEL_NAMES)
def test_models_use_the_chosen_entity_initializer(model_name: str) -> None:
    torch.manual_seed(0)
    model = MODELS.make(
        model_name, num_entities=3000, num_relations=4, entity_initializer="Xavier-Normal-Per-Row"
    )
    width = model.entity.weight.shape[1]
    assert model.entity.weight.std().item() == pytest.approx(math.sqrt(2.0 / width), rel=0.05)
    default = MODELS.make(model_name, num_entities=3000, num_relations=4)
    assert default.entity.weight.std().item() < 0.05  # the model's own default: torch's Xavier, rows 3000
    # reset_parameters draws from the chosen initialiser again
    with torch.no_grad():
        model.entity.weight.zero_()
    model.reset_parameters()
    assert model.entity.weight.std().item() == pytest.approx(math.sqrt(2.0 / width), rel=0.05)


@pytest.mark.parametrize("model_name", [n for n in MODEL_NAMES if n != "rotate"])
def test_relation_initializer(model_name: str) -> None:
    torch.manual_seed(0)
    model = MODELS.make(
        model_name, num_entities=5, num_relations=2000, relation_initializer="xavier_uniform_per_row"
    )
    width = model.relation.weight.shape[1]
    assert model.relation.weight.abs().max().item() <= math.sqrt(6.0 / width)
    assert model.relation.weight.std().item() == pytest.approx(math.sqrt(2.0 / width), rel=0.05)


def test_rotate_rejects_a_relation_initializer() -> None:
    with pytest.raises(ValueError, match="RotatE: relation_initializer='xavier_normal'.*phases"):
        MODELS.make("rotate", num_entities=5, num_relations=2, relation_initializer="xavier_normal")


def test_unknown_initializer_is_named_with_suggestions() -> None:
    with pytest.raises(
        UnknownNameError, match=r"Unknown initializer 'xavier_normol'.*Did you mean: 'xavier_normal'"
    ):
        MODELS.make("complex", num_entities=5, num_relations=2, entity_initializer="xavier_normol")


def test_config_records_the_choice_and_rebuilds() -> None:
    model = MODELS.make(
        "conve",
        num_entities=20,
        num_relations=3,
        embedding_dim=16,
        embedding_height=4,
        entity_initializer="xavier_normal_per_row",
        relation_initializer="xavier_uniform",
    )
    cfg = json.loads(json.dumps(model.config))
    assert cfg["entity_initializer"] == "xavier_normal_per_row"
    assert cfg["relation_initializer"] == "xavier_uniform"
    assert model_from_config(cfg).config == model.config
    # not chosen: not written, so configs from before the option existed compare equal
    plain = MODELS.make("conve", num_entities=20, num_relations=3, embedding_dim=16, embedding_height=4)
    assert "entity_initializer" not in plain.config and "relation_initializer" not in plain.config
