"""The leaderboard as one self-contained HTML page: inline CSS and vanilla JavaScript, nothing fetched.

Content, top to bottom: header and legend; a table of contents; filters (one task, what the estimators
were given (`tdabench.estimators.inputs`; each table also ranks within each input), estimator names);
one cross-task summary per gold-standard mode (mean rank per estimator per horizon band,
`text.mean_rank_grid`, over `tables.summary_groups`); one section per table (ids from `anchors`) with its gold standard, links to its results files and task spec,
its one table (`text.summary_cells`: every horizon with its interval, best horizon, LDS, LOO, cost,
rank), the decay plot and the notes; the methods (family, one-line summary, citation, from the
estimator classes via `report.methods`); how to submit an estimator.

Tables with class "sortable" sort on a click on (or Enter in) a column header: numbers by the
cell's `data-value`, text by its text, cells without a value last; the noise ceiling sits in the
<tfoot> and never moves. Every text is HTML-escaped; the page depends only on its inputs.
"""

from __future__ import annotations

import re
from collections import Counter
from html import escape

from tdabench.estimators.inputs import INPUT_LABELS, input_label
from tdabench.report.methods import Method, base_name, method_of
from tdabench.report.tables import Table, summary_groups
from tdabench.report.text import (DAMPING_HEADING, DAMPING_NOTE, GIVEN, TUNED_SUMMARY_NOTE, TUNING_S, Cell, gold_line, header_lines, legend_lines,
                                  mean_rank_grid, mean_rank_note, summary_cells, summary_heading, table_notes,
                                  tuned_summary)
from tdabench.truths.names import REMOVAL

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 90em; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; }
h2 a.anchor { color: #bbb; text-decoration: none; margin-left: 0.3em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
th { background: #f2f2f2; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th:hover { background: #e4e4e4; }
th[aria-sort="ascending"]::after { content: " \\25B2"; font-size: 0.7em; }
th[aria-sort="descending"]::after { content: " \\25BC"; font-size: 0.7em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tfoot td { color: #666; font-style: italic; }
p.note, ul.note, div.note { color: #555; font-size: 0.9em; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
code, pre { background: #f6f6f6; padding: 0 0.2em; }
pre { padding: 0.6em; overflow-x: auto; }
nav ul { columns: 2; }
.filters { position: sticky; top: 0; background: #fff; padding: 0.5em 0; border-bottom: 1px solid #ddd; }
.filters label { margin-right: 1.5em; }
""".strip()

# Sorting and filtering: no library, no network. Each header's data-order is the direction of its
# first click ("desc" for agreement columns, "asc" for names, costs and ranks).
_JS = """
(function () {
  "use strict";
  function value(cell) {
    var v = cell.getAttribute("data-value");
    return v === null || v === "" ? null : parseFloat(v);
  }
  function sortTable(table, col, th) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var current = th.getAttribute("aria-sort");
    var first = th.getAttribute("data-order") === "desc" ? "descending" : "ascending";
    var dir = current === null ? first : (current === "ascending" ? "descending" : "ascending");
    var sign = dir === "ascending" ? 1 : -1;
    var numeric = th.getAttribute("data-type") === "number";
    var keyed = rows.map(function (row, i) {
      var cell = row.cells[col];
      return {row: row, i: i, v: numeric ? value(cell) : cell.textContent.trim()};
    });
    keyed.sort(function (a, b) {
      if (a.v === null || b.v === null) {
        return a.v === b.v ? a.i - b.i : (a.v === null ? 1 : -1);
      }
      var c = numeric ? a.v - b.v : a.v.localeCompare(b.v);
      return c !== 0 ? sign * c : a.i - b.i;
    });
    keyed.forEach(function (k) { body.appendChild(k.row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) {
      h.removeAttribute("aria-sort");
    });
    th.setAttribute("aria-sort", dir);
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      th.tabIndex = 0;
      th.title = "sort by this column";
      th.addEventListener("click", function () { sortTable(table, col, th); });
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortTable(table, col, th); }
      });
    });
  });
  var taskSelect = document.getElementById("task-filter");
  var nameInput = document.getElementById("estimator-filter");
  var usesSelect = document.getElementById("uses-filter");
  function applyFilters() {
    var task = taskSelect.value;
    var text = nameInput.value.trim().toLowerCase();
    var uses = usesSelect.value;
    Array.prototype.forEach.call(document.querySelectorAll("section.task"), function (s) {
      s.hidden = task !== "" && s.getAttribute("data-task") !== task;
    });
    Array.prototype.forEach.call(document.querySelectorAll("table.filterable tbody tr"),
      function (tr) {
        var name = (tr.getAttribute("data-estimator") || "").toLowerCase();
        var given = tr.getAttribute("data-uses") || "";
        tr.hidden = (text !== "" && name.indexOf(text) === -1) || (uses !== "" && given !== uses);
      });
  }
  taskSelect.addEventListener("change", applyFilters);
  usesSelect.addEventListener("change", applyFilters);
  nameInput.addEventListener("input", applyFilters);
  applyFilters();
})();
""".strip()


def _id(text: str) -> str:
    """`text` with characters other than letters, digits, "_", "." and "-" replaced by "-"."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", text)


