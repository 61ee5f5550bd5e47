from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

import kgreason
from kgreason.config import load_config_dict
from kgreason.training.config import KGEConfig, resolve_config
from kgreason.training.loop import CheckpointMismatchError
from kgreason.training.pipeline import evaluate_run, pipeline
from kgreason.training.stoppers import EarlyStopper

SMALL = {"model_kwargs": {"embedding_dim": 16}, "trackers": [], "device": "cpu", "eval_batch_size": 64}


def test_run_directory(toy_dataset, tmp_path: Path) -> None:
    result = kgreason.pipeline(toy_dataset, "distmult", output_dir=tmp_path, epochs=3, **SMALL)
    names = {p.name for p in tmp_path.iterdir()}
    assert {
        "config.json",
        "entities.json",
        "relations.json",
        "metrics.json",
        "losses.csv",
        "losses.png",
        "checkpoints",
        "model.pt",
        "model.json",
    } <= names
    cfg = load_config_dict(tmp_path / "config.json")
    # DistMult's default_training: LCWA, BCE with label smoothing 0.1, Adam 1e-3, batch 256
    assert (cfg["loop"], cfg["loss"], cfg["label_smoothing"], cfg["optimizer"], cfg["lr"]) == (
        "lcwa",
        "bce",
        0.1,
        "adam",
        1e-3,
    )
    assert cfg["loss_kwargs"] == {"label_smoothing": 0.1} and cfg["dataset"] == "toy"
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert {"head.realistic.mrr", "tail.realistic.mrr", "both.realistic.mrr"} <= set(metrics)
    assert metrics == pytest.approx(result.metrics.metrics)
    rows = list(csv.DictReader((tmp_path / "losses.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert [float(r["loss"]) for r in rows] == pytest.approx(result.losses)
    assert (tmp_path / "losses.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "entities.json").read_text())[:2] == ["e0", "e1"]
    again = evaluate_run(tmp_path, dataset=toy_dataset)
    assert again.metrics == pytest.approx(result.metrics.metrics)
    assert result.loop.epoch == 3 and not result.stopped_early


def test_resume_and_config_mismatch(toy_dataset, tmp_path: Path) -> None:
    first = pipeline(toy_dataset, "complex", output_dir=tmp_path, epochs=2, **SMALL)
    more = pipeline(toy_dataset, "complex", output_dir=tmp_path, epochs=4, **SMALL)
    assert more.loop.epoch == 4 and more.losses[:2] == first.losses
    straight = pipeline(toy_dataset, "complex", epochs=4, **SMALL)
    assert more.losses == straight.losses
    for key, value in more.model.state_dict().items():
        assert torch.equal(value, straight.model.state_dict()[key])
    with pytest.raises(CheckpointMismatchError, match="lr: 0.003 -> 0.01"):
        pipeline(toy_dataset, "complex", output_dir=tmp_path, epochs=4, lr=0.01, **SMALL)


def test_early_stopping_in_the_pipeline(toy_dataset, tmp_path: Path) -> None:
    result = pipeline(
        toy_dataset,
        "distmult",
        output_dir=tmp_path,
        epochs=40,
        lr=0.05,
        eval_every=1,
        early_stopping=True,
        patience=2,
        early_stopping_delta=0.5,
        **SMALL,
    )
    assert result.stopped_early and result.best_epoch is not None
    assert (tmp_path / "checkpoints" / "best_weights.pt").exists()
    # replaying the recorded validation MRRs through the documented stopper gives the same decision
    replay = EarlyStopper(patience=2, delta=0.5, relative=True)
    stopped_at = next(
        e for e, v in result.loop.history.metric("valid.both.realistic.mrr") if replay.report(e, v)
    )
    assert stopped_at == result.loop.epoch and replay.best_epoch == result.best_epoch
    rows = list(csv.DictReader((tmp_path / "losses.csv").open()))
    assert "valid.both.realistic.mrr" in rows[0]


def test_default_resolution_per_model() -> None:
    rotate = resolve_config(KGEConfig(model="rotate"))
    assert (rotate.loop, rotate.loss, rotate.num_negatives, rotate.batch_size) == ("slcwa", "nssa", 64, 512)
    assert (
        rotate.loss_kwargs == {"margin": 9.0, "adversarial_temperature": 1.0}
        and rotate.label_smoothing == 0.0
    )
    # another loop kind than the model's: its loss settings do not apply, the optimiser settings do
    complex_slcwa = resolve_config(KGEConfig(model="complex", loop="slcwa"))
    assert (complex_slcwa.loss, complex_slcwa.num_negatives, complex_slcwa.lr) == ("softplus", 32, 3e-3)
    transe_lcwa = resolve_config(KGEConfig(model="transe", loop="lcwa"))
    assert (transe_lcwa.loss, transe_lcwa.num_negatives, transe_lcwa.loss_kwargs) == (
        "bce",
        None,
        {"label_smoothing": 0.1},
    )
    # the user's loss wins; a default smoothing is dropped for a loss without one
    soft = resolve_config(KGEConfig(model="complex", loss="softplus"))
    assert soft.loss_kwargs == {} and soft.label_smoothing == 0.0
    rot = resolve_config(KGEConfig(model="rotate", loss="margin_ranking"))
    assert rot.loss_kwargs == {}
    with pytest.raises(ValueError, match="label smoothing"):
        resolve_config(KGEConfig(model="transe", loss="nssa", label_smoothing=0.1))
    with pytest.raises(ValueError, match="loop"):
        resolve_config(KGEConfig(model="transe", loop="owa"))
    # a per-loop sub-dict of default_training applies to that loop
    custom = resolve_config(
        KGEConfig(model="x", loop="slcwa"),
        default_training={"loop": "lcwa", "lr": 0.1, "slcwa": {"lr": 0.5, "num_negatives": 7}},
    )
    assert (custom.lr, custom.num_negatives) == (0.5, 7)


def test_unknown_option() -> None:
    with pytest.raises(TypeError, match="learning_rate"):
        pipeline("umls", "distmult", learning_rate=0.1)


def test_deterministic(toy_dataset) -> None:
    a = pipeline(toy_dataset, "rotate", epochs=2, num_negatives=4, **SMALL)
    b = pipeline(toy_dataset, "rotate", epochs=2, num_negatives=4, **SMALL)
    assert a.losses == b.losses and a.metrics.metrics == b.metrics.metrics


@pytest.mark.realdata
def test_umls_by_name(shared_data: Path, tmp_path: Path) -> None:
    result = pipeline(
        "umls", "distmult", output_dir=tmp_path, data_dir=str(shared_data), epochs=5, lr=0.05, **SMALL
    )
    assert result.dataset.num_entities == 135 and len(result.losses) == 5
    assert result.losses[-1] < result.losses[0]
    assert result.metrics.metrics["both.realistic.mrr"] > 0.1  # random ranking gives about 0.04
    again = evaluate_run(tmp_path, data_dir=shared_data, split="valid")
    assert 0 < again.metrics["both.realistic.mrr"] <= 1
