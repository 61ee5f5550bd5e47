"""PCNN-ATT: piecewise pooling, selective attention, pre-training on the family corpus; held-out metrics."""

from __future__ import annotations

import math
import time

import pytest
import torch

from kgreason.data.family import build_family_dataset
from kgreason.open.distant_supervision import BagDataset, build_bag_dataset
from kgreason.open.encoder import (
    PCNNAttention,
    bag_chunks,
    class_weights,
    evaluate_extractor,
    piecewise_max_pool,
    predict_bags,
    pretrain_extractor,
    training_instances,
)
from kgreason.open.metrics import (
    average_precision,
    heldout_metrics,
    pr_auc,
    precision_at_n,
    precision_recall_curve,
)


@pytest.fixture(scope="module")
def family_bags() -> tuple[BagDataset, object]:
    ds = build_family_dataset("tiny", with_corpus=True)
    return build_bag_dataset(ds.metadata["corpus"], ds), ds


def naive_piecewise(features: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
    s, f, _ = features.shape
    rows = []
    for i in range(s):
        pieces = []
        for piece in (1, 2, 3):
            cols = (segments[i] == piece).nonzero().flatten().tolist()
            pieces.append(
                torch.stack([features[i, :, c] for c in cols], 1).max(1).values if cols else torch.zeros(f)
            )
        rows.append(torch.stack(pieces, 1))
    return torch.stack(rows)


def test_piecewise_pooling_equals_a_loop() -> None:
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(5, 4, 9, generator=gen, dtype=torch.float64)
    segments = torch.tensor([
        [1, 1, 2, 2, 2, 3, 3, 0, 0],
        [1, 2, 3, 3, 3, 3, 3, 3, 3],
        [1, 1, 1, 2, 2, 2, 0, 0, 0],  # empty third piece
        [1, 2, 0, 0, 0, 0, 0, 0, 0],
        [1, 1, 1, 1, 1, 1, 1, 1, 1],  # only one piece
    ])  # fmt: skip
    got = piecewise_max_pool(features, segments)
    assert got.shape == (5, 4, 3)
    assert torch.allclose(got, naive_piecewise(features, segments).double())
    # gradients: one unit per (sentence, filter, non-empty piece), at the argmax
    a = features.clone().requires_grad_(True)
    b = features.clone().requires_grad_(True)
    w = torch.randn(5, 4, 3, generator=gen, dtype=torch.float64)
    (piecewise_max_pool(a, segments) * w).sum().backward()
    (naive_piecewise(b, segments) * w).sum().backward()
    assert torch.allclose(a.grad, b.grad)


def small_model(bags: BagDataset, seed: int = 0) -> PCNNAttention:
    torch.manual_seed(seed)
    return PCNNAttention.from_bag_dataset(bags, word_dim=8, num_filters=16)


def test_attention_sums_to_one_per_bag(family_bags: tuple[BagDataset, object]) -> None:
    bags, _ = family_bags
    model = small_model(bags).eval()
    ids = torch.argsort(bags.bag_sizes, descending=True)[:20]  # include the largest bags
    batch = bags.batch(ids)
    assert batch.sentence_mask.sum(1).max() > 1 and (batch.sentence_mask.sum(1) == 1).any() is not None
    x = model.encode_sentences(batch.tokens, batch.pos_head, batch.pos_tail, batch.segments)
    assert x.shape == (batch.num_sentences, 3 * 16)
    query = bags.labels[ids].float().argmax(1)
    alpha = model.attention(x, batch.sentence_index, batch.sentence_mask, query)
    assert torch.allclose(alpha.sum(1), torch.ones(len(ids)))
    assert alpha[~batch.sentence_mask].eq(0).all()
    per_rel = model.attention(x, batch.sentence_index, batch.sentence_mask)
    assert per_rel.shape == (len(ids), batch.sentence_index.shape[1], bags.num_classes)
    assert torch.allclose(per_rel.sum(1), torch.ones(len(ids), bags.num_classes))
    assert per_rel[~batch.sentence_mask].eq(0).all()


def test_per_relation_logits_equal_query_logits(family_bags: tuple[BagDataset, object]) -> None:
    bags, _ = family_bags
    model = small_model(bags).eval()
    batch = bags.batch(torch.arange(30))
    full = model(batch)  # [B, C, C]
    for r in (0, 5, bags.na_index):
        q = torch.full((30,), r, dtype=torch.long)
        assert torch.allclose(full[:, r, :], model(batch, query=q), atol=1e-5)
    logits, probs = model.relation_scores(batch)
    assert torch.allclose(logits, torch.diagonal(full, dim1=1, dim2=2))
    assert torch.allclose(probs, torch.diagonal(torch.softmax(full, -1), dim1=1, dim2=2))


def test_scores_do_not_depend_on_the_batch(family_bags: tuple[BagDataset, object]) -> None:
    bags, _ = family_bags
    model = small_model(bags)
    all_logits, all_probs = predict_bags(model, bags, max_sentences=50)
    assert model.training  # mode restored
    ids = torch.tensor([3, 0, 17])
    alone, _ = predict_bags(model, bags, ids)
    assert torch.allclose(alone, all_logits[ids], atol=1e-5)
    chunks = bag_chunks(bags, max_sentences=50)
    assert torch.equal(torch.cat(chunks), torch.arange(len(bags)))
    assert all(bags.bag_sizes[c].sum() < 50 + bags.bag_sizes.max() for c in chunks)


def test_training_instances_and_weights(family_bags: tuple[BagDataset, object]) -> None:
    bags, _ = family_bags
    inst = training_instances(bags)
    assert len(inst) == int(bags.labels.sum())
    assert bags.labels[inst[:, 0], inst[:, 1]].all()
    w = class_weights(bags, 0.05)
    counts = bags.labels.sum(0).float()
    assert torch.allclose(w[counts > 0], counts[counts > 0] ** -0.05)
    assert torch.equal(class_weights(bags, 0.0), torch.ones(bags.num_classes))


def test_pretraining_beats_random_on_family_tiny(family_bags: tuple[BagDataset, object]) -> None:
    bags, ds = family_bags
    train, heldout = bags.split(0.2, seed=0)
    torch.manual_seed(0)
    model = PCNNAttention.from_bag_dataset(bags)
    before = evaluate_extractor(model, heldout)
    start = time.perf_counter()
    history = pretrain_extractor(model, train, epochs=5, batch_size=64, lr=1e-2, seed=0, device="cpu",
                                 eval_bags=heldout, eval_every=2)  # fmt: skip
    seconds = time.perf_counter() - start
    after = history.metrics[-1]
    assert [m["epoch"] for m in history.metrics] == [2.0, 4.0, 5.0]
    assert len(history.losses) == 5 and history.losses[-1] < history.losses[0]
    assert after["heldout.random_pr_auc"] < 0.05
    assert after["heldout.pr_auc"] > 0.3 > 3 * before["pr_auc"]
    assert after["heldout.pr_auc"] > 6 * after["heldout.random_pr_auc"]
    assert after["heldout.p@100"] > 0.3
    assert seconds < 30
    assert not model.training
    # against the full ground truth (text states many facts the training graph lacks) it does better still
    truth = heldout.with_labels(heldout.label_with(ds.metadata["ground_truth"]))
    assert evaluate_extractor(model, truth)["pr_auc"] > after["heldout.pr_auc"]


# ---- metrics ----------------------------------------------------------------------------------------------


def test_metrics_by_hand() -> None:
    # 2 bags x (2 relations + NA); NA scores are high but ignored
    scores = torch.tensor([[0.9, 0.1, 0.99], [0.3, 0.7, 0.95]])
    labels = torch.tensor([[True, False, False], [True, False, False]])
    # ranked: 0.9 T, 0.7 F, 0.3 T, 0.1 F  -> P = 1, 1/2, 2/3, 1/2 ; R = 1/2, 1/2, 1, 1
    precision, recall, thresholds = precision_recall_curve(scores, labels, na_index=2)
    assert torch.allclose(precision, torch.tensor([1.0, 0.5, 2 / 3, 0.5]))
    assert torch.allclose(recall, torch.tensor([0.5, 0.5, 1.0, 1.0]))
    assert torch.allclose(thresholds, torch.tensor([0.9, 0.7, 0.3, 0.1]))
    assert pr_auc(scores, labels, na_index=2) == pytest.approx(0.5 * (0.5 + 2 / 3) / 2)
    assert average_precision(scores, labels, na_index=2) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    p = precision_at_n(scores, labels, ns=(1, 2, 3, 100, 0.5), na_index=2)
    assert p == pytest.approx({"p@1": 1.0, "p@2": 0.5, "p@3": 2 / 3, "p@100": 0.5, "p@50%": 0.5})
    m = heldout_metrics(scores, labels, na_index=2, ns=(2,))
    assert m["num_predictions"] == 4 and m["num_positives"] == 2 and m["random_pr_auc"] == 0.5


def test_metrics_ties_and_edge_cases() -> None:
    scores = torch.tensor([[0.5, 0.5], [0.5, 0.2]])
    labels = torch.tensor([[1, 0], [0, 1]])
    precision, recall, _ = precision_recall_curve(scores, labels)  # no NA column
    assert torch.allclose(precision, torch.tensor([1 / 3, 0.5]))  # the three tied predictions enter together
    assert torch.allclose(recall, torch.tensor([0.5, 1.0]))
    assert pr_auc(scores, labels) == pytest.approx(0.5 * (1 / 3 + 0.5) / 2)
    assert math.isnan(pr_auc(scores, torch.zeros_like(labels)))
    with pytest.raises(ValueError):
        precision_at_n(scores, labels, ns=(0,))
    with pytest.raises(ValueError):
        pr_auc(scores, labels[:1])


def test_random_scores_give_the_positive_rate() -> None:
    gen = torch.Generator().manual_seed(0)
    labels = torch.rand(4000, 6, generator=gen) < 0.1
    scores = torch.rand(4000, 6, generator=gen)
    assert pr_auc(scores, labels) == pytest.approx(float(labels.float().mean()), abs=0.02)
    perfect = labels.float() + 0.01 * scores
    assert average_precision(perfect, labels) == pytest.approx(1.0)
    assert pr_auc(perfect, labels) == pytest.approx(1.0, abs=1e-3)  # no area before the first point


def test_pretrained_word_vectors(family_bags: tuple[BagDataset, object], tmp_path) -> None:
    from kgreason.data.corpus import load_word2vec_text

    bags, _ = family_bags
    words = bags.words.words[2:7]
    lines = [f"{w} " + " ".join(str(0.1 * (i + 1) + 0.01 * j) for j in range(4)) for i, w in enumerate(words)]
    path = tmp_path / "vectors.txt"
    path.write_text(f"{len(words)} 4\n" + "\n".join(lines) + "\n")
    vectors = load_word2vec_text(path, bags.words)
    model = PCNNAttention.from_bag_dataset(bags, word_vectors=vectors, freeze_words=True, num_filters=8)
    assert model.word_embedding.weight.shape == (len(bags.words), 4)
    assert torch.allclose(
        model.word_embedding.weight[bags.words.id(words[0])], torch.tensor([0.1, 0.11, 0.12, 0.13])
    )
    assert model.word_embedding.weight[0].eq(0).all() and not model.word_embedding.weight.requires_grad
    logits = model(bags.batch(torch.arange(4)))
    assert logits.shape == (4, bags.num_classes, bags.num_classes) and torch.isfinite(logits).all()
