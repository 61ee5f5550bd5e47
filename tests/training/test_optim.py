from __future__ import annotations

import pytest
import torch

from kgreason.training.optim import LR_SCHEDULERS, OPTIMIZERS, make_lr_scheduler, make_optimizer


def params() -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.zeros(3, 2))]


def test_every_torch_optimizer_by_name() -> None:
    expected = {
        "Adam",
        "AdamW",
        "Adagrad",
        "SGD",
        "RMSprop",
        "Adamax",
        "NAdam",
        "RAdam",
        "Adadelta",
        "ASGD",
        "Rprop",
    }
    assert expected <= set(OPTIMIZERS.names())
    opt = make_optimizer("adamw", params(), lr=0.01, weight_decay=0.1)
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["weight_decay"] == 0.1
    assert make_optimizer("SGD", params(), lr=0.5).param_groups[0]["lr"] == 0.5
    assert make_optimizer("adagrad", params()).param_groups[0]["lr"] == 0.01  # torch's own default


SCHEDULER_KWARGS = {
    "StepLR": {"step_size": 2},
    "MultiStepLR": {"milestones": [2, 4]},
    "ConstantLR": {},
    "LinearLR": {},
    "ExponentialLR": {"gamma": 0.9},
    "PolynomialLR": {},
    "CosineAnnealingLR": {"T_max": 10},
    "CosineAnnealingWarmRestarts": {"T_0": 3},
    "CyclicLR": {"base_lr": 0.01, "max_lr": 0.1, "cycle_momentum": False},
    "OneCycleLR": {"max_lr": 0.1, "total_steps": 20},
    "ReduceLROnPlateau": {"mode": "max"},
    "LambdaLR": {"lr_lambda": lambda e: 0.9**e},
    "MultiplicativeLR": {"lr_lambda": lambda e: 0.9},
    "SequentialLR": {
        "milestones": [2],
        "schedulers": [{"name": "linear_lr", "total_iters": 2}, {"name": "exponential_lr", "gamma": 0.5}],
    },
    "ChainedScheduler": {"schedulers": [{"name": "ConstantLR"}, {"name": "ExponentialLR", "gamma": 0.5}]},
}


@pytest.mark.parametrize("name", sorted(SCHEDULER_KWARGS))
def test_every_scheduler_by_name(name: str) -> None:
    assert name in LR_SCHEDULERS
    opt = make_optimizer("sgd", params(), lr=0.1)
    sched = make_lr_scheduler(name.lower(), opt, **SCHEDULER_KWARGS[name])
    assert type(sched).__name__ == name
    for _ in range(3):
        opt.step()
        sched.step(0.5) if name == "ReduceLROnPlateau" else sched.step()
    assert opt.param_groups[0]["lr"] > 0


def test_all_registered_schedulers_are_covered() -> None:
    assert set(LR_SCHEDULERS.names()) == set(SCHEDULER_KWARGS)


def test_scheduler_errors_are_explicit() -> None:
    opt = make_optimizer("sgd", params(), lr=0.1)
    with pytest.raises(TypeError, match="StepLR"):
        make_lr_scheduler("StepLR", opt)  # step_size missing
    with pytest.raises(KeyError, match="StepLR"):
        make_lr_scheduler("steplr2", opt)
