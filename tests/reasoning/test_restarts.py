"""Best-of-K starts (``WalkerConfig.restarts``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_trainer import small_config  # tests/reasoning is on sys.path (rootdir-relative imports)

from kgreason.data import Dataset
from kgreason.reasoning import train_walker
from kgreason.reasoning.restarts import RestartsMismatchError

KEY = "valid.tail.realistic.mrr"


def test_restarts_continue_the_best_candidate(tmp_path: Path, rule_ds: Dataset) -> None:
    torch.set_num_threads(1)
    cfg = small_config(epochs=4, eval_every=2, restarts=3, restart_epochs=2, seed=5)
    result = train_walker(rule_ds, None, tmp_path, cfg, evaluate=False)
    record = json.loads((tmp_path / "restarts.json").read_text())
    assert [c["seed"] for c in record["candidates"]] == [5, 6, 7]
    values = {c["seed"]: c[KEY] for c in record["candidates"]}
    best = max(values, key=lambda s: values[s])
    assert record["chosen_seed"] == best and result.config.seed == best
    assert json.loads((tmp_path / "config.json").read_text())["seed"] == best
    # each candidate is a run directory whose last validation value is what was compared
    for seed in values:
        cand = json.loads((tmp_path / "restarts" / f"seed-{seed}" / "config.json").read_text())
        assert cand["seed"] == seed and cand["epochs"] == 2 and cand["restarts"] == 1
    # the main run continued the chosen candidate: its first 2 epochs are the candidate's, then 2 more
    assert result.loop.epoch == 4
    history = result.loop.history.metric(KEY)
    assert history[0] == (2, pytest.approx(values[best]))
    assert [e for e, _ in history] == [2, 4]
    # the chosen candidate continued is the same as training that seed for 4 epochs in one go
    alone = train_walker(
        rule_ds, None, tmp_path / "alone", small_config(epochs=4, eval_every=2, seed=best), evaluate=False
    )
    assert alone.losses == result.losses


def test_restarts_resume_reads_the_choice_back(tmp_path: Path, rule_ds: Dataset) -> None:
    torch.set_num_threads(1)
    cfg = small_config(epochs=2, eval_every=2, restarts=2, restart_epochs=2, seed=0)
    first = train_walker(rule_ds, None, tmp_path, cfg, evaluate=False)
    more = train_walker(
        rule_ds,
        None,
        tmp_path,
        small_config(epochs=4, eval_every=2, restarts=2, restart_epochs=2, seed=0),
        evaluate=False,
    )
    assert more.config.seed == first.config.seed and more.losses[:2] == first.losses and more.loop.epoch == 4
    with pytest.raises(RestartsMismatchError, match="restarts.json"):
        train_walker(
            rule_ds,
            None,
            tmp_path,
            small_config(epochs=4, eval_every=2, restarts=3, restart_epochs=2),
            evaluate=False,
        )


def test_restarts_need_a_run_directory_and_evaluations(tmp_path: Path, rule_ds: Dataset) -> None:
    with pytest.raises(ValueError, match="output directory"):
        train_walker(rule_ds, None, None, small_config(restarts=2), evaluate=False)
    with pytest.raises(ValueError, match="eval_every"):
        train_walker(
            rule_ds, None, tmp_path, small_config(restarts=2, restart_epochs=3, eval_every=2), evaluate=False
        )
    with pytest.raises(ValueError, match="restarts"):
        small_config(restarts=0)


def _forget_keys(run_dir: Path, keys: tuple[str, ...]) -> None:
    """Make ``run_dir`` look as if written by a library that predates ``keys``: drop them from config.json
    and from every checkpoint's config."""
    cfg = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({k: v for k, v in cfg.items() if k not in keys}))
    checkpoints = list((run_dir / "checkpoints").glob("*.pt"))
    assert checkpoints
    for path in checkpoints:
        state = torch.load(path, weights_only=True)
        if state.get("config"):
            state["config"] = {k: v for k, v in state["config"].items() if k not in keys}
        torch.save(state, path)


def test_a_run_saved_before_new_fields_resumes(tmp_path: Path, rule_ds: Dataset) -> None:
    # a config.json without ``restarts``/``restart_epochs`` (added later) matches the defaults of those fields
    torch.set_num_threads(1)
    run = tmp_path / "old"
    train_walker(rule_ds, None, run, small_config(epochs=2, eval_every=2, seed=3), evaluate=False)
    _forget_keys(run, ("restarts", "restart_epochs", "embedding_dropout_mode"))
    more = train_walker(rule_ds, None, run, small_config(epochs=4, eval_every=2, seed=3), evaluate=False)
    alone = train_walker(
        rule_ds, None, tmp_path / "alone", small_config(epochs=4, eval_every=2, seed=3), evaluate=False
    )
    assert more.loop.epoch == 4 and more.losses == alone.losses
    # a missing key set to something other than its default is still a difference
    _forget_keys(run, ("embedding_dropout_mode",))
    with pytest.raises(Exception, match="embedding_dropout_mode: '<missing>' -> 'per_use'"):
        train_walker(
            rule_ds,
            None,
            run,
            small_config(epochs=6, eval_every=2, seed=3, embedding_dropout_mode="per_use"),
            evaluate=False,
        )
