import math

import pytest
import torch
from kge_helpers import NUM_ENTITIES, assert_h_and_t_match_separate_calls, random_triples

import kgreason.models.base as base
from kgreason.models import RotatE


def _expected(model: RotatE, hrt: torch.Tensor, p: int) -> torch.Tensor:
    w = model.entity.weight.detach()
    ent = torch.complex(w[:, 0::2], w[:, 1::2])
    rot = torch.exp(1j * model.phase.weight.detach().to(torch.complex64))
    h, r, t = hrt.unbind(1)
    diff = ent[h] * rot[r] - ent[t]
    return -(diff.abs().sum(-1) if p == 1 else diff.abs().pow(2).sum(-1).sqrt())


@pytest.mark.parametrize("p", [1, 2])
def test_score_is_negative_rotation_distance(p: int) -> None:
    torch.manual_seed(0)
    model = RotatE(NUM_ENTITIES, 3, embedding_dim=8, p=p)
    hrt = random_triples(10)
    with torch.no_grad():
        torch.testing.assert_close(model.score_hrt(hrt), _expected(model, hrt, p), atol=1e-5, rtol=1e-5)
        # heads natively: |h * r - t| = |h - t * conj(r)| since |r| = 1
        full = model.score_h(hrt[:, 1:])
        torch.testing.assert_close(
            full[torch.arange(10), hrt[:, 0]], _expected(model, hrt, p), atol=1e-4, rtol=1e-4
        )


def test_phases_uniform_in_minus_pi_pi() -> None:
    torch.manual_seed(0)
    model = RotatE(5, 50, embedding_dim=100)
    ph = model.phase.weight
    assert ph.min() >= -math.pi and ph.max() <= math.pi and ph.min() < -3.0 and ph.max() > 3.0
    assert model.p == 2 and not model.inverse_relations


def test_chunked_l1_distances_match(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = RotatE(NUM_ENTITIES, 3, embedding_dim=8, p=1).eval()
    hr = random_triples(4)[:, :2]
    with torch.no_grad():
        whole = model.score_t(hr)
        monkeypatch.setattr(base, "MAX_BROADCAST_ELEMENTS", 4 * 8 * 3)  # chunks of 3 entities
        torch.testing.assert_close(model.score_t(hr), whole)


def test_invalid_norm() -> None:
    with pytest.raises(ValueError, match="p must be 1 or 2"):
        RotatE(5, 2, p=0)


@pytest.mark.parametrize("p", [1, 2])
# 3: the dense fallback (small table); 30 (L1), 200 (L2): candidates from the table; 4000: one lookup
@pytest.mark.parametrize("num_entities", [3, 30, 200, 4000])
def test_score_h_and_t_matches_the_two_separate_calls(p: int, num_entities: int) -> None:
    torch.manual_seed(0)
    model = RotatE(num_entities, 4, embedding_dim=6, p=p)
    assert_h_and_t_match_separate_calls(model, num_heads=50, num_tails=3)


def test_l1_training_gradients_with_gathered_and_shared_candidates() -> None:
    # the complex table is indexed (F.embedding has no complex autograd): gradients must flow for candidate
    # lists per query [b, k] and shared by the batch [k] on a table larger than the candidate lists
    torch.manual_seed(0)
    model = RotatE(50, 2, embedding_dim=4, p=1)
    hr = torch.tensor([[0, 1], [3, 0]])
    (
        model.score_t(hr, torch.tensor([[1, 2], [4, 5]])).sum()
        + model.score_t(hr, torch.tensor([7, 8, 9])).sum()
    ).backward()
    touched = model.entity.weight.grad.abs().sum(dim=1).nonzero().flatten().tolist()
    assert touched == [0, 1, 2, 3, 4, 5, 7, 8, 9]
