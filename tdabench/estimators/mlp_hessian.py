"""The exact Hessian (or Gauss–Newton matrix) of the training risk of a Linear stack, by layer blocks.

Model (`task.linear_layers`): layers l = 1..L, z_l = W_l h_{l-1} + b_l, h_l = σ_l(z_l) (ReLU, Tanh or
none; none after layer L), outputs z_L. θ_l = [W_l | b_l] acts on ã_{l-1} = (h_{l-1}, 1) (the 1 only
with a bias). The loss enters only through r = ∂ℓ/∂z_L and M = ∂²ℓ/∂z_L² per example (autograd on
the (n, C) outputs, `ctx.output_loss`: any per-example loss). Backwards, with D_l = diag σ'_l(z_l):

    δ_L = r,  H_L = M;   g_l = W_{l+1}ᵀ δ_{l+1},  δ_l = σ'_l ⊙ g_l,
    H_l = ∂²ℓ/∂z_l² = D_l W_{l+1}ᵀ H_{l+1} W_{l+1} D_l + diag(σ''_l ⊙ g_l),
    T_{b,a} = ∂h_{b-1}/∂z_a = D_{b-1} W_{b-1} ⋯ W_{a+1} D_a   (a < b;  T_{a+1,a} = D_a),

and the block of ∇²ℓ between θ_a[p, q] and θ_b[u, v], a ≤ b, is

    (T_{b,a}ᵀ W_bᵀ H_b)[p, u] ã_{a-1}[q] ã_{b-1}[v]      (curvature through z_b; the factor is H_a if a = b)
    + [a < b] δ_b[u] T_{b,a}[v, p] ã_{a-1}[q]            (z_b is bilinear in W_b and h_{b-1}; 0 for b_b)

Summed over the examples, each term is one GEMM over the example axis, Σ_i X_i Y_iᵀ with X_i, Y_i
outer products of per-example factors, permuted into H: n·P_a·P_b multiply-adds per block pair.
Conventions: ReLU σ' = [z > 0] (torch's at 0), σ'' = 0; Tanh σ' = 1 − h², σ'' = −2h(1 − h²):
exact for both. The Gauss–Newton matrix is the same sum with σ'' = 0 and without the bilinear term.
Only the blocks a ≤ b are built (the flat order must be layer by layer); the lower triangle is
their mirror, so the result is exactly symmetric. R = mean_i ℓ_i + (l2/2)||θ||²: r and M are
scaled by 1/n and l2·I is added. float64 on `context.device`, memory: H plus ~64 MB of GEMM output
and a batch of examples' factors (each at most a few P numbers per example).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch
from torch.func import grad, hessian, vmap

from tdabench.estimators.gradients import Tensors, as_float64
from tdabench.progress import bar
from tdabench.task.context import TaskContext
from tdabench.task.linear_layers import Layer, linear_layers

CHUNK_ELEMENTS = 8 * 2**20  # float64 entries of one GEMM output slice (64 MB)


@dataclass(frozen=True)
class Slot:
    """A layer's place in the flat vector: W (out, inp) row-major at `weight`, b at `bias`."""

    weight: int
    bias: int | None
    out: int
    inp: int

    def parts(self) -> list[tuple[int, int, slice]]:
        """(first, last flat index + 1, slice of the augmented input index) of W and of b."""
        parts = [(self.weight, self.weight + self.out * self.inp, slice(0, self.inp))]
        return parts + ([(self.bias, self.bias + self.out, slice(self.inp, self.inp + 1))] if self.bias is not None else [])


def mlp_layers(context: TaskContext) -> tuple[Layer, ...] | None:
    """The model's Linear layers when it is a Linear stack whose parameters are in layer order
    (weight then bias), else None (the generic path)."""
    layers = linear_layers(context.model, set(context.params))
    names = [name for layer in layers or () for name in (layer.weight, layer.bias) if name]
    return layers if layers is not None and names == list(context.params) else None


def mlp_curvature(context: TaskContext, layers: tuple[Layer, ...], batch_size: int = 512,
                  gauss_newton: bool = False) -> torch.Tensor:
    """H = ∇²R(θᶠ) (or G when `gauss_newton`), (P, P) float64, exactly symmetric; see the module.
    `batch_size` examples at a time (each batch adds into H's upper triangle once)."""
    params, x, y = as_float64(context, context.train.x, context.train.y)
    slots = _slots(layers, params)
    n_params = sum(p.numel() for p in params.values())
    out = torch.zeros(n_params, n_params, dtype=torch.float64, device=context.device)
    with bar(n_params, "Gauss-Newton columns" if gauss_newton else "Hessian columns", "column") as columns:
        for b, slot in enumerate(slots):
            for lo in range(0, len(x), batch_size):
                f = batch_factors(context, layers, params, x[lo:lo + batch_size], y[lo:lo + batch_size], len(x), gauss_newton)
                delta, hz = _backward(layers, params, f, b)
                transfers = _transfers(layers, params, f.slopes, b)
                for a in range(b + 1):
                    _add_pair(out, slots, f, delta, hz, params[layers[b].weight], a, b, transfers[a], gauss_newton)
            columns.update(slot.out * (slot.inp + (slot.bias is not None)))
    _mirror_upper(out)
    out.diagonal().add_(context.l2)
    return out


