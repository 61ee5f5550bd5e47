from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from kgreason.evaluation import RankBasedEvaluator
from kgreason.training.callbacks import (
    BatchLossReportCallback,
    CheckpointCallback,
    EarlyStoppingCallback,
    EvaluationCallback,
    GradientClippingCallback,
    GradientValueClippingCallback,
    TrackerCallback,
    TrainingCallback,
)
from kgreason.training.lcwa import LCWATrainingLoop
from kgreason.training.trackers import ConsoleTracker, CSVTracker, JSONLTracker


def lcwa(model, triples, **kwargs: Any) -> LCWATrainingLoop:
    kwargs.setdefault("lr", 0.05)
    return LCWATrainingLoop(model, triples, batch_size=16, seed=0, device="cpu", **kwargs)


def test_seed_example_batch_loss_report(triples, tiny_model_factory, capsys) -> None:
    # verbatim from the PyKEEN documentation (with our import path)
    from kgreason.training.callbacks import TrainingCallback

    class BatchLossReportCallback(TrainingCallback):
        def on_batch(self, epoch: int, batch, batch_loss: float):
            print(epoch, batch_loss)

    loop = lcwa(tiny_model_factory(), triples, callbacks=[BatchLossReportCallback()])
    loop.train(2)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 * 5  # 72 triples -> 72 distinct (h, r) queries -> 5 batches of <= 16
    assert lines[0].split()[0] == "1" and lines[-1].split()[0] == "2"
    assert all(float(x.split()[1]) > 0 for x in lines)


def test_seed_example_gradient_clipping(triples, tiny_model_factory) -> None:
    # verbatim from the PyKEEN documentation (with our import paths)

    from kgreason.training.callbacks import TrainingCallback
    from kgreason.training.utils import clip_grad_value_

    class GradientClippingCallback(TrainingCallback):
        def __init__(self, clip_value: float = 1.0):
            self.clip_value = clip_value

        def pre_step(self, **kwargs: Any):
            clip_grad_value_(self.model.parameters(), clip_value=self.clip_value)

    grads: list[float] = []

    class Check(TrainingCallback):
        def pre_step(self, **kwargs: Any):
            grads.append(max(float(p.grad.abs().max()) for p in self.model.parameters()))

    loop = lcwa(tiny_model_factory(), triples, callbacks=[GradientClippingCallback(clip_value=1e-3), Check()])
    loop.train(1)
    assert grads and max(grads) <= 1e-3 * (1 + 1e-6)
    assert clip_grad_value_ is torch.nn.utils.clip_grad_value_


def test_builtin_batch_loss_report(triples, tiny_model_factory) -> None:
    out: list[str] = []
    cb = BatchLossReportCallback(report=out.append, every=2)
    lcwa(tiny_model_factory(), triples, callbacks=cb).train(1)
    assert [(e, i) for e, i, _ in cb.batch_losses] == [(1, i) for i in range(5)]
    assert len(out) == 3 and out[0].startswith("epoch 1 batch 0: loss")


def test_gradient_norm_and_value_clipping(triples, tiny_model_factory) -> None:
    norms: list[float] = []
    values: list[float] = []

    class Check(TrainingCallback):
        def pre_step(self, **kwargs: Any):
            grads = [p.grad for p in self.model.parameters()]
            norms.append(float(torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads]))))
            values.append(max(float(g.abs().max()) for g in grads))

    by_norm = GradientClippingCallback(max_norm=1e-2)
    lcwa(tiny_model_factory(), triples, callbacks=[by_norm, Check()]).train(1)
    assert max(norms) <= 1e-2 * (1 + 1e-4) and by_norm.last_norm is not None and by_norm.last_norm > 1e-2
    norms.clear()
    values.clear()
    lcwa(tiny_model_factory(), triples, callbacks=[GradientValueClippingCallback(2e-3), Check()]).train(1)
    assert max(values) <= 2e-3 * (1 + 1e-6)


def test_evaluation_callback_records_metrics(toy_dataset, tiny_model_factory) -> None:
    ds = toy_dataset
    evaluator = RankBasedEvaluator(ds.all_triples(), num_entities=ds.num_entities, batch_size=64)
    cb = EvaluationCallback(evaluator, ds.valid, split="valid", every=2)
    loop = lcwa(tiny_model_factory(), ds.train, callbacks=cb)
    loop.train(5)
    assert [e for e, _ in cb.results] == [2, 4]
    mrr = loop.history.metric("valid.both.realistic.mrr")
    assert [e for e, _ in mrr] == [2, 4] and all(0 < v <= 1 for _, v in mrr)
    assert mrr[-1][1] == pytest.approx(cb.results[-1][1].metrics["both.realistic.mrr"])
    assert loop.model.training  # back in train mode after evaluating


class ScriptedEvaluator:
    """Returns a scripted metric sequence, one value per evaluation."""

    def __init__(self, values: list[float]) -> None:
        self.values = list(values)

    def evaluate(self, scorer, triples, sides=("head", "tail")):
        return SimpleNamespace(metrics={"both.realistic.mrr": self.values.pop(0)})


