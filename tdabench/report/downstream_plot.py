"""Each estimator's further-training agreement against each downstream score, one panel per score.

Inputs are plain data: a downstream payload (downstream.json, as tdabench/downstream/results.py
reads it) and, optionally, a compare Results of the same task. x: the estimator's agreement with the
further-training gold standard (`metric`, at the longest horizon with a record), with its bootstrap
interval; y: the downstream score with its interval where it has one. Each panel's title gives the
Spearman ρ between the two orders of the estimators drawn in it (None with fewer than 3), each in its
better direction (randomisation ρ negated, as in the leaderboard's downstream notes). One legend on
the right names every estimator drawn in any panel (a check can leave some out). Without
a compare file the estimators are placed side by side on a categorical x axis. Styles follow
`plots.estimator_style`, so an estimator looks the same in every tdabench plot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tdabench.report.downstream_table import Point, order_spearman, oriented, scores_of
from tdabench.report.plots import estimator_style, matplotlib_module, write_figure
from tdabench.results import Results
from tdabench.truths.names import FURTHER_TRAINING

__all__ = ["agreement_points", "downstream_figure", "downstream_scores", "order_spearman", "write_downstream_plot"]


def downstream_scores(payload: dict[str, Any]) -> dict[str, dict[str, Point]]:
    """Panel title → estimator label → (value, low, high) for each downstream score in the payload
    (`downstream_table.scores_of`)."""
    return {s.title: s.points(payload) for s in scores_of(payload)}


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


def _err(point: Point) -> list[list[float]] | None:
    value, low, high = point
    return None if low is None or high is None else [[value - low], [high - value]]


def downstream_figure(payload: dict[str, Any], results: Results | None = None, metric: str = "pearson",
                      xs: dict[str, Point] | None = None) -> Any:
    """The figure (matplotlib Figure, off-screen): one panel per downstream score. x: `xs` when given
    (label → further-training agreement in `metric`), else `agreement_points(results, metric)`, else
    the estimators side by side."""
    mpl = matplotlib_module()
    scores = downstream_scores(payload)
    xs = xs if xs is not None else agreement_points(results, metric) if results is not None else None
    cols = min(3, max(len(scores), 1))
    rows = -(-max(len(scores), 1) // cols)
    fig = mpl.figure.Figure(figsize=(4.2 * cols, 3.6 * rows))
    fig.subplots_adjust(hspace=0.45, wspace=0.3, right=0.8)
    handles: dict[str, Any] = {}  # label → first artist drawn for it, in any panel
    for n, (score, (title, ys)) in enumerate(zip(scores_of(payload), scores.items())):
        ax = fig.add_subplot(rows, cols, n + 1)
        labels = [k for k in ys if xs is None or k in xs]
        for i, label in enumerate(labels):
            style = estimator_style(label.partition("(")[0])
            x = xs[label] if xs is not None else (float(i), None, None)
            drawn = ax.errorbar([x[0]], [ys[label][0]], xerr=_err(x), yerr=_err(ys[label]), color=style.color,
                                marker=style.marker, linestyle="none", capsize=2, label=label)
            handles.setdefault(label, drawn)
        rho = order_spearman(xs, oriented(score, ys)) if xs is not None else None
        ax.set_title(title + ("" if rho is None else f"  (order ρ = {rho:.2f})"), fontsize=9)
        if xs is None:
            ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=7)
        else:
            ax.set_xlabel(f"further-training {metric} (longest horizon)", fontsize=8)
    if handles:  # one legend for the figure: an estimator absent from a panel is still named
        fig.legend(list(handles.values()), list(handles), loc="center left", bbox_to_anchor=(0.81, 0.5), fontsize=7)
    task = payload["task"]["name"]
    fig.suptitle(f"{task}: downstream scores" + (" against further-training agreement" if xs is not None else ""))
    return fig


def write_downstream_plot(payload: dict[str, Any], out_dir: str | Path, results: Results | None = None,
                          metric: str = "pearson", xs: dict[str, Point] | None = None,
                          stem: str = "downstream") -> list[Path]:
    """`out_dir/<stem>.png` and `.svg` (atomically; the figure of `downstream_figure`); returns both paths."""
    return write_figure(downstream_figure(payload, results, metric, xs), Path(out_dir) / stem)
