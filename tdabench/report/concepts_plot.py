"""The concepts figure: the concept across the final model's layers, and the removal experiment.

Input: a concepts payload (concepts.json, as tdabench/concepts/results.py reads it). Top row: the
final model's probe test accuracy and L1 non-zero share per layer (left), each estimator's agreement
(`metric`, longest horizon, bootstrap interval over test points) with the gold standard of the
layer's probe target (right; styles from `plots.estimator_style`). Then one column per removal mode:
probe test accuracy per layer (mean over seeds, t-interval) for none, random-k and top-k (one colour
per k: dashed random, solid top-k), and below it the paired change against none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tdabench.concepts.results import agreement_at_longest
from tdabench.report.plots import estimator_style, matplotlib_module, write_figure

NONE_COLOR = "black"
K_COLORS = ("tab:blue", "tab:orange", "tab:red", "tab:purple", "tab:green", "tab:brown")


def _err(mean: float, low: float | None, high: float | None) -> list[list[float]] | None:
    return None if low is None or high is None else [[mean - low], [high - mean]]


def _layers_panels(fig: Any, grid: Any, payload: dict[str, Any], metric: str) -> None:
    layers = [p["layer"] for p in payload["layers"]]
    xs = list(range(len(layers)))
    ax = fig.add_subplot(grid[0, 0])
    ax.plot(xs, [p["accuracy"] for p in payload["layers"]], marker="o", color="black", label="probe test accuracy")
    ax.plot(xs, [p["nonzero_share"] for p in payload["layers"]], marker="s", color="tab:gray", linestyle="--",
            label="L1 probe non-zero share")
    ax.set_xticks(xs, layers, rotation=45, ha="right", fontsize=7)
    ax.set_ylim(0, 1.02)
    ax.set_title(f"concept '{payload['concept']}' across layers (best: {payload['best_layer']})", fontsize=9)
    ax.legend(fontsize=7)
    ax = fig.add_subplot(grid[0, 1])
    for estimator in payload["settings"]["estimators"] if payload["agreement"] else []:
        style = estimator_style(estimator.partition("(")[0])
        for x, layer in enumerate(layers):
            rec = agreement_at_longest(payload["agreement"].get(layer, {"records": []}), estimator, metric)
            if rec is not None:
                ax.errorbar([x], [rec["mean"]], yerr=_err(rec["mean"], rec["ci_low"], rec["ci_high"]),
                            color=style.color, marker=style.marker, capsize=2, label=estimator if x == 0 else None)
    ax.axhline(0, color="gray", linewidth=0.5)
    ax.set_xticks(xs, layers, rotation=45, ha="right", fontsize=7)
    ax.set_title(f"agreement ({metric}, longest horizon) with probe:LAYER gold standard", fontsize=9)
    if payload["agreement"]:
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "not computed (no --estimators)", ha="center", va="center", transform=ax.transAxes,
                fontsize=8, color="gray")


def _removal_panel(ax: Any, entry: dict[str, Any], ks: list[int], key: str) -> None:
    """Accuracy per layer (`key` "value") or its paired change vs none ("delta") for every condition."""
    layers = entry["layers"]
    xs = list(range(len(layers)))
    styles = [("none", NONE_COLOR, "-")] if key == "value" else []
    for a, k in enumerate(ks):
        color = K_COLORS[a % len(K_COLORS)]
        styles += [(f"random-{k}", color, "--"), (f"top-{k}", color, "-")]
    for condition, color, line in styles:
        cells = [entry["summary"][condition][layer]["accuracy"][key] for layer in layers]
        means = [c["mean"] for c in cells]
        if all(c["low"] is not None for c in cells):
            ax.fill_between(xs, [c["low"] for c in cells], [c["high"] for c in cells], color=color, alpha=0.12)
        ax.plot(xs, means, color=color, linestyle=line, marker="o", markersize=3, label=condition)
    if key == "delta":
        ax.axhline(0, color="gray", linewidth=0.5)
    ax.set_xticks(xs, layers, rotation=45, ha="right", fontsize=7)


def concepts_figure(payload: dict[str, Any], metric: str = "pearson") -> Any:
    """The figure (matplotlib Figure, off-screen)."""
    mpl = matplotlib_module()
    removal = payload.get("removal") or {"modes": {}}
    modes = list(removal["modes"])
    rows, cols = 1 + 2 * bool(modes), max(2, len(modes))
    fig = mpl.figure.Figure(figsize=(5.0 * cols, 3.4 * rows))
    grid = fig.add_gridspec(rows, cols, hspace=0.6, wspace=0.25)
    _layers_panels(fig, grid, payload, metric)
    for c, mode in enumerate(modes):
        entry = removal["modes"][mode]
        for r, key in ((1, "value"), (2, "delta")):
            ax = fig.add_subplot(grid[r, c])
            _removal_panel(ax, entry, removal["ks"], key)
            what = "probe test accuracy" if key == "value" else "Δ accuracy vs none (paired)"
            ax.set_title(f"{mode}: {what}, {removal['seeds']} seeds (95% t)", fontsize=9)
            if r == 1 and c == 0:
                ax.legend(fontsize=6, ncol=2)
    subtitle = (f"; removal by {removal['estimator']} attributions to probe:{removal['layer']}" if modes else "")
    fig.suptitle(f"{payload['task']['name']}: concept '{payload['concept']}'{subtitle}", fontsize=10)
    return fig


def write_concepts_plot(payload: dict[str, Any], out_dir: str | Path, metric: str = "pearson") -> list[Path]:
    """`out_dir/concepts.png` and `.svg` (atomically); returns both paths."""
    return write_figure(concepts_figure(payload, metric), Path(out_dir) / "concepts")