def anchors(tables: list[Table]) -> list[str]:
    """The ids of the tables' sections, unique on the page: "task-" + task and version, then the
    gold-standard mode when it is not removal (e.g. "task-mnist-cnn-v1", "task-digits-mlp-v1-derivative"),
    then "-2", "-3", … for a further table of the same task and mode."""
    seen: Counter[str] = Counter()
    out = []
    for t in tables:
        base = _id(f"task-{t.task}-v{t.task_version}" + ("" if t.mode == REMOVAL else f"-{t.mode}"))
        seen[base] += 1
        out.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return out


def summary_anchor(mode: str, tuned: bool = False) -> str:
    """The id of the cross-task summary of one gold-standard mode: "across-tasks" for removal,
    "across-tasks-<mode>" otherwise; "-tuned" after it for the tuned track's."""
    base = "across-tasks" if mode == REMOVAL else _id(f"across-tasks-{mode}")
    return base + ("-tuned" if tuned else "")


def _method_anchor(name: str) -> str:
    return _id(f"method-{name}")


def _value(cell: Cell) -> str:
    return "" if cell.value is None else f' data-value="{cell.value!r}"'


def _header(head: list[str], numeric: list[bool], first_desc: list[bool]) -> str:
    ths = []
    for h, num, desc in zip(head, numeric, first_desc):
        kind = "number" if num else "text"
        ths.append(f'<th data-type="{kind}" data-order="{"desc" if desc else "asc"}">{escape(h)}</th>')
    return "<thead><tr>" + "".join(ths) + "</tr></thead>"


def _name_cell(estimator: str, label: str) -> str:
    """A row's first cell: the label, linked to its method's description (summary as tooltip)."""
    summary = method_of(estimator).summary
    title = f' title="{escape(summary)}"' if summary else ""
    return f'<td><a href="#{_method_anchor(base_name(estimator))}"{title}>{escape(label)}</a></td>'


def _task_table(table: Table) -> list[str]:
    """The task's one sortable, filterable table; the noise ceiling in the footer."""
    head, body = summary_cells(table)
    text = {"estimator", GIVEN}
    # agreement columns (horizons, LDS, LOO) sort best-first descending; names, best, cost, ranks ascending
    lower_better = {"fit + score (s)", "peak MB", f"best {table.gold['horizon_unit']}", TUNING_S}
    numeric = [h not in text for h in head]
    desc = [h not in text and h not in lower_better and "rank" not in h for h in head]
    lines = ['<table class="sortable filterable task-table">', _header(head, numeric, desc), "<tbody>"]
    for row, cells in zip(table.rows, body[:-1]):
        tds = [_name_cell(row.estimator, row.label), f"<td>{escape(cells[1].text)}</td>"] + [
            f'<td class="num"{_value(c)}>{escape(c.text)}</td>' for c in cells[2:]]
        lines.append(f'<tr data-estimator="{escape(row.label)}" data-uses="{escape(row.uses or "")}">'
                     + "".join(tds) + "</tr>")
    ceiling = body[-1]
    lines += ["</tbody>", "<tfoot><tr>" + f"<td>{escape(ceiling[0].text)}</td>"
              + "".join(f'<td class="num">{escape(c.text)}</td>' for c in ceiling[1:]) + "</tr></tfoot>",
              "</table>"]
    return lines


def _links(table: Table, spec: str | None) -> str:
    files = ", ".join(f'<a href="{escape(s)}">{escape(s)}</a>' for s in table.sources)
    spec_link = f'; task spec: <a href="{escape(spec)}">{escape(spec)}</a>' if spec else ""
    return f'<p class="note">Results files: {files}{spec_link}.</p>'


