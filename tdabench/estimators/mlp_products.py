"""Exact Hessian- (and Gauss–Newton-) vector products of a Linear stack's batch risk, by GEMMs.

Model and conventions as in `mlp_hessian` (`task.linear_layers`): layers l = 1..L,
z_l = W_l h_{l-1} + b_l, h_l = σ_l(z_l) (ReLU, Tanh or none), outputs z_L; the loss enters only
through r = ∂ℓ/∂z_L and M = ∂²ℓ/∂z_L² per example (autograd on the (n, C) outputs). For each of k
flat vectors v = (V_l, v_b,l) (flat order layer by layer, W row-major then b), Pearlmutter's
R-operator:

    forward   Rz_l = V_l h_{l-1} + W_l Rh_{l-1} + v_b,l,   Rh_l = σ'_l ⊙ Rz_l   (Rh_0 = 0)
    backward  δ_L = r,  Rδ_L = M Rz_L;   g_{l-1} = W_lᵀ δ_l,  Rg_{l-1} = V_lᵀ δ_l + W_lᵀ Rδ_l,
              δ_{l-1} = σ'_{l-1} ⊙ g_{l-1},  Rδ_{l-1} = σ'_{l-1} ⊙ Rg_{l-1} + σ''_{l-1} ⊙ Rz_{l-1} ⊙ g_{l-1}
    product   (Hv)_{W_l} = mean_i [Rδ_l h_{l-1}ᵀ + δ_l Rh_{l-1}ᵀ],   (Hv)_{b_l} = mean_i Rδ_l

Gauss–Newton (G v = mean_i J_iᵀ M_i J_i v): the same forward, then Rδ_{l-1} = σ' ⊙ W_lᵀ Rδ_l only
(no V_lᵀ δ_l, σ'' or δ Rhᵀ terms). ReLU σ' = [z > 0] (torch's at 0), σ'' = 0; Tanh σ' = 1 − h²,
σ'' = −2h(1 − h²). The products with the shared W_l are single GEMMs over k·n rows; the V_l terms
are batched matmuls over the k vectors. The l2 term is not included (`CurvatureOperator` adds it).
Memory: a few (k, n, width) float64 tensors per layer.
"""

from __future__ import annotations

import torch

from tdabench.estimators.gradients import Tensors
from tdabench.estimators.mlp_hessian import _activate, _output_derivatives, _slots
from tdabench.task.context import TaskContext
from tdabench.task.linear_layers import Layer


def mlp_products(context: TaskContext, layers: tuple[Layer, ...], params: Tensors, x: torch.Tensor,
                 y: torch.Tensor, vectors: torch.Tensor, gauss_newton: bool = False) -> torch.Tensor:
    """(∇² mean_i ℓ_i) V, or (mean_i J_iᵀ M_i J_i) V when `gauss_newton`, over the examples (x, y),
    for V of shape (k, P) in the flat order of `params`; returns (k, P) float64."""
    k, n = len(vectors), len(x)
    slots = _slots(layers, params)
    weights = [params[layer.weight] for layer in layers]
    biases = [params[layer.bias] if layer.bias else None for layer in layers]
    v_w = [vectors[:, s.weight:s.weight + s.out * s.inp].view(k, s.out, s.inp) for s in slots]
    v_b = [None if s.bias is None else vectors[:, s.bias:s.bias + s.out] for s in slots]

    h, inputs, slopes, curves = x.reshape(n, -1), [], [], []  # forward: h_{l-1}, σ'_l, σ''_l
    for layer, w, b in zip(layers, weights, biases):
        inputs.append(h)
        h, slope, curve = _activate(layer.activation, h @ w.T if b is None else torch.addmm(b, h, w.T))
        slopes.append(slope)
        curves.append(None if gauss_newton else curve)
    r, m = _output_derivatives(context, h, y)

    rh: torch.Tensor | None = None  # R-forward: Rh_0 = 0; Rz_l, Rh_l of shape (k, n, out_l)
    rzs, rhs = [], []
    for l, (w, vw, vb) in enumerate(zip(weights, v_w, v_b)):
        rz = torch.matmul(inputs[l], vw.transpose(1, 2))  # V_l h_{l-1}: (k, n, out)
        if rh is not None:
            rz.view(k * n, -1).addmm_(rh.view(k * n, -1), w.T)
        if vb is not None:
            rz += vb[:, None, :]
        rhs.append(rh)
        rzs.append(rz)
        rh = slopes[l] * rz

    delta = r  # (n, out_L), shared by the k vectors
    r_delta = torch.einsum("icd,kid->kic", m, rzs[-1])  # M Rz_L
    out = torch.empty_like(vectors)
    for l in range(len(layers) - 1, -1, -1):
        s, h_in = slots[l], inputs[l]
        prod_w = (r_delta.transpose(1, 2).reshape(k * s.out, n) @ h_in).view(k, s.out, s.inp)
        if not gauss_newton and rhs[l] is not None:  # δ_l Rh_{l-1}ᵀ
            prod_w += torch.matmul(delta.T, rhs[l])
        out[:, s.weight:s.weight + s.out * s.inp] = prod_w.view(k, -1)
        if s.bias is not None:
            out[:, s.bias:s.bias + s.out] = r_delta.sum(1)
        if l == 0:
            break
        w = weights[l]
        r_g = (r_delta.reshape(k * n, s.out) @ w).view(k, n, s.inp)  # W_lᵀ Rδ_l
        if gauss_newton:
            r_delta = slopes[l - 1] * r_g
            continue
        r_g += torch.matmul(delta, v_w[l])  # V_lᵀ δ_l
        g = delta @ w
        r_delta = slopes[l - 1] * r_g
        if curves[l - 1] is not None:
            r_delta += (curves[l - 1] * g) * rzs[l - 1]
        delta = slopes[l - 1] * g
    return out / n
