"""The fused SGD step of Linear stacks equals gradients + FunctionalOptimizer.step_ (float64), and the
closed-form loss derivatives equal autograd."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from gold_helpers import small_context
from tdabench.task.objective import loss_output_gradient, per_example_loss
from tdabench.task.optim import FunctionalOptimizer
from tdabench.task.spec import ObjectiveSpec, OptimizerSpec
from tdabench.truths.linear_stack_sgd import output_gradient_t, linear_stack_sgd_step
from tdabench.truths.stacked import stack_copies, training_step_fn, vmapped_gradients_fn

CASES = [
    ("breast-cancer-mlp", {}, OptimizerSpec(lr=0.05, batch_size=7)),
    ("breast-cancer-mlp", {"model.activation": "tanh", "model.hidden": [6, 5], "objective.l2": 0.1},
     OptimizerSpec(lr=0.05, momentum=0.9, weight_decay=0.01, batch_size=7)),
    ("breast-cancer-mlp", {"objective.l2": 0.05}, OptimizerSpec(lr=0.1, weight_decay=0.02, batch_size=7)),
    ("diabetes-mlp", {"model.hidden": [7]}, OptimizerSpec(lr=0.01, momentum=0.5, batch_size=7)),
    ("breast-cancer-logreg", {}, OptimizerSpec(lr=0.2, batch_size=7)),
]


def _batches(ctx, k: int, b: int, steps: int, gen: torch.Generator):
    for _ in range(steps):
        idx = torch.randint(0, len(ctx.train), (k, b), generator=gen)
        mask = torch.ones(k, b, dtype=ctx.dtype)
        mask[1, 3:] = 0  # a short batch
        weight = mask * torch.rand(k, b, generator=gen, dtype=ctx.dtype)
        yield ctx.train.x[idx], ctx.train.y[idx], weight, mask


@pytest.mark.parametrize("task,overrides,recipe", CASES)
def test_fused_sgd_steps_equal_gradients_then_optimizer(tmp_path, task, overrides, recipe):
    ctx = small_context(tmp_path, task, **overrides)
    fused = linear_stack_sgd_step(ctx, recipe)
    assert fused is not None
    optimizer, grads_of = FunctionalOptimizer(recipe), vmapped_gradients_fn(ctx)
    gen = torch.Generator().manual_seed(0)
    start = {n: p + 0.1 * torch.randn(p.shape, generator=gen, dtype=p.dtype) for n, p in
             stack_copies(ctx.params, 4).items()}
    fast, slow = ({n: p.clone() for n, p in start.items()} for _ in range(2))
    fast_state, slow_state = optimizer.init(fast), optimizer.init(slow)
    for x, y, w, m in _batches(ctx, 4, 7, 3, gen):
        fused(fast, fast_state, x, y, w, m)
        optimizer.step_(slow, grads_of(slow, x, y, w, m), slow_state, True)
    assert float(fast_state["count"]) == float(slow_state["count"]) == 3
    for name in slow:
        moved = float((slow[name] - start[name]).abs().max())
        assert moved > 1e-6, f"{name} must move for the test to mean anything"
        np.testing.assert_allclose(fast[name].numpy(), slow[name].numpy(), rtol=0, atol=1e-12 * max(1.0, moved))
        np.testing.assert_allclose(fast_state[f"m.{name}"].numpy(), slow_state[f"m.{name}"].numpy(),
                                   rtol=0, atol=1e-12 * max(1.0, float(slow_state[f"m.{name}"].abs().max())))


def _start(ctx, k: int, gen: torch.Generator):
    return {n: p + 0.1 * torch.randn(p.shape, generator=gen, dtype=p.dtype) for n, p in stack_copies(ctx.params, k).items()}


def _assert_same(fast: dict, slow: dict, start: dict) -> None:
    for name in slow:
        moved = float((slow[name] - start[name]).abs().max())
        assert moved > 1e-6, f"{name} must move for the test to mean anything"
        np.testing.assert_allclose(fast[name].numpy(), slow[name].numpy(), rtol=0, atol=1e-12 * max(1.0, moved))


def test_a_layer_without_bias_and_momentum(tmp_path):
    """A first Linear without a bias (its θ is W alone) next to one with a bias ([W | b])."""
    ctx = small_context(tmp_path)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(30, 6, bias=False), torch.nn.Tanh(), torch.nn.Linear(6, 2)).double()
    ctx = dataclasses.replace(ctx, model=model, params={n: p.detach() for n, p in model.named_parameters()})
    recipe = OptimizerSpec(lr=0.05, momentum=0.9, weight_decay=0.01, batch_size=7)
    fused, optimizer, grads_of = linear_stack_sgd_step(ctx, recipe), FunctionalOptimizer(recipe), vmapped_gradients_fn(ctx)
    gen = torch.Generator().manual_seed(3)
    start = _start(ctx, 3, gen)
    fast, slow = ({n: p.clone() for n, p in start.items()} for _ in range(2))
    fast_state, slow_state = optimizer.init(fast), optimizer.init(slow)
    for x, y, w, m in _batches(ctx, 3, 7, 3, gen):
        fused(fast, fast_state, x, y, w, m)
        optimizer.step_(slow, grads_of(slow, x, y, w, m), slow_state, True)
    _assert_same(fast, slow, start)


def test_one_step_function_on_two_models_and_mixed_with_the_generic_path(tmp_path):
    """The fused step rebinds each dict's weight and bias to views of its joined storage: one step
    function serves two parameter dicts in turn, and steps with frozen copies (the generic path,
    in place on those views) interleave with fused ones; each run equals its own reference."""
    ctx = small_context(tmp_path)
    recipe = OptimizerSpec(lr=0.05, momentum=0.5, batch_size=7)
    optimizer, grads_of = FunctionalOptimizer(recipe), vmapped_gradients_fn(ctx)
    step_ = training_step_fn(ctx, optimizer)
    gen = torch.Generator().manual_seed(4)
    starts = [_start(ctx, 4, gen) for _ in range(2)]
    fast = [{n: p.clone() for n, p in s.items()} for s in starts]
    slow = [{n: p.clone() for n, p in s.items()} for s in starts]
    fast_state, slow_state = [optimizer.init(p) for p in fast], [optimizer.init(p) for p in slow]
    frozen = torch.tensor([True, False, True, True])
    for i, (x, y, w, m) in enumerate(_batches(ctx, 4, 7, 6, gen)):
        run, active = i % 2, (frozen if i == 2 else True)
        step_(fast[run], fast_state[run], x, y, w, m, active)
        optimizer.step_(slow[run], grads_of(slow[run], x, y, w, m), slow_state[run], active)
    for run in range(2):
        _assert_same(fast[run], slow[run], starts[run])
        assert fast[run]["0.weight"].data_ptr() == fast[run]["0.bias"].data_ptr() - 8 * fast[run]["0.weight"].shape[2]


def test_adam_takes_the_generic_path(tmp_path):
    ctx = small_context(tmp_path)
    assert linear_stack_sgd_step(ctx, OptimizerSpec(optimizer="adam", lr=0.01)) is None
    assert linear_stack_sgd_step(ctx, OptimizerSpec(optimizer="adamw", lr=0.01)) is None


def test_output_gradient_closed_form_equals_the_autograd_path_of_a_custom_loss(tmp_path):
    """The path a 'custom' loss takes (autograd on the outputs) gives the closed form's Gᵀ."""
    ctx = small_context(tmp_path)
    gen = torch.Generator().manual_seed(2)
    z_t = torch.randn(3, 2, 6, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 2, (3, 6), generator=gen)
    m = torch.ones(3, 6, dtype=torch.float64)
    m[0, 4:] = 0
    w = m * torch.rand(3, 6, generator=gen, dtype=torch.float64)
    closed = output_gradient_t(ctx, loss_output_gradient(ctx.spec.objective), z_t, y, w, m)
    by_autograd = output_gradient_t(ctx, None, z_t, y, w, m)
    assert closed.shape == (3, 2, 6) and closed.abs().max() > 1e-3
    np.testing.assert_allclose(closed.numpy(), by_autograd.numpy(), rtol=0, atol=1e-15)


@pytest.mark.parametrize("loss", ["cross-entropy", "squared"])
def test_closed_form_loss_derivative_equals_autograd(loss):
    gen = torch.Generator().manual_seed(1)
    spec = ObjectiveSpec(loss=loss)
    classes = 3 if loss == "cross-entropy" else 1
    out = torch.randn(2, 5, classes, generator=gen, dtype=torch.float64, requires_grad=True)
    y = (torch.randint(0, 3, (2, 5), generator=gen) if loss == "cross-entropy"
         else torch.randn(2, 5, generator=gen, dtype=torch.float64))
    (expected,) = torch.autograd.grad(per_example_loss(spec)(out.reshape(10, classes), y.reshape(10)).sum(), out)
    got = loss_output_gradient(spec)(out.detach(), y)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=0, atol=1e-14)
    assert loss_output_gradient(ObjectiveSpec(loss="custom")) is None
