"""End-to-end CPL runs on the built-in family data (tiny): run directory, baselines, explain with text edges."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from kgreason.cli import cli
from kgreason.data.family import build_family_dataset
from kgreason.open import CPLConfig, explain_cpl, load_cpl, train_cpl


@pytest.fixture(scope="module")
def tiny():
    ds = build_family_dataset("tiny", seed=0, with_corpus=True)
    ds.name = "family"
    return ds


def small(variant: str) -> CPLConfig:
    cfg = CPLConfig.for_variant(variant, subsample=0.5, seed=0, device="cpu")
    reasoner = dataclasses.replace(
        cfg.reasoner, embedding_dim=16, history_dim=16, num_rollouts=4, beam_size=16
    )
    return dataclasses.replace(
        cfg, reasoner=reasoner, epochs=3, pretrain_epochs=1, extractor_pretrain_epochs=1, eval_every=1
    )


def test_cpl_run_dir_metrics_and_explain(tmp_path: Path, tiny) -> None:
    result = train_cpl(tiny, tmp_path / "cpl", small("cpl"))
    for name in ("config.json", "entities.json", "relations.json", "metrics.json", "losses.csv"):
        assert (tmp_path / "cpl" / name).exists(), name
    metrics = json.loads((tmp_path / "cpl" / "metrics.json").read_text())
    assert 0.0 < metrics["tail.realistic.mrr"] <= 1.0
    # the training graph never holds valid/test facts (nor their inverses)
    train_keys = {tuple(t) for t in result.dataset.train.tolist()}
    assert not train_keys & {tuple(t) for t in torch.cat([tiny.valid, tiny.test]).tolist()}
    h, r, _ = result.dataset.test[0].tolist()
    answers = explain_cpl(tmp_path / "cpl", tiny.entities.label(h), tiny.relations.label(r), top_k=3)
    assert 1 <= len(answers) <= 3
    assert all(a.paths and a.paths[0].text.startswith(tiny.entities.label(h)) for a in answers)


def test_minerva_baseline_uses_no_text(tmp_path: Path, tiny) -> None:
    cfg = small("minerva")
    assert not cfg.uses_text
    result = train_cpl(tiny, None, cfg)
    assert result.metrics is not None and 0.0 < result.metrics["tail.realistic.mrr"] <= 1.0


def test_variants_are_plain_configs() -> None:
    assert CPLConfig.for_variant("no_replay").replay is False
    assert CPLConfig.for_variant("frozen_extractor").freeze_extractor is True
    assert CPLConfig.for_variant("no_adaptive_sampling").adaptive_sampling == 0.0
    assert CPLConfig.for_variant("two_step").method == "two_step"


def test_reasoner_masks_are_honoured(tmp_path: Path, tiny) -> None:
    # CPL decodes over every edge by default (as MINERVA's and CPL's test code)
    assert small("cpl").reasoner.mask_known_answers is False
    cfg = small("cpl")
    cfg = dataclasses.replace(
        cfg,
        reasoner=dataclasses.replace(cfg.reasoner, mask_known_answers=True, mask_no_op_on_known_answers=True),
    )
    result = train_cpl(tiny, tmp_path / "cpl", cfg)
    assert result.env.mask_no_op_on_known_answers and result.scorer().mask_known_answers
    run = load_cpl(tmp_path / "cpl")
    assert run.env.mask_no_op_on_known_answers
    walker = run.walker()
    ent, rel = tiny.entities, tiny.relations
    checked = 0
    for h, r, t in result.dataset.train[:40].tolist():
        everything = explain_cpl(run, ent.label(h), rel.label(r), top_k=len(ent), include_known=True)
        by_edge = [
            p
            for a in everything
            if a.label == ent.label(t)
            for p in a.paths
            if walker.relation_label(p.steps[-1].relation) != "NO_OP"
        ]
        if not by_edge:
            continue
        checked += 1
        default = explain_cpl(run, ent.label(h), rel.label(r), top_k=len(ent))
        last = [
            walker.relation_label(p.steps[-1].relation)
            for a in default
            if a.label == ent.label(t)
            for p in a.paths
        ]
        assert all(name == "NO_OP" for name in last), (h, r, t, last)
    assert checked > 0
    # the CLI's --include-known reaches CPL runs too
    h, r, _ = result.dataset.train[0].tolist()
    args = [
        "explain",
        str(tmp_path / "cpl"),
        "--head",
        ent.label(h),
        "--relation",
        rel.label(r),
        "--top",
        "3",
    ]
    out = CliRunner().invoke(cli, [*args, "--include-known", "--json"])
    assert out.exit_code == 0, out.output
    labels = [a["label"] for a in json.loads(out.output)["answers"]]
    expected = explain_cpl(run, ent.label(h), rel.label(r), top_k=3, include_known=True)
    assert labels == [a.label for a in expected]


def test_cli_evaluate_reproduces_a_cpl_run(tmp_path: Path, shared_data: Path) -> None:
    """A run trained on a generated dataset records its generated name (``family-tiny``), which loads again."""
    ds = build_family_dataset("tiny", seed=0, with_corpus=True)
    assert ds.name == "family-tiny"
    train_cpl(ds, tmp_path / "cpl", small("cpl"))
    saved = json.loads((tmp_path / "cpl" / "metrics.json").read_text())
    env = {"KGREASON_DATA_DIR": str(shared_data)}
    out = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "cpl"), "--by", "seen"], env=env)
    assert out.exit_code == 0, out.output
    again = json.loads((tmp_path / "cpl" / "metrics_test.json").read_text())
    assert again["tail.realistic.mrr"] == pytest.approx(saved["tail.realistic.mrr"], abs=1e-9)
    rows = [line.split() for line in out.output.split("\n\n", 1)[1].splitlines()[1:]]
    assert {r[0] for r in rows} <= {"seen", "unseen"} and sum(int(r[1]) for r in rows) == len(ds.test)
    out = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "cpl"), "--sides", "both"], env=env)
    assert out.exit_code != 0 and "tail queries only" in out.output