def _section(table: Table, aid: str, plot: str | None, spec: str | None) -> list[str]:
    """One task's section (id `aid`): gold standard, links, its table, plot, notes."""
    lines = [f'<section class="task" id="{aid}" data-task="{escape(table.task)}">',
             f'<h2>{escape(table.title)}<a class="anchor" href="#{aid}" aria-label="link to this '
             'section">#</a></h2>', f"<p>{escape(gold_line(table.gold))}</p>", _links(table, spec),
             *_task_table(table)]
    if plot:
        alt = escape(f"decay curve of {table.task}, {table.metric}")
        lines += [f'<p><a href="plots/{escape(plot)}.svg"><img src="plots/{escape(plot)}.png" '
                  f'alt="{alt}" loading="lazy"></a><br><a href="plots/{escape(plot)}.svg">SVG</a></p>']
    notes = table_notes(table)
    if notes:
        lines += ['<ul class="note">', *[f"<li>{escape(n)}</li>" for n in notes], "</ul>"]
    return lines + ["</section>"]


def _summary(mode: str, tables: list[Table], tuned: bool = False) -> list[str]:
    """The cross-task summary table of one mode (of its tuned track: `text.tuned_summary` tables),
    sortable, filterable by estimator name, and its note."""
    head, body = mean_rank_grid(tables)
    note = mean_rank_note(tables) + (" " + TUNED_SUMMARY_NOTE if tuned else "")
    lines = [f'<section id="{summary_anchor(mode, tuned)}">', f"<h2>{escape(summary_heading(mode, tuned))}</h2>",
             f'<p class="note">{escape(note)}</p>',
             '<table class="sortable filterable summary-table">',
             _header(head, [False] + [True] * (len(head) - 1), [False] * len(head)), "<tbody>"]
    for cells in body:
        name = cells[0].text
        uses = method_of(name).uses or ""
        lines.append(f'<tr data-estimator="{escape(name)}" data-uses="{escape(uses)}">' + _name_cell(name, name)
                     + "".join(f'<td class="num"{_value(c)}>{escape(c.text)}</td>' for c in cells[1:])
                     + "</tr>")
    return lines + ["</tbody>", "</table>", "</section>"]


def _methods(names: list[str]) -> list[str]:
    """The methods of the page's estimators: family, what each computes and where it comes from."""
    methods = [method_of(n) for n in names]
    lines = ['<section id="methods">', "<h2>Methods</h2>",
             '<p class="note">Every estimator returns score[j, i] = ∇f(z_j)ᵀ T ∇ℓ(z_i) for some '
             "transform T of the gradients (positive: removing training instance i increases the "
             "target at test point j). Adapters compute a native estimator with the library that made "
             "it known.</p>",
             '<table class="sortable filterable methods-table">',
             _header(["estimator", "family", GIVEN, "what it computes", "citation"], [False] * 5, [False] * 5),
             "<tbody>"]
    for m in methods:
        lines.append(f'<tr id="{_method_anchor(m.name)}" data-estimator="{escape(m.name)}" '
                     f'data-uses="{escape(m.uses or "")}">'
                     f"<td>{escape(m.name)}</td><td>{escape(m.family)}</td><td>{escape(input_label(m.uses))}</td>"
                     f"<td>{escape(_what(m))}</td>"
                     f"<td>{escape(m.citation or '—')}</td></tr>")
    return lines + ["</tbody>", "</table>", "</section>"]


def _what(m: Method) -> str:
    text = m.summary or "(not described by its class)"
    return f"{text} Adapter: {m.adapter_of}." if m.adapter_of else text


_SUBMIT = """
<section id="submit">
<h2>Submit your estimator</h2>
<ol>
<li>Write it as an <code>Estimator</code> subclass (<code>_fit(context)</code>,
<code>_score(test_idx, train_idx)</code>, scores of shape (n_test, n_train), positive = removing the
training instance increases the target), set <code>family</code>, <code>summary</code> and
<code>citation</code> on the class, and register it under the <code>tdabench.estimators</code>
entry-point group of your package (<code>docs/plugins.md</code> in the tdabench repository: a complete
example that passes every check).</li>
<li>Check it: <code>tdabench.testing.check_estimator(MyEstimator())</code> names every failed check.</li>
<li>Run it on the leaderboard's tasks with the suite's settings, e.g.
<pre>tdabench compare --task breast-cancer-mlp --seeds 5 --estimators my-estimator --out leaderboard/results/breast-cancer-mlp-my-estimator</pre>
(same seeds, horizons and evaluated sizes as the task's entry in
<code>benchmarks/leaderboard_suite.yaml</code>, so that its records join that task's table).</li>
<li>Rebuild the pages with <code>tdabench leaderboard --suite benchmarks/leaderboard_suite.yaml
--rebuild-only</code> and open a pull request with the new <code>results.json</code> and the
regenerated <code>leaderboard/</code>; never edit the pages by hand.</li>
</ol>
</section>
""".strip()


