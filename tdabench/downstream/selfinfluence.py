"""Self-influence: each training instance scored against its own training loss.

    self(i) = score of z_i, taken as the "test" point with target ℓ, against z_i itself

in the tdabench sign (docs/method.md): > 0 means removing z_i increases its own loss, i.e. the
model fits z_i because z_i was trained on. A mislabelled instance is fitted against the rest of
the data, so its self-influence tends to be large (Koh & Liang 2017; Pruthi et al. 2020).

Estimators score test points against training points. `self_context` gives them a context whose
test split *is* the training split and whose target is the training loss, so any estimator scores
self-influence through its ordinary `fit(context).score(test_idx, train_idx)`; the diagonal is read
block by block. The gold standard's own self-influence is the paired further-training difference
a_t(i, z_i) = ℓ(z_i; θ_t^{−i}) − ℓ(z_i; θ_t), by the vectorised machinery of truths/further, each
seed kept in the resumable store of work units (storage.UnitStore) like every gold standard.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from tdabench.estimators.base import Estimator
from tdabench.progress import bar
from tdabench.storage import UnitStore, run_seeds, task_entry
from tdabench.task.context import TaskContext
from tdabench.task.spec import OptimizerSpec
from tdabench.truths.further import GoldConfig, auto_chunk_size, paired_differences
from tdabench.truths.stacked import n_chunks

SELF_TARGET = "self-influence"  # the target name of the gold self-influence's cache entry


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


def gold_entry_and_settings(ctx: TaskContext, cfg: GoldConfig) -> tuple[Path, dict]:
    """The cache folder of a gold self-influence and the settings it is kept under: the gold standard's
    (GoldConfig.settings) with target "self-influence", in its own folder (its "test" indices count
    training instances, so it never shares a folder with a gold standard of the test split)."""
    settings = cfg.settings(ctx.spec.spec_hash) | {"target": SELF_TARGET}
    return task_entry(ctx.cache_dir, "gold", ctx.spec, cfg.key(ctx.spec.spec_hash), SELF_TARGET), settings


@dataclass(frozen=True)
class SelfSeed:
    """One seed of the gold self-influence: {"diff": (n_horizons, len(idx))}, the diagonal of the paired
    differences of `cfg` on the self context (the unit of the resumable store)."""

    sctx: TaskContext
    cfg: GoldConfig

    def __call__(self, seed: int, tick: Callable[[], None]) -> dict[str, torch.Tensor]:
        diff, _ = paired_differences(self.sctx, self.cfg, seed, on_step=tick)  # (H, n "test" = idx, n = idx)
        return {"diff": torch.from_numpy(np.ascontiguousarray(np.diagonal(diff, axis1=1, axis2=2)))}


def gold_self_influence(ctx: TaskContext, recipe: OptimizerSpec, idx: Sequence[int] | np.ndarray,
                        horizons: tuple[int, ...], horizon_unit: str = "epoch", seeds: int = 1,
                        chunk_size: int | None = None, progress: bool = True) -> np.ndarray:
    """a_t(i, z_i) = mean over seeds of ℓ(z_i; θ_t^{−i}) − ℓ(z_i; θ_t) (removal), shape
    (len(horizons), len(idx)): copy 1 + k removes idx[k] and is evaluated on its own loss. One
    further-training run of 1 + len(idx) copies per seed (in chunks that fit the memory budget); each
    seed is kept in the resumable store of the context's cache (`gold_entry_and_settings`), so a
    second call with the same settings trains nothing and asking for more seeds trains only those."""
    idx = tuple(int(i) for i in idx)
    sctx = self_context(ctx)
    chunk = chunk_size or auto_chunk_size(sctx, recipe, len(idx))
    cfg = GoldConfig(recipe, idx, idx, tuple(horizons), horizon_unit, seeds, "removal", 1.0, chunk,
                     n_train=len(ctx.train))
    entry, settings = gold_entry_and_settings(ctx, cfg)
    done, _ = run_seeds(UnitStore(entry, settings, keys=("diff",)), seeds, SelfSeed(sctx, cfg),
                        what="gold self-influence", ticks_per_seed=cfg.steps[-1] * n_chunks(len(idx), chunk),
                        tick_unit="step", progress=progress)
    return np.mean([t["diff"].numpy() for t in done], axis=0)
