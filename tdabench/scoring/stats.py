"""Uncertainty of a mean: percentile-bootstrap intervals (over test points), Student-t intervals (over
a few seeds) and shared ranks.

All are pure functions of their inputs (the bootstrap draws from a seeded generator), so the
leaderboard built from them is reproducible byte for byte.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.stats import t as student_t

BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_LEVEL = 0.95
BOOTSTRAP_SEED = 0
_MAX_DRAWS_PER_CHUNK = 1 << 22  # resample indices held in memory at once


def bootstrap_ci(values: Sequence[float] | np.ndarray, n_boot: int = BOOTSTRAP_RESAMPLES,
                 level: float = BOOTSTRAP_LEVEL, seed: int = BOOTSTRAP_SEED) -> tuple[float, float] | None:
    """Percentile-bootstrap interval of the mean of `values` (1-D, finite, n ≥ 2).

    Draw `n_boot` resamples of size n with replacement (numpy `default_rng(seed)`), take each
    resample's mean m_b, and return the α/2 and 1 − α/2 quantiles of {m_b} (α = 1 − level;
    `np.quantile`'s linear interpolation between order statistics). The bounds are clipped to
    [min(values), max(values)], where every resample mean lies, so that rounding in the sums
    cannot move them outside (constant values c give exactly (c, c)). None when n < 2.
    Raises ValueError for non-finite values, n_boot < 1 or a level outside (0, 1).
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(v)):
        raise ValueError("bootstrap_ci needs finite values")
    if isinstance(n_boot, bool) or int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    n, n_boot = v.size, int(n_boot)
    if n < 2:
        return None
    rng = np.random.default_rng(seed)
    chunk = max(1, _MAX_DRAWS_PER_CHUNK // n)
    means = np.concatenate([v[rng.integers(0, n, size=(min(chunk, n_boot - start), n))].mean(axis=1)
                            for start in range(0, n_boot, chunk)])
    alpha = 1.0 - level
    lo, hi = np.quantile(means, [alpha / 2.0, 1.0 - alpha / 2.0])
    vmin, vmax = float(v.min()), float(v.max())
    return min(max(float(lo), vmin), vmax), min(max(float(hi), vmin), vmax)


def t_interval(values: Sequence[float] | np.ndarray, level: float = BOOTSTRAP_LEVEL) -> tuple[float, float] | None:
    """Student-t interval of the mean of `values` (1-D, finite, n ≥ 2): m ± t_{1−α/2, n−1} · s / √n,
    with m the mean, s the sample standard deviation (ddof = 1) and α = 1 − level; what a handful of
    paired seed differences supports (a bootstrap over 3 seeds has 10 distinct resamples). None
    when n < 2. Raises ValueError for non-finite values or a level outside (0, 1)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(v)):
        raise ValueError("t_interval needs finite values")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    if v.size < 2:
        return None
    half = float(student_t.ppf(0.5 + level / 2.0, v.size - 1)) * float(v.std(ddof=1)) / np.sqrt(v.size)
    return float(v.mean()) - half, float(v.mean()) + half


def shared_ranks(means: Sequence[float | None], lows: Sequence[float | None],
                 highs: Sequence[float | None]) -> list[int]:
    """Ranks (1 = best, higher mean is better) in which estimators with overlapping intervals tie.

    Estimator i's interval is [lows[i], highs[i]], or the point [means[i], means[i]] when either
    bound is None. Among the estimators with a mean,

        rank_i = 1 + #{j : lows[j] > highs[i]},

    the number of estimators whose whole interval lies above i's, plus one. So two estimators
    whose intervals overlap (or touch) never separate each other, equal means without intervals
    share a rank (competition ranking 1, 2, 2, 4), and the top of the mean order has rank 1.
    Sharing is not transitive, and a wide interval can give a lower mean a better rank than a
    narrow one above it. An estimator without a mean (None) gets 1 + the number with a mean.
    Ranks are returned in the input order. Raises ValueError when the lengths differ.
    """
    if not len(means) == len(lows) == len(highs):
        raise ValueError(f"means, lows and highs must have the same length, got "
                         f"{len(means)}, {len(lows)}, {len(highs)}")
    intervals = [None if m is None else (m, m) if lo is None or hi is None else (lo, hi)
                 for m, lo, hi in zip(means, lows, highs)]
    known = [iv for iv in intervals if iv is not None]
    return [1 + len(known) if iv is None else 1 + sum(other[0] > iv[1] for other in known)
            for iv in intervals]
