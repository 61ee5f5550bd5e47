"""The JSON configs shipped in examples/configs/ run through the CLI as documented (docs/reasoning.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from kgreason.cli import cli

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "configs"


def test_examples_exist() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.json")) == [
        "conve-reward-kinship.json",
        "conve-reward-umls.json",
    ]


@pytest.mark.parametrize("name", ["conve-reward-umls.json", "conve-reward-kinship.json"])
def test_reward_recipe_trains_with_early_stopping_on_tail_mrr(
    name: str, tmp_path: Path, shared_data: Path
) -> None:
    recipe = json.loads((EXAMPLES / name).read_text())
    out_dir = tmp_path / "run"
    args = "train kge --dataset nations --epochs 2 --eval-every 1 --batch-size 64 --embedding-dim 40".split()
    args += ["--device", "cpu", "--config", str(EXAMPLES / name), "--output-dir", str(out_dir)]
    result = CliRunner().invoke(
        cli, args, env={"KGREASON_DATA_DIR": str(shared_data)}, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((out_dir / "config.json").read_text())
    assert saved["model"] == "conve" and saved["loop"] == "lcwa"  # ConvE's own defaults fill the rest
    assert saved["early_stopping"] is True and saved["early_stopping_metric"] == "tail.realistic.mrr"
    assert saved["patience"] == recipe["patience"] == 50
    assert saved["model_kwargs"].get("embedding_dropout") == recipe.get("model_kwargs", {}).get(
        "embedding_dropout"
    )
    history = (out_dir / "losses.csv").read_text()
    assert "valid.tail.realistic.mrr" in history  # evaluated on valid, the stopper's metric recorded
    assert (out_dir / "checkpoints" / "best_weights.pt").exists()
