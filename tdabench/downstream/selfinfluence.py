"""Self-influence: each training instance scored against its own training loss.

    self(i) = score of z_i, taken as the "test" point with target ℓ, against z_i itself

in the tdabench sign (docs/method.md): > 0 means removing z_i increases its own loss, i.e. the
model fits z_i because z_i was trained on. A mislabelled instance is fitted against the rest of
the data, so its self-influence tends to be large (Koh & Liang 2017; Pruthi et al. 2020).

Estimators score test points against training points. `self_context` gives them a context whose
test split *is* the training split and whose target is the training loss, so any estimator scores
self-influence through its ordinary `fit(context).score(test_idx, train_idx)`; the diagonal is read
block by block. The gold standard's own self-influence is the paired further-training difference
a_t(i, z_i) = ℓ(z_i; θ_t^{−i}) − ℓ(z_i; θ_t), by the vectorised machinery of truths/further.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from tdabench.estimators.base import Estimator
from tdabench.progress import bar
from tdabench.task.context import TaskContext
from tdabench.task.spec import OptimizerSpec
from tdabench.truths.further import GoldConfig, auto_chunk_size, paired_differences


def self_context(ctx: TaskContext) -> TaskContext:
    """The same final model and training split, with test split = training split and target = the
    training loss. Caches keyed by the spec must not be used with it (its test split is not the task's)."""
    return dataclasses.replace(ctx, data=dataclasses.replace(ctx.data, test=ctx.data.train)).with_target("loss")


def estimator_self_influence(estimator: Estimator, ctx: TaskContext, idx: Sequence[int] | np.ndarray,
                             block: int = 256) -> np.ndarray:
    """self(i) for the training instances `idx`, shape (len(idx),), float64: the estimator is fitted
    on `self_context(ctx)` and scores blocks of `block` instances against themselves (block × block
    matrices, of which the diagonal is kept), so the cost grows with len(idx)·block, not len(idx)²."""
    idx = np.asarray(idx, dtype=np.int64)
    estimator.fit(self_context(ctx))
    out = np.empty(len(idx))
    with bar(len(idx), f"self-influence of {estimator.name or type(estimator).__name__}", "instance") as progress:
        for lo in range(0, len(idx), block):
            part = idx[lo:lo + block]
            out[lo:lo + len(part)] = np.diagonal(estimator.score(part, part))
            progress.update(len(part))
    return out


def gold_self_influence(ctx: TaskContext, recipe: OptimizerSpec, idx: Sequence[int] | np.ndarray,
                        horizons: tuple[int, ...], horizon_unit: str = "epoch", seeds: int = 1,
                        chunk_size: int | None = None) -> np.ndarray:
    """a_t(i, z_i) = mean over seeds of ℓ(z_i; θ_t^{−i}) − ℓ(z_i; θ_t) (removal), shape
    (len(horizons), len(idx)): copy 1 + k removes idx[k] and is evaluated on its own loss. One
    further-training run of 1 + len(idx) copies per seed (in chunks that fit the memory budget)."""
    idx = tuple(int(i) for i in idx)
    sctx = self_context(ctx)
    chunk = chunk_size or auto_chunk_size(sctx, recipe, len(idx))
    cfg = GoldConfig(recipe, idx, idx, tuple(horizons), horizon_unit, seeds, "removal", 1.0, chunk,
                     n_train=len(ctx.train))
    total = np.zeros((len(horizons), len(idx)))
    for seed in range(seeds):
        diff, _ = paired_differences(sctx, cfg, seed)  # (H, n "test" = idx, n evaluated = idx)
        total += np.diagonal(diff, axis1=1, axis2=2)
    return total / seeds
