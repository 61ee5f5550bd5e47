"""CPL's variants as configurations: config round trips, MINERVA and Two-Step runs, graph augmentation, sub-sampled
training graphs and what never leaks into the graph or the extractor."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

from kgreason.config import config_from_dict, config_to_dict
from kgreason.data.family import build_family_dataset
from kgreason.open import (
    VARIANTS,
    CPLConfig,
    FactExtractor,
    PCNNAttention,
    augmented_graph,
    build_bag_dataset,
    extracted_facts,
    load_cpl,
    select_threshold,
    train_cpl,
)
from kgreason.registry import UnknownNameError

sys.path.insert(0, str(Path(__file__).parent))
from test_collaboration import N, toy_config, toy_dataset  # noqa: E402


@pytest.fixture(scope="module")
def toy():  # type: ignore[no-untyped-def]
    torch.set_num_threads(1)
    return toy_dataset()


# ---- configs --------------------------------------------------------------------------------------------------


def test_variants_are_configurations() -> None:
    assert set(VARIANTS.names()) >= {
        "cpl",
        "minerva",
        "two_step",
        "no_adaptive_sampling",
        "no_replay",
        "frozen_extractor",
    }
    full = CPLConfig.for_variant("cpl")
    assert full.method == "cpl" and full.adaptive_sampling > 0 and full.replay and full.trains_extractor
    assert (
        CPLConfig.for_variant("minerva").method == "minerva"
        and not CPLConfig.for_variant("minerva").uses_text
    )
    assert CPLConfig.for_variant("two-step").method == "two_step"  # forgiving names
    assert CPLConfig.for_variant("no_adaptive_sampling").adaptive_sampling == 0
    assert not CPLConfig.for_variant("no_replay").replay
    frozen = CPLConfig.for_variant("frozen_extractor")
    assert frozen.freeze_extractor and not frozen.trains_extractor
    assert CPLConfig.for_variant("cpl", subsample=0.2).subsample == 0.2
    # switching variants keeps the other settings and undoes the previous variant
    cfg = CPLConfig.for_variant("no_replay", suggestions=3).with_variant("frozen_extractor")
    assert cfg.replay and cfg.freeze_extractor and cfg.suggestions == 3 and cfg.variant == "frozen_extractor"
    with pytest.raises(UnknownNameError, match="no_replay"):
        CPLConfig.for_variant("no_repaly")
    for bad in ({"subsample": 0.0}, {"method": "x"}, {"epochs": 5, "pretrain_epochs": 5}, {"suggestions": 0}):
        with pytest.raises(ValueError):
            CPLConfig(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rerank_weight"):  # CPL has no KGE reward model to re-rank with
        CPLConfig(reasoner={"rerank_weight": 1.0})  # type: ignore[arg-type]


def test_config_round_trips_through_json() -> None:
    cfg = CPLConfig.for_variant("two_step", subsample=0.4, two_step_thresholds=[0.2, 0.6])
    cfg.reasoner.beam_size = 7
    data = json.loads(json.dumps(config_to_dict(cfg)))
    back = config_from_dict(CPLConfig, data)
    assert back == cfg and back.reasoner.beam_size == 7


def test_schedules() -> None:
    cfg = CPLConfig(epochs=20, pretrain_epochs=5, adaptive_sampling=0.6, adaptive_sampling_epochs=3)
    assert [cfg.is_joint_epoch(e) for e in (5, 6)] == [False, True]
    assert [round(cfg.adaptive_sampling_at(e), 3) for e in (5, 6, 7, 8, 9)] == [0.0, 0.6, 0.4, 0.2, 0.0]
    assert CPLConfig.for_variant("minerva").adaptive_sampling_at(20) == 0.0


def test_select_threshold() -> None:
    assert select_threshold({0.1: 0.2, 0.5: 0.3, 0.7: 0.1}) == 0.5
    assert select_threshold({0.1: 0.3, 0.5: 0.3}) == 0.5  # ties: fewer added edges
    assert select_threshold({0.1: math.nan, 0.5: 0.01}) == 0.5
    with pytest.raises(ValueError):
        select_threshold({})


# ---- Two-Step's graph -------------------------------------------------------------------------------------------


def test_extracted_facts_and_augmented_graph(toy) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    bags = build_bag_dataset(toy.metadata["corpus"], toy)
    encoder = PCNNAttention.from_bag_dataset(bags, word_dim=8, position_dim=2, num_filters=16)
    held = torch.cat([toy.valid, toy.test])
    extractor = FactExtractor(encoder, bags, N, known_triples=torch.cat([toy.train, held])).eval()
    low, low_scores = extracted_facts(extractor, 0.0)
    high, _ = extracted_facts(extractor, 0.6)
    assert len(high) <= len(low) and (low[:, 1] < toy.num_relations).all()  # "no relation" is never a fact
    assert torch.all(low_scores[:-1] >= low_scores[1:])
    known = {tuple(x) for x in torch.cat([toy.train, held]).tolist()}
    assert not known & {tuple(x) for x in low.tolist()}
    graph = augmented_graph(toy.train, low, N, toy.num_relations, None, exclude=held)
    edges = {tuple(x) for x in graph.triples.tolist()}
    assert {tuple(x) for x in toy.train.tolist()} <= edges and {tuple(x) for x in low.tolist()} <= edges
    # evaluation triples never become edges, even when "extracted"
    forced = augmented_graph(toy.train, held, N, toy.num_relations, None, exclude=held)
    assert not {tuple(x) for x in held.tolist()} & {tuple(x) for x in forced.triples.tolist()}
    with pytest.raises(ValueError):
        extracted_facts(extractor, 1.5)


# ---- baseline runs ----------------------------------------------------------------------------------------------


def test_minerva_uses_no_text(toy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = train_cpl(toy, tmp_path, toy_config("minerva", epochs=4))
    assert result.agents.extractor is None and result.env.candidate_source is None
    assert not (tmp_path / "bags.pt").exists() and not (tmp_path / "extractor.pt").exists()
    assert result.history.metric("valid.tail.realistic.mrr")[0][0] == 3  # selection from the start
    assert not result.history.metric("train.text_path_share")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert "tail.realistic.mrr" in metrics and not any(k.startswith("head.") for k in metrics)
    loaded = load_cpl(tmp_path)
    assert loaded.source is None and loaded.agents.extractor is None


def test_two_step_tunes_the_threshold_on_valid(toy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = toy_config("two_step", epochs=4, two_step_thresholds=[0.0, 0.9])
    result = train_cpl(toy, tmp_path, cfg)
    search = result.two_step
    assert search is not None and set(search.valid) == {0.0, 0.9}
    assert search.threshold == select_threshold(search.valid)
    assert search.added[0.0] >= search.added[0.9]
    saved = json.loads((tmp_path / "two_step.json").read_text())
    assert saved["threshold"] == search.threshold and saved["metric"] == "valid.tail.realistic.mrr"
    # the chosen reasoner walks the augmented graph (training triples plus the facts of its threshold)
    graph = torch.load(tmp_path / "graph.pt", weights_only=True)["triples"]
    assert len(graph) >= len(torch.unique(toy.train, dim=0))
    assert result.env.candidate_source is None  # no text at inference beyond the added edges
    assert (tmp_path / "checkpoints" / f"threshold_{search.threshold:g}" / "checkpoint.pt").exists()
    assert result.metrics is not None


@pytest.mark.parametrize("added_queries", [True, False])
def test_two_step_added_facts_as_queries(toy, added_queries: bool) -> None:  # type: ignore[no-untyped-def]
    cfg = toy_config("two_step", epochs=2, two_step_thresholds=[0.0], two_step_added_queries=added_queries)
    result = train_cpl(toy, None, cfg, evaluate=False)
    assert result.two_step is not None and result.two_step.added[0.0] > 0
    queries = {tuple(x) for x in result.loop.triples.tolist()}
    graph = {tuple(x) for x in result.env.graph.triples.tolist()}
    train = {tuple(x) for x in toy.train.tolist()}
    assert queries <= graph and train <= queries
    assert (queries == train) is not added_queries  # the added facts are queries only when asked for


# ---- sub-sampled training graphs and leakage ------------------------------------------------------------------


def test_subsample_option_and_no_leakage() -> None:
    ds = build_family_dataset("tiny", with_corpus=True)
    cfg = CPLConfig.for_variant(
        "cpl",
        subsample=0.4,
        epochs=2,
        pretrain_epochs=1,
        extractor_pretrain_epochs=1,
        extractor_filters=8,
        extractor_word_dim=8,
        eval_every=1,
        device="cpu",
    )
    cfg.reasoner.embedding_dim = cfg.reasoner.history_dim = 8
    cfg.reasoner.num_steps = 2
    result = train_cpl(ds, None, cfg, evaluate=False)
    sub = result.dataset
    assert len(sub.train) == round(0.4 * len(ds.train)) and sub.metadata["subsample"]["fraction"] == 0.4
    held = {tuple(x) for x in torch.cat([ds.valid, ds.test]).tolist()}
    graph = {tuple(x) for x in result.env.graph.triples.tolist()}
    assert graph <= {tuple(x) for x in sub.train.tolist()} and not graph & held
    extractor = result.agents.extractor
    assert extractor is not None
    # distant-supervision labels come from the sub-sampled training graph only
    bags = extractor.bags
    labelled = {
        (int(h), r, int(t))
        for (h, t), row in zip(bags.pairs.tolist(), bags.labels.tolist())
        for r, on in enumerate(row[:-1])
        if on
    }
    assert labelled <= {tuple(x) for x in sub.train.tolist()}
    # held-out triples (and their inverses) are never suggested, at any k
    s = extractor.suggest(torch.arange(sub.num_entities), k=10_000)
    R = sub.num_relations
    suggested = set()
    for e in range(sub.num_entities):
        for r, t, m in zip(s.relations[e].tolist(), s.targets[e].tolist(), s.mask[e].tolist()):
            if m:
                suggested.add((e, r, t) if r < R else (t, r - R, e))
    assert not suggested & held
