"""The generic TrainingLoop with a non-KGE toy subclass (as the RL walker uses it)."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

from kgreason.training.callbacks import TrainingCallback
from kgreason.training.loop import NonFiniteLossError, TrainingLoop


class RegressionLoop(TrainingLoop):
    """Least squares on fixed data: batches of row indices, shuffled with the loop generator."""

    def __init__(self, model: nn.Module, n: int = 32, batch_size: int = 8, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 3, generator=g)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5]) + 0.3
        self.batch_size = batch_size
        self.poison_at: tuple[int, int] | None = None

    def batches(self, epoch: int):
        perm = torch.randperm(len(self.x), generator=self.generator)
        return list(torch.split(perm, self.batch_size))

    def batch_loss(self, batch: torch.Tensor) -> torch.Tensor:
        pred = self.model(self.x[batch]).squeeze(-1)
        loss = ((pred - self.y[batch]) ** 2).mean()
        if self.poison_at == (self.epoch + 1, self.batch_index):
            loss = loss * float("nan")
        return loss


def make_loop(**kwargs: Any) -> RegressionLoop:
    torch.manual_seed(0)
    kwargs.setdefault("lr", 0.05)
    return RegressionLoop(nn.Linear(3, 1), device="cpu", seed=kwargs.pop("seed", 0), **kwargs)


class Recorder(TrainingCallback):
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def on_train_start(self, **kw):
        self.events.append(("train_start",))

    def on_epoch_start(self, epoch, **kw):
        self.events.append(("epoch_start", epoch))

    def on_batch(self, epoch, batch, batch_loss, **kw):
        assert isinstance(batch_loss, float)
        self.events.append(("batch", epoch, self.loop.batch_index))

    def pre_step(self, **kw):
        # gradients exist, the step has not been taken yet
        assert all(p.grad is not None for p in self.model.parameters())
        self.events.append(("pre_step",))

    def post_batch(self, epoch, batch, **kw):
        self.events.append(("post_batch", epoch))

    def post_epoch(self, epoch, epoch_loss, **kw):
        assert self.loop.epoch == epoch and self.loop.losses[-1] == epoch_loss
        self.events.append(("post_epoch", epoch))

    def on_epoch_end(self, epoch, **kw):
        self.events.append(("epoch_end", epoch))

    def post_train(self, losses, **kw):
        self.events.append(("post_train", len(losses)))

    def on_exception(self, exc, **kw):
        self.events.append(("exception", type(exc).__name__))


def test_hook_order() -> None:
    rec = Recorder()
    loop = make_loop(n=16, batch_size=8, callbacks=[rec])
    assert rec.loop is loop and rec.model is loop.model
    loop.train(2)
    per_batch = lambda e, i: [("batch", e, i), ("pre_step",), ("post_batch", e)]  # noqa: E731
    expected = [("train_start",)]
    for e in (1, 2):
        expected += [
            ("epoch_start", e),
            *per_batch(e, 0),
            *per_batch(e, 1),
            ("post_epoch", e),
            ("epoch_end", e),
        ]
    expected += [("post_train", 2)]
    assert rec.events == expected


def test_loss_decreases_and_epoch_loss_is_weighted_mean() -> None:
    seen: list[float] = []

    class Collect(TrainingCallback):
        def on_batch(self, epoch, batch, batch_loss, **kw):
            seen.append(batch_loss * len(batch))

    loop = make_loop(n=20, batch_size=8, callbacks=Collect())  # batches of 8, 8, 4
    losses = loop.train(30)
    assert losses[-1] < 0.05 * losses[0]
    assert losses[0] == pytest.approx(sum(seen[:3]) / 20)


def test_train_continues_to_a_total_number_of_epochs() -> None:
    loop = make_loop()
    assert len(loop.train(2)) == 2
    assert len(loop.train(5)) == 5 and loop.epoch == 5
    assert loop.train(3) == loop.losses and loop.epoch == 5  # nothing left to do


def test_non_finite_loss_error_names_epoch_batch_and_last_loss() -> None:
    rec = Recorder()
    loop = make_loop(n=32, batch_size=8, callbacks=[rec])
    loop.poison_at = (2, 3)
    before: dict[str, torch.Tensor] = {}

    class Snapshot(TrainingCallback):
        def post_batch(self, epoch, batch, **kw):
            before.update({k: v.clone() for k, v in self.model.state_dict().items()})

    loop.callbacks.append(Snapshot())
    with pytest.raises(NonFiniteLossError) as info:
        loop.train(3)
    err = info.value
    assert (err.epoch, err.batch) == (2, 3) and math.isnan(err.loss)
    assert err.last_finite_loss is not None and math.isfinite(err.last_finite_loss)
    msg = str(err)
    assert "epoch 2" in msg and "batch 3" in msg and f"{err.last_finite_loss:.6g}" in msg
    assert rec.events[-1] == ("exception", "NonFiniteLossError")
    # the bad step was not taken
    for k, v in loop.model.state_dict().items():
        assert torch.equal(v, before[k])
    assert loop.epoch == 1


def test_callback_can_stop_training() -> None:
    class StopAfter2(TrainingCallback):
        def post_epoch(self, epoch, epoch_loss, **kw):
            if epoch == 2:
                self.loop.stop_training = True

    loop = make_loop(callbacks=StopAfter2())
    assert len(loop.train(10)) == 2 and loop.history.stopped_early


@pytest.mark.parametrize("mode", ["epoch", "batch"])
def test_scheduler_by_name_stepping_per_epoch_or_batch(mode: str) -> None:
    loop = make_loop(
        n=32,
        batch_size=8,
        lr=0.1,
        lr_scheduler="step_lr",
        lr_scheduler_kwargs={"step_size": 1, "gamma": 0.5},
        scheduler_step=mode,
    )
    loop.train(3)
    steps = 3 if mode == "epoch" else 12
    assert loop.learning_rate == pytest.approx(0.1 * 0.5**steps)
    # the learning rate at the start of each epoch
    per_epoch = 1 if mode == "epoch" else 4
    assert loop.history.learning_rates == pytest.approx(
        [0.1, 0.1 * 0.5**per_epoch, 0.1 * 0.5 ** (2 * per_epoch)]
    )


def test_plateau_on_training_loss() -> None:
    loop = make_loop(
        lr=0.0, lr_scheduler="ReduceLROnPlateau", lr_scheduler_kwargs={"patience": 0, "factor": 0.5}
    )
    loop.optimizer.param_groups[0]["lr"] = 1e-12  # loss cannot improve: every epoch is a plateau
    loop.lr_scheduler.best = -1.0  # no loss is below -1 -> never an improvement
    loop.train(3)
    assert loop.learning_rate == pytest.approx(1e-12 * 0.5**3)


def test_plateau_on_a_recorded_metric_steps_only_when_it_arrives() -> None:
    class FakeEval(TrainingCallback):
        def post_epoch(self, epoch, epoch_loss, **kw):
            if epoch % 2 == 0:
                self.loop.record_metrics(epoch, {"valid.mrr": 0.5})  # never improves after the first

    loop = make_loop(
        lr=0.1,
        lr_scheduler="reduce_lr_on_plateau",
        lr_scheduler_kwargs={"mode": "max", "patience": 0, "factor": 0.5},
        scheduler_metric="valid.mrr",
        callbacks=FakeEval(),
    )
    loop.train(6)  # metric at epochs 2, 4, 6: first sets best, then two bad evaluations
    assert loop.learning_rate == pytest.approx(0.1 * 0.25)
    assert loop.history.metric("valid.mrr") == [(2, 0.5), (4, 0.5), (6, 0.5)]


def test_deterministic_with_a_seed() -> None:
    def run(seed: int) -> torch.Tensor:
        loop = make_loop(seed=seed)
        loop.train(3)
        return torch.cat([p.detach().flatten() for p in loop.model.parameters()])

    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))


def test_sub_batching_refused_for_batch_norm() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    loop = RegressionLoop(model, sub_batch_size=2, device="cpu", seed=0)
    with pytest.raises(ValueError, match="batch-norm"):
        loop.train(1)


def test_sub_batching_accumulates_the_same_gradient() -> None:
    a, b = (
        make_loop(optimizer="sgd", batch_size=8),
        make_loop(optimizer="sgd", batch_size=8, sub_batch_size=3),
    )
    la, lb = a.train(2), b.train(2)
    assert la == pytest.approx(lb)
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        assert torch.allclose(p, q, atol=1e-6)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="scheduler_step"):
        make_loop(scheduler_step="step")
    with pytest.raises(ValueError, match="LBFGS"):
        make_loop(optimizer="lbfgs")
    with pytest.raises(KeyError, match="Adam"):
        make_loop(optimizer="adamm")
