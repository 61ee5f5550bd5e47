"""The callback examples of docs/training.md (the PyKEEN documentation's, as written) run against our API."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from kgreason.training.slcwa import SLCWATrainingLoop

DOC = Path(__file__).resolve().parents[2] / "docs" / "training.md"


def example(name: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    match = re.search(rf"<!-- example: {name} -->\s*```python\n(.*?)```", text, re.S)
    assert match, f"example {name!r} not found in {DOC}"
    return match.group(1)


def test_documented_examples_run(triples, tiny_model_factory, capsys) -> None:
    ns: dict = {}
    exec(example("batch-loss-report"), ns)
    exec(example("gradient-clipping"), ns)
    clipped: list[float] = []

    class Check(ns["TrainingCallback"]):  # runs after the clipping callback
        def pre_step(self, **kwargs):
            clipped.append(max(float(p.grad.abs().max()) for p in self.model.parameters()))

    loop = SLCWATrainingLoop(
        tiny_model_factory(),
        triples,
        num_negs_per_pos=2,
        batch_size=36,
        seed=0,
        device="cpu",
        callbacks=[ns["BatchLossReportCallback"](), ns["GradientClippingCallback"](0.01), Check()],
    )
    loop.train(2)
    printed = capsys.readouterr().out.split("\n")
    assert [line.split()[0] for line in printed if line] == ["1", "1", "2", "2"]
    assert max(clipped) <= 0.01 * (1 + 1e-6)


def test_clip_grad_value_is_torchs() -> None:
    from kgreason.training.utils import clip_grad_norm_, clip_grad_value_

    assert (
        clip_grad_value_ is torch.nn.utils.clip_grad_value_
        and clip_grad_norm_ is torch.nn.utils.clip_grad_norm_
    )
