"""The leaderboard as text: cell formatting, summary and horizon grids, page sentences, Markdown,
CSV and the terminal table of one results file.

Markdown and CSV are the README.md and leaderboard.csv of the pages (see `report.write`); the HTML
page (`report.html`) reuses the grids and sentences. Every text depends only on its tables.
"""

from __future__ import annotations

import csv
import io
import textwrap
from dataclasses import dataclass

from tdabench.compare import parameter_changes
from tdabench.estimators.inputs import input_label
from tdabench.report.tables import (BANDS, NORMAL_Z, Row, Table, band_horizons, build_leaderboard, mean_ranks,
                                    summary_groups)
from tdabench.report.tuned import choice_notes, rank_change, tuned_ranks, tuned_track
from tdabench.results import Record, Results, csv_cell, params_json
from tdabench.scoring.stats import BOOTSTRAP_LEVEL, BOOTSTRAP_RESAMPLES

DASH = "—"
GIVEN = "given"  # the column of what an estimator read (tdabench.estimators.inputs)
RANK_IN_GROUP = "rank, same input"
TUNED_RANK = "tuned rank"
TUNING_S = "tuning (s)"
CSV_COLUMNS = ("task", "task_version", "spec_hash", "estimator", "params", "horizon", "metric",
               "mean", "sem", "n_test", "n_skipped", "horizon_unit", "gold_mode", "gold_seeds",
               "ground_truth", "ci_low", "ci_high", "uses")


def format_cell(mean: float | None, sem: float | None) -> str:
    """"0.930 ± 0.010"; "0.930" without a standard error; "—" without a mean."""
    if mean is None:
        return DASH
    return f"{mean:.3f}" if sem is None else f"{mean:.3f} ± {sem:.3f}"


def format_interval(record: Record | None) -> str:
    """"0.930 [0.910, 0.950]" (mean [bootstrap interval]); `format_cell(mean, sem)` without an
    interval; "—" without a record or a mean."""
    if record is None or record.mean is None:
        return DASH
    if record.ci_low is None or record.ci_high is None:
        return format_cell(record.mean, record.sem)
    return f"{record.mean:.3f} [{record.ci_low:.3f}, {record.ci_high:.3f}]"


def format_seconds(seconds: float) -> str:
    """Three significant digits ("0.0048", "59.2", "179"), whole seconds from 1000 s on."""
    return f"{seconds:.0f}" if seconds >= 1000 else f"{seconds:.3g}"


@dataclass(frozen=True)
class Cell:
    """A summary cell: its text and the number it sorts by (None: nothing to sort by)."""

    text: str
    value: float | None = None


def _record_cell(record: Record | None) -> Cell:
    """`format_interval(record)`, sorted by the mean."""
    return Cell(format_interval(record), None if record is None else record.mean)


def _cost_cells(cost: dict | None) -> list[Cell]:
    """[fit + score seconds, peak MB], "—" where unknown."""
    cost = cost or {}
    fit, score, peak = cost.get("fit_s"), cost.get("score_s"), cost.get("peak_mem_mb")
    known = isinstance(fit, (int, float)) and isinstance(score, (int, float))
    seconds = Cell(format_seconds(fit + score), fit + score) if known else Cell(DASH)
    has_peak = isinstance(peak, (int, float))
    return [seconds, Cell(f"{peak:.0f}", float(peak)) if has_peak else Cell(DASH)]


def _rank_cell(rank: int | None) -> Cell:
    return Cell(DASH) if rank is None else Cell(str(rank), rank)


def _summary_row(row: Row, ranks: tuple[int | None, int | None], hs: list[int], with_loo: bool) -> list[Cell]:
    """One estimator's line of `summary_cells`; `ranks`: (rank, rank among the same input)."""
    best = row.best_horizon
    return ([Cell(row.label), Cell(input_label(row.uses))] + [_record_cell(row.cells.get(h)) for h in hs]
            + [Cell(DASH) if best is None else Cell(str(best), best), _record_cell(row.lds)]
            + ([_record_cell(row.loo)] if with_loo else [])
            + _cost_cells(row.cost) + [_rank_cell(r) for r in ranks])


