"""The downstream evaluations on the leaderboard: per task, each estimator's downstream scores with
their intervals and ranks next to its further-training agreement, and how the two orders agree.

Inputs are plain data: downstream payloads (downstream.json as tdabench/downstream/results.py writes it,
plus "origin", its path relative to the pages) and the leaderboard's Tables. A payload joins the
table that the cross-task summary takes for its task against the removal gold standard
(`tables.summary_groups`), only if both have the same spec hash; each of its estimator labels joins
the table row with that label, else the only row of that estimator name.

Scores (`SCORES`), each oriented so that one direction is better: mislabel AUC and precision at the
flipped fraction (higher: the flipped labels are found), model-randomisation Spearman (lower: the scores
depend on what the model learned), top-k cardinality (higher: explanations differ between test points),
the share of predictions flipped by removing the largest k of the grid (higher: the named support
matters; further-trained, and retrained where the file has it), shortcut AUC (higher). Ranks are
`stats.shared_ranks` in that direction: 1 = best, estimators whose intervals overlap share a rank.

Order agreement: per score, Spearman ρ between the estimators' values (negated where lower is better)
and their further-training agreement at the table's longest horizon, over the estimators that have
both; None below 3 estimators or when either order is constant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from tdabench.report.methods import base_name
from tdabench.report.tables import Row, Table, interval, summary_groups
from tdabench.scoring.stats import shared_ranks
from tdabench.truths.names import REMOVAL

Point = tuple[float, float | None, float | None]  # value, interval low, interval high


@dataclass(frozen=True)
class Score:
    """One downstream column: `check`'s per-estimator entries (under "estimators" when `nested`), the
    fields of its value and interval, the last element of list fields (`last`: the largest k), an
    optional sub-entry (`sub`, e.g. "retrained"), and which direction is better."""

    title: str
    check: str
    value: str
    low: str | None = None
    high: str | None = None
    nested: bool = True
    last: bool = False
    sub: str | None = None
    higher_is_better: bool = True
    digits: int = 3

    def entries(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Estimator label → its entry of this check (the sub-entry when `sub`), {} without the check."""
        found = payload.get("checks", {}).get(self.check, {})
        found = found.get("estimators", {}) if self.nested else found
        return {label: e.get(self.sub) if self.sub else e for label, e in found.items()
                if isinstance(e, dict) and (not self.sub or isinstance(e.get(self.sub), dict))}

    def point(self, entry: dict[str, Any]) -> Point | None:
        """(value, low, high) of one entry; None without a value."""
        pick = (lambda key: None if key is None or entry.get(key) is None
                else entry[key][-1] if self.last else entry[key])
        value = pick(self.value)
        return None if value is None else (float(value), pick(self.low), pick(self.high))

    def points(self, payload: dict[str, Any]) -> dict[str, Point]:
        """Estimator label → point, for the estimators with a value."""
        return {label: p for label, e in self.entries(payload).items() if (p := self.point(e)) is not None}


SCORES = (
    Score("mislabel AUC", "mislabel", "auc", "auc_low", "auc_high"),
    Score("P@flip", "mislabel", "precision_at_flipped"),
    Score("randomisation ρ", "randomization", "mean", "ci_low", "ci_high", nested=False, higher_is_better=False),
    Score("top-k cardinality", "cardinality", "distinct", nested=False, digits=0),
    Score("flip share, largest k", "brittleness", "share", "share_low", "share_high", last=True),
    Score("flip share, largest k, retrained", "brittleness", "share", "share_low", "share_high", last=True,
          sub="retrained"),
    Score("shortcut AUC", "shortcut", "auc", "auc_low", "auc_high"),
)


def scores_of(payload: dict[str, Any]) -> list[Score]:
    """The scores of `SCORES` with a value in the payload, in that order."""
    return [s for s in SCORES if s.points(payload)]


def oriented_ranks(points: list[Point | None], higher_is_better: bool) -> list[int | None]:
    """`shared_ranks` of the points in the better direction (a lower-is-better score is negated with its
    interval swapped); None where a point is missing."""
    sign = 1.0 if higher_is_better else -1.0
    flip = (lambda lo, hi: (lo, hi)) if higher_is_better else (lambda lo, hi: (hi, lo))
    bounds = [(None, None) if p is None else flip(*(None if b is None else sign * b for b in p[1:])) for p in points]
    ranks = shared_ranks([None if p is None else sign * p[0] for p in points], [b[0] for b in bounds],
                         [b[1] for b in bounds])
    return [None if p is None else r for p, r in zip(points, ranks)]


def order_spearman(xs: dict[str, Point], ys: dict[str, Point]) -> float | None:
    """Spearman ρ between the estimators' orders by x and by y (those in both; None below 3 or when
    either is constant)."""
    common = sorted(set(xs) & set(ys))
    if len(common) < 3:
        return None
    a, b = [xs[k][0] for k in common], [ys[k][0] for k in common]
    if len(set(a)) < 2 or len(set(b)) < 2:  # a constant order: ρ is undefined
        return None
    rho = spearmanr(a, b).statistic
    return None if np.isnan(rho) else float(rho)


def oriented(score: Score, points: dict[str, Point]) -> dict[str, Point]:
    """The points with their values negated where lower is better (for `order_spearman`)."""
    return points if score.higher_is_better else {k: (-v, None, None) for k, (v, _, _) in points.items()}


def matching_table(payload: dict[str, Any], tables: list[Table]) -> Table | None:
    """The removal-mode table the cross-task summary takes for the payload's task, if its spec hash is
    the payload's; else None."""
    for mode, group in summary_groups(tables):
        for t in group if mode == REMOVAL else ():
            if t.task == payload["task"]["name"]:
                return t if t.spec_hash == payload["task"]["spec_hash"] else None
    return None


def matched_rows(table: Table | None, labels: list[str]) -> dict[str, Row]:
    """Label → the table row with that label, else the only row of that estimator name."""
    if table is None:
        return {}
    by_label = {row.label: row for row in table.rows}
    names = [row.estimator for row in table.rows]
    out = {}
    for label in labels:
        row = by_label.get(label)
        if row is None and names.count(base_name(label)) == 1:
            row = table.rows[names.index(base_name(label))]
        if row is not None:
            out[label] = row
    return out


def further_points(table: Table | None, rows: dict[str, Row]) -> dict[str, Point]:
    """Label → (mean, low, high) of its further-training agreement at the table's longest horizon."""
    if table is None or not table.horizons:
        return {}
    last, out = table.horizons[-1], {}
    for label, row in rows.items():
        record = row.cells.get(last)
        if record is not None and record.mean is not None:
            out[label] = (record.mean, *interval(record))
    return out
