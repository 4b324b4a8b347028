"""The leaderboard as one static HTML page: inline CSS, no JavaScript, nothing fetched from elsewhere.

Same content as the Markdown README (`report.text`): per table the summary grid, the decay
plot (PNG, with a link to the SVG), every horizon, the results files and the notes. Every text is
HTML-escaped; the page depends only on its inputs.
"""

from __future__ import annotations

from html import escape

from tdabench.report.tables import Table
from tdabench.report.text import (gold_line, header_lines, horizon_grid, legend_lines, summary_grid,
                                  table_notes)

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 80em; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.ceiling td { color: #666; font-style: italic; }
p.note, ul.note { color: #555; font-size: 0.9em; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
code { background: #f6f6f6; padding: 0 0.2em; }
""".strip()


def _table_html(head: list[str], body: list[list[str]], css_class: str) -> list[str]:
    """A <table>; the first column is text, the others numbers; the last body row is the noise
    ceiling."""
    lines = [f'<table class="{css_class}">',
             "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>"]
    for i, cells in enumerate(body):
        cls = ' class="ceiling"' if i == len(body) - 1 else ""
        tds = [f"<td>{escape(cells[0])}</td>"] + [f'<td class="num">{escape(c)}</td>'
                                                  for c in cells[1:]]
        lines.append(f"<tr{cls}>" + "".join(tds) + "</tr>")
    return lines + ["</table>"]


def _section(table: Table, plot: str | None) -> list[str]:
    """One table's part of the page: summary, plot, every horizon, sources, notes."""
    lines = [f"<h2>{escape(table.title)}</h2>", f"<p>{escape(gold_line(table.gold))}</p>",
             *_table_html(*summary_grid(table), "summary")]
    if plot:
        alt = escape(f"decay curve of {table.task}, {table.metric}")
        lines += [f'<p><a href="plots/{escape(plot)}.svg"><img src="plots/{escape(plot)}.png" '
                  f'alt="{alt}"></a><br><a href="plots/{escape(plot)}.svg">SVG</a></p>']
    lines += [f'<p class="note">Every horizon, {escape(table.metric)}: mean ± standard error over '
              "test points.</p>", *_table_html(*horizon_grid(table), "horizons"),
              '<p class="note">Results files: '
              + ", ".join(f"<code>{escape(s)}</code>" for s in table.sources) + "</p>"]
    notes = table_notes(table)
    if notes:
        lines += ['<ul class="note">', *[f"<li>{escape(n)}</li>" for n in notes], "</ul>"]
    return lines


def leaderboard_html(tables: list[Table], command: str | None = None,
                     plots: list[str] | None = None) -> str:
    """The index.html text; `plots` are `report.plots.plot_names(tables)` (no images when None)."""
    metric = tables[0].metric if tables else "pearson"
    sources = sorted({s for t in tables for s in t.sources})
    lines = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             "<title>tdabench leaderboard</title>", f"<style>\n{_CSS}\n</style>", "</head>",
             "<body>", "<h1>tdabench leaderboard</h1>",
             "<p>Generated from results files by <code>tdabench leaderboard</code>; do not edit "
             "by hand.</p>"]
    if command:
        lines.append(f"<p>Command: <code>{escape(command)}</code></p>")
    lines += [f"<p>{escape(text)}</p>" for text in header_lines(tables)]
    lines += [f'<p class="note">{escape(text)}</p>' for text in legend_lines(metric)]
    lines += ["<p>Results files used:</p>", "<ul>",
              *[f"<li><code>{escape(s)}</code></li>" for s in sources], "</ul>"]
    for table, plot in zip(tables, plots or [None] * len(tables)):
        lines += _section(table, plot)
    return "\n".join(lines + ["</body>", "</html>"]) + "\n"
