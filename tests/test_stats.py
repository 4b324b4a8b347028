"""Bootstrap intervals and shared ranks against hand-computed and exactly enumerated cases."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from tdabench.scoring.metrics import Summary, summarize
from tdabench.scoring.stats import bootstrap_ci, shared_ranks


def exact_quantile(values: list[int], q: float) -> Fraction:
    """Smallest resample mean m with P(mean ≤ m) ≥ q over all n^n equally likely resamples."""
    n = len(values)
    means = sorted(Fraction(sum(values[i] for i in idx), n)
                   for idx in itertools.product(range(n), repeat=n))
    return means[math.ceil(q * len(means)) - 1]


def test_constant_values_give_a_point_interval() -> None:
    # 0.1 + 0.1 + 0.1 = 0.30000000000000004 in floating point: clipping keeps the bound at 0.1
    assert bootstrap_ci([0.1, 0.1, 0.1]) == (0.1, 0.1)
    assert bootstrap_ci(np.full(50, -0.37), n_boot=10, level=0.5, seed=3) == (-0.37, -0.37)


def test_two_values() -> None:
    # resample means: 0.2 (p = 1/4), 0.5 (1/2), 0.8 (1/4); the 2.5 % and 97.5 % quantiles are the extremes
    assert bootstrap_ci([0.2, 0.8]) == (0.2, 0.8)
    # 30 % and 70 % quantiles fall inside the middle atom (cumulative 1/4 < 0.3 and 0.7 < 3/4)
    lo, hi = bootstrap_ci([0.2, 0.8], n_boot=4000, level=0.4)
    assert lo == pytest.approx(0.5, abs=1e-15) and hi == pytest.approx(0.5, abs=1e-15)


def test_hand_enumerated_three_values() -> None:
    # values 0, 1, 2: resample sums 0..6 occur 1, 3, 6, 7, 6, 3, 1 times in 27, so the cumulative
    # probabilities are 1/27, 4/27, 10/27, 17/27, 23/27, 26/27, 1.
    # 80 %: q = 0.1 lies between 1/27 and 4/27 → sum 1; q = 0.9 between 23/27 and 26/27 → sum 5.
    assert exact_quantile([0, 1, 2], 0.1) == Fraction(1, 3)
    assert exact_quantile([0, 1, 2], 0.9) == Fraction(5, 3)
    lo, hi = bootstrap_ci([0.0, 1.0, 2.0], n_boot=1000, level=0.8)
    assert lo == pytest.approx(1 / 3, abs=1e-12) and hi == pytest.approx(5 / 3, abs=1e-12)
    # 50 %: q = 0.25 between 4/27 and 10/27 → sum 2; q = 0.75 between 17/27 and 23/27 → sum 4
    lo, hi = bootstrap_ci([0.0, 1.0, 2.0], n_boot=1000, level=0.5)
    assert lo == pytest.approx(2 / 3, abs=1e-12) and hi == pytest.approx(4 / 3, abs=1e-12)


@pytest.mark.parametrize("values, level, expected", [([0, 0, 1, 5], 0.6, (0.5, 2.5)),
                                                     ([1, 2, 4, 8], 0.8, (2.0, 5.5))])
def test_against_the_exact_bootstrap_distribution(values: list[int], level: float,
                                                  expected: tuple[float, float]) -> None:
    # 4^4 = 256 resamples; these levels put both quantiles well inside an atom of the exact law
    # (e.g. [1, 2, 4, 8]: P(mean ≤ 1.75) = 19/256 < 0.1 < P(mean ≤ 2) = 32/256, and
    #  P(mean ≤ 5.25) = 225/256 < 0.9 < P(mean ≤ 5.5) = 237/256)
    q = (1 - level) / 2
    exact = (float(exact_quantile(values, q)), float(exact_quantile(values, 1 - q)))
    assert exact == expected
    got = bootstrap_ci([float(v) for v in values], n_boot=20000, level=level, seed=1)
    assert got[0] == pytest.approx(exact[0], abs=1e-12)
    assert got[1] == pytest.approx(exact[1], abs=1e-12)


def test_coverage_and_width_on_normal_data() -> None:
    rng = np.random.default_rng(42)
    covered = sum(lo <= 0.3 <= hi for lo, hi in
                  (bootstrap_ci(rng.normal(0.3, 1.0, size=40), seed=k) for k in range(200)))
    assert 0.88 <= covered / 200 <= 0.99
    # for large n the percentile interval approaches mean ± 1.96 standard errors
    x = rng.normal(0.0, 1.0, size=400)
    lo, hi = bootstrap_ci(x, n_boot=4000)
    assert lo < x.mean() < hi
    assert 0.9 <= (hi - lo) / (2 * 1.96 * x.std(ddof=1) / 20) <= 1.1


def test_deterministic_and_seeded() -> None:
    x = np.random.default_rng(0).normal(size=30)
    assert bootstrap_ci(x) == bootstrap_ci(x.copy())
    assert bootstrap_ci(x, seed=1) != bootstrap_ci(x, seed=2)


def test_small_and_invalid_inputs() -> None:
    assert bootstrap_ci([]) is None and bootstrap_ci([0.5]) is None
    with pytest.raises(ValueError, match="finite"):
        bootstrap_ci([0.1, math.nan])
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_ci([0.1, 0.2], n_boot=0)
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci([0.1, 0.2], level=1.0)


def test_summarize_adds_the_interval_of_the_finite_values() -> None:
    s = summarize(np.array([0.2, np.nan, 0.8]))
    assert (s.mean, s.n, s.n_skipped, s.ci_low, s.ci_high) == (0.5, 2, 1, 0.2, 0.8)
    assert summarize(np.array([0.0, 1.0, 2.0]), level=0.8) == Summary(
        1.0, 1 / math.sqrt(3), 3, 0, *bootstrap_ci([0.0, 1.0, 2.0], level=0.8))
    assert summarize(np.array([0.4, np.inf])) == Summary(0.4, None, 1, 1, None, None)


def test_shared_ranks_overlap_separates_only_disjoint_intervals() -> None:
    # high_1 = 0.86 > low_0 = 0.85: 0 and 1 overlap; 2's interval [0.4, 0.6] lies below both
    assert shared_ranks([0.9, 0.8, 0.5], [0.85, 0.75, 0.4], [0.95, 0.86, 0.6]) == [1, 1, 3]
    # touching intervals share
    assert shared_ranks([0.55, 0.65], [0.5, 0.6], [0.6, 0.7]) == [1, 1]


def test_shared_ranks_is_not_transitive() -> None:
    # a overlaps b, b overlaps c, but c lies below a
    assert shared_ranks([0.9, 0.7, 0.55], [0.8, 0.6, 0.5], [1.0, 0.85, 0.65]) == [1, 1, 2]
    # a wide interval is beaten by nobody, a narrow one above it is beaten by c
    assert shared_ranks([0.5, 0.4, 0.6], [0.49, 0.0, 0.55], [0.51, 0.9, 0.65]) == [2, 1, 1]


def test_shared_ranks_ties_and_missing_values() -> None:
    none = [None] * 4
    assert shared_ranks([0.5, 0.7, 0.7, 0.1], none, none) == [3, 1, 1, 4]  # competition ranking
    assert shared_ranks([0.5, None, 0.7], [0.4, None, None], [0.6, None, None]) == [2, 3, 1]
    assert shared_ranks([0.5, 0.3], [0.45, None], [0.55, 0.9]) == [1, 2]  # one bound missing: a point
    assert shared_ranks([], [], []) == []
    with pytest.raises(ValueError, match="same length"):
        shared_ranks([0.5], [0.4, 0.3], [0.6])
