"""The same loops on CUDA (skipped without a GPU): device-agnostic code, generator on the device, resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kgreason.models import MODELS
from kgreason.training.lcwa import LCWATrainingLoop, SymmetricLCWATrainingLoop
from kgreason.training.pipeline import evaluate_run, pipeline
from kgreason.training.samplers import PseudoTypedNegativeSampler, TripleSet, UniformNegativeSampler
from kgreason.training.slcwa import SLCWATrainingLoop

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
CUDA = torch.device("cuda")


def model(name: str = "distmult", inverse: bool = False):
    torch.manual_seed(0)
    return MODELS.make(name, num_entities=24, num_relations=3, embedding_dim=16, inverse_relations=inverse)


@pytest.mark.parametrize(
    ("cls", "kwargs", "inverse"),
    [
        (
            SLCWATrainingLoop,
            {"negative_sampler": "bernoulli", "filtered": True, "num_negs_per_pos": 8},
            False,
        ),
        (
            SLCWATrainingLoop,
            {"negative_sampler": "pseudo_typed", "loss": "nssa", "num_negs_per_pos": 8},
            False,
        ),
        (SLCWATrainingLoop, {"num_negs_per_pos": 8, "filtered": True}, True),
        (LCWATrainingLoop, {"sub_batch_size": 5}, True),
        (LCWATrainingLoop, {"target": "head"}, False),
        (SymmetricLCWATrainingLoop, {}, False),
    ],
)
def test_loops_train_on_cuda(triples, cls, kwargs, inverse) -> None:
    loop = cls(model(inverse=inverse), triples, lr=0.05, batch_size=16, seed=0, device="cuda", **kwargs)
    assert loop.generator.device.type == "cuda" and loop.triples.is_cuda
    losses = loop.train(15)
    assert losses[-1] < 0.7 * losses[0]
    assert all(p.is_cuda for p in loop.model.parameters())


def test_samplers_on_cuda_match_cpu_membership(triples) -> None:
    g = torch.Generator(device=CUDA).manual_seed(0)
    for cls in (UniformNegativeSampler, PseudoTypedNegativeSampler):
        sampler = cls(triples, 24, 3, num_negs_per_pos=32, filtered=True).to(CUDA)
        neg, valid = sampler.sample(triples.to(CUDA), g)
        assert neg.is_cuda and valid.is_cuda
        assert torch.equal(valid.cpu(), ~TripleSet(triples, 24, 3).contains(neg.cpu()))
        assert torch.all((neg != triples.to(CUDA).unsqueeze(1)).sum(-1) == 1)


def test_resume_on_cuda(triples, tmp_path: Path) -> None:
    def build():
        return SLCWATrainingLoop(
            model(),
            triples,
            num_negs_per_pos=4,
            filtered=True,
            lr=0.05,
            batch_size=16,
            seed=3,
            device="cuda",
            lr_scheduler="StepLR",
            lr_scheduler_kwargs={"step_size": 2},
        )

    full = build()
    full.train(6)
    build().train(3, checkpoint_dir=tmp_path)
    resumed = build()
    resumed.train(6, checkpoint_dir=tmp_path)
    assert resumed.losses == pytest.approx(full.losses, rel=1e-4)
    for a, b in zip(resumed.model.parameters(), full.model.parameters()):
        assert torch.allclose(a, b, atol=1e-4)


def test_pipeline_on_cuda(toy_dataset, tmp_path: Path) -> None:
    result = pipeline(
        toy_dataset,
        "conve",
        output_dir=tmp_path,
        epochs=3,
        trackers=[],
        eval_every=1,
        model_kwargs={"embedding_dim": 16, "embedding_height": 4},
    )
    assert result.config.device == "cuda" and next(result.model.parameters()).is_cuda
    again = evaluate_run(tmp_path, dataset=toy_dataset, device="cuda")
    assert again.metrics == pytest.approx(result.metrics.metrics, abs=1e-6)


@pytest.mark.parametrize("loop_cls", [LCWATrainingLoop, SLCWATrainingLoop])
def test_bf16_autocast_on_cuda(toy_dataset, loop_cls) -> None:
    torch.manual_seed(0)
    net = MODELS.make("conve", {"embedding_dim": 16, "embedding_height": 4}, num_entities=24, num_relations=3)
    seen: list[torch.dtype] = []
    net.fc.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    loop = loop_cls(net, toy_dataset.train, batch_size=16, lr=1e-2, device=CUDA, seed=0, precision="bf16")
    loop.train(4)
    assert set(seen) == {torch.bfloat16}
    assert all(p.device.type == "cuda" and p.dtype == torch.float32 for p in net.parameters())
    assert loop.losses[-1] < loop.losses[0]
