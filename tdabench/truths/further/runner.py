"""Running the gold standard seed by seed, saving each finished seed atomically (every mode:
removal and downweight by vectorized.py, derivative by derivative.py).

A run that is killed and started again loads the seeds already on disk and computes only the rest;
since every seed is a pure function of (task, config, seed), it ends with the same numbers as an
uninterrupted run, wherever its seeds ran (an executor of tdabench.execution; `GoldSeed` is the
unit shipped to it). A folder holding seeds of other settings is refused (CacheMismatchError).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from tdabench.execution import Executor
from tdabench.storage import UnitStore, run_seeds, task_entry
from tdabench.task.context import TaskContext
from tdabench.truths.further.config import DERIVATIVE, GoldConfig
from tdabench.truths.further.derivative import derivative_plan, derivatives, n_sweeps
from tdabench.truths.further.vectorized import paired_differences
from tdabench.truths.stacked import n_chunks


@dataclass(frozen=True)
class GoldStandard:
    """Per-seed paired differences, shape (S, n_horizons, n_test, n_train_evaluated), float64
    (mode "derivative": the derivatives d = −∂f/∂w_i of docs/method.md, derivative mode in their place).

    Sign (docs/method.md, sign and shape): diff > 0 means removing the instance increased the target.
    """

    config: GoldConfig
    per_seed: np.ndarray
    reference: np.ndarray  # (S, n_horizons, n_test): the reference run's target
    seconds: float  # compute time of the seeds computed in this call (0 if all were cached)

    def mean(self, horizon_index: int, centered: bool = False) -> np.ndarray:
        """a_t(i, z) averaged over seeds, shape (n_test, n_train_evaluated); optionally centered:
        for each test point, the mean over evaluated instances is subtracted."""
        values = self.per_seed[:, horizon_index].mean(axis=0)
        return values - values.mean(axis=1, keepdims=True) if centered else values

    def seeds_at(self, horizon_index: int, centered: bool = False) -> np.ndarray:
        """Per-seed values at one horizon, (S, n_test, n_train_evaluated), optionally centered."""
        values = self.per_seed[:, horizon_index]
        return values - values.mean(axis=2, keepdims=True) if centered else values


def cast_dtype(ctx: TaskContext) -> str | None:
    """The context's dtype when it is not the spec's (a context cast by `context_as`), else None."""
    name = str(ctx.dtype).removeprefix("torch.")
    return None if name == ctx.spec.dtype else name


def gold_entry(ctx: TaskContext, cfg: GoldConfig) -> Path:
    """The cache folder of one gold standard (in the context's cache); a context cast to another
    dtype than the spec's has its own (GoldConfig.settings)."""
    return task_entry(ctx.cache_dir, "gold", ctx.spec, cfg.key(ctx.spec.spec_hash, cast_dtype(ctx)), ctx.target_name)


@dataclass(frozen=True)
class GoldSeed:
    """One seed of the gold standard of `cfg` on `ctx`: {"diff", "reference"} tensors (the unit of
    `run_gold_standard`; it pickles with cloudpickle, so it can run in another process)."""

    ctx: TaskContext
    cfg: GoldConfig

    def __call__(self, seed: int, tick: Callable[[], None]) -> dict[str, torch.Tensor]:
        seed_fn = derivatives if self.cfg.mode == DERIVATIVE else paired_differences
        diff, reference = seed_fn(self.ctx, self.cfg, seed, on_step=tick)
        return {"diff": torch.from_numpy(diff), "reference": torch.from_numpy(reference)}


def run_gold_standard(ctx: TaskContext, cfg: GoldConfig, progress: bool = True,
                      after_seed: Callable[[int], None] | None = None,
                      executor: Executor | None = None) -> GoldStandard:
    """Compute (or resume) every seed of `cfg` in the context's cache (`ctx.cache_dir`, default
    `cache_root()`), the missing seeds on `executor` (None: in this process); `after_seed(s)` is
    called once seed s is on disk."""
    settings = cfg.settings(ctx.spec.spec_hash, cast_dtype(ctx)) | {"target": ctx.target_name}
    store = UnitStore(gold_entry(ctx, cfg), settings, keys=("diff", "reference"))
    if cfg.mode == DERIVATIVE:  # one forward run, then one reverse sweep per chunk of test points
        ticks = cfg.steps[-1] * (1 + n_sweeps(cfg, derivative_plan(ctx, cfg)[0]))
    else:
        ticks = cfg.steps[-1] * n_chunks(len(cfg.train_idx), cfg.chunk_size)
    done, seconds = run_seeds(store, cfg.seeds, GoldSeed(ctx, cfg), what="gold standard", ticks_per_seed=ticks,
                              tick_unit="step", progress=progress, after_seed=after_seed, executor=executor)
    return GoldStandard(cfg, np.stack([t["diff"].numpy() for t in done]),
                        np.stack([t["reference"].numpy() for t in done]), seconds)
