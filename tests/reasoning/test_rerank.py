"""Re-ranking the beam's answers by the reward model (``WalkerConfig.rerank_weight``)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from kgreason.cli import cli
from kgreason.data import Dataset
from kgreason.data.graph import ActionGraph
from kgreason.models import MODELS, save_model
from kgreason.reasoning.beam_search import WalkerScorer, beam_search, rerank
from kgreason.reasoning.config import WalkerConfig
from kgreason.reasoning.environment import Queries, WalkEnvironment
from kgreason.reasoning.policy import WalkerPolicy
from kgreason.reasoning.reward import RewardShaper
from kgreason.reasoning.trainer import explain, load_walker, train_walker

E, R = 7, 2
TRIPLES = torch.tensor([[0, 0, 1], [0, 1, 2], [1, 0, 3], [2, 0, 3], [2, 1, 4], [3, 1, 5], [1, 1, 4]])


def setup() -> tuple[WalkerPolicy, WalkEnvironment, RewardShaper]:
    torch.manual_seed(3)
    policy = WalkerPolicy(E, R, embedding_dim=8, history_dim=8, history_layers=2).eval()
    env = WalkEnvironment(ActionGraph.from_triples(TRIPLES, E, R), num_steps=2)
    kge = MODELS.make("distmult", num_entities=E, num_relations=R, embedding_dim=8)
    return policy, env, RewardShaper(kge, num_relations=R)


def test_log_scores_are_log_sigmoid_of_every_entity_forward_and_inverse() -> None:
    _, _, shaper = setup()
    sources, relations = torch.tensor([0, 3]), torch.tensor([1, 0 + R])
    got = shaper.log_scores(sources, relations)
    assert got.shape == (2, E)
    every = torch.arange(E).expand(2, E)
    assert torch.allclose(got, shaper(sources, relations, every).log(), atol=1e-5)


def test_rerank_orders_reached_answers_and_keeps_unreached_out() -> None:
    policy, env, _ = setup()
    queries = Queries(torch.tensor([0, 1]), torch.tensor([0, 1]))
    res = beam_search(policy, env, queries, beam_size=3, return_trace=True)
    reached = torch.isfinite(res.scores)
    assert (reached.sum(1) == 3).all() and (~reached).any()
    assert rerank(res, torch.zeros(2, E), 0.0) is res
    # a reranker that prefers high entity ids, strongly: the reached answers come out sorted by id
    prefer = torch.arange(E, dtype=torch.float32).expand(2, E) * 100.0
    out = rerank(res, prefer, 1.0)
    for row in range(2):
        ids = [e for e in res.entities[row].tolist() if e >= 0]
        assert out.entities[row].tolist() == sorted(ids, reverse=True)
        for e in range(E):
            if reached[row, e]:
                assert out.scores[row, e].item() == pytest.approx(res.scores[row, e].item() + 100.0 * e)
            else:
                assert out.scores[row, e].item() == -math.inf  # never reached: no path, no rank
    assert out.entity_scores.tolist() == out.scores.gather(1, out.entities).tolist()
    assert out.steps is res.steps  # the paths are unchanged
    with pytest.raises(ValueError, match="shape"):
        rerank(res, torch.zeros(2, E + 1), 1.0)
    with pytest.raises(ValueError, match=">= 0"):
        rerank(res, prefer, -1.0)


def test_scorer_adds_weighted_reward_log_scores_on_both_sides() -> None:
    policy, env, shaper = setup()
    plain = WalkerScorer(policy, env, beam_size=4)
    reranked = WalkerScorer(policy, env, beam_size=4, reranker=shaper, rerank_weight=0.5)
    hr = torch.tensor([[0, 0], [2, 1]])
    base, got = plain.score_t(hr), reranked.score_t(hr)
    expected = base + 0.5 * shaper.log_scores(hr[:, 0], hr[:, 1])
    assert torch.equal(torch.isfinite(got), torch.isfinite(base))
    assert torch.allclose(got[torch.isfinite(got)], expected[torch.isfinite(base)], atol=1e-5)
    # head queries are decoded as inverse tail queries and re-ranked with the model's head scores
    rt = torch.tensor([[0, 3]])
    head_base, head = plain.score_h(rt), reranked.score_h(rt)
    with torch.no_grad():
        shaper.model.eval()
        model_head = torch.nn.functional.logsigmoid(shaper.model.score_h(rt))
    fin = torch.isfinite(head_base)
    assert torch.allclose(head[fin], (head_base + 0.5 * model_head)[fin], atol=1e-5)
    with pytest.raises(ValueError, match="reranker"):
        WalkerScorer(policy, env, beam_size=4, rerank_weight=1.0)


def _config(**overrides: object) -> WalkerConfig:
    values: dict[str, object] = dict(
        dataset="rule", num_steps=2, num_rollouts=8, max_actions=None, embedding_dim=16, history_dim=16,
        history_layers=1, action_dropout=0.3, reward_shaping=False, batch_size=32, lr=0.01, epochs=2,
        eval_every=0, beam_size=8, eval_batch_size=16, seed=0, device="cpu",
    )  # fmt: skip
    values.update(overrides)
    return WalkerConfig(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, make_rule_dataset) -> tuple[Dataset, Path, Path, Path]:  # type: ignore[no-untyped-def]
    """A reward model, a walker run that re-ranks with it, and one without a reward model."""
    ds = make_rule_dataset()
    root = tmp_path_factory.mktemp("rerank")
    torch.manual_seed(0)
    kge = MODELS.make(
        "distmult", num_entities=ds.num_entities, num_relations=ds.num_relations, embedding_dim=8
    )
    save_model(kge, root / "rm")
    train_walker(ds, root / "rm", root / "walker", _config(rerank_weight=2.0, beam_size=40))
    train_walker(ds, None, root / "plain", _config())
    return ds, root / "rm", root / "walker", root / "plain"


def test_a_run_with_rerank_weight_evaluates_and_explains_reranked(
    runs: tuple[Dataset, Path, Path, Path],
) -> None:
    ds, rm, run, _ = runs
    walker = load_walker(run)
    assert walker.rerank_weight == 2.0 and walker.reranker is not None
    # the run's metrics are those of the re-ranked scorer
    from kgreason.evaluation import evaluate_dataset

    key = "tail.realistic.mrr"
    again = evaluate_dataset(walker.scorer(), ds, "test", ("tail",), batch_size=16).metrics[key]
    unranked = load_walker(run, rerank_weight=0.0)
    assert unranked.reranker is None
    plain_mrr = evaluate_dataset(unranked.scorer(), ds, "test", ("tail",), batch_size=16).metrics[key]
    saved = json.loads((run / "metrics.json").read_text())[key]
    assert saved == pytest.approx(again, abs=1e-6) and saved != pytest.approx(plain_mrr, abs=1e-4)
    x = int(ds.test[0, 0])
    ranked = explain(run, f"e{x}", "r2", top_k=5)
    plain = explain(run, f"e{x}", "r2", top_k=5, rerank_weight=0.0)
    assert [a.score for a in ranked] == sorted((a.score for a in ranked), reverse=True)
    shaper = RewardShaper.from_run_dir(rm, num_relations=ds.num_relations)
    log_f = shaper.log_scores(torch.tensor([x]), torch.tensor([2]))[0]
    by_entity = {a.entity: a for a in plain}
    for a in ranked:  # same answers, same paths; score = path log-prob + 2 * log sigmoid f
        if a.entity in by_entity:
            assert a.score == pytest.approx(
                by_entity[a.entity].score + 2.0 * float(log_f[a.entity]), abs=1e-4
            )
            assert a.paths[0].text == by_entity[a.entity].paths[0].text


def test_rerank_weight_needs_a_reward_model(runs: tuple[Dataset, Path, Path, Path], rule_ds: Dataset) -> None:
    _, _, _, plain = runs
    with pytest.raises(ValueError, match="pass reward_model_dir"):
        train_walker(rule_ds, None, None, _config(rerank_weight=1.0))
    with pytest.raises(ValueError, match="needs a reward model"):
        load_walker(plain, rerank_weight=1.0)
    with pytest.raises(ValueError, match="rerank_weight must be"):
        _config(rerank_weight=-0.5)


def test_resuming_with_another_rerank_weight_is_allowed(
    runs: tuple[Dataset, Path, Path, Path], tmp_path: Path
) -> None:
    ds, rm, original, _ = runs
    run = tmp_path / "copy"
    shutil.copytree(original, run)
    again = train_walker(ds, rm, run, _config(rerank_weight=0.5, beam_size=40), evaluate=False)
    assert again.loop.epoch == 2 and again.scorer().rerank_weight == 0.5


def test_cli_explain_rerank_weight(runs: tuple[Dataset, Path, Path, Path]) -> None:
    ds, _, run, plain = runs
    x = int(ds.test[0, 0])
    ok = CliRunner().invoke(
        cli, ["explain", str(run), "--head", f"e{x}", "--relation", "r2", "--rerank-weight", "1"]
    )
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith(f"(e{x}, r2, ?)")
    bad = CliRunner().invoke(
        cli, ["explain", str(plain), "--head", f"e{x}", "--relation", "r2", "--rerank-weight", "1"]
    )
    assert bad.exit_code != 0 and "needs a reward model" in bad.output
