"""The command line: commands, shared options, friendly errors, run directories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from kgreason.cli import cli


def run(args: list[str], data_dir: Path | None = None) -> tuple[int, str]:
    env = {"KGREASON_DATA_DIR": str(data_dir)} if data_dir else {}
    result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    return result.exit_code, result.output


def test_help_lists_commands() -> None:
    code, out = run(["--help"])
    assert code == 0
    for command in ("datasets", "train", "evaluate"):
        assert command in out


def test_train_commands_share_options() -> None:
    code, out = run(["train", "kge", "--help"])
    assert code == 0
    for flag in ("--dataset", "--output-dir", "--config", "--epochs", "--batch-size", "--seed", "--device"):
        assert flag in out


def test_datasets_list_and_info(shared_data: Path) -> None:
    code, out = run(["datasets", "list"], shared_data)
    assert code == 0 and "umls" in out and "family" in out
    code, out = run(["datasets", "info", "nations"], shared_data)
    assert code == 0 and "14" in out and "to-many" in out


def test_unknown_dataset_suggests(shared_data: Path) -> None:
    code, out = run(["datasets", "info", "umsl"], shared_data)
    assert code != 0 and "umls" in out


def test_train_kge_writes_run_dir_then_evaluate(tmp_path: Path, shared_data: Path) -> None:
    out_dir = tmp_path / "run"
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"lr": 0.01, "epochs": 50}))
    code, out = run(
        [
            "train",
            "kge",
            "--dataset",
            "nations",
            "--model",
            "distmult",
            "--config",
            str(cfg),
            "--epochs",
            "3",
            "--output-dir",
            str(out_dir),
            "--seed",
            "1",
            "--device",
            "cpu",
        ],
        shared_data,
    )
    assert code == 0, out
    saved = json.loads((out_dir / "config.json").read_text())
    assert saved["epochs"] == 3 and saved["lr"] == 0.01 and saved["seed"] == 1  # flag > file > default
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert 0.0 < metrics["both.realistic.mrr"] <= 1.0
    for name in ("entities.json", "relations.json", "losses.csv", "model.pt"):
        assert (out_dir / name).exists(), name
    code, out = run(["evaluate", str(out_dir), "--split", "test"], shared_data)
    assert code == 0 and "both" in out
    again = json.loads((out_dir / "metrics_test.json").read_text())
    assert abs(again["both.realistic.mrr"] - metrics["both.realistic.mrr"]) < 1e-6


def test_bad_config_file_names_line(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.json"
    cfg.write_text('{\n "lr": 0.1,\n}')
    code, out = run(
        ["train", "kge", "--dataset", "nations", "--config", str(cfg), "--output-dir", str(tmp_path / "r")]
    )
    assert code != 0 and "bad.json, line 3" in out


def test_unknown_model_suggests(tmp_path: Path, shared_data: Path) -> None:
    code, out = run(
        ["train", "kge", "--dataset", "nations", "--model", "complx", "--output-dir", str(tmp_path / "r")],
        shared_data,
    )
    assert code != 0 and "complex" in out


def test_train_walker_and_explain(tmp_path: Path, shared_data: Path) -> None:
    kge = tmp_path / "kge"
    code, out = run(
        [
            "train",
            "kge",
            "--dataset",
            "nations",
            "--model",
            "distmult",
            "--epochs",
            "2",
            "--output-dir",
            str(kge),
        ],
        shared_data,
    )
    assert code == 0, out
    cfg = tmp_path / "walker.json"
    small = {
        "embedding_dim": 16,
        "history_dim": 16,
        "history_layers": 1,
        "num_rollouts": 2,
        "beam_size": 8,
        "num_steps": 2,
        "eval_every": 1,
        "eval_batch_size": 64,
    }
    cfg.write_text(json.dumps(small))
    walker = tmp_path / "walker"
    code, out = run(
        [
            "train",
            "walker",
            "--dataset",
            "nations",
            "--reward-model",
            str(kge),
            "--config",
            str(cfg),
            "--epochs",
            "1",
            "--action-dropout",
            "0.1",
            "--rerank-weight",
            "0.5",
            "--reward-calibration",
            "platt",
            "--output-dir",
            str(walker),
        ],
        shared_data,
    )
    assert code == 0, out
    saved = json.loads((walker / "config.json").read_text())
    assert saved["action_dropout"] == 0.1 and saved["reward_shaping"] is True and saved["embedding_dim"] == 16
    assert saved["rerank_weight"] == 0.5 and saved["reward_calibration"] == "platt"
    assert (walker / "reward_calibration.json").exists()
    assert "tail.realistic.mrr" in json.loads((walker / "metrics.json").read_text())
    entities = json.loads((walker / "entities.json").read_text())
    relations = json.loads((walker / "relations.json").read_text())
    code, out = run(["explain", str(walker), "--head", entities[0], "--relation", relations[0], "--top", "2"])
    assert code == 0, out
    assert out.startswith(f"({entities[0]}, {relations[0]}, ?)") and "1. " in out and "--" in out
    code, out = run(["explain", str(walker), "--head", entities[0], "--relation", relations[0], "--json"])
    assert code == 0 and json.loads(out)["answers"]
    code, out = run(["explain", str(walker), "--head", entities[0] + "x", "--relation", relations[0]])
    assert code != 0 and "Did you mean" in out and entities[0] in out
    # `kgreason evaluate` re-evaluates a walker run as its training did (re-ranking and calibration included)
    code, out = run(["evaluate", str(walker), "--split", "test", "--by", "relation"], shared_data)
    assert code == 0, out
    saved_metrics = json.loads((walker / "metrics.json").read_text())
    again = json.loads((walker / "metrics_test.json").read_text())
    assert again["tail.realistic.mrr"] == pytest.approx(saved_metrics["tail.realistic.mrr"], abs=1e-9)
    assert "head.realistic.mrr" not in again  # the run's eval_sides: tail only
    assert f"{relations[0]} " in out and "tail MRR" in out  # one row per relation, by label
    code, out = run(["evaluate", str(walker), "--sides", "both", "--no-save", "--by", "seen"], shared_data)
    assert code == 0 and "both" in out and "seen" in out, out


def test_walker_needs_reward_model_or_flag(tmp_path: Path, shared_data: Path) -> None:
    code, out = run(
        ["train", "walker", "--dataset", "nations", "--output-dir", str(tmp_path / "w")], shared_data
    )
    assert code != 0 and "--reward-model" in out


def test_set_pairs_sit_between_config_file_and_flags(tmp_path: Path, shared_data: Path) -> None:
    out_dir = tmp_path / "run"
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"lr": 0.01, "epochs": 50, "model_kwargs": {"embedding_dim": 16}}))
    args = ["train", "kge", "--dataset", "nations", "--model", "distmult", "--config", str(cfg)]
    args += ["--set", "lr=0.02", "--set", "epochs=9", "--epochs", "2", "--set", "early_stopping=false"]
    args += ["--set", "model_kwargs.entity_initializer=xavier_normal_per_row", "--set", "eval_split=valid"]
    code, out = run([*args, "--output-dir", str(out_dir), "--device", "cpu"], shared_data)
    assert code == 0, out
    saved = json.loads((out_dir / "config.json").read_text())
    assert saved["lr"] == 0.02 and saved["epochs"] == 2  # --set over the file, the named flag over --set
    assert saved["early_stopping"] is False and saved["eval_split"] == "valid"  # JSON, then plain strings
    # a dotted key sets one entry of the file's dict and keeps the others
    assert saved["model_kwargs"] == {"embedding_dim": 16, "entity_initializer": "xavier_normal_per_row"}


def test_set_errors_name_the_pair_and_suggest_keys(tmp_path: Path, shared_data: Path) -> None:
    base = [
        "train",
        "kge",
        "--dataset",
        "nations",
        "--model",
        "distmult",
        "--output-dir",
        str(tmp_path / "r"),
    ]
    code, out = run([*base, "--set", "lr"], shared_data)
    assert code != 0 and "--set 'lr': expected KEY=VALUE" in out
    code, out = run([*base, "--set", "lr=0.1", "--set", "lr.x=1"], shared_data)
    assert code != 0 and "cannot set 'lr.x': 'lr' is 0.1, not a mapping" in out
    code, out = run([*base, "--set", "epoch=3"], shared_data)
    assert code != 0 and "Unknown pipeline option keys: epoch (did you mean epochs?)" in out
    code, out = run(["train", "walker", "--dataset", "nations", "--no-reward-shaping", "--set", "lr_sheduler=x",
                     "--output-dir", str(tmp_path / "w")], shared_data)  # fmt: skip
    assert code != 0 and "lr_sheduler (did you mean lr_scheduler" in out


def test_set_dotted_key_keeps_the_rest_of_a_config_dict(tmp_path: Path) -> None:
    """``--set lr_scheduler_kwargs.patience=9`` over a config file's schedule changes one entry of it; the
    umls preset's other values stay."""
    from kgreason.cli import collect_overrides, walker_base, walker_config

    schedule = {"mode": "max", "factor": 0.3, "patience": 4, "min_lr": 1e-5}
    config_file = tmp_path / "plateau.json"
    config_file.write_text(json.dumps({"lr_scheduler": "ReduceLROnPlateau", "lr_scheduler_kwargs": schedule}))
    values = collect_overrides(
        config_file,
        ("lr_scheduler_kwargs.patience=9", "lr=0.003"),
        base=walker_base("umls", "-ad"),
        epochs=None,
    )
    cfg = walker_config(values, "-ad")
    assert cfg.lr_scheduler == "ReduceLROnPlateau"
    assert cfg.lr_scheduler_kwargs == {**schedule, "patience": 9}
    assert cfg.lr == 0.003 and cfg.action_dropout == 0.0 and cfg.num_steps == 2 and cfg.max_actions == 400


def test_evaluate_kge_run_by_relation_type_and_errors(tmp_path: Path, shared_data: Path) -> None:
    out_dir = tmp_path / "run"
    args = ["train", "kge", "--dataset", "nations", "--model", "distmult", "--epochs", "1", "--output-dir"]
    code, out = run([*args, str(out_dir)], shared_data)
    assert code == 0, out
    code, out = run(
        ["evaluate", str(out_dir), "--no-save", "--by", "relation_type", "--sides", "tail"], shared_data
    )
    assert code == 0, out
    assert "to-many" in out and "head" not in out.split("\n")[0]  # tail side only
    code, out = run(["evaluate", str(tmp_path)], shared_data)
    assert code != 0 and "no config.json" in out