def _tuned_cells(table: Table) -> list[list[Cell]]:
    """Per row: its tuned mean [interval] at the longest horizon ("—" with nothing tuned), its rank
    in the tuned track with the change from the default rank ("2 ↑1"), and its search seconds."""
    last = table.horizons[-1] if table.horizons else None
    tuned = table.tuning.rows if table.tuning else {}
    out = []
    for row, default, rank in zip(table.rows, table.ranks, tuned_ranks(table)):
        mine = tuned.get(row.estimator)
        search = (mine.cost or {}).get("search_s") if mine else None
        change = rank_change(default, rank)
        out.append([_record_cell(mine.cells.get(last) if mine else None),
                    Cell(DASH) if rank is None else Cell(f"{rank} {change}".strip(), rank),
                    Cell(format_seconds(search), search) if isinstance(search, (int, float)) else Cell(DASH)])
    return out


def summary_cells(table: Table) -> tuple[list[str], list[list[Cell]]]:
    """The task's one table: header and body (rows in table order, then the noise ceiling).

    Columns: estimator; what it was given (GIVEN); mean [interval] at every horizon; best horizon
    (among those columns); LDS; LOO (only when some row has it); fit + score seconds; peak MB; shared
    rank at the longest horizon, among all rows and among the rows given the same input; with a
    tuned track (`table.tuning`), then: the tuned setting's mean [interval] at the longest horizon,
    the rank in the tuned track with its change (`tuned.rank_change`) and the search seconds.
    """
    unit, hs = table.gold["horizon_unit"], table.horizons
    with_loo = any(row.loo is not None for row in table.rows)
    last = hs[-1] if hs else None
    head = (["estimator", GIVEN] + [f"{unit} {h}" for h in hs] + [f"best {unit}", "LDS"]
            + ([f"LOO ({table.metric})"] if with_loo else [])
            + ["fit + score (s)", "peak MB", f"rank at {unit} {last}", RANK_IN_GROUP]
            + ([f"tuned, {unit} {last}", TUNED_RANK, TUNING_S] if table.tuning else []))
    extra = _tuned_cells(table) if table.tuning else [[] for _ in table.rows]
    body = [_summary_row(row, ranks, hs, with_loo) + more
            for row, ranks, more in zip(table.rows, zip(table.ranks, table.group_ranks), extra)]
    ceiling = [Cell("noise ceiling"), Cell("")] + [Cell(format_cell(table.noise_ceiling.get(h), None),
                                              table.noise_ceiling.get(h)) for h in hs]
    body.append(ceiling + [Cell("")] * (len(head) - len(ceiling)))
    return head, body


def summary_grid(table: Table) -> tuple[list[str], list[list[str]]]:
    """`summary_cells` as strings."""
    head, body = summary_cells(table)
    return head, [[c.text for c in cells] for cells in body]


def mean_rank_grid(tables: list[Table]) -> tuple[list[str], list[list[Cell]]]:
    """The cross-task summary (`tables.mean_ranks`): estimator, then per band "mean rank (n tasks)"."""
    head = ["estimator"] + [f"mean rank, {band} horizon" for band in BANDS]
    body = [[Cell(m.estimator)] + [Cell(DASH) if (v := m.by_band[b]) is None
                                   else Cell(f"{v[0]:.2f} ({v[1]})", v[0]) for b in BANDS]
            for m in mean_ranks(tables)]
    return head, body


def summary_heading(mode: str, tuned: bool = False) -> str:
    """The heading of the cross-task summary of one gold-standard mode (of its tuned track)."""
    return f"Across tasks: mean rank against the {mode} gold standard" + (", tuned track" if tuned else "")


TUNED_SUMMARY_NOTE = ("The tuned track: only tasks with a tuned track, each estimator with the setting chosen for "
                      "all horizons on validation test points (its default where it has nothing to tune), "
                      "never both.")


def tuned_summary(tables: list[Table]) -> list[Table]:
    """The tuned tracks (`tuned.tuned_track`) of the tables that have one: what the tuned track's
    cross-task summary averages ([] when none has one)."""
    return [tuned_track(t) for t in tables if t.tuning]


