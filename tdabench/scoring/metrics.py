"""Agreement between score matrices and the gold standard, its noise ceiling and seed statistics.

Conventions (docs/method.md: sign and shape, metrics): score and gold matrices have shape (n_test, n_train); row = test
point. Agreement is computed per row (per test point) over the training instances, then summarised
by the mean over test points and its standard error. A row whose metric is undefined (a zero gold
row of a saturated test point, a constant row) gives NaN in `row_agreement` and is counted as
skipped by `summarize`; a NaN never reaches a Summary (docs/method.md, saturated test points).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from tdabench.errors import UnknownNameError
from tdabench.scoring.stats import BOOTSTRAP_LEVEL, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, bootstrap_ci

METRICS: tuple[str, ...] = ("cosine", "pearson", "spearman")


@dataclass(frozen=True)
class Summary:
    """Mean and standard error (std with ddof=1 / √n) over the `n` rows where the metric is defined.

    `n_skipped` counts undefined rows. mean = sem = None when n == 0; sem = None when n == 1.
    [ci_low, ci_high]: percentile-bootstrap interval of the mean over those rows
    (`stats.bootstrap_ci`); None when n < 2.
    """

    mean: float | None
    sem: float | None
    n: int
    n_skipped: int
    ci_low: float | None = None
    ci_high: float | None = None


def _check_pair(scores: np.ndarray, gold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both as float64 2-D arrays of the same shape, else ValueError."""
    a, b = np.asarray(scores, dtype=np.float64), np.asarray(gold, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"scores {a.shape} and gold {b.shape} must both be (n_test, n_train)")
    return a, b


def _cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """cos(aᵢ, bᵢ) = aᵢ·bᵢ / (‖aᵢ‖‖bᵢ‖) per row; NaN where either row is zero or not finite.

    Each row is first divided by its largest absolute entry so tiny rows (e.g. 1e-200) neither
    underflow nor get mistaken for zero rows; the cosine is scale-invariant.
    """
    out = np.full(a.shape[0], np.nan)
    scale_a, scale_b = np.abs(a).max(axis=1, initial=0.0), np.abs(b).max(axis=1, initial=0.0)
    ok = (scale_a > 0) & (scale_b > 0) & np.isfinite(scale_a) & np.isfinite(scale_b)
    x, y = a[ok] / scale_a[ok, None], b[ok] / scale_b[ok, None]
    cos = np.einsum("ij,ij->i", x, y) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))
    out[ok] = np.clip(cos, -1.0, 1.0)
    return out


def _pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r per row = cosine of the mean-centred rows; NaN where a row is constant."""
    constant = (np.ptp(a, axis=1) == 0) | (np.ptp(b, axis=1) == 0) if a.shape[1] else True
    out = _cosine_rows(a - a.mean(axis=1, keepdims=True), b - b.mean(axis=1, keepdims=True))
    return np.where(constant, np.nan, out)


def _spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman ρ per row = Pearson r of the ranks (ties get their average rank)."""
    if a.shape[1] == 0:
        return np.full(a.shape[0], np.nan)
    bad = ~(np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1))
    out = _pearson_rows(rankdata(a, axis=1), rankdata(b, axis=1))
    return np.where(bad, np.nan, out)


_ROW_METRICS = {"cosine": _cosine_rows, "pearson": _pearson_rows, "spearman": _spearman_rows}


def check_metric(metric: str) -> None:
    """UnknownNameError (listing METRICS) unless `metric` is one of them."""
    if metric not in METRICS:
        raise UnknownNameError("metric", metric, list(METRICS))


def row_agreement(scores: np.ndarray, gold: np.ndarray, metric: str) -> np.ndarray:
    """Per-test-point agreement, shape (n_test,), float64, NaN where the metric is undefined.

    cosine: zero (or non-finite) score or gold row → NaN; pearson/spearman: constant row → NaN.
    Raises UnknownNameError for an unknown metric, ValueError when the shapes differ.
    """
    check_metric(metric)
    a, b = _check_pair(scores, gold)
    return _ROW_METRICS[metric](a, b)


