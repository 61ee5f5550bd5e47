"""Each loss against a computation by hand (plain Python math on a few numbers)."""

from __future__ import annotations

import math

import pytest
import torch

from kgreason.training.losses import (
    LOSSES,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    MarginRankingLoss,
    NSSALoss,
    SoftplusLoss,
    make_loss,
)

POS = [1.0, -0.5]
NEG = [[0.3, -1.2, 2.0], [0.1, 0.4, -0.7]]
VALID = [[True, False, True], [True, True, True]]


def sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def bce(s: float, y: float) -> float:
    return -(y * math.log(sig(s)) + (1 - y) * math.log(1 - sig(s)))


def t(x) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64)


def balanced(pos_term, neg_term, valid=None) -> float:
    """mean_i 1/2 [l(pos_i) + mean over valid j of l(neg_ij)]"""
    rows = []
    for i, p in enumerate(POS):
        js = [j for j in range(3) if valid is None or valid[i][j]]
        rows.append(0.5 * (pos_term(p) + sum(neg_term(NEG[i][j]) for j in js) / len(js)))
    return sum(rows) / len(rows)


def test_softplus_slcwa_and_lcwa() -> None:
    loss = SoftplusLoss()
    expected = balanced(lambda s: softplus(-s), lambda s: softplus(s))
    assert loss.slcwa(t(POS), t(NEG)).item() == pytest.approx(expected)
    expected_f = balanced(lambda s: softplus(-s), lambda s: softplus(s), VALID)
    assert loss.slcwa(t(POS), t(NEG), torch.tensor(VALID)).item() == pytest.approx(expected_f)
    labels = [[1, 0, 0], [0, 1, 1]]
    by_hand = sum(softplus(-s) if y else softplus(s) for r, lr in zip(NEG, labels) for s, y in zip(r, lr)) / 6
    assert loss.lcwa(t(NEG), t(labels)).item() == pytest.approx(by_hand)


def test_bce_with_label_smoothing() -> None:
    eps = 0.2
    loss = BCEWithLogitsLoss(label_smoothing=eps)
    # sLCWA: binary smoothing, targets 1 - eps/2 and eps/2
    expected = balanced(lambda s: bce(s, 1 - eps / 2), lambda s: bce(s, eps / 2))
    assert loss.slcwa(t(POS), t(NEG)).item() == pytest.approx(expected)
    # LCWA (1-N): y' = (1 - eps) y + eps / n
    labels = [[1, 0, 0], [0, 1, 1]]
    by_hand = sum(bce(s, (1 - eps) * y + eps / 3) for r, lr in zip(NEG, labels) for s, y in zip(r, lr)) / 6
    assert loss.lcwa(t(NEG), t(labels)).item() == pytest.approx(by_hand)
    # without smoothing, with one negative: plain mean over the 2b scores
    plain = BCEWithLogitsLoss()
    by_hand = (bce(1.0, 1) + bce(-0.5, 1) + bce(0.3, 0) + bce(0.1, 0)) / 4
    assert plain.slcwa(t(POS), t([[0.3], [0.1]])).item() == pytest.approx(by_hand)


def test_margin_ranking() -> None:
    loss = MarginRankingLoss(margin=1.0)
    pairs = [max(0.0, 1.0 - POS[i] + NEG[i][j]) for i in range(2) for j in range(3)]
    assert loss.slcwa(t(POS), t(NEG)).item() == pytest.approx(sum(pairs) / 6)
    valid_pairs = [max(0.0, 1.0 - POS[i] + NEG[i][j]) for i in range(2) for j in range(3) if VALID[i][j]]
    assert loss.slcwa(t(POS), t(NEG), torch.tensor(VALID)).item() == pytest.approx(sum(valid_pairs) / 5)
    with pytest.raises(NotImplementedError, match="LCWA"):
        loss.lcwa(t(NEG), t([[1, 0, 0], [0, 1, 0]]))