def mean_rank_note(tables: list[Table]) -> str:
    """What the cross-task summary of `tables` (one `tables.summary_groups` entry) averages."""
    horizons = "; ".join(f"{t.task}: " + ", ".join(f"{t.gold['horizon_unit']} {h}"
                                                   for h in band_horizons(t).values())
                         for t in tables)
    mode = tables[0].mode if tables else "removal"
    return (f"Only tables against the {mode} gold standard are averaged here, one per task (the one "
            "with the most seeds where a task has several). "
            "Each cell averages, over the tasks where the estimator has a result (their number in "
            "brackets), its shared rank in that task's table (1 = best; estimators whose intervals "
            "overlap share a rank) at the task's shortest, middle and longest horizon. An estimator run "
            "with several parameter sets on one task counts with its best. Tasks have different "
            "horizon grids and numbers of estimators, so compare estimators within a column, not "
            f"columns. Horizons (shortest, middle, longest): {horizons}.")


def horizon_grid(table: Table) -> tuple[list[str], list[list[str]]]:
    """Every horizon: header and body, cells "mean ± sem", then the noise ceiling."""
    hs = table.horizons
    head = ["estimator"] + [f"{table.gold['horizon_unit']} {h}" for h in hs]
    body = [[row.label] + [format_cell(row.cells[h].mean, row.cells[h].sem) if h in row.cells
                           else DASH for h in hs] for row in table.rows]
    return head, body + [["noise ceiling"] + [format_cell(table.noise_ceiling.get(h), None)
                                              for h in hs]]


def gold_line(gold: dict) -> str:
    """One sentence on the gold-standard settings of a table."""
    mode = gold["mode"] + (f" (ε = {gold['epsilon']})" if gold.get("epsilon") is not None else "")
    centered = "centered" if gold["centered"] else "not centered"
    return (f"Gold standard: further training, {mode}, {gold['seeds']} seeds, horizons in "
            f"{gold['horizon_unit']}s, {gold['n_train_evaluated']} training instances × "
            f"{gold['n_test']} test points, {centered}.")


def _skipped(rows: list[Row], horizons: list[int]) -> dict[int, int]:
    """Per horizon, the most test points any estimator had to skip (undefined agreement)."""
    return {h: max((r.cells[h].n_skipped for r in rows if h in r.cells), default=0)
            for h in horizons}


def table_notes(table: Table) -> list[str]:
    """The table's footnotes, the estimators that failed and why, then a note on skipped test
    points if any were skipped."""
    unit, notes = table.gold["horizon_unit"], list(table.footnotes)
    notes += [f"{name} did not run: {error}" for name, error in table.failures.items()]
    notes += choice_notes(table)
    notes += drift_notes(table)
    skipped = {h: n for h, n in _skipped(table.rows, table.horizons).items() if n}
    if skipped:
        notes.append("test points skipped as undefined (e.g. saturated, zero gold row), most over "
                     "estimators: " + ", ".join(f"{unit} {h}: {n}" for h, n in skipped.items()))
    return notes


def drift_notes(table: Table) -> list[str]:
    """One note per distinct change: the rows made with other resolved parameters than this
    tdabench gives the same request (`compare.parameter_changes`, e.g. results older than a default),
    so that a reader knows which cells a rerun of the suite would change."""
    changed: dict[str, list[str]] = {}
    for row in table.rows:
        diff = parameter_changes(row.estimator, row.params)
        if diff:
            then = ", ".join(f"{k}={old}" for k, (old, _) in diff.items())
            now = ", ".join(f"{k}={new}" for k, (_, new) in diff.items())
            changed.setdefault(f"run with {then}, where today's defaults are {now}", []).append(row.label)
    return [f"{', '.join(sorted(labels))}: {text}; rerunning the suite refreshes them"
            for text, labels in changed.items()]


def header_lines(tables: list[Table]) -> list[str]:
    """Plain sentences for the top of a leaderboard page: the seeds and the results' dates."""
    if not tables:
        return ["No results files."]
    seeds = "; ".join(f"{t.title}: {t.gold['seeds']}" for t in tables)
    lines = [f"Further-training seeds averaged in each gold standard: {seeds}."]
    drifted = [t.title for t in tables if drift_notes(t)]
    if drifted:
        lines.append("Made in part with estimator parameters that are no longer the defaults (their notes say "
                     "which): " + "; ".join(drifted) + ".")
    dates = sorted(d for t in tables for d in t.dates)
    if dates:
        span = dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}"
        lines.append(f"Results dated {span}.")
    return lines


