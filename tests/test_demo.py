"""The main job (``kgreason demo``) end to end on the tiny family data, and how it prints explained answers."""

from __future__ import annotations

import json
from pathlib import Path

from kgreason.demo import DemoConfig, _distinct_queries, run_demo
from kgreason.open import ExplainedAnswer, SupportingSentence
from kgreason.open.trainer import TextEvidence
from kgreason.reasoning.paths import Path as WalkPath
from kgreason.reasoning.paths import PathStep


def test_demo_runs_every_step_and_explains_distinct_queries(tmp_path: Path) -> None:
    lines: list[str] = []
    cfg = DemoConfig(size="tiny", kge_epochs=2, walker_epochs=2, cpl_epochs=3, explain_queries=2)
    summary = run_demo(tmp_path, cfg, echo=lines.append)
    assert set(summary) == {"kge", "walker", "minerva", "cpl"}
    for metrics in summary.values():
        assert set(metrics) == {"mrr", "hits_at_1", "hits_at_10"}
        assert 0.0 < metrics["mrr"] <= 1.0
    for step in ("kge", "walker", "minerva", "cpl"):
        assert (tmp_path / step / "metrics.json").exists() and (tmp_path / step / "config.json").exists()
    assert json.loads((tmp_path / "demo_config.json").read_text())["size"] == "tiny"
    queries = [line for line in lines if "held-out answer(s):" in line]
    assert len(queries) == 2 and len(set(queries)) == 2  # two different (head, relation) queries
    assert any(line.strip().startswith("1. ") for line in lines)
    assert lines[-1].strip().startswith("demo finished in")


def test_distinct_queries_group_all_answers_of_a_query() -> None:
    triples = [[0, 1, 5], [0, 1, 6], [2, 1, 7], [0, 1, 8], [3, 0, 9]]
    assert _distinct_queries(triples, 2) == [((0, 1), [5, 6, 8]), ((2, 1), [7])]
    assert _distinct_queries(triples, 0) == []


def test_an_edge_walked_twice_is_quoted_once() -> None:
    sentence = SupportingSentence(sentence_id=3, text="Fiona is the daughter of Isaac.", weight=1.0)
    there = TextEvidence(0, "fiona", "daughter_of", "isaac", [sentence])
    back = TextEvidence(1, "fiona", "daughter_of", "isaac", [sentence])
    other = TextEvidence(1, "isaac", "father_of", "fiona", [])
    path = WalkPath(source=0, steps=[PathStep(1, 2, 0.5, 1), PathStep(1, 0, 0.5, 1)], log_prob=-1.4, text="p")
    answer = ExplainedAnswer(
        entity=0, score=0.25, paths=[path], label="fiona", evidence=[[there, back, other]]
    )
    text = str(answer)
    assert text.count("Fiona is the daughter of Isaac.") == 1
    assert "isaac --father_of[text]--> fiona: (no sentence)" in text
