from __future__ import annotations

import pytest
import torch

from kgreason.data import add_inverse_triples
from kgreason.models import MODELS
from kgreason.training.lcwa import (
    LCWATrainingLoop,
    MultiLabelIndex,
    SymmetricLCWATrainingLoop,
    build_label_index,
)


def naive_labels(triples: torch.Tensor, target: str, num_classes: int) -> dict[tuple[int, int], torch.Tensor]:
    cols = {"tail": ((0, 1), 2), "head": ((1, 2), 0), "relation": ((0, 2), 1)}[target]
    out: dict[tuple[int, int], torch.Tensor] = {}
    for row in triples.tolist():
        key = (row[cols[0][0]], row[cols[0][1]])
        out.setdefault(key, torch.zeros(num_classes))[row[cols[1]]] = 1.0
    return out


@pytest.mark.parametrize("target", ["head", "relation", "tail"])
def test_labels_match_naive_construction(target: str) -> None:
    g = torch.Generator().manual_seed(0)
    t = torch.stack(
        [
            torch.randint(15, (120,), generator=g),
            torch.randint(4, (120,), generator=g),
            torch.randint(15, (120,), generator=g),
        ],
        1,
    )
    t = torch.cat([t, t[:10]])  # duplicates must not matter
    n = 4 if target == "relation" else 15
    index = build_label_index(t, target, n)
    naive = naive_labels(t, target, n)
    assert len(index) == len(naive)
    batch = torch.randperm(len(index), generator=g)[:37]
    labels = index.labels(batch)
    for row, i in zip(labels, batch.tolist()):
        key = tuple(index.queries[i].tolist())
        assert torch.equal(row, naive[key])
    # every triple's query index points at its own query
    cols = {"tail": [0, 1], "head": [1, 2], "relation": [0, 2]}[target]
    assert torch.equal(index.queries[index.query_of], t[:, cols])


def test_label_index_empty_rows_not_possible_and_dtype() -> None:
    idx = MultiLabelIndex(torch.tensor([[0, 0], [0, 0], [1, 0]]), torch.tensor([1, 2, 2]), 3)
    assert idx.labels(torch.tensor([1, 0]), dtype=torch.float64).tolist() == [[0, 0, 1], [0, 1, 1]]


@pytest.mark.parametrize("target", ["tail", "head", "relation"])
def test_lcwa_reduces_loss(triples: torch.Tensor, tiny_model_factory, target: str) -> None:
    loop = LCWATrainingLoop(
        tiny_model_factory(), triples, target=target, lr=0.05, batch_size=16, seed=0, device="cpu"
    )
    losses = loop.train(15)
    assert losses[-1] < 0.5 * losses[0]


def test_lcwa_reciprocal_trains_on_inverse_triples(triples: torch.Tensor) -> None:
    model = MODELS.make(
        "distmult", num_entities=24, num_relations=3, embedding_dim=16, inverse_relations=True
    )
    loop = LCWATrainingLoop(
        model, triples, lr=0.05, batch_size=16, seed=0, device="cpu", loss_kwargs={"label_smoothing": 0.1}
    )
    assert loop.reciprocal and torch.equal(loop.triples, add_inverse_triples(triples, 3))
    # queries are (h, r) for base and inverse relations: every entity appears with r + R
    assert int(loop.label_index.queries[:, 1].max()) == 5
    losses = loop.train(20)
    assert losses[-1] < 0.5 * losses[0]
    with pytest.raises(ValueError, match="target='tail'"):
        LCWATrainingLoop(model, triples, target="head", device="cpu")


def test_lcwa_rejects_pairwise_losses(triples: torch.Tensor, tiny_model_factory) -> None:
    with pytest.raises(ValueError, match="LCWA"):
        LCWATrainingLoop(tiny_model_factory(), triples, loss="nssa", device="cpu")


def test_symmetric_lcwa_scores_both_sides(triples: torch.Tensor, tiny_model_factory) -> None:
    model = tiny_model_factory()
    calls: list[str] = []
    for name in ("score_t", "score_h"):
        fn = getattr(model, name)
        setattr(model, name, lambda *a, _fn=fn, _n=name, **k: (calls.append(_n), _fn(*a, **k))[1])
    loop = SymmetricLCWATrainingLoop(model, triples, lr=0.05, batch_size=24, seed=0, device="cpu")
    assert loop.num_examples == len(triples)  # one example per triple
    losses = loop.train(15)
    assert losses[-1] < 0.5 * losses[0]
    assert calls.count("score_t") == calls.count("score_h") == 15 * 3
    with pytest.raises(ValueError, match="LCWATrainingLoop"):
        SymmetricLCWATrainingLoop(tiny_model_factory(inverse=True), triples, device="cpu")


def test_symmetric_loss_is_mean_of_both_sides(triples: torch.Tensor, tiny_model_factory) -> None:
    model = tiny_model_factory()
    loop = SymmetricLCWATrainingLoop(model, triples, batch_size=8, device="cpu")
    batch = torch.arange(8)
    got = loop.batch_loss(batch)
    tr = triples[:8]
    lt = torch.stack([(triples[:, 0] == h) & (triples[:, 1] == r) for h, r in tr[:, :2].tolist()])
    tail_labels = torch.zeros(8, 24)
    head_labels = torch.zeros(8, 24)
    for i, (_h, r, t) in enumerate(tr.tolist()):
        tail_labels[i, triples[lt[i], 2]] = 1
        head_labels[i, triples[(triples[:, 1] == r) & (triples[:, 2] == t), 0]] = 1
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    expected = 0.5 * (bce(model.score_t(tr[:, :2]), tail_labels) + bce(model.score_h(tr[:, 1:]), head_labels))
    assert torch.allclose(got, expected)


def test_sub_batching_gives_the_same_gradient(triples: torch.Tensor, tiny_model_factory) -> None:
    def one_step(sub: int | None) -> list[torch.Tensor]:
        model = tiny_model_factory(seed=3)
        loop = LCWATrainingLoop(
            model, triples, optimizer="sgd", lr=0.1, batch_size=40, sub_batch_size=sub, seed=0, device="cpu"
        )
        loop.train(1)
        return [p.detach().clone() for p in model.parameters()]

    whole, parts = one_step(None), one_step(7)
    for a, b in zip(whole, parts):
        assert torch.allclose(a, b, atol=1e-6)
