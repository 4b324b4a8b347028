"""Per-layer views of the parameters: nn.Linear blocks, activation/gradient probes, factored gradients.

For an nn.Linear layer with input a (in,) and ã = (a, 1) when it has a bias, the per-example gradient
of any scalar function F of the outputs w.r.t. its weights is the matrix d ãᵀ (out × in+1), where
d = ∂F/∂(pre-activation). So gradient inner products factor per layer,

    ⟨∇F(z), ∇G(z')⟩ = Σ_layers (d_F(z)·d_G(z')) (ã(z)·ã(z')),

which gives Grad-Dot-type Gram matrices without materialising per-sample gradients (the "ghost"
inner products). Models with parameters outside nn.Linear layers fall back to flat gradients.

K-FAC also takes nn.Conv2d layers (`ConvBlock`, `linear_blocks(..., conv=True)`): a convolution
applies one matrix W (out × in·kh·kw, the row-major flattening of its weight) at each of T output
positions to the unfolded input patch there (`torch.nn.functional.unfold` order: channel, kernel
row, kernel column), so its per-example gradient is the sum of T outer products Σ_t d_t ã_tᵀ.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from tdabench.errors import TdabenchError
from tdabench.estimators.gradients import GradFn, Tensors, flat_per_sample_grads, per_example_function
from tdabench.task.context import TaskContext
from tdabench.task.data import Split


@dataclass(frozen=True)
class LinearBlock:
    """One nn.Linear layer's place in the flat parameter vector (`gradients.flatten` order)."""

    name: str
    module: nn.Linear
    weight: slice
    bias: slice | None
    n_out: int
    n_in: int

    @property
    def width(self) -> int:
        """Columns of the matrix form: in, plus 1 for the bias."""
        return self.n_in + (self.bias is not None)

    def to_matrix(self, flat: torch.Tensor) -> torch.Tensor:
        """Rows of flat vectors (m, P) → the layer's matrices V (m, out, width), bias last column."""
        w = flat[:, self.weight].reshape(-1, self.n_out, self.n_in)
        return w if self.bias is None else torch.cat([w, flat[:, self.bias].unsqueeze(2)], dim=2)

    def write(self, flat: torch.Tensor, matrix: torch.Tensor) -> None:
        """Inverse of `to_matrix`: write V (m, out, width) into the layer's entries of flat (m, P)."""
        flat[:, self.weight] = matrix[:, :, :self.n_in].reshape(len(flat), self.n_out * self.n_in)
        if self.bias is not None:
            flat[:, self.bias] = matrix[:, :, self.n_in]

    def accepts(self, inputs: torch.Tensor) -> bool:
        return inputs.dim() == 2

    def patches(self, inputs: torch.Tensor) -> torch.Tensor:
        """The layer's inputs (b, in) as (b, T, in) with T = 1 position."""
        return inputs.unsqueeze(1)

    def positions(self, grads: torch.Tensor) -> torch.Tensor:
        """Gradients w.r.t. the outputs (b, out) as (b, T, out) with T = 1 position."""
        return grads.unsqueeze(1)


@dataclass(frozen=True)
class ConvBlock(LinearBlock):
    """An nn.Conv2d layer (groups = 1, zero padding): `n_in` = in·kh·kw, T = output positions."""

    def accepts(self, inputs: torch.Tensor) -> bool:
        return inputs.dim() == 4

    def patches(self, inputs: torch.Tensor) -> torch.Tensor:
        """Inputs (b, in, H, W) → unfolded patches (b, T, in·kh·kw), in the weight's column order."""
        m = self.module
        return functional.unfold(inputs, m.kernel_size, dilation=m.dilation, padding=m.padding,
                                 stride=m.stride).transpose(1, 2)

    def positions(self, grads: torch.Tensor) -> torch.Tensor:
        """Gradients w.r.t. the outputs (b, out, H', W') → (b, T, out)."""
        return grads.flatten(2).transpose(1, 2)


def _conv_block(name: str, module: nn.Conv2d, weight: slice, bias: slice | None) -> ConvBlock | None:
    """A ConvBlock, or None for convolutions this view does not describe (groups, string padding,
    padding modes other than zeros)."""
    if module.groups != 1 or isinstance(module.padding, str) or module.padding_mode != "zeros":
        return None
    n_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
    return ConvBlock(name, module, weight, bias, module.out_channels, n_in)


def linear_blocks(context: TaskContext, label: str, conv: bool = False) -> list[LinearBlock]:
    """The model's nn.Linear layers (and, with `conv`, nn.Conv2d layers) owning parameters of
    context.params, in module order; any other parameter raises."""
    offsets = np.cumsum([0, *(p.numel() for p in context.params.values())]).tolist()
    where = {k: slice(lo, hi) for k, lo, hi in zip(context.params, offsets[:-1], offsets[1:])}
    blocks, owned = [], set()
    for name, module in context.model.named_modules():
        weight, bias = f"{name}.weight", f"{name}.bias"
        if weight not in where or not isinstance(module, (nn.Linear, nn.Conv2d) if conv else nn.Linear):
            continue
        has_bias = module.bias is not None and bias in where
        bias_slice = where[bias] if has_bias else None
        block = (LinearBlock(name, module, where[weight], bias_slice, module.out_features, module.in_features)
                 if isinstance(module, nn.Linear) else _conv_block(name, module, where[weight], bias_slice))
        if block is not None:
            owned.update([weight, bias] if has_bias else [weight])
            blocks.append(block)
    supported = "nn.Linear, nn.Conv2d (groups 1, zero padding)" if conv else "nn.Linear"
    for key in context.params:
        if key not in owned:
            raise TdabenchError(f"{label}: parameter '{key}' does not belong to a supported layer "
                                f"(supported layers: {supported})")
    return blocks


