import pytest
import torch
from kge_helpers import NUM_ENTITIES, assert_h_and_t_match_separate_calls, random_triples

from kgreason.models import TransE


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("normalize", [True, False])
def test_score_is_negative_translation_distance(p: int, normalize: bool) -> None:
    torch.manual_seed(0)
    model = TransE(NUM_ENTITIES, 3, embedding_dim=12, p=p, normalize_entities=normalize)
    hrt = random_triples(9)
    ent, rel = model.entity.weight.detach(), model.relation.weight.detach()
    if normalize:
        ent = ent / ent.norm(dim=1, keepdim=True)
    h, r, t = hrt.unbind(1)
    expected = -(ent[h] + rel[r] - ent[t]).abs().pow(p).sum(-1).pow(1 / p)
    with torch.no_grad():
        torch.testing.assert_close(model.score_hrt(hrt), expected, atol=1e-5, rtol=1e-5)
        every = (
            -(ent[h].unsqueeze(1) + rel[r].unsqueeze(1) - ent.unsqueeze(0)).abs().pow(p).sum(-1).pow(1 / p)
        )
        torch.testing.assert_close(model.score_t(hrt[:, :2]), every, atol=1e-4, rtol=1e-4)


def test_entity_normalisation_makes_scores_scale_free() -> None:
    torch.manual_seed(0)
    model = TransE(NUM_ENTITIES, 3, embedding_dim=12)
    hr = random_triples(4)[:, :2]
    with torch.no_grad():
        before = model.score_t(hr)
        model.entity.weight.mul_(7.0)
        torch.testing.assert_close(model.score_t(hr), before, atol=1e-5, rtol=1e-5)
        model.normalize_entities = False
        assert not torch.allclose(model.score_t(hr), before)


def test_scores_are_never_positive_and_defaults() -> None:
    model = TransE(NUM_ENTITIES, 3)
    assert (
        model.p == 1
        and model.normalize_entities
        and not model.inverse_relations
        and model.embedding_dim == 200
    )
    assert (model.score_t(random_triples(3)[:, :2]) <= 0).all()


def test_invalid_norm() -> None:
    with pytest.raises(ValueError, match="p must be 1 or 2"):
        TransE(5, 2, p=3)


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("side", ["tail", "head"])
def test_candidate_scores_on_a_large_table_match_the_normalised_table(p: int, side: str) -> None:
    # few candidates on a large table take the compact path (only the needed rows normalised): the values and
    # the gradients of the table must equal those of scoring against the whole normalised table
    torch.manual_seed(0)
    model = TransE(500, 4, embedding_dim=8, p=p)
    queries = torch.stack([torch.randint(0, 4, (6,)), torch.randint(0, 500, (6,))], dim=1)
    queries = queries if side == "head" else queries.flip(1)  # [b, 2]: (r, t) for heads, (h, r) for tails
    candidates = torch.randint(0, 500, (6, 3))
    candidates[0, 1] = candidates[0, 0]  # a repeated candidate
    score = model.score_h if side == "head" else model.score_t
    got = score(queries, candidates)
    got.sum().backward()
    got_grad = model.entity.weight.grad.clone()
    model.entity.weight.grad = None

    table = torch.nn.functional.normalize(model.entity.weight, dim=-1)
    if side == "head":
        anchor = table[queries[:, 1]] - model.relation(queries[:, 0])
    else:
        anchor = table[queries[:, 0]] + model.relation(queries[:, 1])
    expected = -(anchor.unsqueeze(1) - table[candidates]).norm(p=p, dim=-1)
    expected.sum().backward()
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_grad, model.entity.weight.grad, atol=1e-5, rtol=1e-5)
    assert got_grad.abs().sum() > 0


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("num_entities", [20, 500])  # the whole (normalised) table, and the compact rows
def test_score_h_and_t_matches_the_two_separate_calls(p: int, num_entities: int) -> None:
    torch.manual_seed(0)
    model = TransE(num_entities, 4, embedding_dim=8, p=p)
    assert_h_and_t_match_separate_calls(model, num_heads=5, num_tails=3)
