"""Gauss–Newton products through the stored output Jacobian (`estimators.output_jacobian`) against the
matrix-free jvp → M → vjp products and the explicit Gauss–Newton matrix, in float64."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from estimator_helpers import assert_close
from tdabench.estimators import output_jacobian as module
from tdabench.estimators.curvature import CurvatureOperator
from tdabench.estimators.dense_curvature import gauss_newton_matrix
from tdabench.task import TaskContext


def fresh(ctx: TaskContext) -> TaskContext:
    """The context with its own copy of θᶠ and an empty memo (the fixtures are shared by the session)."""
    return dataclasses.replace(ctx, params={k: v.clone() for k, v in ctx.params.items()})


def vectors_for(ctx: TaskContext, k: int = 4) -> torch.Tensor:
    return torch.randn(k, ctx.n_params, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def test_jacobian_products_equal_matrix_free_and_explicit(tiny_cnn_context):
    """CNN with 10 outputs (M_i a full 10×10 softmax Hessian), l2 = 0.01, damping 0.3: the stored-J
    product equals the matrix-free one and (G + 0.3 I)V from the explicit G, whole set and sampled rows."""
    ctx = fresh(tiny_cnn_context)
    vectors = vectors_for(ctx)
    stored = CurvatureOperator(ctx, "gauss-newton", damping=0.3, batch_size=7, dense_up_to=0)
    free = CurvatureOperator(ctx, "gauss-newton", damping=0.3, batch_size=7, dense_up_to=0, jacobian_up_to=0)
    assert stored.uses_jacobian_ and not free.uses_jacobian_
    explicit = vectors @ gauss_newton_matrix(ctx, batch_size=7) + 0.3 * vectors
    assert_close(stored.matvec(vectors).numpy(), free.matvec(vectors).numpy(), 1e-12)
    assert_close(stored.matvec(vectors).numpy(), explicit.numpy(), 1e-12)
    rows = torch.tensor([0, 5, 7, 30, 59])
    assert_close(stored.matvec(vectors, rows=rows).numpy(), free.matvec(vectors, rows=rows).numpy(), 1e-12)


def test_jacobian_shape_and_rows_by_hand(tiny_logreg_context):
    """Logistic regression with 2 logits, o = W x + b: ∂o_c/∂W[c, :] = x, ∂o_c/∂b[c] = 1 and 0 on the
    other logit's parameters, so J is known without differentiation; M_i = diag(p) − p pᵀ; a one-row
    product is J_iᵀ M_i J_i V."""
    ctx = fresh(tiny_logreg_context)
    assert [tuple(v.shape) for v in ctx.params.values()] == [(2, 30), (2,)]  # flat order: W (row-major), b
    held = CurvatureOperator(ctx, "gauss-newton", dense_up_to=0).output_jacobian()
    assert tuple(held.jacobian.shape) == (len(ctx.train), 2, ctx.n_params)
    x = ctx.train.x[3].double()
    by_hand = torch.zeros(2, ctx.n_params, dtype=torch.float64)
    for c in range(2):
        by_hand[c, 30 * c:30 * (c + 1)] = x
        by_hand[c, 60 + c] = 1.0
    assert_close(held.jacobian[3].numpy(), by_hand.numpy(), 1e-12)
    probs = torch.softmax(ctx.outputs({k: v.double() for k, v in ctx.params.items()}, x[None])[0], 0)
    m = torch.diag(probs) - torch.outer(probs, probs)
    assert_close(held.output_hessian[3].numpy(), m.numpy(), 1e-12)
    v = vectors_for(ctx, 2)
    expected = (v @ by_hand.T) @ m @ by_hand
    assert_close(held.gauss_newton_products(v, torch.tensor([3])).numpy(), expected.numpy(), 1e-12)


def test_one_jacobian_per_context_and_rebuilt_when_parameters_change(tiny_cnn_context, monkeypatch):
    """Two operators on one context build J once; an in-place change of θᶠ builds a new one in
    place of the old (the memo never holds two)."""
    ctx = fresh(tiny_cnn_context)
    builds = []
    real = module.build_output_jacobian
    monkeypatch.setattr(module, "build_output_jacobian", lambda *a, **k: builds.append(1) or real(*a, **k))
    vectors = vectors_for(ctx, 2)
    first = CurvatureOperator(ctx, "gauss-newton", dense_up_to=0).matvec(vectors)
    CurvatureOperator(ctx, "gauss-newton", damping=1.0, dense_up_to=0).matvec(vectors)
    assert len(builds) == 1
    with torch.no_grad():
        next(iter(ctx.params.values())).mul_(2.0)
    changed = CurvatureOperator(ctx, "gauss-newton", dense_up_to=0)
    second = changed.matvec(vectors)
    assert len(builds) == 2
    assert [k for k in ctx.memo if k == module.MEMO_KEY] == [module.MEMO_KEY]
    assert not torch.allclose(first, second)
    free = CurvatureOperator(ctx, "gauss-newton", dense_up_to=0, jacobian_up_to=0).matvec(vectors)
    assert_close(second.numpy(), free.numpy(), 1e-12)


def test_the_process_holds_one_jacobian(tiny_cnn_context):
    """Building J for a second context (a re-initialised copy, another task) drops the first one's."""
    first, second = fresh(tiny_cnn_context), fresh(tiny_cnn_context)
    vectors = vectors_for(first, 1)
    CurvatureOperator(first, "gauss-newton", dense_up_to=0).matvec(vectors)
    assert module.MEMO_KEY in first.memo
    CurvatureOperator(second, "gauss-newton", dense_up_to=0).matvec(vectors)
    assert module.MEMO_KEY in second.memo and module.MEMO_KEY not in first.memo
    again = CurvatureOperator(first, "gauss-newton", dense_up_to=0).matvec(vectors)  # rebuilt
    assert module.MEMO_KEY in first.memo and module.MEMO_KEY not in second.memo
    free = CurvatureOperator(first, "gauss-newton", dense_up_to=0, jacobian_up_to=0).matvec(vectors)
    assert_close(again.numpy(), free.numpy(), 1e-12)


@pytest.mark.parametrize("curvature, budget", [("gauss-newton", 1), ("hessian", 2**40)])
def test_matrix_free_over_budget_and_for_the_hessian(tiny_cnn_context, curvature, budget):
    """A Jacobian over `jacobian_up_to` bytes, or the Hessian (which J and M do not give), stays
    matrix-free: nothing is memoised."""
    ctx = fresh(tiny_cnn_context)
    operator = CurvatureOperator(ctx, curvature, dense_up_to=0, jacobian_up_to=budget)
    operator.matvec(vectors_for(ctx, 1))
    assert not operator.uses_jacobian_ and module.MEMO_KEY not in ctx.memo

