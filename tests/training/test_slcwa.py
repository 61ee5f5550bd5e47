from __future__ import annotations

import pytest
import torch

from kgreason.models import MODELS
from kgreason.training.slcwa import SLCWABatch, SLCWATrainingLoop


@pytest.mark.parametrize(
    ("loss", "sampler", "kwargs"),
    [
        ("softplus", "uniform", {}),
        ("margin_ranking", "bernoulli", {}),
        ("nssa", "pseudo_typed", {"loss_kwargs": {"margin": 0.0}}),
        ("bce", "uniform", {"filtered": True, "loss_kwargs": {"label_smoothing": 0.1}}),
        (
            "cross_entropy",
            "uniform",
            {"negative_sampler_kwargs": {"corruption": ["head", "relation", "tail"]}},
        ),
    ],
)
def test_slcwa_reduces_loss(triples, tiny_model_factory, loss: str, sampler: str, kwargs: dict) -> None:
    loop = SLCWATrainingLoop(
        tiny_model_factory(),
        triples,
        negative_sampler=sampler,
        num_negs_per_pos=8,
        loss=loss,
        lr=0.05,
        batch_size=16,
        seed=0,
        device="cpu",
        **kwargs,
    )
    losses = loop.train(20)
    assert losses[-1] < 0.7 * losses[0], losses


def test_reciprocal_model_gets_inverse_triples_and_tail_corruption(triples) -> None:
    model = MODELS.make(
        "complex",
        num_entities=24,
        num_relations=3,
        embedding_dim=8,
        inverse_relations=True,
        embedding_dropout=0.0,  # the loss must fall clearly within 15 epochs of this tiny model
    )
    loop = SLCWATrainingLoop(
        model, triples, num_negs_per_pos=4, filtered=True, lr=0.05, batch_size=32, seed=0, device="cpu"
    )
    assert len(loop.triples) == 2 * len(triples) and loop.negative_sampler.corruption == ("tail",)
    pos = loop.triples[:5]
    neg, _ = loop.negative_sampler.sample(pos, torch.Generator().manual_seed(0))
    assert torch.equal(neg[..., :2], pos[:, None, :2].expand(-1, 4, -1))  # only tails change
    # the single-call scoring agrees with score_hrt
    model.eval()
    ps, ns = loop.score(pos, neg)
    assert torch.allclose(ps, model.score_hrt(pos), atol=1e-5)
    assert torch.allclose(ns, model.score_hrt(neg.reshape(-1, 3)).view(5, 4), atol=1e-5)
    losses = loop.train(15)
    assert losses[-1] < 0.7 * losses[0]
    with pytest.raises(ValueError, match="tail corruption"):
        SLCWATrainingLoop(
            model, triples, negative_sampler_kwargs={"corruption": ["head", "tail"]}, device="cpu"
        )


@pytest.mark.parametrize(
    "corruption", [("head", "tail"), ("head",), ("tail",), ("relation",), ("head", "relation", "tail")]
)
def test_candidate_scoring_agrees_with_score_hrt(triples, tiny_model_factory, corruption) -> None:
    model = tiny_model_factory()
    loop = SLCWATrainingLoop(
        model, triples, num_negs_per_pos=6, negative_sampler_kwargs={"corruption": corruption}, device="cpu"
    )
    pos = triples[::7]
    neg, _ = loop.negative_sampler.sample(pos, torch.Generator().manual_seed(1))
    ps, ns = loop.score(pos, neg)
    assert torch.allclose(ps, model.score_hrt(pos), atol=1e-6)
    assert torch.allclose(ns, model.score_hrt(neg.reshape(-1, 3)).view(len(pos), 6), atol=1e-6)


def test_regularizer_enters_the_loss(triples) -> None:
    def loss_of(weight: float) -> float:
        torch.manual_seed(0)
        model = MODELS.make(
            "distmult",
            num_entities=24,
            num_relations=3,
            embedding_dim=8,
            inverse_relations=False,
            regularizer="lp",
            regularizer_kwargs={"weight": weight},
        )
        loop = SLCWATrainingLoop(model, triples, num_negs_per_pos=2, seed=0, device="cpu")
        return float(loop.batch_loss(torch.arange(10)).detach())

    assert loss_of(10.0) > loss_of(0.0) + 1e-3


@pytest.mark.parametrize("side_per_positive", [True, False])
def test_one_side_per_positive_scores_and_loss_agree(triples, tiny_model_factory, side_per_positive) -> None:
    model = tiny_model_factory()
    loop = SLCWATrainingLoop(
        model,
        triples,
        num_negs_per_pos=5,
        negative_sampler_kwargs={"side_per_positive": side_per_positive},
        device="cpu",
        seed=3,
    )
    assert loop.negative_sampler.side_per_positive is side_per_positive
    pos = triples[::3]
    neg, _ = loop.negative_sampler.sample(pos, torch.Generator().manual_seed(2))
    assert (loop._side_order(pos, neg) is not None) is side_per_positive
    ps, ns = loop.score(pos, neg)
    assert torch.allclose(ps, model.score_hrt(pos), atol=1e-6)
    assert torch.allclose(ns, model.score_hrt(neg.reshape(-1, 3)).view(len(pos), 5), atol=1e-6)
    # the training loss (rows grouped by side) equals the loss of the scores in the original order
    batch = SLCWABatch(pos, neg, None)
    torch.testing.assert_close(loop.batch_loss(batch), loop.loss.slcwa(ps, ns))


def test_both_sides_in_one_model_call_agree_with_the_triple_scores(triples) -> None:
    # TransE scores the head and tail groups with one lookup (score_h_and_t): same values as score_hrt
    from kgreason.models import TransE

    torch.manual_seed(0)
    model = TransE(24, 3, embedding_dim=6)
    loop = SLCWATrainingLoop(model, triples, num_negs_per_pos=4, device="cpu", seed=3)
    pos = triples[::2]
    neg, _ = loop.negative_sampler.sample(pos, torch.Generator().manual_seed(2))
    order, counts = loop._side_order(pos, neg)
    assert counts[0] and counts[2] and not counts[1]  # both sides present
    ps, ns = loop.score(pos, neg)
    torch.testing.assert_close(ps, model.score_hrt(pos), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        ns, model.score_hrt(neg.reshape(-1, 3)).view(len(pos), 4), atol=1e-5, rtol=1e-5
    )
