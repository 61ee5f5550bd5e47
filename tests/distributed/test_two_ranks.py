"""Two gloo ranks on CPU against one process: DDP training, sharded evaluation, checkpoints, the pipeline, and a
rank that dies.

One launch runs every scenario of :mod:`distributed_scenarios` on 2 spawned ranks (each process pays torch's
import costs once); the tests compare what the ranks saved with the same scenarios run here in one process.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import distributed_scenarios as scenarios
import pytest
import torch
from distributed_launch import launch

from kgreason.training.checkpoint import load_checkpoint

WORLD_SIZE = 2
TIMEOUT_S = 30  # collective timeout of the ranks (a dead peer is noticed at once; this bounds a hang)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("two_ranks")
    start = time.monotonic()
    codes = launch(
        scenarios.run_all, WORLD_SIZE, str(out), timeout=150, env={"KGREASON_DIST_TIMEOUT": str(TIMEOUT_S)}
    )
    seconds = time.monotonic() - start
    if not (out / "results.rank0.pt").exists() or not (out / "results.rank1.pt").exists():
        pytest.fail(f"the ranks saved no results (exit codes {codes}); see their output above")
    results = [torch.load(out / f"results.rank{r}.pt", weights_only=False) for r in range(WORLD_SIZE)]
    return {"out": out, "codes": codes, "seconds": seconds, "results": results}


def assert_params_close(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert got.keys() == want.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-5, atol=1e-5, msg=f"parameter {key}")


@pytest.mark.parametrize(
    "name", ["lcwa", "lcwa_reciprocal_sub_batched", "symmetric_lcwa", "slcwa", "generic_loop"]
)
def test_training_matches_one_process(two_ranks: dict[str, Any], name: str) -> None:
    rank0, rank1 = (r[name] for r in two_ranks["results"])
    for key in rank0["params"]:  # DDP keeps the replicas identical, bit for bit
        assert torch.equal(rank0["params"][key], rank1["params"][key]), key
    assert rank0["losses"] == rank1["losses"]  # the loss is reduced over ranks
    single = scenarios.SCENARIOS[name]()
    assert rank0["epoch"] == single["epoch"]
    assert_params_close(rank0["params"], single["params"])
    assert rank0["losses"] == pytest.approx(single["losses"], rel=1e-6)


def test_sharded_evaluation_equals_one_process_exactly(two_ranks: dict[str, Any]) -> None:
    single = scenarios.scenario_evaluation()
    for result in two_ranks["results"]:
        got = result["evaluation"]
        assert got["metrics"] == single["metrics"]
        for side, ranks in single["ranks"].items():
            for rank_type, values in ranks.items():
                assert torch.equal(got["ranks"][side][rank_type], values), (side, rank_type)
            assert torch.equal(got["num_candidates"][side], single["num_candidates"][side])


def test_checkpoint_of_two_ranks_resumes_in_one(two_ranks: dict[str, Any], tmp_path: Path) -> None:
    shutil.copytree(two_ranks["out"] / "ckpt", tmp_path / "ckpt")
    assert load_checkpoint(tmp_path / "ckpt" / "checkpoint.pt")["epoch"] == 2
    resumed = scenarios.checkpoint_loop()
    resumed.train(4, checkpoint_dir=tmp_path / "ckpt")
    straight = scenarios.checkpoint_loop()
    straight.train(4)
    assert resumed.epoch == 4
    assert_params_close(
        {k: v.detach() for k, v in resumed.model.state_dict().items()},
        {k: v.detach() for k, v in straight.model.state_dict().items()},
    )
    assert resumed.losses == pytest.approx(straight.losses, rel=1e-6)


def test_pipeline_on_two_ranks(two_ranks: dict[str, Any], tmp_path: Path) -> None:
    rank0, rank1 = (r["pipeline"] for r in two_ranks["results"])
    single = scenarios.scenario_pipeline(tmp_path)
    # early stopping decided alike; rank 1 asking to stop alone was overruled by rank 0's broadcast flag
    assert rank0["epochs_run"] == rank1["epochs_run"] == single["epochs_run"]
    assert rank0["stopped_early"] and rank1["stopped_early"] and single["stopped_early"]
    assert rank0["best_epoch"] == rank1["best_epoch"] == single["best_epoch"]
    assert rank0["valid"] == rank1["valid"] == single["valid"]  # sharded validation, exact
    assert rank0["metrics"] == rank1["metrics"]
    assert rank0["metrics"] == pytest.approx(single["metrics"], rel=1e-6)
    assert_params_close(rank0["params"], single["params"])
    run = two_ranks["out"] / "run"
    for name in ("config.json", "metrics.json", "model.pt", "losses.csv", "history.csv", "entities.json"):
        assert (run / name).exists(), name
    epochs = len(rank0["epochs_run"])
    assert len((run / "losses.csv").read_text().splitlines()) == 1 + epochs
    history = [line.split(",") for line in (run / "history.csv").read_text().splitlines()[1:]]
    loss_rows = [row for row in history if row[1] == "loss"]
    assert [int(row[0]) for row in loss_rows] == list(range(1, epochs + 1))  # one tracker, on rank 0


def test_a_dead_rank_stops_the_run_with_a_clear_error(two_ranks: dict[str, Any], tmp_path: Path) -> None:
    assert two_ranks["codes"] == [5, 3]  # rank 0 failed cleanly (SystemExit 5), rank 1 was "killed" (3)
    seconds, message = (two_ranks["out"] / "dying" / "error.rank0.txt").read_text().split("\n", 1)
    assert float(seconds) < TIMEOUT_S
    assert message.startswith(
        "RankFailureError: rank 0 of 2 lost contact with the other ranks during epoch 3"
    )
    assert "(epoch 2), is intact" in message
    # nothing checkpointed is lost: the run resumes from epoch 2, here in one process
    shutil.copytree(two_ranks["out"] / "dying" / "ckpt", tmp_path / "ckpt")
    assert load_checkpoint(tmp_path / "ckpt" / "checkpoint.pt")["epoch"] == 2
    loop = scenarios.LCWATrainingLoop(
        scenarios.make_model(), scenarios.toy_triples(), batch_size=8, lr=0.05, seed=0, device="cpu"
    )
    loop.train(3, checkpoint_dir=tmp_path / "ckpt")
    assert loop.epoch == 3 and len(loop.losses) == 3


def test_walker_trains_data_parallel(two_ranks: dict[str, Any]) -> None:
    """The walker under torchrun: policy parameters identical on both ranks after DDP steps, per-epoch statistics
    reduced over ranks (the same on both), the run directory written once by rank 0."""
    rank0, rank1 = (r["walker"] for r in two_ranks["results"])
    assert_params_close(rank1["params"], rank0["params"])
    assert rank0["mrr"] == rank1["mrr"] and 0.0 < rank0["mrr"] <= 1.0
    assert rank0["hit_rate"] == rank1["hit_rate"]
    assert rank0["unique_paths"] == rank1["unique_paths"]
    run_dir = two_ranks["out"] / "walker"
    for name in ("config.json", "metrics.json", "model.pt", "graph.pt"):
        assert (run_dir / name).exists(), name
