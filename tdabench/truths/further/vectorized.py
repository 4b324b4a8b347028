"""Paired further training of K copies at once: stacked parameters, one vmapped step for all.

Copy 0 is the reference run on all of D; copy k removes (or down-weights) instance r_k. Every copy
sees the same permutation per epoch (schedule.py). After each horizon the target f(z; θ_k) is
evaluated on the test points, and the paired differences f(z; θ_k) − f(z; θ_0) are kept. The stacked
copies, their gradients and their targets are in truths/stacked.py.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from tdabench.task.context import TaskContext
from tdabench.task.schedule import FURTHER_TRAINING_STREAM, epoch_batches, epoch_permutation
from tdabench.truths.further.config import GoldConfig
from tdabench.truths.stacked import stack_copies, targets_fn, train_to_marks


def train_copies(ctx: TaskContext, cfg: GoldConfig, seed: int, removed: np.ndarray,
                 on_step: Callable[[], None] | None = None) -> np.ndarray:
    """Further-train copies with removed instances `removed` (K,) (−1 = reference) under `seed`.

    Returns the target at every horizon, shape (n_horizons, K, n_test), float64. Each epoch's
    batches are gathered into tensors once (`epoch_tensors`), parameters and optimizer state are
    updated in place; the only host transfer is the target at each horizon.
    """
    n = len(ctx.train)
    cfg.check_split(n)
    test_idx = torch.as_tensor(cfg.test_idx, device=ctx.test.x.device)
    evaluate = targets_fn(ctx, ctx.test.x[test_idx], ctx.test.y[test_idx])
    batches_of = lambda epoch: epoch_batches(epoch_permutation(n, seed, epoch, FURTHER_TRAINING_STREAM),  # noqa: E731
                                             removed, cfg.recipe.batch_size, cfg.mode, cfg.epsilon)
    return train_to_marks(ctx, cfg.recipe, stack_copies(ctx.params, len(removed)), batches_of, tuple(cfg.steps),
                          lambda params: evaluate(params).double().cpu().numpy(), on_step)


def paired_differences(ctx: TaskContext, cfg: GoldConfig, seed: int,
                       on_step: Callable[[], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One seed of the gold standard, trained in chunks of `cfg.chunk_size` instances.

    Returns (diff, reference): diff[h, j, i] = f(z_j; θ_h^{−i}) − f(z_j; θ_h), shape
    (n_horizons, n_test, n_train_evaluated); reference[h, j] = f(z_j; θ_h), shape (n_horizons, n_test).
    """
    instances = np.asarray(cfg.train_idx, dtype=np.int64)
    size = cfg.chunk_size or len(instances)
    diffs, reference = [], None
    for start in range(0, len(instances), size):
        removed = np.concatenate([[-1], instances[start:start + size]])
        values = train_copies(ctx, cfg, seed, removed, on_step)  # (H, K, n_test)
        reference = values[:, 0] if reference is None else reference
        diffs.append(values[:, 1:] - values[:, :1])
    return np.concatenate(diffs, axis=1).transpose(0, 2, 1), reference
