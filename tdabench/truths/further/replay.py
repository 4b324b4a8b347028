"""The reference run of further training as a list of steps, one functional step, and its memory.

The derivative mode (derivative.py) differentiates the reference run — the copy that removes
nothing — with respect to the loss weights w (n,) of the training instances, at w = 1. A step is
s_{t+1} = Φ_t(s_t, w): parameters and optimizer state s_t, batch b_t of the shared data order
(schedule.py, same batches as every copy of the gold standard), batch loss
Σ_j w_{b_t[j]} m_j ℓ(z_{b_t[j]}; θ) / Σ_j m_j + regulariser (the downweight mode's loss: the
denominator is the nominal batch, so ∂/∂w_i is the ε → 0 limit of down-weighting), then one
update of task/optim.py's functional optimizer.

Memory: the reverse sweep needs s_t at every step. `checkpoint_interval` picks k so that storing
every k-th state and recomputing the k − 1 states in between fits a byte budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch.func import grad

from tdabench.task.context import TaskContext
from tdabench.task.optim import FunctionalOptimizer
from tdabench.task.schedule import FURTHER_TRAINING_STREAM, epoch_batches, epoch_permutation
from tdabench.truths.further.config import GoldConfig

Tensors = dict[str, torch.Tensor]
COUNT = "count"  # the optimizer state's step counter (not differentiated: it does not depend on w)


@dataclass(frozen=True)
class Step:
    """One step of the reference run: training indices (B,), real-entry mask (B,) (padding: index 0,
    mask 0); the loss weight of entry j is w[index[j]] · mask[j]."""

    index: torch.Tensor
    mask: torch.Tensor


def reference_steps(cfg: GoldConfig, n: int, seed: int, dtype: torch.dtype,
                    device: torch.device | str = "cpu") -> list[Step]:
    """The batches of the reference run of `seed`, up to the last horizon (cfg.steps[-1] steps),
    as tensors on `device` (made once, so the replay never copies from the host per step)."""
    steps: list[Step] = []
    epoch = 0
    while len(steps) < cfg.steps[-1]:
        perm = epoch_permutation(n, seed, epoch, FURTHER_TRAINING_STREAM)
        for batch in epoch_batches(perm, np.array([-1]), cfg.recipe.batch_size):
            steps.append(Step(torch.as_tensor(batch.index[0], device=device),
                              torch.as_tensor(batch.mask[0], dtype=dtype, device=device)))
        epoch += 1
    return steps[:cfg.steps[-1]]


def batch_loss_fn(ctx: TaskContext) -> Callable[..., torch.Tensor]:
    """(params, x, y, w, m) ↦ Σ w·ℓ / max(Σ m, 1) + regulariser, for one model (not stacked)."""
    def batch_loss(params: Tensors, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor,
                   m: torch.Tensor) -> torch.Tensor:
        return (w * ctx.loss(params, x, y)).sum() / m.sum().clamp(min=1.0) + ctx.regularizer(params)
    return batch_loss


def step_fn(ctx: TaskContext, optimizer: FunctionalOptimizer) -> Callable[..., tuple[Tensors, Tensors]]:
    """Φ(params, slots, count, step, w_batch) → (params', slots'): one further-training step with
    the batch's loss weights `w_batch` (B,); `slots` is the optimizer state without its counter.
    Written with torch.func.grad, so it can itself be differentiated (vjp) and vmapped."""
    gradient = grad(batch_loss_fn(ctx))
    active = torch.tensor(True)

    def phi(params: Tensors, slots: Tensors, count: torch.Tensor, step: Step,
            w_batch: torch.Tensor) -> tuple[Tensors, Tensors]:
        x, y = ctx.train.x[step.index], ctx.train.y[step.index]
        grads = gradient(params, x, y, w_batch * step.mask, step.mask)
        new_params, new_state = optimizer.step(params, grads, slots | {COUNT: count}, active)
        return new_params, {k: new_state[k] for k in slots}
    return phi


def split_state(state: Tensors) -> tuple[Tensors, torch.Tensor]:
    """(slots, counter) of a functional optimizer state."""
    return {k: v for k, v in state.items() if k != COUNT}, state[COUNT]


def state_bytes(ctx: TaskContext, optimizer: FunctionalOptimizer) -> int:
    """Bytes of one stored state: parameters and the optimizer's slots."""
    slots = len(optimizer.init({"p": torch.zeros(1, dtype=ctx.dtype)})) - 1
    return ctx.n_params * (1 + slots) * (torch.finfo(ctx.dtype).bits // 8)


def checkpoint_interval(n_steps: int, bytes_per_state: int, budget: int) -> int:
    """The smallest k ≥ 1 such that the ⌈T/k⌉ stored states plus the k − 1 recomputed ones of a
    segment fit `budget` bytes (k = 1: every state stored, nothing recomputed). When none fits,
    k = ⌈√T⌉, the k that needs the fewest states (≈ 2√T)."""
    fits = budget // max(1, bytes_per_state)
    for k in range(1, n_steps + 1):
        if math.ceil(n_steps / k) + k - 1 <= fits:
            return k
    return max(1, math.isqrt(n_steps - 1) + 1)