def _slots(layers: tuple[Layer, ...], params: Tensors) -> list[Slot]:
    offsets, start = {}, 0
    for name, p in params.items():
        offsets[name], start = start, start + p.numel()
    return [Slot(offsets[layer.weight], offsets.get(layer.bias), *params[layer.weight].shape) for layer in layers]


@dataclass
class BatchFactors:
    """A batch's per-example factors: per layer `inputs` ã_{l-1}, `slopes` σ'_l, `curves` σ''_l
    (None where 0, or for the Gauss–Newton matrix); r and M of the outputs, scaled by 1/n (so the
    blocks of all batches sum to the mean)."""

    inputs: list[torch.Tensor]
    slopes: list[torch.Tensor]
    curves: list[torch.Tensor | None]
    r: torch.Tensor
    m: torch.Tensor


def batch_factors(context: TaskContext, layers: tuple[Layer, ...], params: Tensors, x: torch.Tensor,
                  y: torch.Tensor, n: int, gauss_newton: bool) -> BatchFactors:
    """The forward pass of the examples (x, y) and their loss derivatives, r and M scaled by 1/n
    (shared by the structured Hessian and the structured curvature products, mlp_products.py)."""
    h, inputs, slopes, curves = x.reshape(len(x), -1), [], [], []
    for layer in layers:
        bias = params[layer.bias] if layer.bias else None
        inputs.append(h if bias is None else torch.cat([h, h.new_ones(len(h), 1)], 1))
        h, slope, curve = _activate(layer.activation, h @ params[layer.weight].T + (0 if bias is None else bias))
        slopes.append(slope)
        curves.append(None if gauss_newton else curve)
    r, m = _output_derivatives(context, h, y)
    return BatchFactors(inputs, slopes, curves, r / n, m / n)


def _backward(layers: tuple[Layer, ...], params: Tensors, f: BatchFactors, b: int) -> tuple[torch.Tensor, torch.Tensor]:
    """δ_b (n, out_b) and H_b (n, out_b, out_b), from δ_L = r and H_L = M."""
    delta, hz = f.r, f.m
    for k in range(len(layers) - 2, b - 1, -1):
        w, slope = params[layers[k + 1].weight], f.slopes[k]
        g = delta @ w
        hz = slope[:, :, None] * (w.T @ hz @ w) * slope[:, None, :]
        if f.curves[k] is not None:
            hz.diagonal(dim1=1, dim2=2).add_(f.curves[k] * g)
        delta = slope * g
    return delta, hz


