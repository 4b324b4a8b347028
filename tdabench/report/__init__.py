"""Reports from results files: the leaderboard's tables, its text, HTML and plots, and writing them.

Modules, each importing only those before it: `tables` (the table model: rows, grouping, newest
wins, noise ceiling, ranks), `text` (cell formatting, Markdown, CSV, the terminal table), `html`
(the static page), `plots` (decay curves; matplotlib imported when drawn), `write` (the pages'
folder). matplotlib is not imported by importing this package.
"""

from __future__ import annotations

from tdabench.report.html import leaderboard_html
from tdabench.report.plots import decay_figure, plot_names, write_decay_plot, write_results_plots
from tdabench.report.tables import LDS, LOO, Row, Table, build_leaderboard
from tdabench.report.text import (CSV_COLUMNS, DASH, Cell, format_cell, format_interval, format_seconds,
                                  gold_line, header_lines, horizon_grid, leaderboard_csv,
                                  leaderboard_markdown, legend_lines, mean_rank_grid, mean_rank_note,
                                  render_terminal_table, summary_cells, summary_grid, table_notes)
from tdabench.report.write import read_relative, results_files, write_leaderboard

__all__ = ["CSV_COLUMNS", "Cell", "DASH", "LDS", "LOO", "Row", "Table", "build_leaderboard", "decay_figure",
           "format_cell", "format_interval", "format_seconds", "gold_line", "header_lines",
           "horizon_grid", "leaderboard_csv", "leaderboard_html", "leaderboard_markdown",
           "legend_lines", "mean_rank_grid", "mean_rank_note", "plot_names", "read_relative", "render_terminal_table", "results_files",
           "summary_cells", "summary_grid", "table_notes", "write_decay_plot", "write_leaderboard",
           "write_results_plots"]
