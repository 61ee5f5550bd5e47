"""Mixed bfloat16 training (``precision="bf16"``): autocast around the loss, float32 parameters and losses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from kgreason.models import MODELS
from kgreason.training import LCWATrainingLoop, SLCWATrainingLoop
from kgreason.training.loop import CheckpointMismatchError, resolve_precision
from kgreason.training.pipeline import pipeline

SMALL = {"model_kwargs": {"embedding_dim": 16}, "trackers": [], "device": "cpu", "eval_batch_size": 64}


def test_precision_names() -> None:
    assert resolve_precision("fp32") is None and resolve_precision("32") is None
    assert resolve_precision("bf16") is torch.bfloat16 and resolve_precision("BF16-mixed") is torch.bfloat16
    with pytest.raises(ValueError, match="'fp16'.*fp32 or bf16"):
        resolve_precision("fp16")


def _projection_dtypes(model: torch.nn.Module) -> list[torch.dtype]:
    """Records the output dtype of every call of ConvE's projection (a ``Linear``: a matmul)."""
    seen: list[torch.dtype] = []
    model.fc.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    return seen


@pytest.mark.parametrize("loop_cls", [LCWATrainingLoop, SLCWATrainingLoop])
def test_bf16_runs_the_scoring_in_bfloat16_and_keeps_float32_state(toy_dataset, loop_cls) -> None:
    losses = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = MODELS.make(
            "conve", {"embedding_dim": 16, "embedding_height": 4}, num_entities=24, num_relations=3
        )
        loop = loop_cls(
            model, toy_dataset.train, batch_size=16, lr=1e-2, device="cpu", seed=0, precision=precision
        )
        seen = _projection_dtypes(model)
        loop.train(24)
        expected = torch.bfloat16 if precision == "bf16" else torch.float32
        assert seen and set(seen) == {expected}
        assert all(p.dtype == torch.float32 for p in model.parameters())
        assert all(p.grad is None or p.grad.dtype == torch.float32 for p in model.parameters())
        for state in loop.optimizer.state.values():
            assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point() and v.dim())
        losses[precision] = loop.losses
    # the same training, up to bfloat16 rounding: both learn, and stay close
    for curve in losses.values():  # epoch losses are noisy on 60 triples: compare the ends of the curves
        assert sum(curve[-4:]) / 4 < 0.9 * sum(curve[:2]) / 2
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.1)
    assert losses["bf16"] != losses["fp32"]  # bfloat16 did change the arithmetic


def test_bf16_in_the_pipeline_is_recorded_and_checked_on_resume(toy_dataset, tmp_path: Path) -> None:
    result = pipeline(toy_dataset, "distmult", output_dir=tmp_path, epochs=2, precision="bf16", **SMALL)
    assert json.loads((tmp_path / "config.json").read_text())["precision"] == "bf16"
    assert result.loop.autocast_dtype is torch.bfloat16
    assert result.metrics is not None and result.metrics.metrics["both.realistic.mrr"] > 0
    with pytest.raises(CheckpointMismatchError, match="precision: 'bf16' -> 'fp32'"):
        pipeline(toy_dataset, "distmult", output_dir=tmp_path, epochs=3, **SMALL)
    with pytest.raises(ValueError, match="unknown precision 'half'"):
        pipeline(toy_dataset, "distmult", output_dir=tmp_path / "half", epochs=1, precision="half", **SMALL)
    assert not (tmp_path / "half").exists()  # refused before anything was written