def _activate(kind: str | None, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """σ(z), σ'(z) and σ''(z) (None where it is 0)."""
    if kind == "relu":
        return z.relu(), (z > 0).to(z.dtype), None
    if kind == "tanh":
        h = z.tanh()
        slope = 1 - h * h
        return h, slope, -2 * h * slope
    return z, torch.ones_like(z), None


def _output_derivatives(context: TaskContext, out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """r = ∂ℓ_i/∂out_i (n, C) and M = ∂²ℓ_i/∂out_i² (n, C, C), exactly symmetric."""
    loss = context.output_loss
    one = lambda o, yi: loss(o.unsqueeze(0), yi.unsqueeze(0))[0]  # noqa: E731
    m = vmap(hessian(one))(out, y)
    return vmap(grad(one))(out, y), (m + m.transpose(1, 2)) / 2


def _transfers(layers: tuple[Layer, ...], params: Tensors, slopes: list[torch.Tensor], b: int) -> list:
    """[T_{b,a} (n, in_b, out_a) for a < b] + [None] (a = b), by T_{b,a} = T_{b,a+1} W_{a+1} D_a."""
    transfers: list = [None]
    for a in range(b - 1, -1, -1):
        t = torch.diag_embed(slopes[a]) if a == b - 1 else (transfers[0] @ params[layers[a + 1].weight]) * slopes[a][:, None, :]
        transfers.insert(0, t)
    return transfers


def _add_pair(out: torch.Tensor, slots: list[Slot], f: BatchFactors, delta: torch.Tensor, hz: torch.Tensor,
              w_b: torch.Tensor, a: int, b: int, t: torch.Tensor | None, gauss_newton: bool) -> None:
    """out[θ_a, θ_b] += the block pair's two terms (module docstring), each as chunked GEMMs."""
    rows, cols = slots[a], slots[b]
    factor = hz if t is None else t.transpose(1, 2) @ (w_b.T @ hz)  # (n, out_a, out_b): [p, u]
    outer = f.inputs[a][:, :, None] * f.inputs[b][:, None, :]  # [q, v]
    if a == b:  # upper triangle: (W, W) and (b, b) for u ≥ p, (W, b) for all u (b comes after W)
        _gemm_into(out, rows, cols, factor, outer[:, :, :cols.inp], (0, 2, 1, 3), upper=True)
        if cols.bias is not None:
            _gemm_into(out, rows, cols, factor, outer[:, :, cols.inp:], (0, 2, 1, 3), v_first=cols.inp)
        return
    _gemm_into(out, rows, cols, factor, outer, (0, 2, 1, 3))
    if gauss_newton:
        return
    left = delta[:, :, None] * f.inputs[a][:, None, :]  # [u, q]
    if a == b - 1:
        _add_adjacent(out, rows, cols, left, f.slopes[a])
    else:
        _gemm_into(out, rows, cols, left, t.transpose(1, 2), (2, 1, 0, 3))  # right: [p, v]


def _add_adjacent(out: torch.Tensor, rows: Slot, cols: Slot, left: torch.Tensor, slopes: torch.Tensor) -> None:
    """The bilinear term of adjacent layers (T_{a+1,a} = D_a): δ_b[u] σ'_a[p] ã_{a-1}[q] at v = p
    only, onto the diagonal p = v of the (W_a or b_a, W_b) blocks; one GEMM without the zeros."""
    n, d_u, d_q = left.shape
    block = (left.reshape(n, -1).T @ slopes).view(d_u, d_q, -1)  # [u, q, p]
    c0, c1, _ = cols.parts()[0]  # b_b has no bilinear term
    for r0, r1, q in rows.parts():
        target = out[r0:r1, c0:c1].view(rows.out, q.stop - q.start, cols.out, cols.inp)
        target.diagonal(dim1=0, dim2=3).add_(block[:, q].permute(1, 0, 2))  # [q, u, p]


def _gemm_into(out: torch.Tensor, rows: Slot, cols: Slot, left: torch.Tensor, right: torch.Tensor,
               perm: tuple[int, ...], upper: bool = False, v_first: int = 0) -> None:
    """out[θ_rows, θ_cols] += (Σ_i left_i ⊗ right_i).permute(perm) as a [p, q, u, v] block (v from
    `v_first` on), in slices of left's first axis (target axis perm.index(0)) of at most
    CHUNK_ELEMENTS entries. `upper` (left = [p, u]): only u ≥ the slice's first p."""
    n, d0, d1 = left.shape
    flat_right = right.reshape(n, -1)
    step = max(1, CHUNK_ELEMENTS // (d1 * flat_right.shape[1]))
    for lo in range(0, d0, step):
        hi, first = min(lo + step, d0), lo if upper else 0
        part = left[:, lo:hi, first:].reshape(n, -1)
        block = (part.T @ flat_right).view(hi - lo, d1 - first, *right.shape[1:]).permute(perm)
        index = [slice(None)] * 4
        index[perm.index(0)], index[perm.index(1)] = slice(lo, hi), slice(first, None)
        _add_block(out, rows, cols, block, tuple(index), v_first)


def _add_block(out: torch.Tensor, rows: Slot, cols: Slot, block: torch.Tensor, index: tuple[slice, ...],
               v_first: int) -> None:
    """Add block [p, q, u, v] (augmented input indices q and v_first + v) to the views of
    out[θ_rows, θ_cols] as (out, in, out, in) tensors, restricted to `index`."""
    for r0, r1, q in rows.parts():
        for c0, c1, v in cols.parts():
            if v_first <= v.start and v.stop <= v_first + block.shape[3]:
                target = out[r0:r1, c0:c1].view(rows.out, q.stop - q.start, cols.out, v.stop - v.start)
                target[index].add_(block[:, q, :, v.start - v_first:v.stop - v_first])


def _mirror_upper(out: torch.Tensor, step: int = 512) -> None:
    """Copy the upper triangle onto the lower one, in strips (no second (P, P) buffer). The strips
    are disjoint, so torch's threads take them in parallel: transposed copies run single-threaded
    (breast-cancer-mlp on 2 cores: 0.8 s against 2.3 s in one thread with strips of 2048)."""
    def strip(lo: int) -> None:
        hi = min(lo + step, len(out))
        square = out[lo:hi, lo:hi]
        square.copy_(square.triu() + square.triu(1).T)
        out[hi:, lo:hi] = out[lo:hi, hi:].T

    with ThreadPoolExecutor(max(1, torch.get_num_threads())) as pool:
        list(pool.map(strip, range(0, len(out), step)))
