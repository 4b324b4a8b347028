"""Decay curves: agreement with the further-training gold standard against the horizon.

One line per estimator (further-training records only; horizons without a mean are skipped, the
line joins the others) on a log horizon axis, with a band of its
bootstrap interval [ci_low, ci_high] (mean ± sem where a record has no interval), and the gold
standard's noise ceiling as a grey dashed line over a grey band up to 1. matplotlib is imported
only here and only when a plot is drawn; figures are drawn off-screen (Agg, no pyplot state) in
matplotlib's default style, whatever the user's matplotlibrc says. PNG and SVG bytes depend only on
the table and the matplotlib version (SVG: fixed `svg.hashsalt`, no date).
"""

from __future__ import annotations

import io
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

from tdabench.errors import TdabenchError
from tdabench.report.tables import Row, Table, build_leaderboard
from tdabench.results import Results
from tdabench.storage import atomic_write_bytes

_RC = {"svg.hashsalt": "tdabench", "svg.fonttype": "path"}
_STYLES = ("-", "--", ":", "-.")


def plot_names(tables: list[Table]) -> list[str]:
    """File stems of the tables' plots: "<task>_<metric>", or "<task>-<k>_<metric>" (k = 1, 2, …
    in table order) when several tables share a task name; characters other than letters,
    digits, "_", "." and "-" become "-"."""
    counts, seen, names = Counter(t.task for t in tables), Counter(), []
    for t in tables:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "-", t.task)
        seen[t.task] += 1
        names.append(f"{safe}_{t.metric}" if counts[t.task] == 1 else f"{safe}-{seen[t.task]}_{t.metric}")
    return names


def _matplotlib() -> Any:
    """matplotlib with the submodules used here; TdabenchError if it is not installed."""
    try:
        import matplotlib
        import matplotlib.figure  # noqa: F401  (Figure)
        import matplotlib.style  # noqa: F401  (style.context)
        import matplotlib.ticker  # noqa: F401  (NullLocator)
        import matplotlib.backends.backend_agg  # noqa: F401  (FigureCanvasAgg)
    except ImportError as err:
        raise TdabenchError(f"plots need matplotlib ({err}); install it with "
                            "'pip install matplotlib'") from None
    return matplotlib


def _nan(value: float | None) -> float:
    """None → NaN (a gap in a line)."""
    return math.nan if value is None else value


def _band(row: Row, horizons: list[int]) -> tuple[list[int], list[float], list[float], list[float]]:
    """The horizons where the row has a mean, its means there and the band's edges (its bootstrap
    interval, else mean ± sem, else NaN)."""
    hs, means, lows, highs = [], [], [], []
    for h in horizons:
        r = row.cells.get(h)
        if r is None or r.mean is None:
            continue
        if r.ci_low is not None and r.ci_high is not None:
            lo, hi = r.ci_low, r.ci_high
        elif r.sem is not None:
            lo, hi = r.mean - r.sem, r.mean + r.sem
        else:
            lo = hi = math.nan
        hs.append(h)
        means.append(r.mean)
        lows.append(lo)
        highs.append(hi)
    return hs, means, lows, highs


def _draw_rows(ax: Any, rows: list[Row], hs: list[int], colors: Any) -> None:
    """One line with markers and a band per row (colours cycle through tab10, then line styles)."""
    for i, row in enumerate(rows):
        xs, means, lows, highs = _band(row, hs)
        color = colors(i % 10)
        ax.plot(xs, means, color=color, linestyle=_STYLES[(i // 10) % len(_STYLES)],
                marker="o", markersize=3, linewidth=1.4, label=row.label)
        ax.fill_between(xs, lows, highs, color=color, alpha=0.15, linewidth=0)


def _draw_ceiling(ax: Any, hs: list[int], ceiling: list[float]) -> None:
    """The noise ceiling: a grey band up to 1 under a grey dashed line."""
    ax.fill_between(hs, ceiling, [1.0] * len(hs), color="0.5", alpha=0.15, linewidth=0)
    ax.plot(hs, ceiling, color="0.4", linestyle="--", linewidth=1.2, label="noise ceiling")


def _label_axes(ax: Any, table: Table, mpl: Any) -> None:
    """Log horizon axis ticked at the table's horizons, axis labels, grid and title."""
    hs, g = table.horizons, table.gold
    ax.set_xscale("log")
    if hs:
        ax.set_xticks(hs)
        ax.set_xticklabels([str(h) for h in hs])
    ax.xaxis.set_minor_locator(mpl.ticker.NullLocator())
    ax.set_xlabel(f"horizon ({g['horizon_unit']}s of further training)")
    ax.set_ylabel(f"agreement ({table.metric})")
    ax.grid(True, color="0.9", linewidth=0.8)
    ax.set_title(f"{table.title}: {table.metric}\nfurther training, {g['mode']}, "
                 f"{g['seeds']} seeds, {g['n_train_evaluated']} training × {g['n_test']} test",
                 fontsize="medium")


def decay_figure(table: Table) -> Any:
    """A matplotlib Figure of the table's decay curves (see the module docstring)."""
    mpl = _matplotlib()
    hs = table.horizons
    with mpl.style.context("default"), mpl.rc_context(_RC):
        fig = mpl.figure.Figure(figsize=(9.0, 5.0), dpi=100)
        ax = fig.add_subplot()
        rows = [row for row in table.rows if _band(row, hs)[0]]
        _draw_rows(ax, rows, hs, mpl.colormaps["tab10"])
        ceiling = [_nan(table.noise_ceiling.get(h)) for h in hs]
        has_ceiling = any(not math.isnan(c) for c in ceiling)
        if has_ceiling:
            _draw_ceiling(ax, hs, ceiling)
        _label_axes(ax, table, mpl)
        if rows or has_ceiling:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small",
                      frameon=False)
    return fig


def _render(fig: Any, fmt: str) -> bytes:
    """The figure's bytes in `fmt` ("png" or "svg"), without a date, cropped to what is drawn."""
    mpl = _matplotlib()
    mpl.backends.backend_agg.FigureCanvasAgg(fig)
    buf = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else None
    with mpl.style.context("default"), mpl.rc_context(_RC):
        fig.savefig(buf, format=fmt, metadata=metadata, bbox_inches="tight")
    return buf.getvalue()


def write_decay_plot(table: Table, stem: str | Path) -> list[Path]:
    """Write `stem.png` and `stem.svg` (atomically) of `decay_figure(table)`; returns both paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    fig = decay_figure(table)
    paths = []
    for fmt in ("png", "svg"):
        path = stem.parent / f"{stem.name}.{fmt}"
        atomic_write_bytes(path, _render(fig, fmt))
        paths.append(path)
    return paths


def write_results_plots(results: Results, metric: str, out_dir: str | Path) -> list[Path]:
    """`out_dir/decay_<metric>.png` and `.svg` of one results file (as written by compare)."""
    (table,) = build_leaderboard([results], metric)
    return write_decay_plot(table, Path(out_dir) / f"decay_{metric}")
