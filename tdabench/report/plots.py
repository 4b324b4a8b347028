"""Decay curves: agreement with the further-training gold standard against the horizon.

One line per estimator (further-training records only; horizons without a mean are skipped, the
line joins the others) on a log horizon axis, with a band of its bootstrap interval [ci_low, ci_high]
(mean ± sem where a record has no interval), and the gold standard's noise ceiling as a grey dashed
line over a grey band up to 1. With a single horizon the estimators are points with error bars,
spread sideways, and the ceiling a short band. Each estimator keeps its colour and marker in every
plot (`estimator_style`); more than MAX_LINES_PER_PANEL lines are split into one panel per estimator
family, each with the ceiling. The legend of a panel lists exactly what it draws. matplotlib is imported
only here and only when a plot is drawn; figures are drawn off-screen (Agg, no pyplot state) in
matplotlib's default style, whatever the user's matplotlibrc says. PNG and SVG bytes depend only on
the table and the matplotlib version (SVG: fixed `svg.hashsalt`, no date).
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tdabench.estimators.base import FAMILIES
from tdabench.report.methods import base_name, builtin_names, method_of
from tdabench.report.tables import Row, Table, build_leaderboard
from tdabench.results import Results
from tdabench.storage import atomic_write_bytes
from tdabench.task.packages import MissingPackageError
from tdabench.truths.names import REMOVAL

_RC = {"svg.hashsalt": "tdabench", "svg.fonttype": "path"}
# Lines per panel above which the estimators are split into panels by family.
MAX_LINES_PER_PANEL = 6
# Means closer than this at every horizon are drawn on top of each other; the legend says so.
COINCIDE = 0.005
# Legend labels are wrapped at this many characters (requests with parameters are long).
LEGEND_WIDTH = 36
# Distinct colours (tab10, then six darker ones) and markers; `estimator_style` hands them out.
_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf", "#000000", "#b8860b", "#4b0082", "#008080", "#800000", "#6b8e23")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p", "d", "H", "8", "1")
_CEILING_COLOR = "0.4"


@dataclass(frozen=True)
class Style:
    """How one estimator is drawn in every plot: colour, marker and line style."""

    color: str
    marker: str
    linestyle: str = "-"


def estimator_style(estimator: str) -> Style:
    """The one place that assigns plot styles. The k-th built-in estimator (natives and adapters, in
    `methods.builtin_names` order: by family, then name) gets colour k and marker k, the same in
    every plot whatever else is drawn; any other name (a plugin) a dashed line whose colour and marker
    follow from a CRC-32 of its name. Requests with parameters ("if-cg(max_iter=5)") are drawn as
    their estimator."""
    name = base_name(estimator)
    builtins = builtin_names()
    if name in builtins:
        k = builtins.index(name)
        return Style(_COLORS[k % len(_COLORS)], _MARKERS[k % len(_MARKERS)])
    h = zlib.crc32(name.encode())
    return Style(_COLORS[h % len(_COLORS)], _MARKERS[(h // len(_COLORS)) % len(_MARKERS)], "--")


def plot_names(tables: list[Table]) -> list[str]:
    """File stems of the tables' plots: "<task>_<metric>", with "-<mode>" after the task for a gold
    standard in another mode than removal ("digits-mlp-derivative_pearson"), and "-<k>" (k = 2, 3, …
    in table order) for a further table of the same task and mode; characters other than letters,
    digits, "_", "." and "-" become "-"."""
    seen: Counter[str] = Counter()
    names = []
    for t in tables:
        stem = re.sub(r"[^A-Za-z0-9_.-]", "-", t.task + ("" if t.mode == REMOVAL else f"-{t.mode}"))
        seen[stem] += 1
        names.append(f"{stem}_{t.metric}" if seen[stem] == 1 else f"{stem}-{seen[stem]}_{t.metric}")
    return names


def matplotlib_module() -> Any:
    """matplotlib with the submodules used here; MissingPackageError if it is not installed."""
    try:
        import matplotlib
        import matplotlib.figure  # noqa: F401  (Figure)
        import matplotlib.legend_handler  # noqa: F401  (HandlerTuple)
        import matplotlib.patches  # noqa: F401  (Patch)
        import matplotlib.style  # noqa: F401  (style.context)
        import matplotlib.ticker  # noqa: F401  (NullLocator)
        import matplotlib.backends.backend_agg  # noqa: F401  (FigureCanvasAgg)
    except ImportError as err:
        raise MissingPackageError(f"plots need matplotlib ({err}); install it with "
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


def panels(rows: list[Row]) -> list[tuple[str | None, list[Row]]]:
    """The rows in one panel (title None) when there are at most MAX_LINES_PER_PANEL, else one
    panel per family (`Estimator.family`, in FAMILIES order), rows in table order within each."""
    if len(rows) <= MAX_LINES_PER_PANEL:
        return [(None, rows)]
    by_family: dict[str, list[Row]] = {}
    for row in rows:
        by_family.setdefault(method_of(row.estimator).family, []).append(row)
    return [(f, by_family[f]) for f in FAMILIES if f in by_family]


def _draw_rows(ax: Any, rows: list[Row], hs: list[int], mpl: Any) -> list[tuple[Any, str]]:
    """Each row as a line with markers over its band (several horizons), or as a point with error
    bars (one horizon: the points are spread sideways so that they do not hide each other).
    Returns (legend handle, label) per row: the line and, where drawn, its band; the label of a
    line hidden under later ones (`_coincide`) names the last of them, drawn on top."""
    entries = []
    single = len(hs) == 1
    bands = [_band(row, hs) for row in rows]
    for i, row in enumerate(rows):
        xs, means, lows, highs = bands[i]
        st = estimator_style(row.estimator)
        label = row.label
        hider = next((base_name(rows[j].label) for j in reversed(range(i + 1, len(rows)))
                      if not single and _coincide(bands[i], bands[j])), None)
        if hider is not None:
            label = f"{row.label} (hidden under {hider})"
        label = _wrap(label)
        has_band = any(not math.isnan(v) for v in lows + highs)
        if single:
            x = [xs[0] * 1.12 ** (i - (len(rows) - 1) / 2)]
            err = [[means[0] - lows[0]], [highs[0] - means[0]]] if has_band else None
            handle = ax.errorbar(x, means, yerr=err, color=st.color, marker=st.marker, markersize=5,
                                 linestyle="none", capsize=3, elinewidth=1.2, label=label)
        else:
            (line,) = ax.plot(xs, means, color=st.color, linestyle=st.linestyle, marker=st.marker,
                              markersize=4, linewidth=1.4, label=label)
            handle = line
            if has_band:
                ax.fill_between(xs, lows, highs, color=st.color, alpha=0.12, linewidth=0)
                band = mpl.patches.Patch(facecolor=st.color, alpha=0.25, linewidth=0)
                handle = (band, line)
        entries.append((handle, label))
    return entries


def _wrap(label: str, width: int = LEGEND_WIDTH) -> str:
    """A legend label on lines of at most `width` characters where it can, broken after a "," or
    at a space (never inside a name)."""
    lines: list[str] = []
    for token in re.findall(r"[^, ]*(?:,|\s+|$)", label):
        if lines and len(lines[-1]) + len(token.rstrip()) <= width:
            lines[-1] += token
        elif token:
            lines.append(token)
    return "\n".join(line.rstrip() for line in lines)


def _coincide(a: tuple, b: tuple) -> bool:
    """Two `_band`s with the same horizons whose means differ by less than COINCIDE everywhere: the
    line drawn later hides the earlier one."""
    return a[0] == b[0] and all(abs(x - y) < COINCIDE for x, y in zip(a[1], b[1]))


def _draw_ceiling(ax: Any, hs: list[int], ceiling: list[float], mpl: Any) -> tuple[Any, str] | None:
    """The noise ceiling: a grey band from it up to 1 under a grey dashed line; with one horizon a
    short band and line around it. None (nothing drawn) when no horizon has a ceiling."""
    known = [(h, c) for h, c in zip(hs, ceiling) if not math.isnan(c)]
    if not known:
        return None
    if len(hs) == 1:
        xs, ys = [hs[0] / 1.6, hs[0] * 1.6], [known[0][1]] * 2
    else:
        xs, ys = hs, ceiling
    ax.fill_between(xs, ys, [1.0] * len(xs), color="0.5", alpha=0.15, linewidth=0)
    (line,) = ax.plot(xs, ys, color=_CEILING_COLOR, linestyle="--", linewidth=1.2, label="noise ceiling")
    band = mpl.patches.Patch(facecolor="0.5", alpha=0.3, linewidth=0)
    return (band, line), "noise ceiling (shaded: above it)"


def _label_axes(ax: Any, table: Table, mpl: Any, title: str | None) -> None:
    """Log horizon axis ticked at the table's horizons, axis labels, grid and the panel's title."""
    hs, g = table.horizons, table.gold
    ax.set_xscale("log")
    if hs:
        ax.set_xticks(hs)
        ax.set_xticklabels([str(h) for h in hs])
        if len(hs) == 1:
            ax.set_xlim(hs[0] / 2.0, hs[0] * 2.0)
    ax.xaxis.set_minor_locator(mpl.ticker.NullLocator())
    ax.set_xlabel(f"horizon ({g['horizon_unit']}s of further training)")
    ax.set_ylabel(f"agreement ({table.metric})")
    ax.grid(True, color="0.9", linewidth=0.8)
    if title:
        ax.set_title(title, fontsize="medium")


def _suptitle(table: Table) -> str:
    g = table.gold
    return (f"{table.title}: {table.metric}\nfurther training, {g['mode']}, {g['seeds']} seeds, "
            f"{g['n_train_evaluated']} training × {g['n_test']} test; bands, bars: 95 % bootstrap "
            "intervals over test points (± sem without one)")


def figure_style(mpl: Any) -> contextlib.ExitStack:
    """The context every tdabench figure is drawn and saved in: matplotlib's default style and the
    settings that make SVG output deterministic (`mpl` = `matplotlib_module()`)."""
    stack = contextlib.ExitStack()
    stack.enter_context(mpl.style.context("default"))
    stack.enter_context(mpl.rc_context(_RC))
    return stack


def decay_figure(table: Table) -> Any:
    """A matplotlib Figure of the table's decay curves (see the module docstring)."""
    mpl = matplotlib_module()
    hs = table.horizons
    rows = [row for row in table.rows if _band(row, hs)[0]]
    groups = panels(rows) if rows else [(None, [])]
    ncols = 1 if len(groups) == 1 else 2
    nrows = math.ceil(len(groups) / ncols)
    ceiling = [_nan(table.noise_ceiling.get(h)) for h in hs]
    with figure_style(mpl):
        fig = mpl.figure.Figure(figsize=(9.0 if ncols == 1 else 13.0, 5.0 if nrows == 1 else 3.6 * nrows + 0.8),
                                dpi=100)
        axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
        for k, ax in enumerate(axes.flat):
            if k >= len(groups):
                ax.set_visible(False)
                continue
            family, members = groups[k]
            entries = _draw_rows(ax, members, hs, mpl)
            ceiling_entry = _draw_ceiling(ax, hs, ceiling, mpl)
            if ceiling_entry is not None:
                entries.append(ceiling_entry)
            _label_axes(ax, table, mpl, family)
            if len(groups) > 1:
                ax.label_outer()  # axis labels on the outer panels only (the axes are shared)
            if entries:
                handles, labels = zip(*entries)
                ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                          fontsize="small", frameon=False,
                          handler_map={tuple: mpl.legend_handler.HandlerTuple(ndivide=1)})
        fig.suptitle(_suptitle(table), fontsize="medium")
        fig.set_layout_engine("constrained")
    return fig


