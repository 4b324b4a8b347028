"""Agreement metrics, summaries, noise ceiling and seed statistics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr

from tdabench.errors import UnknownNameError
from tdabench.scoring.metrics import (METRICS, Summary, agreement, noise_ceiling, reliability, row_agreement,
                              seed_statistics, summarize)

X = np.array([[1.0, 2.0, 3.0]])
Y = np.array([[2.0, 4.0, 7.0]])


def test_cosine_hand_example() -> None:
    # 1·2 + 2·4 + 3·7 = 31; ‖x‖² = 14, ‖y‖² = 69
    assert row_agreement(X, Y, "cosine")[0] == pytest.approx(31 / math.sqrt(14 * 69), abs=1e-14)


def test_pearson_hand_example() -> None:
    # centred x = (-1, 0, 1), centred y = (-7, -1, 8)/3: r = 5 / (√2 · √114 / 3)
    assert row_agreement(X, Y, "pearson")[0] == pytest.approx(15 / math.sqrt(228), abs=1e-14)


def test_spearman_hand_example_with_ties() -> None:
    # ranks (1, 2.5, 2.5, 4) and (1, 3, 2, 4): r = 4.5 / √(4.5 · 5) = √0.9
    x, y = np.array([[1.0, 2.0, 2.0, 3.0]]), np.array([[1.0, 3.0, 2.0, 4.0]])
    assert row_agreement(x, y, "spearman")[0] == pytest.approx(math.sqrt(0.9), abs=1e-14)


def test_against_scipy_on_random_data() -> None:
    rng = np.random.default_rng(0)
    a = np.round(rng.normal(size=(6, 40)) * 2)  # rounded: ties for spearman
    b = a + rng.normal(size=(6, 40)) * 3
    pear, spear = row_agreement(a, b, "pearson"), row_agreement(a, b, "spearman")
    for i in range(6):
        assert pear[i] == pytest.approx(pearsonr(a[i], b[i]).statistic, abs=1e-12)
        assert spear[i] == pytest.approx(spearmanr(a[i], b[i]).statistic, abs=1e-12)
    cos = row_agreement(a, b, "cosine")
    expect = [a[i] @ b[i] / np.linalg.norm(a[i]) / np.linalg.norm(b[i]) for i in range(6)]
    assert np.max(np.abs(cos - expect)) < 1e-12


@pytest.mark.parametrize("metric", METRICS)
def test_sign_flip_gives_minus_one(metric: str) -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=(3, 20))
    assert np.max(np.abs(row_agreement(a, -a, metric) + 1.0)) < 1e-12
    assert np.max(np.abs(row_agreement(a, 3 * a, metric) - 1.0)) < 1e-12


def test_zero_gold_row_is_nan_and_skipped() -> None:
    scores = np.array([[1.0, 2.0, 3.0], [1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    gold = np.array([[2.0, 4.0, 7.0], [0.0, 0.0, 0.0], [1.0, 1.0, 2.0]])
    values = row_agreement(scores, gold, "cosine")
    assert math.isfinite(values[0]) and math.isnan(values[1]) and math.isnan(values[2])
    summary = agreement(scores, gold, "cosine")
    assert summary == Summary(mean=float(values[0]), sem=None, n=1, n_skipped=2)


@pytest.mark.parametrize("metric", ["pearson", "spearman"])
def test_constant_row_is_nan(metric: str) -> None:
    scores = np.array([[0.1, 0.1, 0.1], [1.0, 2.0, 3.0]])
    gold = np.array([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]])
    assert np.isnan(row_agreement(scores, gold, metric)).all()
    assert agreement(scores, gold, metric) == Summary(None, None, 0, 2)


def test_tiny_rows_are_not_mistaken_for_zero() -> None:
    values = row_agreement(X * 1e-200, Y * 1e-300, "cosine")
    assert values[0] == pytest.approx(31 / math.sqrt(14 * 69), abs=1e-14)


def test_summary_sem_against_hand_formula() -> None:
    # finite values 1, 2, 4: mean 7/3, sample variance ((4/3)² + (1/3)² + (5/3)²)/2 = 7/3
    summary = summarize(np.array([1.0, np.nan, 2.0, 4.0]))
    assert summary.mean == pytest.approx(7 / 3, abs=1e-14)
    assert summary.sem == pytest.approx(math.sqrt(7 / 3) / math.sqrt(3), abs=1e-14)
    assert (summary.n, summary.n_skipped) == (3, 1)
    assert isinstance(summary.mean, float) and isinstance(summary.sem, float)


def test_summary_small_counts() -> None:
    assert summarize(np.array([0.5])) == Summary(0.5, None, 1, 0)
    assert summarize(np.array([np.nan, np.inf])) == Summary(None, None, 0, 2)
    assert summarize(np.array([])) == Summary(None, None, 0, 0)


def test_errors() -> None:
    with pytest.raises(UnknownNameError, match="kendall"):
        row_agreement(X, Y, "kendall")
    with pytest.raises(ValueError):
        row_agreement(X, np.ones((1, 4)), "cosine")
    with pytest.raises(ValueError):
        row_agreement(X[0], Y[0], "cosine")


def _halves_with_r_half() -> tuple[np.ndarray, np.ndarray]:
    # centred rows with cosine = Pearson r = 1 / (√2 · √2) = 0.5
    return np.array([[1.0, -1.0, 0.0]]), np.array([[1.0, 0.0, -1.0]])


@pytest.mark.parametrize("metric", ["cosine", "pearson"])
def test_noise_ceiling_spearman_brown_hand_case(metric: str) -> None:
    """S = 2, one split, r = 0.5: reliability 2r/(1+r) = 2/3, ceiling √(2/3)."""
    a, b = _halves_with_r_half()
    rel = reliability(np.stack([a, b]), metric)
    assert (rel.split_half, rel.n_splits) == (pytest.approx(0.5, abs=1e-14), 1)
    assert rel.reliability == pytest.approx(2 / 3, abs=1e-14)
    assert noise_ceiling(np.stack([a, b]), metric) == pytest.approx(np.sqrt(2 / 3), abs=1e-14)


def test_reliability_averages_every_split_when_there_are_few() -> None:
    """S = 3 seeds (a, b, b): splits {a}|{b,b} give r = 0.5 and {b}|{a,b} twice give
    r = cos(b, (a+b)/2) = Pearson of (1,-1/2,-1/2)·… = √3/2; the mean over the 3 splits is used."""
    a, b = _halves_with_r_half()
    r_b_ab = float(np.corrcoef(b[0], (a[0] + b[0]) / 2)[0, 1])
    assert r_b_ab == pytest.approx(np.sqrt(3) / 2, abs=1e-14)
    rel = reliability(np.stack([a, b, b]), "pearson")
    r = (0.5 + 2 * r_b_ab) / 3
    assert rel.n_splits == 3 and rel.split_half == pytest.approx(r, abs=1e-14)
    assert rel.reliability == pytest.approx(2 * r / (1 + r), abs=1e-14)


def test_reliability_counts_each_even_split_once_and_samples_many() -> None:
    rng = np.random.default_rng(0)
    per_seed = rng.normal(size=(4, 3, 5))
    assert reliability(per_seed, "pearson").n_splits == 3  # C(4, 2) / 2
    many = rng.normal(size=(10, 3, 5))
    assert reliability(many, "pearson", max_splits=7).n_splits == 7
    assert reliability(many, "pearson", max_splits=7) == reliability(many, "pearson", max_splits=7)


def test_noise_ceiling_undefined_cases() -> None:
    a, _ = _halves_with_r_half()
    assert noise_ceiling(a[None], "cosine") is None
    assert noise_ceiling(np.zeros((4, 2, 3)), "cosine") is None
    with pytest.raises(UnknownNameError):
        noise_ceiling(np.zeros((4, 2, 3)), "kendall")
    opposite = reliability(np.stack([a, -a]), "pearson")  # r = −1: Spearman–Brown diverges
    assert (opposite.reliability, opposite.ceiling) == (-1.0, 0.0)


def test_noise_ceiling_signal_plus_noise() -> None:
    """Signal variance 1, noise variance 4, S = 8: each half-mean has noise variance 1, so the
    split-half correlation is 1/2, the reliability 2/3 (= correlation of two 8-seed means), and a
    perfect estimator (the signal) correlates √(2/3) with the 8-seed mean: that is the ceiling."""
    rng = np.random.default_rng(2)
    signal = rng.normal(size=(40, 4000))
    per_seed = signal + 2.0 * rng.normal(size=(8, 40, 4000))
    for metric, tol in (("pearson", 0.01), ("spearman", 0.02)):
        assert reliability(per_seed, metric).reliability == pytest.approx(2 / 3, abs=tol)
        ceiling = noise_ceiling(per_seed, metric)
        assert ceiling == pytest.approx(np.sqrt(2 / 3), abs=tol)
        perfect = agreement(signal, per_seed.mean(axis=0), metric).mean
        assert perfect == pytest.approx(ceiling, abs=tol)


def test_seed_statistics_hand_example() -> None:
    per_seed = np.array([[[1.0, 5.0, 0.0, 0.1]], [[2.0, 5.0, -2.0, 0.1]], [[3.0, 5.0, 2.0, 0.1]]])
    stats = seed_statistics(per_seed)
    assert np.max(np.abs(stats["mean"] - [[2.0, 5.0, 0.0, 0.1]])) < 1e-15
    assert np.array_equal(stats["std"], [[1.0, 0.0, 2.0, 0.0]])
    assert np.array_equal(stats["z"], [[2.0, 0.0, 0.0, 0.0]])
    assert all(v.shape == (1, 4) for v in stats.values())


def test_seed_statistics_needs_two_seeds() -> None:
    with pytest.raises(ValueError):
        seed_statistics(np.ones((1, 2, 3)))
