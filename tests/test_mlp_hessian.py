"""The structured Hessian (and Gauss–Newton matrix) of Linear stacks equals the generic
forward-over-reverse path and torch.func.hessian of the flattened risk (float64, small models)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn
from torch.func import hessian

from conftest import tiny_spec
from tdabench.estimators import dense_curvature, mlp_hessian
from tdabench.estimators.dense_curvature import gauss_newton_matrix, hessian_matrix
from tdabench.estimators.gradients import flatten, unflatten
from tdabench.task import TaskContext, parse_spec
from tdabench.task.data import Dataset, Split
from tdabench.task.objective import per_example_loss
from tdabench.task.targets import make_target

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, None: None}


def mlp_context(widths: list[int], activation: str | None = "relu", bias: bool = True, loss: str = "cross-entropy",
                l2: float = 0.1, n: int = 23, seed: int = 0) -> TaskContext:
    """A random Linear stack widths[0] → … → widths[-1] (not trained) on n random examples."""
    gen = torch.Generator().manual_seed(seed)
    modules: list[nn.Module] = [nn.Flatten()]
    for i, (w_in, w_out) in enumerate(zip(widths[:-1], widths[1:])):
        modules.append(nn.Linear(w_in, w_out, bias=bias, dtype=torch.float64))
        if activation and i < len(widths) - 2:
            modules.append(ACTIVATIONS[activation]())
    model = nn.Sequential(*modules)
    params = {k: torch.randn(v.shape, generator=gen, dtype=torch.float64) / v.shape[-1] ** 0.5
              for k, v in model.named_parameters()}
    x = torch.randn(n, widths[0], generator=gen, dtype=torch.float64)
    classes = loss == "cross-entropy"
    y = torch.randint(0, widths[-1], (n,), generator=gen) if classes else torch.randn(n, generator=gen, dtype=torch.float64)
    spec = parse_spec(tiny_spec("random-mlp", objective={"loss": loss, "l2": l2}))
    split = Split(x, y)
    return TaskContext(spec, model, params, {}, Dataset(split, split, widths[-1], classes), {}, "loss",
                       make_target("loss", spec.objective), per_example_loss(spec.objective))


def autograd_hessian(ctx: TaskContext) -> torch.Tensor:
    def risk(v: torch.Tensor) -> torch.Tensor:
        p = unflatten(v, ctx.params)
        return ctx.loss(p, ctx.train.x, ctx.train.y).mean() + ctx.regularizer(p)
    return hessian(risk)(flatten(ctx.params))


def assert_equal_to(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-10 * float(expected.abs().max()))


CASES = [  # widths, activation, bias, loss
    ([5, 3], None, True, "cross-entropy"),
    ([5, 4, 3], "relu", True, "cross-entropy"),
    ([5, 4, 3], "tanh", False, "cross-entropy"),
    ([4, 6, 5, 3], "relu", False, "cross-entropy"),
    ([4, 6, 5, 3], "tanh", True, "cross-entropy"),
    ([3, 4, 5, 4, 2], "relu", True, "cross-entropy"),
    ([4, 5, 3, 1], "relu", True, "squared"),
    ([4, 5, 3, 1], "tanh", False, "squared"),
    ([4, 5, 3, 1], None, True, "squared"),
]


@pytest.mark.parametrize("widths,activation,bias,loss", CASES)
def test_structured_hessian_equals_generic_and_autograd(widths, activation, bias, loss, monkeypatch):
    ctx = mlp_context(widths, activation, bias, loss)
    assert mlp_hessian.mlp_layers(ctx) is not None
    fast = hessian_matrix(ctx)
    assert torch.equal(fast, fast.T) and fast.dtype == torch.float64
    expected = autograd_hessian(ctx)
    assert_equal_to(fast, expected)
    monkeypatch.setattr(mlp_hessian, "CHUNK_ELEMENTS", 40)  # GEMM outputs in slices of one or a few rows
    batched = mlp_hessian.mlp_curvature(ctx, mlp_hessian.mlp_layers(ctx), batch_size=7)  # 23: 4 uneven batches
    assert torch.equal(batched, batched.T)
    assert_equal_to(batched, expected)
    assert_equal_to(fast, hessian_matrix(ctx, structured=False))
    if activation == "relu":  # the cross-layer (bilinear) blocks matter
        assert (fast - gauss_newton_matrix(ctx, structured=False)).abs().max() > 1e-3 * fast.abs().max()


@pytest.mark.parametrize("widths,activation,bias,loss", CASES[1:6:2] + CASES[6:7])
def test_structured_gauss_newton_equals_jacobian_path(widths, activation, bias, loss):
    ctx = mlp_context(widths, activation, bias, loss)
    layers = mlp_hessian.mlp_layers(ctx)
    fast = mlp_hessian.mlp_curvature(ctx, layers, batch_size=5, gauss_newton=True)
    assert torch.equal(fast, fast.T)
    assert_equal_to(fast, gauss_newton_matrix(ctx, batch_size=5, structured=False))
    assert torch.equal(gauss_newton_matrix(ctx), mlp_hessian.mlp_curvature(ctx, layers, gauss_newton=True))


def test_relu_pre_activation_exactly_zero():
    """A hidden unit whose pre-activation is exactly 0 on some examples: relu'(0) = 0 (torch's
    convention) on both paths, so they still agree."""
    ctx = mlp_context([4, 5, 3], "relu", True)
    x = ctx.train.x.clone()
    x[:6, 0] = 0.0  # unit 0 sees only x[:, 0] and no bias: z = 0 there
    ctx.params["1.weight"][0] = torch.tensor([1.5, 0.0, 0.0, 0.0], dtype=torch.float64)
    ctx.params["1.bias"][0] = 0.0
    ctx = dataclasses.replace(ctx, data=dataclasses.replace(ctx.data, train=Split(x, ctx.train.y)))
    z = ctx.train.x @ ctx.params["1.weight"].T + ctx.params["1.bias"]
    assert (z == 0).sum() == 6
    fast = hessian_matrix(ctx)
    assert_equal_to(fast, hessian_matrix(ctx, structured=False))
    assert_equal_to(fast, autograd_hessian(ctx))


def test_models_that_are_not_linear_stacks_take_the_generic_path(tiny_cnn_context, monkeypatch):
    norm = mlp_context([4, 5, 3], "relu")
    model = nn.Sequential(nn.Linear(4, 5, dtype=torch.float64), nn.LayerNorm(5, dtype=torch.float64),
                          nn.Linear(5, 3, dtype=torch.float64))
    params = {k: v.detach() for k, v in model.named_parameters()}
    norm = dataclasses.replace(norm, model=model, params=params)
    shuffled = mlp_context([4, 5, 3], "relu")  # parameters not in layer order: generic path too
    shuffled = dataclasses.replace(shuffled, params=dict(reversed(list(shuffled.params.items()))))
    for ctx in (tiny_cnn_context, norm, shuffled):
        assert mlp_hessian.mlp_layers(ctx) is None
    monkeypatch.setattr(dense_curvature, "mlp_curvature", lambda *a, **k: pytest.fail("structured path taken"))
    assert torch.equal(hessian_matrix(norm), hessian_matrix(norm, structured=False))
    assert_equal_to(hessian_matrix(shuffled), autograd_hessian(shuffled))
    # (not against torch.func.hessian: on this LayerNorm model in torch 2.13 it, and jacrev(jacrev(·)),
    # differ from central differences of the gradient by 0.13, while the forward-over-reverse path
    # and torch.autograd.functional.hessian agree with them.)
