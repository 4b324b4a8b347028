"""K stacked copies of a Linear/ReLU/Tanh network: forward and backward by batched matrix products.

For a model that is an `nn.Sequential` of `Flatten`, `Linear`, `ReLU` and `Tanh` whose parameters
are all attributed, the per-copy gradients of the batch loss are computed by hand instead of by
`vmap` + autograd: with copy k's weights W_k (out, in), biases b_k and inputs A_k (B, in),

    forward   Z_k = A_k W_kᵀ + b_k                       (one `baddbmm` over the K copies)
    backward  ∂W_k = G_kᵀ A_k,  ∂b_k = Σ_rows G_k,  ∂A_k = G_k W_k
    ReLU      G ← G ⊙ [Z > 0] (torch's convention at 0);   Tanh  G ← G ⊙ (1 − tanh(Z)²)

(both from the stored activations A = act(Z), which are all the backward pass keeps)

where G_k = ∂(batch loss_k)/∂Z_k. The loss's own derivative at the outputs is taken by autograd on
the (K, B, C) output tensor alone (any per-example loss: `ctx.output_loss`). Same numbers as
`stacked.gradients_fn`'s vmapped path up to floating-point rounding (tested in float64), several
times faster: every product is a large batched GEMM with contiguous operands, no per-op vmap.
"""

from __future__ import annotations

from typing import Callable

import torch

from tdabench.task.context import TaskContext
from tdabench.task.linear_layers import Layer, linear_layers  # linear_layers: re-exported

Tensors = dict[str, torch.Tensor]


def _forward(layers: tuple[Layer, ...], params: Tensors, x: torch.Tensor) -> list[torch.Tensor]:
    """[A_0, A_1, …, A_{L-1}, Z_L]: every layer's input (K, B, in), activated in place, and the
    output layer's pre-activation (K, B, C)."""
    values = [x.reshape(x.shape[0], x.shape[1], -1)]
    for layer in layers:
        w = params[layer.weight]
        z = (torch.baddbmm(params[layer.bias].unsqueeze(1), values[-1], w.transpose(1, 2)) if layer.bias
             else torch.bmm(values[-1], w.transpose(1, 2)))
        values.append(activate_(layer.activation, z))
    return values


def activate_(kind: str | None, z: torch.Tensor) -> torch.Tensor:
    """act(Z), in place (Z is a fresh temporary)."""
    return activate_into(kind, z, z)


def activate_into(kind: str | None, z: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """out ← act(Z) (`out` may be Z itself or a strided view); ReLU is clamp_min(Z, 0), as torch's."""
    if kind == "relu":
        return torch.clamp_min(z, 0.0, out=out)
    if kind == "tanh":
        return torch.tanh(z, out=out)
    return out if out is z else out.copy_(z)


def activation_backward(kind: str | None, g: torch.Tensor, a: torch.Tensor,
                        out: torch.Tensor | None = None) -> torch.Tensor:
    """G ⊙ act'(Z), from A = act(Z): ReLU [A > 0] (= [Z > 0]), Tanh 1 − A²; torch's own kernels,
    into `out` when given (which may be G itself)."""
    if kind == "relu":
        return (torch.ops.aten.threshold_backward(g, a, 0) if out is None
                else torch.ops.aten.threshold_backward.grad_input(g, a, 0, grad_input=out))
    if kind == "tanh":
        return (torch.ops.aten.tanh_backward(g, a) if out is None
                else torch.ops.aten.tanh_backward.grad_input(g, a, grad_input=out))
    return g if out is None or out is g else out.copy_(g)


def linear_stack_gradients(ctx: TaskContext) -> Callable[..., Tensors] | None:
    """`grads_of(params, x (K, B, …), y (K, B), w (K, B), m (K, B))` → per-copy gradients of
    Σ_b w·loss / max(Σ_b m, 1) + (l2/2)||θ_k||², as `stacked.gradients_fn`; None if the model is
    not a Linear stack."""
    layers = linear_layers(ctx.model, set(ctx.params))
    if layers is None:
        return None
    loss_fn, l2 = ctx.output_loss, ctx.l2

    def grads_of(params: Tensors, x, y, w, m) -> Tensors:
        values = _forward(layers, params, x)
        k, b = values[-1].shape[:2]
        out = values[-1].detach().requires_grad_(True)
        with torch.enable_grad():
            per_example = loss_fn(out.reshape(k * b, -1), y.reshape(k * b)).reshape(k, b)
            total = ((w * per_example).sum(1) / m.sum(1).clamp(min=1.0)).sum()
            (g,) = torch.autograd.grad(total, [out])
        grads: Tensors = {}
        for depth in range(len(layers) - 1, -1, -1):
            layer = layers[depth]
            grads[layer.weight] = torch.bmm(g.transpose(1, 2), values[depth])
            if layer.bias:
                grads[layer.bias] = g.sum(1)
            if depth > 0:
                g = activation_backward(layers[depth - 1].activation, torch.bmm(g, params[layer.weight]),
                                         values[depth])
        if l2:
            grads = {name: grads[name].add_(params[name], alpha=l2) for name in grads}
        return {name: grads[name] for name in params}
    return grads_of
