"""The downstream evaluations' metrics: detection AUC with its interval, precision at k, per-row
Spearman, top-k cardinality.

Conventions: a *detection score* is one float per training instance, larger = more suspicious;
`positives` marks the instances to be found (the flipped labels). A score matrix is (n_test, n_train)
in the tdabench sign (docs/method.md: > 0 means removing the instance increases the target).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import norm, rankdata

from tdabench.scoring.metrics import Summary, agreement


@dataclass(frozen=True)
class Auc:
    """AUC with its interval [low, high] at `level` (Hanley–McNeil / DeLong normal approximation,
    clipped to [0, 1]); n_pos, n_neg: the class sizes it was computed from."""

    value: float
    low: float
    high: float
    n_pos: int
    n_neg: int
    level: float = 0.95

    def to_json(self) -> dict[str, float | int]:
        return asdict(self)


def _check_detection(scores: np.ndarray, positives: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s, p = np.asarray(scores, dtype=np.float64).ravel(), np.asarray(positives, dtype=bool).ravel()
    if s.shape != p.shape:
        raise ValueError(f"scores {s.shape} and positives {p.shape} must have the same length")
    if not np.all(np.isfinite(s)):
        raise ValueError("detection scores must be finite")
    if p.all() or not p.any():
        raise ValueError("the AUC needs at least one positive and one negative instance")
    return s, p


def auc(scores: np.ndarray, positives: np.ndarray, level: float = 0.95) -> Auc:
    """AUC = P(s⁺ > s⁻) + ½ P(s⁺ = s⁻) over all (positive, negative) pairs: the Mann–Whitney U of
    the positives divided by n⁺n⁻, computed from mid-ranks (ties count one half):

        AUC = (Σ_{i positive} rank_i − n⁺(n⁺ + 1)/2) / (n⁺ n⁻).

    Interval: AUC ± z·SE with DeLong's variance, SE² = Var(V10)/n⁺ + Var(V01)/n⁻, where V10_i is
    the share of negatives that positive i beats (ties ½) and V01_j the share of positives that beat
    negative j. 0.5 is chance; 1 puts every positive above every negative.
    """
    s, p = _check_detection(scores, positives)
    n_pos, n_neg = int(p.sum()), int((~p).sum())
    ranks = rankdata(s)
    value = (ranks[p].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    within_pos, within_neg = rankdata(s[p]), rankdata(s[~p])
    v10 = (ranks[p] - within_pos) / n_neg  # negatives below each positive (ties ½)
    v01 = 1.0 - (ranks[~p] - within_neg) / n_pos  # positives above each negative (ties ½)
    var = (v10.var(ddof=1) / n_pos if n_pos > 1 else 0.0) + (v01.var(ddof=1) / n_neg if n_neg > 1 else 0.0)
    half = float(norm.ppf(0.5 + level / 2) * np.sqrt(var))
    return Auc(float(value), max(0.0, float(value) - half), min(1.0, float(value) + half), n_pos, n_neg, level)


def precision_at_k(scores: np.ndarray, positives: np.ndarray, k: int) -> float:
    """Share of positives among the k largest scores; ties at the cut are counted fractionally
    (each tied instance gets the share of the remaining places), so the order within ties does not
    matter. k = number of positives gives the precision at the flipped fraction."""
    s, p = _check_detection(scores, positives)
    if not 1 <= k <= len(s):
        raise ValueError(f"k must lie in [1, {len(s)}], got {k}")
    cut = np.sort(s)[::-1][k - 1]
    above = s > cut
    tied = s == cut
    places = k - int(above.sum())
    return float((p[above].sum() + places * p[tied].mean()) / k)


def row_spearman(a: np.ndarray, b: np.ndarray) -> Summary:
    """Spearman ρ between row j of `a` and row j of `b` (n_test, n_train), summarised over rows: mean,
    sem and bootstrap interval (scoring.metrics.agreement; rows where ρ is undefined are skipped)."""
    return agreement(a, b, "spearman")


def top_k(scores: np.ndarray, k: int, largest: bool = True) -> np.ndarray:
    """(n_test, k) column indices of each row's k largest (or smallest) scores; ties broken by the
    lower column index (a stable sort), so the result is deterministic."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or not 1 <= k <= s.shape[1]:
        raise ValueError(f"need a (n_test, n_train) matrix and 1 <= k <= n_train, got {s.shape} and k={k}")
    order = np.argsort(-s if largest else s, axis=1, kind="stable")
    return order[:, :k]


def top_k_cardinality(scores: np.ndarray, k: int, largest: bool = True) -> int:
    """|∪_j top-k(row j)|: how many distinct training instances appear among the k highest scores
    of any test point. Between k (every test point gets the same instances: a method that ranks
    by a global property such as the gradient norm) and min(n_test·k, n_train)."""
    return int(np.unique(top_k(scores, k, largest)).size)