@pytest.mark.parametrize("use_valid", [False, True])
def test_nssa_matches_rotate_formula(use_valid: bool) -> None:
    gamma, alpha = 2.0, 0.5
    loss = NSSALoss(margin=gamma, adversarial_temperature=alpha)
    rows = []
    for i, p in enumerate(POS):
        js = [j for j in range(3) if not use_valid or VALID[i][j]]
        z = sum(math.exp(alpha * NEG[i][j]) for j in js)
        neg = -sum(math.exp(alpha * NEG[i][j]) / z * math.log(sig(-gamma - NEG[i][j])) for j in js)
        rows.append(0.5 * (-math.log(sig(gamma + p)) + neg))
    got = loss.slcwa(t(POS), t(NEG), torch.tensor(VALID) if use_valid else None)
    assert got.item() == pytest.approx(sum(rows) / 2)


def test_nssa_weights_are_not_back_propagated() -> None:
    neg = t(NEG).requires_grad_()
    NSSALoss(margin=0.0, adversarial_temperature=1.0).slcwa(t(POS), neg).backward()
    # d/ds of -p * log sig(-s) with p fixed is p * sig(s) / 2 / b -- positive for every negative
    p = torch.softmax(t(NEG), 1)
    assert torch.allclose(neg.grad, p * torch.sigmoid(t(NEG)) / 2 / 2)


def test_cross_entropy_lcwa_and_slcwa() -> None:
    eps = 0.1
    loss = CrossEntropyLoss(label_smoothing=eps)
    labels = [[1, 0, 0], [0, 1, 1]]
    total = 0.0
    for r, lr in zip(NEG, labels):
        lse = math.log(sum(math.exp(s) for s in r))
        target = [(1 - eps) * y / sum(lr) + eps / 3 for y in lr]
        total += -sum(tg * (s - lse) for tg, s in zip(target, r))
    assert loss.lcwa(t(NEG), t(labels)).item() == pytest.approx(total / 2)
    # sLCWA: softmax over [pos, valid negatives], target = the positive, smoothed over the usable classes
    total = 0.0
    for i, p in enumerate(POS):
        cand = [p] + [NEG[i][j] for j in range(3) if VALID[i][j]]
        lse = math.log(sum(math.exp(s) for s in cand))
        logp = [s - lse for s in cand]
        total += (1 - eps) * -logp[0] + eps * -sum(logp) / len(cand)
    assert loss.slcwa(t(POS), t(NEG), torch.tensor(VALID)).item() == pytest.approx(total / 2)


def test_registry_names_and_kwargs() -> None:
    assert isinstance(make_loss("BCE", label_smoothing=0.1), BCEWithLogitsLoss)
    assert isinstance(make_loss("self-adversarial", margin=6.0), NSSALoss)
    assert isinstance(make_loss("margin"), MarginRankingLoss)
    assert {"bce", "cross_entropy", "margin_ranking", "nssa", "softplus"} <= set(LOSSES.names())
    with pytest.raises(TypeError, match="label_smoothing"):
        make_loss("nssa", label_smoothing=0.1)
    with pytest.raises(ValueError):
        BCEWithLogitsLoss(label_smoothing=1.5)


@pytest.mark.parametrize(
    "loss", [SoftplusLoss(), BCEWithLogitsLoss(), BCEWithLogitsLoss(0.1), CrossEntropyLoss(0.1)]
)
def test_lcwa_sparse_labels_equal_dense_labels(loss) -> None:
    torch.manual_seed(0)
    scores = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    rows = torch.tensor([0, 0, 1, 3, 3, 3, 4])
    cols = torch.tensor([1, 6, 0, 2, 3, 5, 4])
    labels = torch.zeros(5, 7, dtype=torch.float64)
    labels[rows, cols] = 1.0
    dense = loss.lcwa(scores, labels)
    (grad_dense,) = torch.autograd.grad(dense, scores)
    sparse = loss.lcwa_sparse(scores, rows, cols)
    (grad_sparse,) = torch.autograd.grad(sparse, scores)
    torch.testing.assert_close(sparse, dense)
    torch.testing.assert_close(grad_sparse, grad_dense)


def test_softplus_slcwa_without_smoothing_matches_bce_targets() -> None:
    pos, neg, valid = t(POS), t(NEG), torch.tensor(VALID)
    expected = BCEWithLogitsLoss(0.0)
    expected.label_smoothing = 1e-300  # takes the general path with explicit targets
    torch.testing.assert_close(SoftplusLoss().slcwa(pos, neg, valid), expected.slcwa(pos, neg, valid))
