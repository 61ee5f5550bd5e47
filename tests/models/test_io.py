import json
from pathlib import Path

import pytest
import torch
from kge_helpers import NUM_ENTITIES, make_model, random_triples

from kgreason.models import ModelFileError, load_model, save_model


def test_round_trip_gives_identical_scores(model_name: str, tmp_path: Path) -> None:
    model = make_model(model_name, regularizer="lp", regularizer_kwargs={"weight": 0.01})
    with torch.no_grad():  # move away from the initial values (and batch-norm statistics)
        model.train()
        model.score_t(random_triples(16)[:, :2])
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.eval()
    save_model(model, tmp_path / "run")
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["name"] == model_name and meta["class"] == type(model).__name__
    assert meta["kwargs"]["regularizer"] == "lp"
    loaded = load_model(tmp_path / "run", map_location="cpu")
    assert type(loaded) is type(model) and not loaded.training
    assert loaded.config == model.config
    hrt = random_triples(5)
    with torch.no_grad():
        for method, arg in (("score_t", hrt[:, :2]), ("score_h", hrt[:, 1:]), ("score_r", hrt[:, [0, 2]])):
            assert torch.equal(getattr(loaded, method)(arg), getattr(model, method)(arg))


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"model\.json: file not found"):
        load_model(tmp_path)
    save_model(make_model("distmult"), tmp_path)
    (tmp_path / "model.pt").unlink()
    with pytest.raises(ModelFileError, match=r"model\.pt: file not found"):
        load_model(tmp_path)


def test_corrupt_files_are_named(tmp_path: Path) -> None:
    save_model(make_model("transe"), tmp_path)
    (tmp_path / "model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelFileError, match=r"model\.pt: cannot read the state dict"):
        load_model(tmp_path)
    (tmp_path / "model.json").write_text("{broken")
    with pytest.raises(ModelFileError, match=r"model\.json: not a readable model description"):
        load_model(tmp_path)
    (tmp_path / "model.json").write_text("[1, 2]")
    with pytest.raises(ModelFileError, match=r"model\.json: expected a JSON object"):
        load_model(tmp_path)


def test_unknown_name_is_named(tmp_path: Path) -> None:
    save_model(make_model("complex"), tmp_path)
    meta = json.loads((tmp_path / "model.json").read_text())
    meta["name"] = "complx"
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match=r"model\.json: Unknown model 'complx'.*Did you mean: 'complex'"):
        load_model(tmp_path)


def test_weights_that_do_not_fit_the_config(tmp_path: Path) -> None:
    save_model(make_model("distmult"), tmp_path)
    meta = json.loads((tmp_path / "model.json").read_text())
    meta["kwargs"]["num_entities"] = NUM_ENTITIES + 1
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match=r"model\.pt: weights do not fit model\.json"):
        load_model(tmp_path)
    meta["kwargs"]["bogus"] = 1
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="cannot build model 'distmult'"):
        load_model(tmp_path)


def test_save_is_atomic_and_leaves_no_temporaries(tmp_path: Path) -> None:
    save_model(make_model("rotate"), tmp_path)
    save_model(make_model("rotate", seed=1), tmp_path)  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.pt"]
