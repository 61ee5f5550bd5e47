import math

import pytest
import torch
from kge_helpers import NUM_ENTITIES, random_triples

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
