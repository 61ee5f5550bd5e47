"""Tiny training and evaluation runs executed both by 2 gloo ranks (spawned) and by a single process (pytest).

Each ``scenario_*`` function builds everything from fixed seeds and returns a dict of CPU tensors / floats; the
rank processes save theirs as ``<out>/<name>.rank<r>.pt`` for the test to compare.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kgreason.data import Dataset
from kgreason.distributed import get_context
from kgreason.evaluation import RankBasedEvaluator
from kgreason.models import MODELS
from kgreason.training.callbacks import TrainingCallback
from kgreason.training.lcwa import LCWATrainingLoop, SymmetricLCWATrainingLoop
from kgreason.training.loop import TrainingLoop
from kgreason.training.slcwa import SLCWATrainingLoop

E, R = 24, 3


def toy_triples() -> torch.Tensor:
    """``LongTensor[72, 3]``: r0: e -> e+1, r1: e -> e+2, r2: e -> e+12 (mod 24)."""
    e = torch.arange(E)
    parts = [torch.stack([e, torch.full_like(e, r), (e + step) % E], 1) for r, step in enumerate((1, 2, 12))]
    return torch.cat(parts)


def toy_dataset() -> Dataset:
    t = toy_triples()
    t = t[torch.randperm(len(t), generator=torch.Generator().manual_seed(0))]
    return Dataset.from_tensors("toy", t[:60], t[60:66], t[66:], num_entities=E, num_relations=R)


def make_model(name: str = "distmult", inverse: bool = False, dim: int = 8) -> nn.Module:
    """Models without dropout: a dropout mask drawn per rank cannot equal the one process's mask."""
    torch.manual_seed(0)
    extra = {"embedding_dropout": 0.0} if name == "complex" else {}
    return MODELS.make(
        name, num_entities=E, num_relations=R, embedding_dim=dim, inverse_relations=inverse, **extra
    )


def _params(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _result(loop: TrainingLoop) -> dict[str, Any]:
    return {"params": _params(loop.model), "losses": list(loop.losses), "epoch": loop.epoch}


# ---- KGE loops: uneven shards, an empty shard, sub-batches ------------------------------------------------


def scenario_lcwa() -> dict[str, Any]:
    """71 queries in batches of 10: shards of 5/5, the last batch (1 query) leaves rank 1 empty."""
    triples = toy_triples()[:71]
    loop = LCWATrainingLoop(make_model(), triples, batch_size=10, lr=0.05, seed=3, device="cpu")
    loop.train(3)
    return _result(loop)


def scenario_lcwa_reciprocal_sub_batched() -> dict[str, Any]:
    """ComplEx with inverse triples (144 queries), batches of 25 split in sub-batches of 4 (shards 13/12)."""
    model = make_model("complex", inverse=True, dim=4)
    loop = LCWATrainingLoop(
        model, toy_triples(), batch_size=25, sub_batch_size=4, lr=0.02, seed=5, device="cpu"
    )
    loop.train(2)
    return _result(loop)


def scenario_symmetric_lcwa() -> dict[str, Any]:
    loop = SymmetricLCWATrainingLoop(
        make_model(), toy_triples(), batch_size=11, lr=0.05, seed=1, device="cpu"
    )
    loop.train(2)
    return _result(loop)


def scenario_slcwa() -> dict[str, Any]:
    """Filtered head/tail negatives drawn for the whole batch; 73 triples in batches of 12 (last: 1).

    The softplus loss averages each positive's valid negatives, then the positives: a mean over examples.
    """
    triples = torch.cat([toy_triples(), toy_triples()[:1]])
    loop = SLCWATrainingLoop(
        make_model("transe"),
        triples,
        num_negs_per_pos=3,
        filtered=True,
        batch_size=12,
        sub_batch_size=5,
        lr=0.05,
        seed=7,
        device="cpu",
    )
    loop.train(2)
    return _result(loop)


class _Regression(TrainingLoop):
    """A non-KGE loop (as the RL walker is): tensor batches of rows, a mean squared error."""

    def __init__(self, **kwargs: Any) -> None:
        torch.manual_seed(0)
        super().__init__(nn.Linear(3, 1), **kwargs)
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(45, 3, generator=g)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5]) + 0.3

    def batches(self, epoch: int) -> list[torch.Tensor]:
        perm = torch.randperm(len(self.x), generator=self.generator)
        return list(torch.split(torch.stack([perm, perm], 1), 8))  # [b, 2] rows (walker batches are [b, 3])

    def batch_loss(self, batch: torch.Tensor) -> torch.Tensor:
        rows = batch[:, 0]
        return ((self.model(self.x[rows]).squeeze(-1) - self.y[rows]) ** 2).mean()


def scenario_generic_loop() -> dict[str, Any]:
    loop = _Regression(optimizer="sgd", lr=0.05, seed=0, device="cpu")
    loop.train(3)
    return _result(loop)


# ---- sharded evaluation --------------------------------------------------------------------------------------


def scenario_evaluation() -> dict[str, Any]:
    """A random DistMult evaluated on 66 triples in batches of 7 (10 batches: 5 per rank)."""
    ds = toy_dataset()
    model = make_model("distmult", dim=4)
    evaluator = RankBasedEvaluator(ds.all_triples(), num_entities=E, batch_size=7, device="cpu")
    result = evaluator.evaluate(model, ds.all_triples()[:66], sides=("head", "tail"))
    return {"metrics": dict(result.metrics), "ranks": result.ranks, "num_candidates": result.num_candidates}


