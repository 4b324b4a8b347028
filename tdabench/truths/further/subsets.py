"""Paired further training with a *set* of instances removed per copy (top-k removal).

The removal gold standard (vectorized.py) drops one instance per copy; here copy k drops every
instance that `keep[k]` marks False. Each epoch's shared permutation (schedule.py, the
further-training stream) loses the dropped instances and is cut into batches
(`schedule.subset_batches`); a reference copy that keeps all of D is always trained alongside, so
every copy runs on the reference run's clock of ⌈n/B⌉ steps per epoch (a copy whose data ran out
skips its update, as in removal mode). With one instance dropped a copy is exactly a removal copy of
the gold standard. The model outputs (not only the target) are recorded at every horizon, so that
a caller can read predictions.
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch.func import vmap

from tdabench.task.context import TaskContext
from tdabench.task.schedule import FURTHER_TRAINING_STREAM, Batch, epoch_permutation, subset_batches
from tdabench.task.spec import OptimizerSpec
from tdabench.truths.stacked import Tensors, stack_copies, train_to_marks


def _batches_of(ctx: TaskContext, recipe: OptimizerSpec, keep: np.ndarray, seed: int) -> Callable[[int], Iterable[Batch]]:
    """Epoch → its batches for the copies `keep` (K, n) under further-training seed `seed`."""
    n = len(ctx.train)
    return lambda epoch: subset_batches(epoch_permutation(n, seed, epoch, FURTHER_TRAINING_STREAM), keep,
                                        recipe.batch_size)


def _train_chunk(ctx: TaskContext, recipe: OptimizerSpec, keep: np.ndarray, seed: int, steps: Sequence[int],
                 x: torch.Tensor, on_step: Callable[[], None] | None) -> np.ndarray:
    """Outputs (len(steps), K, n_eval, n_outputs) of the K = len(keep) copies (row 0 keeps all)."""
    outputs_of = vmap(lambda p: ctx.outputs(p, x))
    return train_to_marks(ctx, recipe, stack_copies(ctx.params, len(keep)), _batches_of(ctx, recipe, keep, seed),
                          tuple(steps), lambda params: outputs_of(params).double().cpu().numpy(), on_step)


def further_train_params(ctx: TaskContext, recipe: OptimizerSpec, keep: np.ndarray, seed: int, steps: int,
                         on_step: Callable[[], None] | None = None) -> Tensors:
    """The stacked parameters (K, …) of one copy per row of `keep` (K, n) bool, further-trained from
    θᶠ with `recipe` under `seed` for `steps` optimizer steps, as `further_train_subsets` trains them:
    the epoch has ⌈max_k |keep_k| / B⌉ steps, so give one row that keeps all of D for the reference
    run's clock. What a caller needs to look inside the copies (tdabench/concepts/removal.py)."""
    keep = np.asarray(keep, dtype=bool)
    if keep.ndim != 2 or keep.shape[1] != len(ctx.train):
        raise ValueError(f"keep must be (K, {len(ctx.train)}) bool, got shape {keep.shape}")
    params = stack_copies(ctx.params, len(keep))
    train_to_marks(ctx, recipe, params, _batches_of(ctx, recipe, keep, seed), (int(steps),),
                   lambda _: np.empty(0), on_step)
    return params


def further_train_subsets(ctx: TaskContext, recipe: OptimizerSpec, keep: np.ndarray, seed: int,
                          steps: Sequence[int], eval_idx: Sequence[int], chunk_size: int | None = None,
                          on_step: Callable[[], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Further-train from θᶠ one copy per row of `keep` (K, n) bool under `seed`, with `recipe`.

    Returns (reference, outputs): the model outputs on the test points `eval_idx` after each number
    of optimizer steps in `steps` (strictly increasing), reference (len(steps), n_eval, n_outputs)
    for the run on all of D and outputs (len(steps), K, n_eval, n_outputs) for the copies, float64.
    Copies train in chunks of `chunk_size` (None: all at once), each chunk with its own reference
    copy; the numbers do not depend on the chunking.
    """
    keep = np.asarray(keep, dtype=bool)
    steps = [int(s) for s in steps]
    if keep.ndim != 2 or keep.shape[1] != len(ctx.train):
        raise ValueError(f"keep must be (K, {len(ctx.train)}) bool, got shape {keep.shape}")
    if not steps or steps != sorted(set(steps)) or steps[0] < 1:
        raise ValueError(f"steps must be strictly increasing positive integers, got {steps}")
    idx = torch.as_tensor(np.asarray(eval_idx, dtype=np.int64), device=ctx.test.x.device)
    x = ctx.test.x[idx].to(ctx.device)
    size, reference, parts = chunk_size or max(len(keep), 1), None, []
    everything = np.ones((1, keep.shape[1]), dtype=bool)
    for start in range(0, len(keep), size):
        values = _train_chunk(ctx, recipe, np.concatenate([everything, keep[start:start + size]]), seed, steps,
                              x, on_step)
        reference = values[:, 0] if reference is None else reference
        parts.append(values[:, 1:])
    if reference is None:  # no copies asked for: the reference alone
        reference = _train_chunk(ctx, recipe, everything, seed, steps, x, on_step)[:, 0]
    return reference, np.concatenate(parts, axis=1) if parts else np.empty((len(steps), 0, *reference.shape[1:]))