def render_figure(fig: Any, fmt: str) -> bytes:
    """The figure's bytes in `fmt` ("png" or "svg"), without a date, cropped to what is drawn."""
    mpl = matplotlib_module()
    mpl.backends.backend_agg.FigureCanvasAgg(fig)
    buf = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else None
    with figure_style(mpl):
        fig.savefig(buf, format=fmt, metadata=metadata, bbox_inches="tight")
    return buf.getvalue()


def write_figure(fig: Any, stem: str | Path) -> list[Path]:
    """Write `stem.png` and `stem.svg` of `fig` (atomically, creating the folder); returns both paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.parent / f"{stem.name}.{fmt}" for fmt in ("png", "svg")]
    for path in paths:
        atomic_write_bytes(path, render_figure(fig, path.suffix[1:]))
    return paths


def write_decay_plot(table: Table, stem: str | Path) -> list[Path]:
    """Write `stem.png` and `stem.svg` (atomically) of `decay_figure(table)`; returns both paths."""
    return write_figure(decay_figure(table), stem)


def write_results_plots(results: Results, metric: str, out_dir: str | Path) -> list[Path]:
    """`out_dir/decay_<metric>.png` and `.svg` of one results file (as written by compare)."""
    (table,) = build_leaderboard([results], metric)
    return write_decay_plot(table, Path(out_dir) / f"decay_{metric}")
