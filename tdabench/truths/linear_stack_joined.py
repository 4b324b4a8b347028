"""Storage for the fused SGD step of Linear stacks: each layer's weight and bias in one tensor.

With the layer input kept transposed and augmented by a row of ones, Ãᵀ = [Aᵀ; 1ᵀ] (K, in+1, B),
the bias of a Linear layer is one more column of its weight, θ = [W | b] (K, out, in+1):

    Zᵀ = W Aᵀ + b 1ᵀ = θ Ãᵀ,      ∂θ = Gᵀ Ã = [Gᵀ A | Gᵀ 1] = [∂W | ∂b]

so the forward bias add and the backward bias sum are part of the batched products: no broadcast
copy of b, no separate reduction of G, one in-place update for W and b together.

`JoinedLayers.bind` keeps the parameters dict's names and meaning: params[weight] and params[bias]
(and the momentum buffers state['m.weight'], state['m.bias']) are rebound, the first time a step
sees them, to views of θ (and of its buffer), so updating θ in place updates the dict's tensors.
`StepBuffers` holds the per-step activations, allocated once per (K, B): no tensor the size of an
activation is allocated per step.
"""

from __future__ import annotations

import torch

from tdabench.task.linear_layers import Layer

Tensors = dict[str, torch.Tensor]


def _join_(tensors: Tensors, weight: str, bias: str) -> torch.Tensor:
    """θ = [W | b] (K, out, in+1) in new memory; tensors[weight], tensors[bias] become its views."""
    joined = torch.cat([tensors[weight], tensors[bias].unsqueeze(-1)], dim=-1)
    tensors[weight], tensors[bias] = joined[..., :-1], joined[..., -1]
    return joined


class JoinedLayers:
    """θ_l per layer ([W | b] for a layer with a bias, else W itself) of the stacked copies, and the
    matching momentum buffers, bound to a parameters dict and an optimizer state."""

    def __init__(self, layers: tuple[Layer, ...], momentum: bool) -> None:
        self.layers, self.momentum = layers, momentum
        self._bound: list[tuple[int, str, torch.Tensor]] = []  # (0 params / 1 state, name, the view put there)
        self.theta: list[torch.Tensor] = []
        self.buffer: list[torch.Tensor | None] = []
        self.weights: list[torch.Tensor] = []  # W_l (K, out, in): views of θ_l without the bias column

    def bind(self, params: Tensors, state: Tensors) -> None:
        """Make `theta`/`buffer` the storage of `params`/`state` (rebinding their entries to views)
        unless they already are; cheap when nothing changed (identity checks only)."""
        dicts = (params, state)
        if self._bound and all(dicts[d].get(name) is view for d, name, view in self._bound):
            return
        self._bound, self.theta, self.buffer = [], [], []
        for layer in self.layers:
            self.theta.append(self._joined(params, 0, layer.weight, layer.bias))
            self.buffer.append(self._joined(state, 1, f"m.{layer.weight}", layer.bias and f"m.{layer.bias}")
                               if self.momentum else None)
        self.weights = [theta[..., :-1] if layer.bias else theta for layer, theta in zip(self.layers, self.theta)]

    def _joined(self, tensors: Tensors, which: int, weight: str, bias: str | None) -> torch.Tensor:
        if bias is None:
            tensors[weight] = tensors[weight].contiguous()  # already so from stack_copies: the same tensor
            self._bound.append((which, weight, tensors[weight]))
            return tensors[weight]
        joined = _join_(tensors, weight, bias)
        self._bound += [(which, weight, tensors[weight]), (which, bias, tensors[bias])]
        return joined


class StepBuffers:
    """Preallocated activations of one step, for K copies and batch size B:

    inputs[l]       Ã_lᵀ (K, in_l [+1], B): layer l's input, with a last row of ones when layer l
                    has a bias; transposed[l] = Ã_l (K, B, in_l [+1]), the same memory;
    activations[l]  A_lᵀ (K, in_l, B): the input without the row of ones (a view);
    outputs[l]      Z_lᵀ (K, out_l, B): layer l's pre-activation, reused in the backward pass for
                    the gradient w.r.t. it (outputs[l - 1] holds ∂/∂Z_{l-1}ᵀ).

    The first input is stored untransposed, (K, B, in_0 [+1]): the batch x (K, B, in_0) is copied
    in row by row, and its two products (forward, weight gradient) were measured faster so on CPU.
    """

    def __init__(self, layers: tuple[Layer, ...], weights: list[torch.Tensor], batch: int) -> None:
        k, dtype, device = weights[0].shape[0], weights[0].dtype, weights[0].device
        self.key = (k, batch, dtype, device)
        self.inputs, self.outputs, self.activations = [], [], []
        for depth, (layer, w) in enumerate(zip(layers, weights)):
            rows = w.shape[2] + (1 if layer.bias else 0)
            a = (torch.empty(k, batch, rows, dtype=dtype, device=device).transpose(1, 2) if depth == 0
                 else torch.empty(k, rows, batch, dtype=dtype, device=device))
            if layer.bias:
                a[:, -1].fill_(1.0)
            self.inputs.append(a)
            self.activations.append(a[:, :w.shape[2]])
            self.outputs.append(torch.empty(k, w.shape[1], batch, dtype=dtype, device=device))
        self.transposed = [a.transpose(1, 2) for a in self.inputs]