@contextmanager
def probed(blocks: list[LinearBlock]) -> Iterator[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]]:
    """Forward hooks that record each layer's input and add a zero probe (requires grad) to its output
    (the pre-activation), so that the gradient of any function of the outputs w.r.t. the probe is its
    gradient w.r.t. the pre-activation. Yields (inputs, probes), keyed by layer name."""
    inputs: dict[str, torch.Tensor] = {}
    probes: dict[str, torch.Tensor] = {}

    def hook_for(block: LinearBlock) -> Callable[..., torch.Tensor]:
        def hook(module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
            if block.name in inputs or not block.accepts(args[0]):
                raise TdabenchError(f"layer '{block.name}': only layers called once per forward on batched "
                                    f"inputs are supported ((batch, features) for nn.Linear, (batch, "
                                    f"channels, height, width) for nn.Conv2d)")
            inputs[block.name] = args[0].detach()
            probes[block.name] = torch.zeros_like(output, requires_grad=True)
            return output + probes[block.name]
        return hook

    handles = [b.module.register_forward_hook(hook_for(b)) for b in blocks]
    try:
        yield inputs, probes
    finally:
        for handle in handles:
            handle.remove()


def linear_blocks_or_none(context: TaskContext) -> list[LinearBlock] | None:
    """The nn.Linear blocks when every parameter belongs to one (factored gradients apply), else None."""
    try:
        return linear_blocks(context, "factored gradients")
    except TdabenchError:
        return None


def gradient_factors(context: TaskContext, blocks: list[LinearBlock], fn: GradFn, x: torch.Tensor,
                     y: torch.Tensor, params: Tensors) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer (ã (b·m, width), d (b·m, out)): example i's gradient of fn w.r.t. the layer is
    Σ_r d_{i,r} ã_{i,r}ᵀ over its m consecutive rows (m = 1 but for a target that runs the model on
    m inputs per example, such as an interaction target's 2^|S| masked copies).

    d is the gradient of Σ_i fn(z_i) w.r.t. the layer's probe: examples are independent, so the rows
    of example i hold its own gradient.
    """
    per_example = per_example_function(context, fn)
    with probed(blocks) as (inputs, probes), torch.enable_grad():
        total = per_example(params, x, y).sum()
    grads = torch.autograd.grad(total, [probes[b.name] for b in blocks], allow_unused=True)
    factors = []
    for block, d in zip(blocks, grads):
        a = inputs[block.name]
        if block.bias is not None:
            a = torch.cat([a, a.new_ones(len(a), 1)], dim=1)
        factors.append((a, a.new_zeros(len(a), block.n_out) if d is None else d))
    return factors


def _stacked_factors(context: TaskContext, blocks: list[LinearBlock], side: tuple[Split, np.ndarray, GradFn],
                     params: Tensors, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`gradient_factors` of the examples `idx` of `split`, computed in batches and stacked per layer."""
    split, idx, fn = side
    index = torch.as_tensor(idx, dtype=torch.long, device=split.x.device)
    parts = [gradient_factors(context, blocks, fn, split.x[index[lo:lo + batch_size]],
                              split.y[index[lo:lo + batch_size]], params) for lo in range(0, len(index), batch_size)]
    return [(torch.cat([p[k][0] for p in parts]).double(), torch.cat([p[k][1] for p in parts]).double())
            for k in range(len(blocks))]


def gradient_gram(context: TaskContext, left: tuple[Split, np.ndarray, GradFn],
                  right: tuple[Split, np.ndarray, GradFn], params: Tensors | None = None,
                  batch_size: int = 256) -> torch.Tensor:
    """G[j, i] = ∇fn_l(z_j)ᵀ ∇fn_r(z_i) at `params` (default θᶠ), float64, (len(idx_l), len(idx_r)).

    Each side is (split, indices, fn). Factored per nn.Linear layer when the model allows it,
    otherwise from flat per-sample gradients; the two give the same numbers. On the context's device.
    """
    params = context.params if params is None else params
    gram = torch.zeros(len(left[1]), len(right[1]), dtype=torch.float64, device=context.device)
    if gram.numel() == 0:
        return gram
    blocks = linear_blocks_or_none(context)
    if blocks is None:
        index = lambda idx: torch.as_tensor(idx, dtype=torch.long, device=context.device)
        grads = [flat_per_sample_grads(context, fn, split.x[index(idx)], split.y[index(idx)],
                                       params, batch_size).double() for split, idx, fn in (left, right)]
        return grads[0] @ grads[1].T
    sides = [_stacked_factors(context, blocks, side, params, batch_size) for side in (left, right)]
    n_l, n_r = gram.shape
    for (a_l, d_l), (a_r, d_r) in zip(*sides):  # rows per example: m_l = len(a_l) / n_l (`gradient_factors`)
        rows = (d_l @ d_r.T) * (a_l @ a_r.T)
        gram += rows.reshape(n_l, len(a_l) // n_l, n_r, len(a_r) // n_r).sum(dim=(1, 3))
    return gram
