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
σ'' = −2h(1 − h²). The products with the shared W_l are single GEMMs over n·k rows; the V_l terms
are single GEMMs with the k vectors side by side. The l2 term is not included (`CurvatureOperator` adds it).

Layers 1 and 2 of the Hessian (Rh_0 = 0, so Rh_1 = σ'_1 ⊙ [V_1 | v_b,1] ã_0): with the k-independent
Q[o, j, m] = Σ_i δ_2[i, o] σ'_1[i, j] ã_0[i, m] (the adjacent-layer block of `mlp_hessian`),
Σ_i δ_2 Rh_1ᵀ [o, j] = Σ_m Q[o, j, m] [V_1 | v_b,1][j, m] and the V_2ᵀ δ_2 part of Rδ_1 contributes
Σ_o V_2[o, j] Q[o, j, m] to (Hv)_{θ_1}[j, m]: n·out_2·in_2·(in_1 + 1) + 2k·out_2·in_2·(in_1 + 1)
multiply-adds instead of 2n·k·out_2·in_2, when that is less (narrow inputs, many vectors).
Memory: a few (n, k, width) float64 tensors per layer.
"""

from __future__ import annotations

import torch

from tdabench.estimators.gradients import Tensors
from tdabench.estimators.mlp_hessian import BatchFactors, Slot, _slots, batch_factors
from tdabench.task.context import TaskContext
from tdabench.task.linear_layers import Layer


def mlp_factors(context: TaskContext, layers: tuple[Layer, ...], params: Tensors, x: torch.Tensor,
                y: torch.Tensor, gauss_newton: bool = False) -> BatchFactors:
    """The forward pass and the loss derivatives of the examples (x, y), for `mlp_products`: the mean
    over these examples is folded into r and M (`mlp_hessian.batch_factors` with n = len(x))."""
    return batch_factors(context, layers, params, x, y, len(x), gauss_newton)


def mlp_products(layers: tuple[Layer, ...], params: Tensors, f: BatchFactors, vectors: torch.Tensor,
                 gauss_newton: bool = False) -> torch.Tensor:
    """(∇² mean_i ℓ_i) V, or (mean_i J_iᵀ M_i J_i) V when `gauss_newton`, over the examples of the
    factors `f` (`mlp_factors`, same `gauss_newton`), for V of shape (k, P) in the flat order of
    `params`; returns (k, P) float64.

    The R-quantities are laid out example-major, (n, k, width), so that every product is one 2-D
    GEMM: with W_l over n·k rows, with the V_l of all k vectors side by side over n rows."""
    k, n = len(vectors), len(f.r)
    slots = _slots(layers, params)
    weights = [params[layer.weight] for layer in layers]
    v_w = [vectors[:, s.weight:s.weight + s.out * s.inp].view(k, s.out, s.inp) for s in slots]
    inputs, slopes, curves, r, m = f.inputs, f.slopes, f.curves, f.r, f.m

    rh: torch.Tensor | None = None  # R-forward, (n, k, out_l): Rz_l = [V_l | v_b,l] ã_{l-1} + W_l Rh_{l-1}
    rzs, rhs = [], []
    for at, (w, s) in enumerate(zip(weights, slots)):
        v_aug = _augmented_vectors(vectors, s)  # (k, out, in + 1 if bias)
        rz = (inputs[at] @ v_aug.permute(2, 0, 1).reshape(-1, k * s.out)).view(n, k, s.out)
        if rh is not None:
            rz.view(n * k, s.out).addmm_(rh.view(n * k, s.inp), w.T)
        rhs.append(rh)
        rzs.append(rz)
        rh = rz * slopes[at][:, None, :]

    delta = r  # δ_l (n, out_l), shared by the k vectors
    r_delta = torch.einsum("icd,ikd->ikc", m, rzs[-1])  # Rδ_L = M Rz_L
    out = torch.empty_like(vectors)
    pair = not gauss_newton and len(layers) > 1 and _pair_is_cheaper(n, k, inputs[0].shape[1])
    for at in range(len(layers) - 1, -1, -1):
        s = slots[at]
        prod = (r_delta.view(n, k * s.out).T @ inputs[at]).view(k, s.out, -1)  # Σ_i Rδ_l ã_{l-1}ᵀ
        if pair and at == 1:  # the bilinear terms of layers 1 and 2 through Q (module docstring)
            q = (delta.T @ (slopes[0][:, :, None] * inputs[0][:, None, :]).view(n, -1)).view(s.out, s.inp, -1)
            q = q.transpose(0, 1)  # [j, o, m]
            prod[:, :, :s.inp] += torch.bmm(q, _augmented_vectors(vectors, slots[0]).permute(1, 2, 0)).permute(2, 1, 0)
            first = torch.bmm(v_w[1].permute(2, 0, 1), q).transpose(0, 1)  # Σ_o V_2[o, j] Q[o, j, m]
        elif not gauss_newton and rhs[at] is not None:  # + Σ_i δ_l Rh_{l-1}ᵀ (W only)
            prod[:, :, :s.inp] += (delta.T @ rhs[at].view(n, k * s.inp)).view(s.out, k, s.inp).transpose(0, 1)
        if pair and at == 0:
            prod += first
        out[:, s.weight:s.weight + s.out * s.inp].view(k, s.out, s.inp).copy_(prod[:, :, :s.inp])
        if s.bias is not None:
            out[:, s.bias:s.bias + s.out] = prod[:, :, s.inp]
        if at == 0:
            break
        w = weights[at]
        r_g = (r_delta.view(n * k, s.out) @ w).view(n, k, s.inp)  # W_lᵀ Rδ_l
        if not gauss_newton and not (pair and at == 1):  # + V_lᵀ δ_l
            r_g.view(n, k * s.inp).addmm_(delta, v_w[at].transpose(0, 1).reshape(s.out, k * s.inp))
        r_delta = r_g.mul_(slopes[at - 1][:, None, :])
        if gauss_newton:
            continue
        g = delta @ w
        if curves[at - 1] is not None:
            r_delta.addcmul_(rzs[at - 1], (curves[at - 1] * g)[:, None, :])
        delta = slopes[at - 1] * g
    return out


def _pair_is_cheaper(n: int, k: int, d: int) -> bool:
    """Whether Q (n·d multiply-adds per entry) and its two contractions with the k vectors (2k·d)
    cost less than the two R-operator GEMMs they replace (2n·k), d = the input width (+ 1)."""
    return d * (n + 2 * k) < 2 * n * k


def _augmented_vectors(vectors: torch.Tensor, s: Slot) -> torch.Tensor:
    """[V_l | v_b,l] of the k vectors, (k, out, in + 1), or V_l (k, out, in) without a bias."""
    v = vectors[:, s.weight:s.weight + s.out * s.inp].view(len(vectors), s.out, s.inp)
    return v if s.bias is None else torch.cat([v, vectors[:, s.bias:s.bias + s.out, None]], 2)
