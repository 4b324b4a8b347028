"""Structured (R-operator, batched GEMM) curvature products of Linear stacks equal the generic vmapped
path and the explicit matrices (float64, small random models), and other models keep the generic path."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from tdabench.estimators import curvature as curvature_module
from tdabench.estimators import mlp_products
from tdabench.estimators.curvature import CurvatureOperator
from tdabench.estimators.dense_curvature import gauss_newton_matrix, hessian_matrix
from test_mlp_hessian import mlp_context

CASES = [  # widths, activation, bias, loss
    ([5, 3], None, True, "cross-entropy"),
    ([5, 1], None, False, "squared"),
    ([5, 4, 3], "relu", True, "cross-entropy"),
    ([5, 4, 3], "tanh", False, "cross-entropy"),
    ([4, 6, 5, 3], "relu", False, "cross-entropy"),
    ([4, 6, 5, 3], "tanh", True, "cross-entropy"),
    ([4, 6, 5, 3], None, True, "cross-entropy"),
    ([4, 5, 3, 1], "relu", True, "squared"),
    ([4, 5, 3, 1], "tanh", False, "squared"),
]


def assert_equal_to(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-12 * float(expected.abs().max()))


def operators(ctx, curvature: str, **kwargs) -> tuple[CurvatureOperator, CurvatureOperator]:
    """(structured, generic) matrix-free operators, damping 0.3 (l2 comes from the context)."""
    fast = CurvatureOperator(ctx, curvature, damping=0.3, batch_size=7, dense_up_to=0, **kwargs)
    slow = CurvatureOperator(ctx, curvature, damping=0.3, batch_size=7, dense_up_to=0, structured=False, **kwargs)
    return fast, slow


@pytest.mark.parametrize("widths,activation,bias,loss", CASES)
@pytest.mark.parametrize("curvature", ["hessian", "gauss-newton"])
@pytest.mark.parametrize("pair", [False, True])  # layers 1-2 by the R-operator or through Q
def test_structured_products_equal_generic_and_explicit(widths, activation, bias, loss, curvature, pair, monkeypatch):
    monkeypatch.setattr(mlp_products, "_pair_is_cheaper", lambda n, k, d: pair)
    ctx = mlp_context(widths, activation, bias, loss, l2=0.1)
    fast, slow = operators(ctx, curvature)
    assert fast.layers_ is not None and slow.layers_ is None
    vectors = torch.randn(4, fast.dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    product = fast.matvec(vectors)
    assert product.shape == vectors.shape and product.dtype == torch.float64
    assert_equal_to(product, slow.matvec(vectors))
    explicit = (hessian_matrix if curvature == "hessian" else gauss_newton_matrix)(ctx, structured=False)
    assert_equal_to(product, vectors @ explicit + 0.3 * vectors)  # explicit includes l2
    rows = torch.tensor([0, 3, 4, 11, 19, 20, 22, 5, 9])  # a stochastic subset, over two batches
    assert_equal_to(fast.matvec(vectors, rows=rows), slow.matvec(vectors, rows=rows))
    single = fast.matvec(vectors[:1], rows=rows[:1])
    assert_equal_to(single, slow.matvec(vectors[:1], rows=rows[:1]))


def test_pair_rule_on_breast_cancer_shapes():
    """Q is used for many vectors on narrow inputs (breast-cancer-mlp: 30 features, 100 vectors),
    not for one vector (power iteration)."""
    assert mlp_products._pair_is_cheaper(256, 100, 31) and not mlp_products._pair_is_cheaper(256, 1, 31)


def test_whole_set_factors_are_kept(monkeypatch):
    """The forward factors of the whole set's batches are computed once; sampled rows each call."""
    ctx = mlp_context([4, 6, 5, 3], "tanh")
    fast, slow = operators(ctx, "hessian")
    vectors = torch.randn(3, fast.dim, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    first = fast.matvec(vectors)
    assert sorted(fast._factors) == [(0, 7), (7, 7), (14, 7), (21, 2)]
    calls = []
    factors = mlp_products.mlp_factors
    monkeypatch.setattr(curvature_module, "mlp_factors", lambda *a, **k: calls.append(1) or factors(*a, **k))
    assert torch.equal(fast.matvec(vectors), first)
    assert calls == []
    fast.matvec(vectors, rows=torch.arange(10))
    assert len(calls) == 2 and len(fast._factors) == 4
    assert_equal_to(fast.matvec(2 * vectors), slow.matvec(2 * vectors))


def test_hessian_and_gauss_newton_differ_on_relu_stacks():
    """The R-operator's second-order terms (δ Rhᵀ, Vᵀδ) matter: H v ≠ G v for a ReLU MLP."""
    ctx = mlp_context([4, 6, 5, 3], "relu")
    vectors = torch.randn(2, ctx.n_params, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    h = CurvatureOperator(ctx, "hessian", dense_up_to=0).matvec(vectors)
    g = CurvatureOperator(ctx, "gauss-newton", dense_up_to=0).matvec(vectors)
    assert (h - g).abs().max() > 1e-3 * h.abs().max()


def test_models_that_are_not_linear_stacks_take_the_generic_path(tiny_cnn_context, monkeypatch):
    norm = mlp_context([4, 5, 3], "relu")
    model = nn.Sequential(nn.Linear(4, 5, dtype=torch.float64), nn.LayerNorm(5, dtype=torch.float64),
                          nn.Linear(5, 3, dtype=torch.float64))
    norm = dataclasses.replace(norm, model=model, params={k: v.detach() for k, v in model.named_parameters()})
    monkeypatch.setattr(curvature_module, "mlp_products", lambda *a, **k: pytest.fail("structured path taken"))
    for ctx in (tiny_cnn_context, norm):
        for curvature in ("hessian", "gauss-newton"):
            fast, slow = operators(ctx, curvature)
            assert fast.layers_ is None
            vectors = torch.randn(2, fast.dim, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
            assert torch.equal(fast.matvec(vectors), slow.matvec(vectors))