def _toc(tables: list[Table], ids: list[str], modes: list[tuple[str, bool]], extra: list[str],
         damping: bool = False) -> list[str]:
    """The contents: each (mode, tuned) summary, the best-damping section, each table, the extra
    section (the downstream evaluations), the methods."""
    items = [f'<li><a href="#{summary_anchor(mode, tuned)}">{escape(summary_heading(mode, tuned))}</a></li>'
             for mode, tuned in modes]
    items += [f'<li><a href="#best-damping">{escape(DAMPING_HEADING)}</a></li>'] if damping else []
    items += [f'<li><a href="#{aid}">{escape(t.title)}</a></li>' for t, aid in zip(tables, ids)]
    found = re.match(r'<section id="([^"]+)">', extra[0]) if extra else None
    if found and len(extra) > 1:  # the extra section's heading, without its tags
        items.append(f'<li><a href="#{found.group(1)}">{re.sub("<[^>]+>", "", extra[1])}</a></li>')
    items += ['<li><a href="#methods">Methods</a></li>', '<li><a href="#submit">Submit your estimator</a></li>']
    return ['<nav id="contents">', "<h2>Contents</h2>", "<ul>", *items, "</ul>", "</nav>"]


def _filters(tables: list[Table]) -> list[str]:
    tasks = sorted({t.task for t in tables})
    options = ['<option value="">all tasks</option>'] + [
        f'<option value="{escape(t)}">{escape(t)}</option>' for t in tasks]
    given = ['<option value="">any input</option>'] + [
        f'<option value="{escape(v)}">{escape(label)}</option>' for v, label in INPUT_LABELS.items()]
    return ['<div class="filters">',
            '<label>Task: <select id="task-filter">' + "".join(options) + "</select></label>",
            '<label>Given: <select id="uses-filter">' + "".join(given) + "</select></label>",
            '<label>Estimator name contains: <input id="estimator-filter" type="search" '
            'placeholder="e.g. if-"></label>', "</div>"]


def leaderboard_html(tables: list[Table], command: str | None = None,
                     plots: list[str] | None = None, specs: dict[str, str] | None = None,
                     extra: list[str] | None = None, damping_plot: str | None = None) -> str:
    """The index.html text; `plots` are `report.plots.plot_names(tables)` (no images when None),
    `specs` maps a task name to the link of its spec file (no link for a task not in it); `extra`:
    HTML lines of one more section (its first line `<section id="...">`, its second an <h2>) placed
    after the task sections and listed in the contents (the downstream evaluations); `damping_plot`:
    the stem of the best-damping plot (none when None)."""
    metric = tables[0].metric if tables else "pearson"
    specs = specs or {}
    lines = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             "<title>tdabench leaderboard</title>", f"<style>\n{_CSS}\n</style>", "</head>",
             "<body>", "<h1>tdabench leaderboard</h1>",
             "<p>Generated from results files by <code>tdabench leaderboard</code>; do not edit "
             "by hand. Click a column header to sort; filter by task or estimator name below.</p>"]
    if command:
        lines.append(f"<p>Command: <code>{escape(command)}</code></p>")
    lines += [f"<p>{escape(text)}</p>" for text in header_lines(tables)]
    lines += [f'<p class="note">{escape(text)}</p>' for text in legend_lines(metric)]
    ids, groups = anchors(tables), summary_groups(tables)
    summaries = [(mode, tuned) for mode, group in groups for tuned in (False, True) if not tuned or tuned_summary(group)]
    lines += _toc(tables, ids, summaries, extra or [], damping_plot is not None) + _filters(tables)
    for mode, group in groups:
        lines += _summary(mode, group)
        if tuned_summary(group):
            lines += _summary(mode, tuned_summary(group), tuned=True)
    if damping_plot:
        lines += ['<section id="best-damping">', f"<h2>{escape(DAMPING_HEADING)}</h2>",
                  f'<p class="note">{escape(DAMPING_NOTE)}</p>',
                  f'<p><a href="{escape(damping_plot)}.svg"><img src="{escape(damping_plot)}.png" '
                  'alt="best damping against 1/(ηT)" loading="lazy"></a></p>', "</section>"]
    for table, aid, plot in zip(tables, ids, plots or [None] * len(tables)):
        lines += _section(table, aid, plot, specs.get(table.task))
    lines += extra or []
    names = sorted({base_name(row.estimator) for t in tables for row in t.rows})
    lines += _methods(names) + [_SUBMIT, f"<script>\n{_JS}\n</script>"]
    return "\n".join(lines + ["</body>", "</html>"]) + "\n"
