"""Running the gold standard seed by seed, saving each finished seed atomically.

A run that is killed and started again loads the seeds already on disk and computes only the rest;
since every seed is a pure function of (task, config, seed), it ends with the same numbers as an
uninterrupted run. A folder holding seeds of other settings is refused (CacheMismatchError).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from tdabench.gold.config import GoldConfig
from tdabench.gold.vectorized import paired_differences
from tdabench.task.cache import atomic_save_tensors, atomic_write_json, cache_root, check_settings, load_tensors
from tdabench.task.context import TaskContext


@dataclass(frozen=True)
class GoldStandard:
    """Per-seed paired differences, shape (S, n_horizons, n_test, n_train_evaluated), float64.

    Sign (DESIGN §3): diff > 0 means removing the instance increased the target.
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


def gold_entry(ctx: TaskContext, cfg: GoldConfig, root: Path | None = None) -> Path:
    spec = ctx.spec
    name = f"{spec.name}-v{spec.version}-{spec.spec_hash[7:23]}-{cfg.key(spec.spec_hash)}-{ctx.target_name}"
    return (root or cache_root()) / "gold" / name


def _seed_path(entry: Path, seed: int) -> Path:
    return entry / f"seed_{seed:04d}.safetensors"


def run_gold_standard(ctx: TaskContext, cfg: GoldConfig, cache_dir: Path | None = None,
                      progress: bool = True,
                      after_seed: Callable[[int], None] | None = None) -> GoldStandard:
    """Compute (or resume) every seed of `cfg`; `after_seed(s)` is called once seed s is on disk."""
    entry = gold_entry(ctx, cfg, cache_dir)
    settings = cfg.settings(ctx.spec.spec_hash) | {"target": ctx.target_name}
    if not check_settings(entry, settings):
        atomic_write_json(entry / "settings.json", settings)
    todo = [s for s in range(cfg.seeds) if not _seed_path(entry, s).exists()]
    n_steps = cfg.horizon_steps(len(ctx.train))[-1]
    n_chunks = -(-len(cfg.train_idx) // (cfg.chunk_size or len(cfg.train_idx)))
    bar = tqdm(total=len(todo) * n_steps * n_chunks, desc=f"gold standard ({len(todo)} seeds)",
               unit="step", disable=not progress or not todo, leave=False)
    start = time.perf_counter()
    for seed in todo:
        diff, reference = paired_differences(ctx, cfg, seed, on_step=lambda: bar.update())
        atomic_save_tensors(_seed_path(entry, seed), {"diff": torch.from_numpy(diff),
                                                      "reference": torch.from_numpy(reference)})
        if after_seed is not None:
            after_seed(seed)
    bar.close()
    seconds = time.perf_counter() - start
    loaded = [load_tensors(_seed_path(entry, s)) for s in range(cfg.seeds)]
    return GoldStandard(cfg, np.stack([t["diff"].numpy() for t in loaded]),
                        np.stack([t["reference"].numpy() for t in loaded]), seconds)