def legend_lines(metric: str) -> list[str]:
    """What the summary columns mean."""
    level = f"{BOOTSTRAP_LEVEL * 100:g} %"
    return [f"Metric: {metric}. Cells: mean over test points [{level} percentile-bootstrap "
            f"interval, {BOOTSTRAP_RESAMPLES} resamples of the test points] (mean ± standard "
            "error where a results file has no interval).",
            "Rows: by rank at the longest horizon, then by the mean over horizons. given: what the "
            "estimator read besides the data (the final model only, the training checkpoints, the "
            "gold standard's further-training recipe, or retrained models); rank, same input: the "
            "rank among the estimators given the same. best: the "
            "horizon with the highest mean. LDS: linear datamodeling score (mean "
            "Spearman over test points against retraining on random subsets). LOO: agreement "
            "with leave-one-out retraining from scratch. fit + score and peak MB: the "
            "estimator's cost in that run.",
            "rank: 1 + the number of estimators whose interval at the longest horizon lies "
            "entirely above this one's; estimators with overlapping intervals share a rank "
            f"(mean ± {NORMAL_Z:.2f} standard errors for results files without intervals)."]


def _md_table(head: list[str], body: list[list[str]]) -> list[str]:
    """A Markdown table: the first column left-aligned, the others right; "|" escaped in cells."""
    return (["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
            + ["| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |" for cells in body])


def _markdown(table: Table, plot: str | None) -> list[str]:
    """One table's section of the README: gold standard, results files, the table, plot, notes."""
    lines = [f"## {table.title}", "", gold_line(table.gold), "",
             "Results files: " + ", ".join(f"`{s}`" for s in table.sources), "",
             *_md_table(*summary_grid(table)), ""]
    if plot:
        lines += [f"![decay curve of {table.task}, {table.metric}](plots/{plot}.png) "
                  f"([SVG](plots/{plot}.svg))", ""]
    notes = table_notes(table)
    return lines + ([f"- {n}" for n in notes] + [""] if notes else [])


def _summary_markdown(mode: str, tables: list[Table], tuned: bool) -> list[str]:
    head, body = mean_rank_grid(tables)
    note = mean_rank_note(tables) + (" " + TUNED_SUMMARY_NOTE if tuned else "")
    return [f"## {summary_heading(mode, tuned)}", "", note, "",
            *_md_table(head, [[c.text for c in cells] for cells in body]), ""]


DAMPING_HEADING = "Damping is the horizon: the tuned damping per horizon against 1/(ηT)"
DAMPING_NOTE = ("For each damped estimator of each task further-trained by SGD with a tuned track: the damping "
                "chosen on validation test points for each horizon (absolute units) against 1/(ηT), η the "
                "further-training learning rate and T the horizon in steps; DESIGN.md §4 predicts the best damping "
                "of an influence function falls like 1/(ηT) under SGD. Data: best_damping.csv (every tuned "
                "task, AdamW ones included, with the optimizer in a column).")


def leaderboard_markdown(tables: list[Table], command: str | None = None,
                         plots: list[str] | None = None, damping_plot: str | None = None) -> str:
    """The README.md text; `command` is quoted in the header, `plots` are `report.plots.plot_names(tables)`
    (no images when None); `damping_plot`: the stem of the best-damping plot (none when None)."""
    sources = sorted({s for t in tables for s in t.sources})
    head = ([f"Command: `{command}`"] if command else []) + header_lines(tables)
    metric = tables[0].metric if tables else "pearson"
    lines = ["# tdabench leaderboard", "",
             "Generated from results files by `tdabench leaderboard`; do not edit by hand.", "",
             *[line for text in head + legend_lines(metric) for line in (text, "")],
             "Results files used:", *[f"- `{s}`" for s in sources], ""]
    for mode, group in summary_groups(tables):
        lines += _summary_markdown(mode, group, False)
        if tuned_summary(group):
            lines += _summary_markdown(mode, tuned_summary(group), True)
    if damping_plot:
        lines += [f"## {DAMPING_HEADING}", "", DAMPING_NOTE, "",
                  f"![best damping against 1/(ηT)]({damping_plot}.png) ([SVG]({damping_plot}.svg))", ""]
    for table, plot in zip(tables, plots or [None] * len(tables)):
        lines += _markdown(table, plot)
    return "\n".join(lines).rstrip("\n") + "\n"


def _csv_records(row: Row) -> list[Record]:
    """A row's further-training records by horizon, then its LOO and LDS records."""
    return [row.cells[h] for h in sorted(row.cells)] + [r for r in (row.loo, row.lds) if r]


def _csv_values(t: Table, row: Row, r: Record) -> tuple:
    """The CSV_COLUMNS values of one record of a row of a table (params: the record's, which in a
    row of the default track are the row's)."""
    return (t.task, t.task_version, t.spec_hash, row.estimator, params_json(r.params),
            r.horizon, r.metric, r.mean, r.sem, r.n_test, r.n_skipped, t.gold["horizon_unit"],
            t.gold["mode"], t.gold["seeds"], r.ground_truth, r.ci_low, r.ci_high, row.uses)


def leaderboard_csv(tables: list[Table]) -> str:
    """Long format, one line per record of every table (further training by horizon, then LOO
    and LDS), with the columns CSV_COLUMNS; then the tuned track's rows (estimator "<label>
    (tuned)", "<label> (tuned per horizon)")."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for t in tables:
        tuned = [] if t.tuning is None else [*t.tuning.rows.values(), *t.tuning.per_horizon.values()]
        for row in t.rows + sorted(tuned, key=lambda row: row.label):
            for r in _csv_records(row):
                writer.writerow([csv_cell(v) for v in _csv_values(t, row, r)])
    return buf.getvalue()


def _aligned(grid: tuple[list[str], list[list[str]]]) -> list[str]:
    """Header and body as padded text lines: the first column left-aligned, the others right."""
    lines = [grid[0], *grid[1]]
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                      enumerate(zip(line, widths))).rstrip() for line in lines]


def interval_grid(table: Table) -> tuple[list[str], list[list[str]]]:
    """Every horizon: header and body (estimator, what it was given, one column per horizon), cells
    "mean [interval]" (`format_interval`), then the ceiling."""
    hs = table.horizons
    head = ["estimator", GIVEN] + [f"{table.gold['horizon_unit']} {h}" for h in hs]
    body = [[row.label, input_label(row.uses)] + [format_interval(row.cells.get(h)) for h in hs] for row in table.rows]
    return head, body + [["noise ceiling", ""] + [format_cell(table.noise_ceiling.get(h), None) for h in hs]]


def _number(cost: dict, key: str, fmt) -> str:
    value = cost.get(key)
    return fmt(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else DASH


def cost_grid(table: Table) -> tuple[list[str], list[list[str]]]:
    """Per estimator: fit seconds, score seconds and peak memory (MB) of its run, "—" where unknown."""
    head = ["estimator", "fit (s)", "score (s)", "peak MB"]
    body = [[row.label, _number(row.cost or {}, "fit_s", format_seconds),
             _number(row.cost or {}, "score_s", format_seconds),
             _number(row.cost or {}, "peak_mem_mb", lambda v: f"{v:.0f}")] for row in table.rows]
    return head, body


def terminal_legend(width: int = 100) -> list[str]:
    """What the terminal table's cells and ceiling are, wrapped to `width` columns."""
    level = f"{BOOTSTRAP_LEVEL * 100:g} %"
    return textwrap.wrap(f"cells: mean over test points [{level} percentile-bootstrap interval of the mean, "
                         f"{BOOTSTRAP_RESAMPLES} resamples of the test points]; a cell without an interval "
                         "shows mean ± one standard error. noise ceiling: the agreement a perfect estimator "
                         "is expected to reach with this gold standard, itself an estimate "
                         "(docs/method.md).", width)


def render_terminal_table(results: Results, metric: str) -> str:
    """Plain-text report of one results file: estimators × horizons (mean [interval]) with the noise
    ceiling, what the cells are, skipped test points, each estimator's cost, errors."""
    table = build_leaderboard([results], metric)[0]
    unit = table.gold["horizon_unit"]
    lines = [f"{table.title}  [{metric}]", *_aligned(interval_grid(table)), *terminal_legend()]
    skipped = _skipped(table.rows, table.horizons)
    lines.append("skipped test points (undefined, e.g. saturated): "
                 + ", ".join(f"{unit} {h}: {n}" for h, n in skipped.items()))
    if table.rows:
        lines += ["cost per estimator in this run:", *("  " + line for line in _aligned(cost_grid(table)))]
    if results.errors:
        lines += ["errors:"] + [f"  {name}: {msg}" for name, msg in sorted(results.errors.items())]
    return "\n".join(lines) + "\n"
