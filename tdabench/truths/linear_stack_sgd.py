"""One SGD step of K stacked Linear-stack copies, with the update fused into the weight gradient.

For a model that `linear_stack.linear_layers` recognises and an SGD recipe (momentum μ ≥ 0, weight
decay ω ≥ 0, the objective's l2), the step of copy k is, as in task/optim.py and torch.optim.SGD,

    g = ∇_θ [Σ_b w·loss / max(Σ_b m, 1)] + c·θ,   c = l2 + ω
    μ = 0:   θ ← θ − η g                      = (1 − ηc)·θ − η·∇loss
    μ > 0:   v ← μ·v + g;   θ ← θ − η v       (v starts at 0, so the first v is g)

Each layer's weight and bias are one tensor θ = [W | b] and its input carries a row of ones
(linear_stack_joined.py), so the gradient of θ is one batched matrix product Gᵀ Ã, accumulated
straight into θ (μ = 0) or v (μ > 0) by one `baddbmm_` with β = 1 − ηc (or μ) and α = −η (or 1): no
gradient tensor is allocated, no separate bias pass. Activations are kept transposed, (K, features,
B), in buffers allocated once, so every product writes a contiguous result and reads contiguous or
transposed operands (MKL's batched GEMM on CPU). Same numbers as gradients + optimizer step up to
floating-point rounding (tested in float64 against the sequential loop).
"""

from __future__ import annotations

from typing import Callable

import torch

from tdabench.task.context import TaskContext
from tdabench.task.objective import loss_output_gradient
from tdabench.task.spec import OptimizerSpec
from tdabench.truths.linear_stack import activate_into, activation_backward, linear_layers
from tdabench.truths.linear_stack_joined import JoinedLayers, StepBuffers

Tensors = dict[str, torch.Tensor]
StepFn = Callable[[Tensors, Tensors, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], None]


def linear_stack_sgd_step(ctx: TaskContext, recipe: OptimizerSpec) -> StepFn | None:
    """`step_(params, state, x (K, B, …), y, w, m)`: one fused in-place SGD step of every copy (all
    active), with `state` as `FunctionalOptimizer(recipe).init` makes it; None when the model is not
    a Linear stack or the optimizer is not SGD (then the generic gradients + optimizer path is used).
    The first step rebinds the weight and bias entries of `params` (and their momentum buffers in
    `state`) to views of joined tensors (linear_stack_joined.JoinedLayers)."""
    layers = linear_layers(ctx.model, set(ctx.params))
    if layers is None or recipe.optimizer != "sgd":
        return None
    decay, closed_form = ctx.l2 + recipe.weight_decay, loss_output_gradient(ctx.spec.objective)
    joined = JoinedLayers(layers, momentum=bool(recipe.momentum))
    buffers: list[StepBuffers] = []

    def step_(params: Tensors, state: Tensors, x, y, w, m) -> None:
        joined.bind(params, state)
        weights = joined.weights
        if not buffers or buffers[0].key != (x.shape[0], x.shape[1], weights[0].dtype, weights[0].device):
            buffers[:] = [StepBuffers(layers, weights, x.shape[1])]
        bufs = buffers[0]
        g = output_gradient_t(ctx, closed_form, _forward_t(joined, bufs, x), y, w, m)
        for depth in range(len(layers) - 1, -1, -1):
            below = (torch.bmm(weights[depth].transpose(1, 2), g, out=bufs.outputs[depth - 1])
                     if depth > 0 else None)
            _update_(joined.theta[depth], joined.buffer[depth], g, bufs.transposed[depth], recipe, decay)
            if below is not None:
                g = activation_backward(layers[depth - 1].activation, below, bufs.activations[depth], out=below)
        state["count"] = state["count"] + 1
    return step_


def _forward_t(joined: JoinedLayers, bufs: StepBuffers, x: torch.Tensor) -> torch.Tensor:
    """Fill `bufs` with every layer's input Ãᵀ and pre-activation Zᵀ; returns the output Z_Lᵀ (K, C, B)."""
    bufs.activations[0].copy_(x.reshape(x.shape[0], x.shape[1], -1).transpose(1, 2))
    last = len(joined.layers) - 1
    for depth, (layer, theta) in enumerate(zip(joined.layers, joined.theta)):
        z = torch.bmm(theta, bufs.inputs[depth], out=bufs.outputs[depth])
        if depth < last:
            activate_into(layer.activation, z, bufs.activations[depth + 1])
    return bufs.outputs[last]


def output_gradient_t(ctx: TaskContext, closed_form, z_t: torch.Tensor, y, w, m) -> torch.Tensor:
    """Gᵀ = ∂(Σ_k Σ_b w·loss / max(Σ_b m, 1))/∂Zᵀ, (K, C, B): the loss's closed-form derivative
    (objective.loss_output_gradient) or, for a custom loss, autograd on the outputs alone."""
    k, c, b = z_t.shape
    if closed_form is not None:
        scale = (w / m.sum(1, keepdim=True).clamp(min=1.0)).unsqueeze(1)  # (K, 1, B)
        return closed_form(z_t, y, dim=1).mul_(scale)
    out = z_t.transpose(1, 2).contiguous().requires_grad_(True)
    with torch.enable_grad():
        per_example = ctx.output_loss(out.reshape(k * b, c), y.reshape(k * b)).reshape(k, b)
        total = ((w * per_example).sum(1) / m.sum(1).clamp(min=1.0)).sum()
        (g,) = torch.autograd.grad(total, [out])
    return g.transpose(1, 2).contiguous()


def _update_(theta: torch.Tensor, buffer: torch.Tensor | None, g_t: torch.Tensor, a: torch.Tensor,
             recipe: OptimizerSpec, decay: float) -> None:
    """θ's SGD update from its loss gradient Gᵀ Ã (`a` = Ã (K, B, in [+1])), in place."""
    if buffer is None:
        theta.baddbmm_(g_t, a, beta=1.0 - recipe.lr * decay, alpha=-recipe.lr)
        return
    buffer.baddbmm_(g_t, a, beta=recipe.momentum, alpha=1.0)
    if decay:
        buffer.add_(theta, alpha=decay)
    theta.add_(buffer, alpha=-recipe.lr)
