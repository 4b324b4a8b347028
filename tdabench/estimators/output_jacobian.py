"""Gauss–Newton products through the stored output Jacobian of the training set, for models too large
for an explicit (P, P) matrix whose training Jacobian still fits in memory.

    J_i = ∂outputs_i/∂θ at θᶠ  (C, P),   M_i = ∇²_out ℓ(out_i, y_i)  (C, C),
    G_S V = (1/|S|) Σ_{i∈S} J_i^T M_i J_i V    for V of shape (k, P), S the whole set or sampled rows.

J (n, C, P) and M (n, C, C) are float64, built once per context and parameter values and kept in the
context's memo. The process keeps one at a time: building one drops the one held before (of this
context for older parameter values, or of another context), so a re-initialised copy of a model or a
second task never holds a second multi-GB Jacobian beside the first. A product
is then two GEMMs, 4·n·C·P·k flops, instead of k forward-and-backward passes through the model: the
same numbers up to rounding as the matrix-free jvp → M → vjp products of `curvature`.
rt-bert-tiny (P = 230,402, 1,500 snippets, C = 2): J is 5.5 GB, built in 38 s on 2 cores; one
product of 50 vectors 3.2 s against 253 s matrix-free (benchmarks/jacobian_products_speed.py).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Iterator

import torch
from torch.func import hessian, jacrev, vmap

from tdabench.estimators.gradients import Tensors
from tdabench.progress import bar
from tdabench.task.context import TaskContext

JACOBIAN_BYTES = 8 * 2**30  # the largest stored Jacobian (float64 bytes) the operator builds by default
MEMO_KEY = "output_jacobian"
_holder: list[weakref.ref] = []  # the context whose memo holds the process's one stored Jacobian


@dataclass(frozen=True)
class OutputJacobian:
    """J (n, C, P) and M (n, C, C) of the training examples, float64, on the context's device."""

    jacobian: torch.Tensor
    output_hessian: torch.Tensor

    def gauss_newton_products(self, vectors: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """G_S V for V (k, P): the mean of J_iᵀ M_i J_i V over `rows` (None: every example); (k, P)."""
        j, m = (self.jacobian, self.output_hessian) if rows is None else (self.jacobian[rows], self.output_hessian[rows])
        n, c, p = j.shape
        flat = j.reshape(n * c, p)
        jv = (vectors @ flat.T).reshape(len(vectors), n, c)
        mjv = torch.einsum("icd,kid->kic", m, jv)
        return mjv.reshape(len(vectors), n * c) @ flat / n


def jacobian_batches(context: TaskContext, params: Tensors, x: torch.Tensor, y: torch.Tensor,
                     batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(J, M) of `batch_size` examples at a time: J (b, C, P) by vmap(jacrev) over the examples, M
    (b, C, C) by vmap(hessian) of the loss in the outputs; in the dtype of `params`."""
    loss_of_out = context.output_loss
    jac = vmap(jacrev(lambda p, xi: context.outputs(p, xi.unsqueeze(0))[0]), in_dims=(None, 0))
    out_hess = vmap(hessian(lambda out, yi: loss_of_out(out.unsqueeze(0), yi.unsqueeze(0))[0]))
    for lo in range(0, len(x), batch_size):
        xb, yb = x[lo:lo + batch_size], y[lo:lo + batch_size]
        outputs = context.outputs(params, xb)
        j = torch.cat([g.reshape(*outputs.shape, -1) for g in jac(params, xb).values()], dim=2)
        yield j, out_hess(outputs, yb)


def count_outputs(context: TaskContext, params: Tensors, x: torch.Tensor) -> int:
    """C, the number of model outputs per example (one forward pass on the first example of x)."""
    with torch.no_grad():
        return int(context.outputs(params, x[:1]).shape[1])


def jacobian_nbytes(context: TaskContext, n_outputs: int) -> int:
    """Bytes of the float64 training Jacobian (n, C, P)."""
    return 8 * len(context.train) * n_outputs * context.n_params


def output_jacobian(context: TaskContext, params: Tensors, x: torch.Tensor, y: torch.Tensor,
                    batch_size: int) -> OutputJacobian:
    """J and M of the whole training set (x, y) at `params` (the context's θᶠ in float64), memoised on
    the context for its parameter values; the Jacobian held before (by any context) is dropped before
    a new one is built."""
    state = context.params_state()
    held = context.memo.get(MEMO_KEY)
    if held is None or held[0] != state:
        drop_held_jacobian()
        context.memo[MEMO_KEY] = (state, build_output_jacobian(context, params, x, y, batch_size))
        _holder.append(weakref.ref(context))
    return context.memo[MEMO_KEY][1]


def drop_held_jacobian() -> None:
    """Remove the stored Jacobian from the memo of the context holding it (if that context lives)."""
    while _holder:
        context = _holder.pop()()
        if context is not None:
            context.memo.pop(MEMO_KEY, None)


def build_output_jacobian(context: TaskContext, params: Tensors, x: torch.Tensor, y: torch.Tensor,
                          batch_size: int) -> OutputJacobian:
    """J (n, C, P) and M (n, C, C) of (x, y), filled batch by batch into preallocated tensors."""
    n_outputs = count_outputs(context, params, x)
    device = next(iter(params.values())).device
    jacobian = torch.empty(len(x), n_outputs, context.n_params, dtype=torch.float64, device=device)
    output_hessian = torch.empty(len(x), n_outputs, n_outputs, dtype=torch.float64, device=device)
    with bar(len(x), "output Jacobian", "example") as examples:
        lo = 0
        for j, m in jacobian_batches(context, params, x, y, batch_size):
            jacobian[lo:lo + len(j)], output_hessian[lo:lo + len(j)] = j, m
            lo += len(j)
            examples.update(len(j))
    return OutputJacobian(jacobian, output_hessian)
