"""Each estimator's further-training agreement against each downstream score, one panel per score.

Inputs are plain data: a downstream payload (downstream.json, as tdabench/downstream/results.py
reads it) and, optionally, a compare Results of the same task. x: the estimator's agreement with the
further-training gold standard (`metric`, at the longest horizon with a record), with its bootstrap
interval; y: the downstream score with its interval where it has one. Each panel's title gives the
Spearman ρ between the two orders of the estimators drawn in it (None with fewer than 3). Without
a compare file the estimators are placed side by side on a categorical x axis. Styles follow
`plots.estimator_style`, so an estimator looks the same in every tdabench plot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from tdabench.report.plots import estimator_style, matplotlib_module, render_figure
from tdabench.results import Results
from tdabench.storage import atomic_write_bytes
from tdabench.truths.names import FURTHER_TRAINING

Point = tuple[float, float | None, float | None]  # value, interval low, interval high


def downstream_scores(payload: dict[str, Any]) -> dict[str, dict[str, Point]]:
    """Panel title → estimator label → (value, low, high) for each downstream score in the payload."""
    checks, out = payload["checks"], {}
    pick = {
        "mislabel AUC": (checks.get("mislabel", {}).get("estimators", {}), "auc", "auc_low", "auc_high"),
        "randomisation Spearman": (checks.get("randomization", {}), "mean", "ci_low", "ci_high"),
        "shortcut share@k": (checks.get("shortcut", {}).get("estimators", {}), "share", "share_low", "share_high"),
    }
    for title, (entries, v, lo, hi) in pick.items():
        out[title] = {label: (e[v], e[lo], e[hi]) for label, e in entries.items() if e.get(v) is not None}
    out["top-k cardinality"] = {label: (float(e["distinct"]), None, None)
                                for label, e in checks.get("cardinality", {}).items()}
    brittle = checks.get("brittleness", {}).get("estimators", {})
    for title, key in (("flip share at largest k", None), ("flip share at largest k, retrained", "retrained")):
        flips = {label: (e.get(key) if key else e) for label, e in brittle.items()}
        out[title] = {label: (f["share"][-1], f["share_low"][-1], f["share_high"][-1]) for label, f in flips.items()
                      if f}
    return {title: points for title, points in out.items() if points}


def agreement_points(results: Results, metric: str = "pearson") -> dict[str, Point]:
    """Estimator label → (mean, ci_low, ci_high) of its further-training agreement in `metric` at
    the longest horizon at which it has a mean (also under its bare name when that is unique)."""
    best: dict[str, tuple[int, Point]] = {}
    for r in results.records:
        if r.ground_truth != FURTHER_TRAINING or r.metric != metric or r.mean is None:
            continue
        inner = ",".join(f"{k}={v}" for k, v in sorted(r.params.items()))
        label = f"{r.estimator}({inner})" if inner else r.estimator
        if label not in best or r.horizon > best[label][0]:
            best[label] = (r.horizon, (r.mean, r.ci_low, r.ci_high))
    points = {label: point for label, (_, point) in best.items()}
    names = [label.partition("(")[0] for label in points]
    # Records carry the resolved and fitted parameters; a name with one parameter set in the file
    # is also found by its bare name (the label of a default request in downstream.json).
    return {**points, **{n: p for n, (label, p) in zip(names, points.items()) if names.count(n) == 1}}


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


def _err(point: Point) -> list[list[float]] | None:
    value, low, high = point
    return None if low is None or high is None else [[value - low], [high - value]]


def downstream_figure(payload: dict[str, Any], results: Results | None = None, metric: str = "pearson") -> Any:
    """The figure (matplotlib Figure, off-screen): one panel per downstream score."""
    mpl = matplotlib_module()
    scores = downstream_scores(payload)
    xs = agreement_points(results, metric) if results is not None else None
    cols = min(3, max(len(scores), 1))
    rows = -(-max(len(scores), 1) // cols)
    fig = mpl.figure.Figure(figsize=(4.2 * cols, 3.6 * rows))
    fig.subplots_adjust(hspace=0.45, wspace=0.3)
    for n, (title, ys) in enumerate(scores.items()):
        ax = fig.add_subplot(rows, cols, n + 1)
        labels = [k for k in ys if xs is None or k in xs]
        for i, label in enumerate(labels):
            style = estimator_style(label.partition("(")[0])
            x = xs[label] if xs is not None else (float(i), None, None)
            ax.errorbar([x[0]], [ys[label][0]], xerr=_err(x), yerr=_err(ys[label]), color=style.color,
                        marker=style.marker, linestyle="none", capsize=2, label=label)
        rho = order_spearman(xs, ys) if xs is not None else None
        ax.set_title(title + ("" if rho is None else f"  (order ρ = {rho:.2f})"), fontsize=9)
        if xs is None:
            ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=7)
        else:
            ax.set_xlabel(f"further-training {metric} (longest horizon)", fontsize=8)
        if n == 0 and labels:
            ax.legend(fontsize=7)
    task = payload["task"]["name"]
    fig.suptitle(f"{task}: downstream scores" + (" against further-training agreement" if xs is not None else ""))
    return fig


def write_downstream_plot(payload: dict[str, Any], out_dir: str | Path, results: Results | None = None,
                          metric: str = "pearson") -> list[Path]:
    """`out_dir/downstream.png` and `.svg` (atomically); returns both paths."""
    fig = downstream_figure(payload, results, metric)
    paths = []
    for fmt in ("png", "svg"):
        path = Path(out_dir) / f"downstream.{fmt}"
        atomic_write_bytes(path, render_figure(fig, fmt))
        paths.append(path)
    return paths