# ---- checkpoints: written with N ranks, resumed by the test with one --------------------------------------


def checkpoint_loop() -> LCWATrainingLoop:
    return LCWATrainingLoop(make_model(), toy_triples()[:71], batch_size=10, lr=0.05, seed=11, device="cpu")


def scenario_checkpoint(out: Path) -> dict[str, Any]:
    loop = checkpoint_loop()
    loop.train(2, checkpoint_dir=out / "ckpt")
    return _result(loop)


# ---- the pipeline: early stopping, trackers, rank-0 run directory -------------------------------------------


class _Stops(TrainingCallback):
    """Records which epochs ran on this rank; rank 1 alone asks to stop after epoch 2 (rank 0 decides)."""

    def __init__(self) -> None:
        self.epochs: list[int] = []

    def post_epoch(self, epoch: int, epoch_loss: float, **kwargs: Any) -> None:
        self.epochs.append(epoch)
        if epoch == 2 and get_context().rank == 1:
            self.loop.stop_training = True


def pipeline_kwargs() -> dict[str, Any]:
    return {
        "model": "distmult",
        "loop": "lcwa",
        "epochs": 6,
        "batch_size": 16,
        "lr": 0.1,
        "seed": 2,
        "device": "cpu",
        "model_kwargs": {"embedding_dim": 8},
        "eval_every": 1,
        "eval_batch_size": 4,
        "early_stopping": True,
        "early_stopping_metric": "both.realistic.mr",
        "patience": 1,
        "trackers": ["csv"],
    }


def scenario_pipeline(out: Path) -> dict[str, Any]:
    from kgreason.training.pipeline import pipeline

    stops = _Stops()
    result = pipeline(toy_dataset(), output_dir=out / "run", callbacks=[stops], **pipeline_kwargs())
    return {
        "params": _params(result.model),
        "losses": list(result.losses),
        "metrics": dict(result.metrics.metrics),
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "epochs_run": stops.epochs,
        "valid": result.loop.history.metric("valid.both.realistic.mr"),
    }


SCENARIOS = {
    "lcwa": scenario_lcwa,
    "lcwa_reciprocal_sub_batched": scenario_lcwa_reciprocal_sub_batched,
    "symmetric_lcwa": scenario_symmetric_lcwa,
    "slcwa": scenario_slcwa,
    "generic_loop": scenario_generic_loop,
    "evaluation": scenario_evaluation,
}


def scenario_walker(out: Path) -> dict[str, Any]:
    """The RL walker through ``train_walker``: queries sharded over the ranks, the policy under DDP."""
    from kgreason.reasoning import train_walker
    from kgreason.reasoning.config import WalkerConfig

    cfg = WalkerConfig(
        dataset="toy",
        reward_shaping=False,
        num_steps=2,
        num_rollouts=3,
        max_actions=None,
        embedding_dim=8,
        history_dim=8,
        history_layers=1,
        batch_size=16,
        epochs=2,
        eval_every=1,
        beam_size=4,
        eval_batch_size=8,
        early_stopping=False,
        action_dropout=0.1,
        device="cpu",
        seed=5,
    )
    result = train_walker(toy_dataset(), None, out / "walker", cfg)
    return {
        "params": _params(result.policy),
        "mrr": result.metrics["tail.realistic.mrr"],
        "hit_rate": result.loop.history.metric("train.hit_rate"),
        "unique_paths": result.unique_paths,
    }


def run_all(rank: int, out: str) -> None:
    """Entry point of each rank: every scenario in turn, results saved per rank, then rank 1 dies (last, as
    it ends the run; one launch keeps the test fast: each process pays torch's import costs once)."""
    out_dir = Path(out)
    results: dict[str, Any] = {name: fn() for name, fn in SCENARIOS.items()}
    results["checkpoint"] = scenario_checkpoint(out_dir)
    results["pipeline"] = scenario_pipeline(out_dir)
    results["walker"] = scenario_walker(out_dir)
    torch.save(results, out_dir / f"results.rank{rank}.pt")
    dying_rank(rank, out_dir / "dying")


# ---- a rank that dies --------------------------------------------------------------------------------------


class _DieAtEpoch(TrainingCallback):
    """Rank 1 exits abruptly when ``epoch`` starts; rank 0 notes the time."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.started: float | None = None

    def on_epoch_start(self, epoch: int, **kwargs: Any) -> None:
        if epoch == self.epoch:
            self.started = time.monotonic()
            if get_context().rank == 1:
                os._exit(3)  # killed: no exception, no goodbye to the other rank


def dying_rank(rank: int, out_dir: Path) -> None:
    """Rank 1 dies at the start of epoch 3; rank 0 must fail with a clear error, written to a file with the
    seconds it took to notice, and exit with code 5."""
    die = _DieAtEpoch(3)
    loop = LCWATrainingLoop(
        make_model(), toy_triples(), batch_size=8, lr=0.05, seed=0, device="cpu", callbacks=[die]
    )
    try:
        loop.train(5, checkpoint_dir=out_dir / "ckpt")
    except Exception as exc:
        seconds = time.monotonic() - (die.started or 0.0)
        text = f"{seconds:.3f}\n{type(exc).__name__}: {exc}"
        (out_dir / f"error.rank{rank}.txt").write_text(text, encoding="utf-8")
        raise SystemExit(5) from None
