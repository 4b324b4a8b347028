"""K parameter copies trained at once: stacked parameters, vmapped per-copy gradients and targets.

The shared machinery of further training (further/vectorized.py) and training from scratch
(scratch.py): the copies are independent, each with its own batch, loss weights and mask.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from torch.func import vmap

from tdabench.task.context import TaskContext
from tdabench.task.optim import FunctionalOptimizer
from tdabench.task.schedule import Batch
from tdabench.task.spec import OptimizerSpec
from tdabench.truths.linear_stack import linear_stack_gradients
from tdabench.truths.linear_stack_sgd import linear_stack_sgd_step

Tensors = dict[str, torch.Tensor]


def stack_copies(params: Tensors, k: int) -> Tensors:
    """`k` copies of `params`, stacked along a new leading axis (each tensor its own memory)."""
    return {name: p.unsqueeze(0).expand(k, *p.shape).clone() for name, p in params.items()}


def gradients_fn(ctx: TaskContext) -> Callable[..., Tensors]:
    """Gradients of every copy's batch loss Σ w·loss / Σ mask + regulariser, w.r.t. its own copy.

    A Linear/ReLU/Tanh stack takes the batched-GEMM path of linear_stack.py. Otherwise the copies
    are independent, so one backward pass through the sum of the vmapped per-copy losses gives each
    copy its own gradient (faster than vmap(grad(...)) here, and equal to it).
    """
    return linear_stack_gradients(ctx) or vmapped_gradients_fn(ctx)


def training_step_fn(ctx: TaskContext, optimizer: FunctionalOptimizer) -> Callable[..., None]:
    """`step_(params, state, x, y, w, m, active)`: one optimizer step of every copy, in place.

    A Linear stack trained with SGD takes the fused path of linear_stack_sgd.py when every copy is
    active; otherwise the copies' gradients (`gradients_fn`) go through `optimizer.step_`.
    """
    grads_of, fused = gradients_fn(ctx), linear_stack_sgd_step(ctx, optimizer.spec)

    def step_(params: Tensors, state: Tensors, x, y, w, m, active: torch.Tensor | bool) -> None:
        if fused is not None and active is True:
            fused(params, state, x, y, w, m)
        else:
            optimizer.step_(params, grads_of(params, x, y, w, m), state, active)
    return step_


def train_to_marks(ctx: TaskContext, recipe: OptimizerSpec, params: Tensors,
                   batches_of: Callable[[int], Iterable[Batch]], marks: tuple[int, ...],
                   record: Callable[[Tensors], np.ndarray], on_step: Callable[[], None] | None = None) -> np.ndarray:
    """Train the stacked copies `params` in place with `recipe`'s optimizer, epoch e's batches from
    `batches_of(e)`, until the last of `marks` (strictly increasing step counts); after each step in
    `marks`, `record(params)` (no gradients). Returns the records stacked, shape (len(marks), …)."""
    optimizer = FunctionalOptimizer(recipe)
    step_, state = training_step_fn(ctx, optimizer), optimizer.init(params)
    out, step, epoch = [], 0, 0
    while step < marks[-1]:
        for x, y, w, m, active in epoch_tensors(ctx, batches_of(epoch)):
            step_(params, state, x, y, w, m, active)
            step += 1
            if on_step is not None:
                on_step()
            if step in marks:
                with torch.no_grad():
                    out.append(record(params))
            if step == marks[-1]:
                break
        epoch += 1
    return np.stack(out)


def vmapped_gradients_fn(ctx: TaskContext) -> Callable[..., Tensors]:
    """The generic path of `gradients_fn`, for any model: vmap over copies + one autograd pass."""
    def batch_loss(params: Tensors, x, y, w, m):
        return (w * ctx.loss(params, x, y)).sum() / m.sum().clamp(min=1.0) + ctx.regularizer(params)
    per_copy = vmap(batch_loss)

    def grads_of(params: Tensors, x, y, w, m) -> Tensors:
        leaves = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        with torch.enable_grad():
            total = per_copy(leaves, x, y, w, m).sum()
            grads = torch.autograd.grad(total, list(leaves.values()))
        return dict(zip(leaves, grads))
    return grads_of


def epoch_tensors(ctx: TaskContext, batches: Iterable[Batch]) -> Iterator[tuple]:
    """One epoch's batches as tensors gathered at once: (x, y, w, m, active) per step, with x
    (K, B, …), y (K, B), loss weights w and mask m (K, B) in the context's dtype, and `active`
    True or a (K,) bool tensor (copies with at least one real entry)."""
    listed = list(batches)
    if not listed:
        return
    device = ctx.device
    index = torch.as_tensor(np.stack([b.index for b in listed]), device=ctx.train.x.device)  # (steps, K, B)
    weight = torch.as_tensor(np.stack([b.weight for b in listed]), dtype=ctx.dtype, device=device)
    mask = torch.as_tensor(np.stack([b.mask for b in listed]), dtype=ctx.dtype, device=device)
    xs, ys = ctx.train.x[index].to(device), ctx.train.y[index].to(device)
    for s, b in enumerate(listed):
        active = b.active  # decided on the host: no device round trip per step
        yield xs[s], ys[s], weight[s], mask[s], True if active.all() else torch.as_tensor(active, device=device)


def targets_fn(ctx: TaskContext, test_x: torch.Tensor, test_y: torch.Tensor) -> Callable:
    """Stacked copies → the target f(z; θ_k) of every copy on the test points, (K, n_test)."""
    per_copy = lambda params: ctx.target(params, test_x, test_y)
    return vmap(per_copy)


def n_chunks(n_copies: int, chunk_size: int | None) -> int:
    """How many vmapped chunks `n_copies` copies train in (`chunk_size` None: one)."""
    return -(-n_copies // (chunk_size or n_copies))
