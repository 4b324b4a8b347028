"""Retraining ground truths: leave-one-out from scratch and the linear datamodeling score (docs/method.md, secondary ground truths).

**Leave-one-out (LOO).** For an evaluated training instance i and a test point z,

    loo(i, z) = mean over seeds s of [ f(z; θ^{−i,s}) − f(z; θ^{s}) ],

where θ^{s} is trained from the final model's initialisation θ₀ with the final model's recipe
(`spec.training`) on all of D under retraining seed s (data-order seed `spec.training.seed + s`,
so s = 0 reproduces the final model) and θ^{−i,s} the same run without i, in lock-step
(truths/scratch.py). Same sign as the gold standard: > 0 means removing i increases the target.

**LDS.** M subsets S_m of ⌊fraction·n⌉ training instances each (`random_subsets`, drawn with
`subset_seed`) are trained from θ₀ by the same recipe under every seed; the target is
y_m(z) = mean_s f(z; θ^{s}_{S_m}). An estimator's prediction of f(z; θ_{S_m}) − f(z; θ_D) is the sum
of its scores over the *removed* instances, p_m(z) = Σ_{i ∉ S_m} score(z, i), and

    LDS(z) = Spearman over m of (p_m(z), y_m(z)),   reported as mean ± sem over test points.

Spearman is unchanged by subtracting f(z; θ_D), so the full-data run is not needed. LDS needs the
scores of *every* training instance, (n_test, n_train).

Each seed of each ground truth is saved atomically under $TDABENCH_CACHE/retraining/ as soon as it
is done, in an entry keyed by everything that determines its numbers (not the seed count nor the
chunk size); an interrupted run resumes, and an entry holding other settings is refused
(CacheMismatchError), exactly like the gold standard (truths/further/runner.py). The seeds are
units of an executor (tdabench.execution): `LooSeed` and `LdsSeed` pickle, so they can run in
another process.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from tdabench.errors import TdabenchError
from tdabench.execution import Executor
from tdabench.scoring.metrics import METRICS, Summary, reliability, row_agreement, summarize
from tdabench.storage import UnitStore, run_seeds, task_entry
from tdabench.task.context import TaskContext
from tdabench.truths.names import LDS, LOO
from tdabench.truths.scratch import leave_one_out, train_chunked
from tdabench.truths.stacked import n_chunks

RETRAINING_FORMAT = 1  # raise when the training code changes the numbers a config produces
SUBSET_STREAM = 2  # random-number stream of the LDS subsets (0, 1: the data-order streams)


def check_retraining_counts(seeds: int, subsets: int) -> None:
    """Retraining seeds >= 1 and LDS subsets >= 3 (a Spearman over fewer is meaningless)."""
    if seeds < 1:
        raise TdabenchError(f"retraining seeds must be at least 1, got {seeds}")
    if subsets < 3:
        raise TdabenchError(f"LDS needs at least 3 subsets, got {subsets}")


@dataclass(frozen=True)
class RetrainingConfig:
    """LOO columns `train_idx` and test points `test_idx` (indices into the splits), `seeds`
    retraining seeds averaged, `subsets` LDS subsets of `fraction`·n instances drawn with
    `subset_seed`, `chunk_size` copies trained together (None: all; changes no number)."""

    train_idx: tuple[int, ...]
    test_idx: tuple[int, ...]
    seeds: int = 3
    subsets: int = 50
    fraction: float = 0.5
    subset_seed: int = 0
    chunk_size: int | None = None

    def __post_init__(self) -> None:
        check_retraining_counts(self.seeds, self.subsets)
        if not 0.0 < self.fraction < 1.0:
            raise TdabenchError(f"LDS subset fraction must lie in (0, 1), got {self.fraction}")
        if self.chunk_size is not None and self.chunk_size < 1:
            raise TdabenchError(f"chunk_size must be positive, got {self.chunk_size}")

    def settings(self, kind: str, ctx: TaskContext) -> dict[str, Any]:
        """What determines one seed's numbers of ground truth `kind` (LOO or LDS)."""
        own = ({"train_idx": list(self.train_idx)} if kind == LOO else
               {"subsets": self.subsets, "fraction": self.fraction, "subset_seed": self.subset_seed})
        return {"format": RETRAINING_FORMAT, "kind": kind, "spec_hash": ctx.spec.spec_hash,
                "target": ctx.target_name, "test_idx": list(self.test_idx), **own}


