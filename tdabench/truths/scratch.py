"""Training from scratch, K copies at once: the engine of the retraining ground truths (docs/method.md, secondary ground truths).

The same machinery as the further-training gold standard (further/vectorized.py; both use
stacked.py): K stacked parameter copies, one vmapped functional optimizer step for all of them.
What differs:

- every copy starts from the final model's *initialisation* θ₀ (`ctx.init_model()`, i.e. `model_for_data(spec.model, ...)`, before
  training: `initial_params`), not from θᶠ;
- the recipe is the final model's (`spec.training`: optimizer, learning rate, batch size, epochs),
  and the data order is the final model's stream (`schedule.TRAINING_STREAM`) under data-order
  seed `spec.training.seed + s` for retraining seed s = 0, 1, …, so the reference copy of seed 0
  *is* the final model;
- copy k trains on the instances `keep[k]` (a boolean row of length n): each epoch's shared
  permutation with the dropped instances left out, cut into batches (`subset_batches`). With one
  instance dropped this is exactly `schedule.epoch_batches(mode="removal")`, so the plain
  `training.train_module(removed=i)` loop is the sequential reference. A 50 % subset takes
  ⌈n/2 / B⌉ steps per epoch, as training on the subset alone would.

The target f(z; θ) (or, with `scratch_outputs`, the model outputs) is evaluated once, at the end of
training.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from torch.func import vmap

from tdabench.task.context import TaskContext
from tdabench.errors import TdabenchError
from tdabench.task.optim import FunctionalOptimizer
from tdabench.task.schedule import TRAINING_STREAM, epoch_permutation, subset_batches
from tdabench.truths.stacked import Tensors, epoch_tensors, stack_copies, targets_fn, training_step_fn


def initial_params(ctx: TaskContext) -> Tensors:
    """θ₀: the attributed parameters the final model started from (same builder, same
    `model.init_seed`); the frozen ones stay as in the final model."""
    if ctx.init_model is None:
        raise TdabenchError("retraining from scratch needs a fresh initialisation of the model; give the "
                            "Python API a model `factory`, not only the final model")
    named = dict(ctx.init_model().named_parameters())
    return {name: named[name].detach().to(ctx.dtype).to(ctx.device) for name in ctx.params}


def scratch_params(ctx: TaskContext, keep: np.ndarray, seed: int,
                   on_epoch: Callable[[], None] | None = None) -> Tensors:
    """The stacked parameters (K, …) of K = len(keep) copies trained from θ₀ with `spec.training`
    under retraining seed `seed` (copy k on the instances `keep[k]`): what a caller needs to look
    inside the retrained models (concept probes, tdabench/concepts/removal.py)."""
    recipe, n = ctx.spec.training, len(ctx.train)
    optimizer = FunctionalOptimizer(recipe)
    step_ = training_step_fn(ctx, optimizer)
    params = stack_copies(initial_params(ctx), len(keep))
    state = optimizer.init(params)
    for epoch in range(recipe.epochs):
        perm = epoch_permutation(n, recipe.seed + seed, epoch, TRAINING_STREAM)
        for x, y, w, m, active in epoch_tensors(ctx, subset_batches(perm, keep, recipe.batch_size)):
            step_(params, state, x, y, w, m, active)
        if on_epoch is not None:
            on_epoch()
    return params


def _test_inputs(ctx: TaskContext, test_idx: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    idx = torch.as_tensor(np.asarray(test_idx, dtype=np.int64), device=ctx.test.x.device)
    return ctx.test.x[idx], ctx.test.y[idx]


def train_from_scratch(ctx: TaskContext, keep: np.ndarray, seed: int, test_idx: Sequence[int],
                       on_epoch: Callable[[], None] | None = None) -> np.ndarray:
    """Train K = len(keep) copies from θ₀ with `spec.training` under retraining seed `seed`.

    Returns f(z_j; θ_k) at the end of training, shape (K, n_test), float64.
    """
    params = scratch_params(ctx, keep, seed, on_epoch)
    with torch.no_grad():
        return targets_fn(ctx, *_test_inputs(ctx, test_idx))(params).double().cpu().numpy()


def scratch_outputs(ctx: TaskContext, keep: np.ndarray, seed: int, test_idx: Sequence[int],
                    chunk_size: int | None = None, on_epoch: Callable[[], None] | None = None) -> np.ndarray:
    """Like `train_chunked`, but the model *outputs* (logits) of each copy on the test points
    `test_idx` at the end of training, shape (K, n_test, n_outputs), float64: what a caller needs
    to read predictions (top-k removal with retraining, downstream/brittleness.py)."""
    if len(keep) == 0:
        raise ValueError("scratch_outputs needs at least one copy")
    x, _ = _test_inputs(ctx, test_idx)
    outputs_of = vmap(lambda p: ctx.outputs(p, x))
    parts = []
    for start in range(0, len(keep), chunk_size or max(len(keep), 1)):
        params = scratch_params(ctx, keep[start:start + (chunk_size or len(keep))], seed, on_epoch)
        with torch.no_grad():
            parts.append(outputs_of(params).double().cpu().numpy())
    return np.concatenate(parts, axis=0)


def train_chunked(ctx: TaskContext, keep: np.ndarray, seed: int, test_idx: Sequence[int],
                  chunk_size: int | None = None, on_epoch: Callable[[], None] | None = None) -> np.ndarray:
    """`train_from_scratch` over chunks of `chunk_size` copies (None: all at once); (K, n_test).

    The copies are independent, so the numbers do not depend on the chunk size.
    """
    size = chunk_size or len(keep)
    parts = [train_from_scratch(ctx, keep[start:start + size], seed, test_idx, on_epoch)
             for start in range(0, len(keep), size)]
    return np.concatenate(parts, axis=0)


def leave_one_out_keep(n: int, removed: Sequence[int]) -> np.ndarray:
    """(1 + |I|, n) bool: row 0 keeps all of D (the reference), row 1 + k drops `removed[k]`."""
    keep = np.ones((1 + len(removed), n), dtype=bool)
    keep[np.arange(1, 1 + len(removed)), np.asarray(removed, dtype=np.int64)] = False
    return keep


def leave_one_out(ctx: TaskContext, train_idx: Sequence[int], test_idx: Sequence[int], seed: int,
                  chunk_size: int | None = None,
                  on_epoch: Callable[[], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One retraining seed of leave-one-out.

    Returns (diff, reference): diff[j, k] = f(z_j; θ^{−i_k}) − f(z_j; θ), shape (n_test, |I|)
    (docs/method.md sign: > 0 means removing i_k increased the target); reference[j] = f(z_j; θ).
    """
    values = train_chunked(ctx, leave_one_out_keep(len(ctx.train), train_idx), seed, test_idx,
                           chunk_size, on_epoch)
    return (values[1:] - values[:1]).T, values[0]
