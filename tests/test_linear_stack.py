"""The batched-GEMM gradients of Linear stacks equal the vmapped autograd path (float64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gold_helpers import small_context
from tdabench.truths.linear_stack import linear_layers, linear_stack_gradients
from tdabench.truths.stacked import stack_copies, vmapped_gradients_fn


@pytest.mark.parametrize("task,overrides", [
    ("breast-cancer-mlp", {}),
    ("breast-cancer-mlp", {"model.activation": "tanh", "model.hidden": [6, 5], "objective.l2": 0.1}),
    ("diabetes-mlp", {"model.hidden": [7]}),
    ("breast-cancer-logreg", {}),
])
def test_linear_stack_gradients_equal_vmapped_autograd(tmp_path, task, overrides):
    ctx = small_context(tmp_path, task, **overrides)
    assert linear_layers(ctx.model, set(ctx.params)) is not None
    k, b = 5, 7
    gen = torch.Generator().manual_seed(0)
    params = {n: p + 0.1 * torch.randn(p.shape, generator=gen, dtype=p.dtype) for n, p in
              stack_copies(ctx.params, k).items()}
    idx = torch.randint(0, len(ctx.train), (k, b), generator=gen)
    mask = torch.ones(k, b, dtype=ctx.dtype)
    mask[1, 3:] = 0  # a short batch
    mask[2] = 0  # an empty one
    weight = mask * torch.rand(k, b, generator=gen, dtype=ctx.dtype)
    args = (ctx.train.x[idx], ctx.train.y[idx], weight, mask)
    fast = linear_stack_gradients(ctx)(params, *args)
    slow = vmapped_gradients_fn(ctx)(params, *args)
    assert list(fast) == list(slow)
    for name in slow:
        assert slow[name].abs().max() > 0 or name.endswith("bias")
        np.testing.assert_allclose(fast[name].numpy(), slow[name].numpy(), rtol=0,
                                   atol=1e-12 * max(1.0, float(slow[name].abs().max())))


def test_models_that_are_not_linear_stacks_take_the_vmapped_path(tmp_path):
    ctx = small_context(tmp_path)
    assert linear_layers(ctx.model, set(ctx.params) - {"0.bias"}) is None  # not every parameter attributed
    assert linear_layers(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3)), {"0.weight", "0.bias"}) is None