def retraining_entry(ctx: TaskContext, settings: dict[str, Any]) -> Path:
    """The cache folder of one ground truth (in the context's cache): task, spec hash, kind,
    settings hash, target."""
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    return task_entry(ctx.cache_dir, "retraining", ctx.spec, settings["kind"], key, ctx.target_name)


@dataclass(frozen=True)
class AsTensors:
    """`compute(seed, tick)`'s arrays as contiguous tensors (what the store saves)."""

    compute: Callable[[int, Callable[[], None]], dict[str, np.ndarray]]

    def __call__(self, seed: int, tick: Callable[[], None]) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in self.compute(seed, tick).items()}


def _run_seeds(ctx: TaskContext, settings: dict[str, Any], seeds: int, epochs_per_seed: int,
               compute: Callable[[int, Callable[[], None]], dict[str, np.ndarray]],
               progress: bool, after_seed: Callable[[int], None] | None,
               executor: Executor | None) -> tuple[list[dict], float]:
    """Compute the seeds missing on disk (`compute(seed, on_epoch)`) on `executor`, save each
    atomically, load all."""
    store = UnitStore(retraining_entry(ctx, settings), settings)
    done, seconds = run_seeds(store, seeds, AsTensors(compute), what=f"retraining {settings['kind']}",
                              ticks_per_seed=epochs_per_seed, tick_unit="epoch", progress=progress,
                              after_seed=after_seed, executor=executor)
    return [{k: v.numpy() for k, v in tensors.items()} for tensors in done], seconds


