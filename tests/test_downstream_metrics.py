"""Downstream metrics on hand-built cases with known answers (tdabench/downstream/metrics.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from tdabench.downstream.metrics import auc, precision_at_k, row_spearman, top_k, top_k_cardinality


def _auc_by_definition(scores, positives):
    pos = [s for s, p in zip(scores, positives) if p]
    neg = [s for s, p in zip(scores, positives) if not p]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_auc_of_a_hand_made_ranking_with_ties_equals_its_definition_and_sklearn():
    scores = np.array([0.9, 0.8, 0.8, 0.5, 0.4, 0.4, 0.4, 0.1, 0.0, 0.8])
    positives = np.array([1, 0, 1, 1, 0, 1, 0, 0, 0, 0], dtype=bool)
    result = auc(scores, positives)
    assert result.value == pytest.approx(_auc_by_definition(scores, positives), abs=1e-15)
    assert result.value == pytest.approx(roc_auc_score(positives, scores), abs=1e-15)
    assert result.low < result.value < result.high and (result.n_pos, result.n_neg) == (4, 6)


def test_auc_extremes_and_reversal():
    positives = np.array([1, 1, 0, 0, 0], dtype=bool)
    assert auc(np.array([5.0, 4, 3, 2, 1]), positives).value == 1.0
    assert auc(np.array([1.0, 2, 3, 4, 5]), positives).value == 0.0
    assert auc(np.ones(5), positives).value == 0.5
    with pytest.raises(ValueError, match="positive and one negative"):
        auc(np.ones(3), np.zeros(3, dtype=bool))


def test_a_random_detector_has_auc_near_one_half_within_its_interval():
    rng = np.random.default_rng(0)
    positives = np.zeros(400, dtype=bool)
    positives[rng.choice(400, 40, replace=False)] = True
    covered = 0
    for seed in range(40):
        result = auc(np.random.default_rng(seed + 100).normal(size=400), positives)
        covered += result.low <= 0.5 <= result.high
        assert result.high - result.low < 0.25
    assert covered >= 34  # a 95 % interval covers 0.5 in ~38 of 40 draws; 34 is far in the tail


def test_the_auc_interval_matches_the_hanley_mcneil_error_without_ties():
    rng = np.random.default_rng(1)
    positives = np.r_[np.ones(30, bool), np.zeros(70, bool)]
    scores = rng.normal(size=100) + positives
    result = auc(scores, positives)
    a, n1, n2 = result.value, 30, 70
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    se_hm = np.sqrt((a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n2 - 1) * (q2 - a * a)) / (n1 * n2))
    assert (result.high - result.low) / (2 * 1.959964) == pytest.approx(se_hm, rel=0.25)


def test_precision_at_k_counts_ties_at_the_cut_fractionally():
    positives = np.array([1, 0, 1, 0, 0], dtype=bool)
    assert precision_at_k(np.array([5.0, 4, 3, 2, 1]), positives, 2) == 0.5
    assert precision_at_k(np.array([5.0, 1, 4, 2, 3]), positives, 2) == 1.0
    # top score positive; the second place is shared by three instances, one of them positive
    assert precision_at_k(np.array([5.0, 3, 3, 3, 1]), positives, 2) == pytest.approx((1 + 1 / 3) / 2)


def test_top_k_cardinality_on_a_hand_made_matrix():
    scores = np.array([[9.0, 8, 1, 0, 0],
                       [9.0, 1, 8, 0, 0],
                       [9.0, 8, 0, 0, 1]])
    np.testing.assert_array_equal(top_k(scores, 2), [[0, 1], [0, 2], [0, 1]])
    assert top_k_cardinality(scores, 1) == 1
    assert top_k_cardinality(scores, 2) == 3
    assert top_k_cardinality(scores, 3) == 4  # {0, 1, 2} ∪ {0, 2, 1} ∪ {0, 1, 4}
    assert top_k_cardinality(scores, 1, largest=False) == 2  # lowest, first of ties: columns 3, 3, 2


def test_row_spearman_is_one_for_monotone_rows_and_minus_one_for_reversed():
    a = np.random.default_rng(2).normal(size=(6, 20))
    assert row_spearman(a, np.exp(a)).mean == pytest.approx(1.0)
    assert row_spearman(a, -a).mean == pytest.approx(-1.0)