def summarize(values: np.ndarray, n_boot: int = BOOTSTRAP_RESAMPLES, level: float = BOOTSTRAP_LEVEL,
              seed: int = BOOTSTRAP_SEED) -> Summary:
    """Summary over the finite entries of `values`; the non-finite ones count as skipped.

    The interval is `stats.bootstrap_ci(finite entries, n_boot, level, seed)` (deterministic).
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    finite = v[np.isfinite(v)]
    n = int(finite.size)
    mean = float(finite.mean()) if n else None
    sem = float(finite.std(ddof=1) / np.sqrt(n)) if n > 1 else None
    ci = bootstrap_ci(finite, n_boot, level, seed)
    return Summary(mean=mean, sem=sem, n=n, n_skipped=int(v.size - n),
                   ci_low=None if ci is None else ci[0], ci_high=None if ci is None else ci[1])


def _finite_mean(values: np.ndarray) -> float | None:
    """`summarize(values).mean` without the bootstrap: the mean of the finite entries, or None."""
    v = np.asarray(values, dtype=np.float64).ravel()
    finite = v[np.isfinite(v)]
    return float(finite.mean()) if finite.size else None


def agreement(scores: np.ndarray, gold: np.ndarray, metric: str) -> Summary:
    """Mean ± standard error over test points of `row_agreement(scores, gold, metric)`."""
    return summarize(row_agreement(scores, gold, metric))


def _check_per_seed(per_seed: np.ndarray) -> np.ndarray:
    a = np.asarray(per_seed, dtype=np.float64)
    if a.ndim != 3:
        raise ValueError(f"per_seed must have shape (S, n_test, n_train), got {a.shape}")
    return a


@dataclass(frozen=True)
class Reliability:
    """How reproducible the seed-averaged gold standard is, at one horizon and metric.

    `split_half`: mean over half-splits of the seeds of the row-mean agreement between the two
    half-averages. `reliability`: its Spearman–Brown correction 2r/(1+r), an estimate of the
    agreement between two independent S-seed gold standards. `ceiling`: √max(reliability, 0), the
    agreement a perfect, noise-free estimator is expected to reach with this S-seed gold standard
    (gold = signal + noise, cos(signal, gold) = √reliability). Estimators above it are fitting noise
    or the estimate itself is noisy (few seeds).
    """

    split_half: float
    reliability: float
    ceiling: float
    n_splits: int


def _half_splits(n_seeds: int, max_splits: int, seed: int) -> list[np.ndarray]:
    """Boolean masks of the first half (⌊S/2⌋ seeds): every split when there are at most
    `max_splits` of them, else `max_splits` distinct random ones drawn with `seed`."""
    half = n_seeds // 2
    total = math.comb(n_seeds, half) // (1 if n_seeds % 2 else 2)
    if total <= max_splits:
        combos = itertools.combinations(range(n_seeds), half)
        # with S even, a split and its complement are the same split: keep the one holding seed 0
        chosen = [np.array(c) for c in combos if n_seeds % 2 or c[0] == 0]
    else:
        rng, seen, chosen = np.random.default_rng(seed), set(), []
        while len(chosen) < max_splits:
            pick = tuple(sorted(rng.choice(n_seeds, size=half, replace=False).tolist()))
            if pick not in seen:
                seen.add(pick)
                chosen.append(np.array(pick))
    masks = []
    for first in chosen:
        mask = np.zeros(n_seeds, dtype=bool)
        mask[first] = True
        masks.append(mask)
    return masks


def reliability(per_seed: np.ndarray, metric: str, max_splits: int = 20, seed: int = 0) -> Reliability | None:
    """Split-half reliability of the seed-averaged gold standard, Spearman–Brown corrected.

    per_seed: (S, n_test, n_train), the paired differences of each seed at one horizon. For each
    half-split (⌊S/2⌋ seeds against the other ⌈S/2⌉; all splits, or `max_splits` random ones) r_k is
    the mean over defined rows of `row_agreement(mean of half 1, mean of half 2, metric)`;
    r = mean_k r_k, reliability = max(2r/(1+r), −1) (for cosine the same correction, as a
    heuristic). None when S < 2 or no row is defined in any split.
    """
    a = _check_per_seed(per_seed)
    check_metric(metric)
    if a.shape[0] < 2:
        return None
    values = []
    for mask in _half_splits(a.shape[0], max_splits, seed):
        r = _finite_mean(row_agreement(a[mask].mean(axis=0), a[~mask].mean(axis=0), metric))
        if r is not None:
            values.append(r)
    if not values:
        return None
    r = float(np.mean(values))
    full = max(2.0 * r / max(1.0 + r, 1e-300), -1.0)  # bounded below: r → −1 would diverge
    return Reliability(r, full, math.sqrt(max(full, 0.0)), len(values))


def noise_ceiling(per_seed: np.ndarray, metric: str, max_splits: int = 20) -> float | None:
    """`reliability(...).ceiling`: the expected agreement of a perfect estimator (None if undefined)."""
    rel = reliability(per_seed, metric, max_splits)
    return None if rel is None else rel.ceiling


def seed_statistics(per_seed: np.ndarray) -> dict[str, np.ndarray]:
    """Per train–test pair across seeds: "mean", "std" (ddof=1), "z" = mean/std; each (n_test, n_train).

    A pair with identical values in every seed has std exactly 0 and z = 0 (never ±inf or NaN).
    Needs S ≥ 2 seeds (ValueError otherwise).
    """
    a = _check_per_seed(per_seed)
    if a.shape[0] < 2:
        raise ValueError(f"seed statistics need at least 2 seeds, got {a.shape[0]}")
    mean = a.mean(axis=0)
    std = np.where(np.ptp(a, axis=0) == 0, 0.0, a.std(axis=0, ddof=1))
    z = np.divide(mean, std, out=np.zeros_like(mean), where=std > 0)
    return {"mean": mean, "std": std, "z": z}