@dataclass(frozen=True)
class LeaveOneOut:
    """Per-seed LOO differences (S, n_test, |I|) and reference targets (S, n_test), float64."""

    config: RetrainingConfig
    per_seed: np.ndarray
    reference: np.ndarray
    seconds: float  # compute time of the seeds computed in this call (0 if all were cached)

    def seeds(self, centered: bool = False) -> np.ndarray:
        """Per-seed differences (S, n_test, |I|); centered: each row minus its mean over I."""
        return self.per_seed - self.per_seed.mean(axis=2, keepdims=True) if centered else self.per_seed

    def mean(self, centered: bool = False) -> np.ndarray:
        """loo(i, z) averaged over seeds, shape (n_test, |I|), optionally centered per test point."""
        return self.seeds(centered).mean(axis=0)

    def noise_ceiling(self, centered: bool = False) -> list[dict[str, Any]]:
        """Split-half noise ceiling per metric (metrics.reliability); value None when S < 2."""
        out = []
        for metric in METRICS:
            rel = reliability(self.seeds(centered), metric)
            out.append({"metric": metric, "value": None if rel is None else rel.ceiling,
                        "reliability": None if rel is None else rel.reliability})
        return out

    def summary(self, centered: bool = False) -> dict[str, Any]:
        """JSON-safe settings, noise ceiling and cost (results.extra["retraining"]["loo"])."""
        c = self.config
        return {"seeds": c.seeds, "n_train_evaluated": len(c.train_idx), "n_test": len(c.test_idx),
                "centered": centered, "noise_ceiling": self.noise_ceiling(centered),
                "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class LooSeed:
    """One seed of leave-one-out retraining: {"diff", "reference"} arrays."""

    ctx: TaskContext
    cfg: RetrainingConfig

    def __call__(self, seed: int, on_epoch: Callable[[], None]) -> dict[str, np.ndarray]:
        c = self.cfg
        diff, reference = leave_one_out(self.ctx, c.train_idx, c.test_idx, seed, c.chunk_size, on_epoch)
        return {"diff": diff, "reference": reference}


def run_leave_one_out(ctx: TaskContext, cfg: RetrainingConfig, progress: bool = True,
                      after_seed: Callable[[int], None] | None = None,
                      executor: Executor | None = None) -> LeaveOneOut:
    """Compute (or resume) every seed of leave-one-out retraining of `cfg.train_idx`, the missing
    seeds on `executor` (None: in this process)."""
    epochs = ctx.spec.training.epochs * n_chunks(len(cfg.train_idx) + 1, cfg.chunk_size)
    loaded, seconds = _run_seeds(ctx, cfg.settings(LOO, ctx), cfg.seeds, epochs, LooSeed(ctx, cfg), progress,
                                 after_seed, executor)
    return LeaveOneOut(cfg, np.stack([d["diff"] for d in loaded]),
                       np.stack([d["reference"] for d in loaded]), seconds)


def random_subsets(n: int, subsets: int, fraction: float, seed: int) -> np.ndarray:
    """(subsets, n) bool: row m keeps round(fraction·n) instances drawn with rng([2, seed, m])."""
    size = int(round(fraction * n))
    keep = np.zeros((subsets, n), dtype=bool)
    for m in range(subsets):
        keep[m, np.random.default_rng([SUBSET_STREAM, seed, m]).choice(n, size=size, replace=False)] = True
    return keep


@dataclass(frozen=True)
class SubsetRetraining:
    """The LDS ground truth: subsets `keep` (M, n) and per-seed targets f(z; θ_{S_m}) (S, M, n_test)."""

    config: RetrainingConfig
    keep: np.ndarray
    per_seed: np.ndarray
    seconds: float

    def targets(self) -> np.ndarray:
        """y_m(z_j) averaged over seeds, shape (n_test, M)."""
        return self.per_seed.mean(axis=0).T

    def summary(self, centered: bool = False) -> dict[str, Any]:
        """JSON-safe settings and cost (results.extra["retraining"]["lds"]); `centered` is ignored."""
        c = self.config
        return {"subsets": c.subsets, "fraction": c.fraction, "subset_seed": c.subset_seed,
                "seeds": c.seeds, "n_test": len(c.test_idx), "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class LdsSeed:
    """One seed of the LDS subset trainings of `keep` (M, n): {"targets"} (M, n_test)."""

    ctx: TaskContext
    cfg: RetrainingConfig
    keep: np.ndarray

    def __call__(self, seed: int, on_epoch: Callable[[], None]) -> dict[str, np.ndarray]:
        c = self.cfg
        return {"targets": train_chunked(self.ctx, self.keep, seed, c.test_idx, c.chunk_size, on_epoch)}


def run_subset_retraining(ctx: TaskContext, cfg: RetrainingConfig, progress: bool = True,
                          after_seed: Callable[[int], None] | None = None,
                          executor: Executor | None = None) -> SubsetRetraining:
    """Compute (or resume) every seed of the LDS subset trainings, the missing seeds on `executor`
    (None: in this process)."""
    keep = random_subsets(len(ctx.train), cfg.subsets, cfg.fraction, cfg.subset_seed)
    epochs = ctx.spec.training.epochs * n_chunks(cfg.subsets, cfg.chunk_size)
    loaded, seconds = _run_seeds(ctx, cfg.settings(LDS, ctx), cfg.seeds, epochs, LdsSeed(ctx, cfg, keep), progress,
                                 after_seed, executor)
    return SubsetRetraining(cfg, keep, np.stack([d["targets"] for d in loaded]), seconds)


def lds_rows(scores: np.ndarray, keep: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """LDS per test point, (n_test,): Spearman over subsets m of p_m(z) = Σ_{i∉S_m} scores[z, i]
    against targets[z, m]. scores (n_test, n_train), keep (M, n_train) bool, targets (n_test, M);
    NaN where a row is constant (metrics.row_agreement)."""
    predictions = np.asarray(scores, dtype=np.float64) @ (~np.asarray(keep, dtype=bool)).T.astype(np.float64)
    return row_agreement(predictions, targets, "spearman")


def lds(scores: np.ndarray, keep: np.ndarray, targets: np.ndarray) -> Summary:
    """Mean ± sem over test points of `lds_rows`."""
    return summarize(lds_rows(scores, keep, targets))
