"""Explicit (P, P) curvature matrices of the training risk at θᶠ, float64, for small models.

    H = ∇²R(θᶠ),   R(θ) = mean_i ℓ(z_i; θ) + (l2/2)||θ||²         (`hessian_matrix`)
    G = (1/n) Σ_i J_iᵀ M_i J_i + l2·I,   M_i = ∇²_out ℓ_i, J_i = ∂outputs_i/∂θ   (`gauss_newton_matrix`)

Both include the l2 term. `if-explicit` factorises them; `curvature.CurvatureOperator` uses them for
small models in place of its matrix-free products (after removing the l2 term, which it adds itself).
`curvature_matrix` memoises them on the task context for models of at most `MEMO_UP_TO` parameters,
so the estimators of one comparison build each matrix once. The matrices are built on the context's
device (`TaskContext.device`).

Linear stacks (MLPs) take `mlp_hessian`'s structured path, layer blocks by GEMMs over the examples:
breast-cancer-mlp (P = 20,738, 398 examples) on 2 cores shared with other runs (load 4–6): H in
11.5 s against 270 s for the generic forward-over-reverse path in the same process (52 s measured
on idle cores), largest difference 2e-17 (|H| ≤ 9.5e-3), peak 4.3 GB. Other models take the
generic path:
mnist-cnn (2,202 parameters, 1,000 images) on 2 cores: the Hessian in batches of 256 images 50 s,
peak 1.5 GB (all images at once: 67 s, 3.9 GB); the Gauss–Newton matrix 28 s (cores shared with
another run).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch.func import grad, jvp, vmap

from tdabench.estimators.gradients import Tensors, as_float64, flatten
from tdabench.estimators.mlp_hessian import mlp_curvature, mlp_layers
from tdabench.estimators.output_jacobian import jacobian_batches
from tdabench.progress import bar
from tdabench.task.context import TaskContext

CURVATURES = ("hessian", "gauss-newton")
MEMO_UP_TO = 4096  # (P, P) float64 matrices memoised on the context: at most 134 MB each

# Basis vectors per vmapped Hessian-vector product of the generic path. Building H of
# breast-cancer-mlp (P = 20,738) that way on 2 CPU cores took 72 s with 16, 52 s with 32 and 52 s
# with 64 (memory grows with the chunk); that model now takes the structured path (module docstring).
HESSIAN_CHUNK = 32
# Examples per batch of the structured path at least: each batch adds into all of H once, and an
# example's factors take a few P numbers (breast-cancer-mlp: all 398 examples in one batch).
MLP_BATCH = 512


def hessian_matrix(context: TaskContext, chunk_size: int = HESSIAN_CHUNK,
                   batch_size: int | None = None, structured: bool = True) -> torch.Tensor:
    """∇²R(θᶠ) over the whole training set, (P, P) float64, exactly symmetric.

    A Linear stack (`mlp_hessian.mlp_layers`) takes the structured path when `structured`: its
    layer blocks by GEMMs over the examples, at least MLP_BATCH at a time. Otherwise:
    For each parameter tensor a (dict order), forward-over-reverse products with the basis vectors of
    θ_a give the rows H[a, a:] (the gradient is taken only w.r.t. a and later tensors, so the backward
    pass stops at a); H[a:, a] follows by symmetry. `batch_size`: training examples per product
    (None: all at once), which bounds the memory at chunk_size × batch_size examples' activations
    (mnist-cnn, all 1,000 images at once: 3.9 GB; 256 at a time: 1.5 GB).
    """
    layers = mlp_layers(context) if structured else None
    if layers is not None:
        return mlp_curvature(context, layers, max(batch_size or 0, MLP_BATCH))
    params, x, y = as_float64(context, context.train.x, context.train.y)
    step = len(x) if batch_size is None else batch_size
    parts = [(x[lo:lo + step], y[lo:lo + step]) for lo in range(0, len(x), step)]
    names = list(params)
    offsets = np.cumsum([0, *(p.numel() for p in params.values())]).tolist()
    out = torch.empty(offsets[-1], offsets[-1], dtype=torch.float64, device=context.device)
    with bar(offsets[-1], "Hessian columns", "column") as columns:
        for i, name in enumerate(names):
            head, tail = {k: params[k] for k in names[:i]}, {k: params[k] for k in names[i:]}
            rows = [_row_block_fn(context, xb, yb, len(xb) / len(x), k == 0, head, tail, name)
                    for k, (xb, yb) in enumerate(parts)]
            start, stop = offsets[i], offsets[i + 1]
            for lo in range(start, stop, chunk_size):
                hi = min(lo + chunk_size, stop)
                basis = torch.zeros(hi - lo, stop - start, dtype=torch.float64, device=out.device)
                diagonal = (torch.arange(hi - lo, device=out.device), torch.arange(lo - start, hi - start, device=out.device))
                basis[diagonal] = 1.0  # rows of the identity
                _write_symmetric(out, lo, hi, start, sum(vmap(part)(basis) for part in rows))
                columns.update(hi - lo)
    return out


def _write_symmetric(out: torch.Tensor, lo: int, hi: int, start: int, block: torch.Tensor) -> None:
    """Write block = H[lo:hi, start:] and its transpose H[start:, lo:hi], keeping H exactly symmetric."""
    out[lo:hi, start:] = block
    out[start:, lo:hi] = block.T
    square = out[lo:hi, lo:hi]
    square.copy_((square + square.T) / 2)


def _row_block_fn(context: TaskContext, x: torch.Tensor, y: torch.Tensor, weight: float, regularized: bool,
                  head: Tensors, tail: Tensors, name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """e (flat tangent of θ_name) ↦ ∂/∂ε ∇_{tail} R_part(θ + ε e), flattened: this part's share of
    the rows of H for θ_name, R_part = weight · mean loss over (x, y) (+ the regulariser if
    `regularized`); the shares of the parts sum to R."""
    def risk(tail_params: Tensors) -> torch.Tensor:
        params = {**head, **tail_params}
        loss = weight * context.loss(params, x, y).mean()
        return loss + context.regularizer(params) if regularized else loss

    def tail_grad(theta_a: torch.Tensor) -> torch.Tensor:
        return flatten(grad(risk)({**tail, name: theta_a}))

    return lambda e: jvp(tail_grad, (tail[name],), (e.view_as(tail[name]),))[1]


def gauss_newton_matrix(context: TaskContext, batch_size: int = 256, structured: bool = True) -> torch.Tensor:
    """G = (1/n) Σ_i J_iᵀ M_i J_i + l2·I, (P, P) float64; M_i = ∇²_out ℓ(out_i, y_i) (C × C).
    A Linear stack takes the structured path when `structured` (`mlp_hessian`, its Gauss–Newton
    blocks); otherwise the Jacobians J_i of `batch_size` examples at a time."""
    layers = mlp_layers(context) if structured else None
    if layers is not None:
        return mlp_curvature(context, layers, max(batch_size, MLP_BATCH), gauss_newton=True)
    params, x, y = as_float64(context, context.train.x, context.train.y)
    n_params, n = sum(p.numel() for p in params.values()), len(x)
    total = torch.zeros(n_params, n_params, dtype=torch.float64, device=context.device)
    with bar(n, "Gauss-Newton matrix", "example") as examples:
        for j, m in jacobian_batches(context, params, x, y, batch_size):  # (b, C, P), (b, C, C)
            total.addmm_(j.reshape(-1, n_params).T, (m @ j).reshape(-1, n_params))
            examples.update(len(j))
    total /= n
    total.diagonal().add_(context.l2)
    return total


def curvature_matrix(context: TaskContext, curvature: str, batch_size: int = 256) -> torch.Tensor:
    """H (`curvature` "hessian") or G ("gauss-newton"), with the l2 term: a new (P, P) float64 tensor
    the caller owns. Built once per context and parameter values when P <= MEMO_UP_TO."""
    build = (lambda: hessian_matrix(context, batch_size=batch_size)) if curvature == "hessian" else (
        lambda: gauss_newton_matrix(context, batch_size))
    if context.n_params > MEMO_UP_TO:
        return build()
    key = ("curvature_matrix", curvature, context.params_state())
    if key not in context.memo:
        context.memo[key] = build()
    return context.memo[key].clone()
