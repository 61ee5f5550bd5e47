"""The gathered-candidate kernels against plain autograd (values and gradients, double precision)."""

from __future__ import annotations

import pytest
import torch

from kgreason.models.kernels import MULSUM_MAX_CANDIDATES, gathered_dot, gathered_l1, gathered_l2


def _reference(kind: str, q: torch.Tensor, table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    rows = table[index]  # [b, k, d]
    if kind == "dot":
        return (rows * q.unsqueeze(1)).sum(-1)
    return torch.linalg.vector_norm(rows - q.unsqueeze(1), ord=1 if kind == "l1" else 2, dim=-1)


def _assert_same_values_and_gradients(
    out: torch.Tensor, ref: torch.Tensor, q: torch.Tensor, table: torch.Tensor
) -> None:
    """``out`` equals ``ref``, and so do their gradients with respect to ``q`` and ``table`` (random weights)."""
    torch.testing.assert_close(out, ref)
    weights = torch.randn_like(out)
    got = torch.autograd.grad((out * weights).sum(), (q, table))
    want = torch.autograd.grad((ref * weights).sum(), (q, table))
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)


@pytest.mark.parametrize("kind, fn", [("dot", gathered_dot), ("l1", gathered_l1), ("l2", gathered_l2)])
def test_values_and_gradients_match_autograd(kind: str, fn) -> None:
    torch.manual_seed(0)
    q = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    table = torch.randn(9, 5, dtype=torch.float64, requires_grad=True)
    index = torch.randint(9, (6, 4))
    index[0, 1] = index[0, 0]  # a repeated candidate accumulates its gradient
    out, ref = fn(q, table, index), _reference(kind, q, table, index)
    _assert_same_values_and_gradients(out, ref, q, table)
    assert torch.autograd.gradcheck(lambda a, b: fn(a, b, index), (q, table))


def test_distance_gradient_is_zero_at_zero_distance() -> None:
    table = torch.tensor([[1.0, 2.0], [0.0, 0.0]], requires_grad=True)
    q = torch.tensor([[1.0, 2.0]], requires_grad=True)
    out = gathered_l2(q, table, torch.tensor([[0, 1]]))
    out.sum().backward()
    assert torch.isfinite(table.grad).all() and torch.isfinite(q.grad).all()
    torch.testing.assert_close(table.grad[0], torch.zeros(2))


def test_no_gradient_needed() -> None:
    with torch.no_grad():
        out = gathered_l1(torch.randn(3, 4), torch.randn(5, 4), torch.randint(5, (3, 2)))
    assert out.shape == (3, 2) and not out.requires_grad


@pytest.mark.parametrize("num_candidates", [1, MULSUM_MAX_CANDIDATES, MULSUM_MAX_CANDIDATES + 1])
def test_dot_both_reductions_match_autograd(num_candidates: int) -> None:
    """Up to ``MULSUM_MAX_CANDIDATES`` the rows are reduced by multiply-and-sum, beyond by a batched matmul."""
    torch.manual_seed(1)
    q = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    table = torch.randn(7, 4, dtype=torch.float64, requires_grad=True)
    index = torch.randint(7, (3, num_candidates))
    out, ref = gathered_dot(q, table, index), _reference("dot", q, table, index)
    _assert_same_values_and_gradients(out, ref, q, table)


def test_unit_rows_matches_normalize_in_values_and_gradients() -> None:
    from kgreason.models.kernels import unit_rows

    torch.manual_seed(0)
    x = torch.randn(7, 5, dtype=torch.float64)
    x[3] = 1e-14  # a row below eps: divided by eps, no projection term in its gradient
    g = torch.randn(7, 5, dtype=torch.float64)
    a = x.clone().requires_grad_()
    b = x.clone().requires_grad_()
    ya, yb = unit_rows(a), torch.nn.functional.normalize(b, dim=-1)
    (ya * g).sum().backward()
    (yb * g).sum().backward()
    torch.testing.assert_close(ya, yb)
    torch.testing.assert_close(a.grad, b.grad)
    assert torch.autograd.gradcheck(
        lambda t: unit_rows(t), (torch.randn(4, 3, dtype=torch.float64, requires_grad=True),)
    )
