"""Damping is the horizon (DESIGN.md §4): the damping the tuned track chose per horizon against 1/(ηT).

One panel per task further-trained by SGD with a tuned track (`tuned.best_damping` rows; the CSV also
holds the other optimizers' rows, for which DESIGN.md §4 makes no such prediction), log–log: x = 1/(ηT) (η the
further-training learning rate, T the horizon in steps), y = the damping chosen on validation test
points for that horizon, in absolute units; one line per damped estimator (`plots.estimator_style`),
hollow markers where the choice lies at the edge of the searched grid (the best may lie beyond), and
the line y = 1/(ηT) that the unified view predicts. The data are written beside it as CSV
(`best_damping_csv`), so the figure is never the only record.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from tdabench.report.plots import estimator_style, figure_style, matplotlib_module, write_figure
from tdabench.report.tables import Table
from tdabench.report.tuned import BEST_DAMPING_COLUMNS, best_damping
from tdabench.results import csv_cell

DAMPING_PLOT = "best_damping"  # file stem of the plot and of its CSV
SGD = ("sgd", None)  # the further-training optimizers whose tables get a panel (None: not recorded)


def best_damping_rows(tables: list[Table]) -> list[dict]:
    """`tuned.best_damping` of every table, in table order."""
    return [row for t in tables for row in best_damping(t)]


def best_damping_csv(tables: list[Table]) -> str:
    """The rows of `best_damping_rows` with the columns BEST_DAMPING_COLUMNS."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(BEST_DAMPING_COLUMNS)
    for row in best_damping_rows(tables):
        writer.writerow([csv_cell(row[c]) for c in BEST_DAMPING_COLUMNS])
    return buf.getvalue()


def _panel(ax: Any, rows: list[dict], title: str, ticker: Any) -> None:
    xs_all = [r["one_over_eta_t"] for r in rows]
    for est in sorted({r["estimator"] for r in rows}):
        mine = sorted((r for r in rows if r["estimator"] == est), key=lambda r: r["one_over_eta_t"])
        st = estimator_style(est)
        ax.plot([r["one_over_eta_t"] for r in mine], [r["damping"] for r in mine], color=st.color,
                linestyle=st.linestyle, linewidth=1.2, label=est)
        for edge in (False, True):
            pts = [r for r in mine if r["at_grid_edge"] == edge]
            ax.plot([r["one_over_eta_t"] for r in pts], [r["damping"] for r in pts], linestyle="none",
                    marker=st.marker, color=st.color, markerfacecolor="none" if edge else st.color, markersize=5)
    lo, hi = min(xs_all), max(xs_all)
    ax.plot([lo / 2, hi * 2], [lo / 2, hi * 2], color="0.4", linestyle="--", linewidth=1.0, label="damping = 1/(ηT)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):  # labels at 1 and 3 per decade: readable on a range under one decade
        axis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 3.0)))
        axis.set_major_formatter(ticker.LogFormatterSciNotation(labelOnlyBase=False))
        axis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel("1/(ηT)  (η: further-training learning rate, T: horizon in steps)")
    ax.set_ylabel("best damping on validation points")
    ax.grid(True, color="0.9", linewidth=0.8)
    ax.set_title(title, fontsize="medium")
    ax.legend(fontsize="small", frameon=False)


def damping_figure(tables: list[Table]) -> Any | None:
    """A Figure with one panel per table further-trained by SGD (the rule's optimizer; an unrecorded one
    counts as SGD) that has `best_damping` rows with a known ηT; None if none has."""
    groups = [(t, [r for r in best_damping(t) if r["one_over_eta_t"] is not None and r["optimizer"] in SGD])
              for t in tables]
    groups = [(t, rows) for t, rows in groups if rows]
    if not groups:
        return None
    mpl = matplotlib_module()
    ncols = min(2, len(groups))
    nrows = math.ceil(len(groups) / ncols)
    with figure_style(mpl):
        fig = mpl.figure.Figure(figsize=(6.0 * ncols, 4.2 * nrows + 0.6), dpi=100)
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for k, ax in enumerate(axes.flat):
            if k >= len(groups):
                ax.set_visible(False)
                continue
            table, rows = groups[k]
            _panel(ax, rows, f"{table.task} ({table.mode}, {rows[0]['metric']})", mpl.ticker)
        fig.suptitle("Damping chosen per horizon on validation test points vs 1/(ηT)\n"
                     "(DESIGN.md §4; hollow markers: at the edge of the searched grid)", fontsize="medium")
        fig.set_layout_engine("constrained")
    return fig


def write_damping_plot(tables: list[Table], folder: str | Path) -> list[Path]:
    """`folder/best_damping.png` and `.svg` (atomically) when some table has a tuned damping; []
    otherwise."""
    fig = damping_figure(tables)
    if fig is None:
        return []
    return write_figure(fig, Path(folder) / DAMPING_PLOT)