def test_early_stopping_stops_restores_and_saves_best(triples, tiny_model_factory, tmp_path: Path) -> None:
    snapshots: dict[int, dict[str, torch.Tensor]] = {}

    class Snapshot(TrainingCallback):
        def on_epoch_end(self, epoch: int, **kwargs: Any) -> None:
            snapshots[epoch] = {k: v.clone() for k, v in self.model.state_dict().items()}

    # evaluations after epochs 1..6: best at epoch 2, then three evaluations without improvement
    evaluation = EvaluationCallback(ScriptedEvaluator([0.3, 0.5, 0.45, 0.5, 0.49, 0.9]), triples, every=1)
    early = EarlyStoppingCallback("valid.both.realistic.mrr", patience=3, best_path=tmp_path / "best.pt")
    loop = lcwa(tiny_model_factory(), triples, callbacks=[evaluation, early, Snapshot()])
    losses = loop.train(20)
    assert len(losses) == 5 and loop.history.stopped_early
    assert (early.best_epoch, early.best_value) == (2, 0.5)
    for k, v in loop.model.state_dict().items():
        assert torch.equal(v, snapshots[2][k])
        assert not torch.equal(v, snapshots[5][k])
    saved = torch.load(tmp_path / "best.pt", weights_only=True)
    assert all(torch.equal(saved[k], snapshots[2][k]) for k in saved)


def test_early_stopping_on_training_loss_and_unknown_metric(triples, tiny_model_factory) -> None:
    early = EarlyStoppingCallback("loss", patience=1, delta=0.5)  # needs a 50% drop per epoch
    loop = lcwa(tiny_model_factory(), triples, callbacks=early)
    assert len(loop.train(30)) < 30
    bad = EarlyStoppingCallback("valid.both.realistic.mrrr")
    evaluation = EvaluationCallback(ScriptedEvaluator([0.1]), triples)
    with pytest.raises(KeyError, match="mrrr"):
        lcwa(tiny_model_factory(), triples, callbacks=[evaluation, bad]).train(1)


def test_file_trackers(triples, tiny_model_factory, tmp_path: Path) -> None:
    evaluation = EvaluationCallback(ScriptedEvaluator([0.1, 0.2]), triples, every=2)
    trackers = TrackerCallback([CSVTracker(tmp_path / "h.csv"), JSONLTracker(tmp_path / "h.jsonl")])
    loop = lcwa(tiny_model_factory(), triples, callbacks=[evaluation, trackers], config={"lr": 0.05})
    loop.train(4)
    rows = list(csv.DictReader((tmp_path / "h.csv").open()))
    assert [r["step"] for r in rows if r["key"] == "loss"] == ["1", "2", "3", "4"]
    assert [float(r["value"]) for r in rows if r["key"] == "loss"] == pytest.approx(loop.losses)
    assert [(r["step"], r["value"]) for r in rows if r["key"] == "valid.both.realistic.mrr"] == [
        ("2", "0.1"),
        ("4", "0.2"),
    ]
    lines = [json.loads(x) for x in (tmp_path / "h.jsonl").read_text().splitlines()]
    assert lines[0] == {"params": {"lr": 0.05}}
    assert lines[1]["step"] == 1 and set(lines[1]["metrics"]) == {"loss", "learning_rate"}
    # resuming at step 2 drops the rows of later steps
    t = CSVTracker(tmp_path / "h.csv")
    t.start_run(start_step=2)
    t.end_run()
    steps = {r["step"] for r in csv.DictReader((tmp_path / "h.csv").open())}
    assert steps == {"1", "2"}


def test_console_tracker_progress_bar(triples, tiny_model_factory) -> None:
    stream = io.StringIO()
    evaluation = EvaluationCallback(ScriptedEvaluator([0.25]), triples, every=3)
    loop = lcwa(
        tiny_model_factory(), triples, callbacks=[evaluation, TrackerCallback(ConsoleTracker(stream=stream))]
    )
    loop.train(3)
    text = stream.getvalue()
    assert "3/3" in text and "loss=" in text and "epoch 3: valid.both.realistic.mrr=0.25" in text


def test_checkpoint_callback_keeps_a_series(triples, tiny_model_factory, tmp_path: Path) -> None:
    cb = CheckpointCallback(tmp_path, every=2, keep=2)
    lcwa(tiny_model_factory(), triples, callbacks=cb).train(7)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_epoch4.pt", "checkpoint_epoch6.pt"]
    state = torch.load(tmp_path / "checkpoint_epoch6.pt", weights_only=True)
    assert state["epoch"] == 6 and len(state["history"]["losses"]) == 6


def test_callback_without_loop_raises() -> None:
    with pytest.raises(RuntimeError, match="not attached"):
        _ = TrainingCallback().model


def test_optional_trackers_explain_missing_packages(tmp_path: Path) -> None:
    import importlib.util

    from kgreason.training.trackers import MLflowTracker, TensorBoardTracker

    if importlib.util.find_spec("tensorboard") is None:
        with pytest.raises(ImportError, match="kgreason\\[tensorboard\\]"):
            TensorBoardTracker(tmp_path)
    if importlib.util.find_spec("mlflow") is None:
        with pytest.raises(ImportError, match="kgreason\\[mlflow\\]"):
            MLflowTracker()
