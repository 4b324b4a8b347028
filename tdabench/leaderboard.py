"""Leaderboard tables generated from results files (DESIGN.md §6): Markdown, CSV, HTML, terminal.

Results are grouped by task name, task version and spec hash, and further by the gold-standard
settings (mode, ε, centering, seeds, horizon unit, evaluated sizes), so records scored against
different gold standards never share a table. Rows are estimators (labelled with their params when
one estimator appears with several param sets), columns are horizons, cells "mean ± sem", and a
last row gives the noise ceiling. Further-training records fill the horizon cells; a row also
carries the estimator's leave-one-out ("loo", in the table's metric) and LDS records and its cost.
When several files in a group hold the same estimator + params (per ground truth), the newest (by
`date`) wins and a footnote says so. Output depends only on the inputs (no clock, no host).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from statistics import NormalDist

from tdabench.errors import UnknownNameError
from tdabench.metrics import METRICS
from tdabench.results import (FURTHER_TRAINING, Record, Results, atomic_write_text, params_json,
                              read_results)
from tdabench.stats import BOOTSTRAP_LEVEL, BOOTSTRAP_RESAMPLES, shared_ranks

DASH = "—"
LOO, LDS = "loo", "lds"
CSV_COLUMNS = ("task", "task_version", "spec_hash", "estimator", "params", "horizon", "metric",
               "mean", "sem", "n_test", "n_skipped", "horizon_unit", "gold_mode", "gold_seeds",
               "ground_truth", "ci_low", "ci_high")


@dataclass(frozen=True)
class Row:
    """One estimator with one param set; `cells` maps horizon → its further-training record.

    `loo`/`lds`: its leave-one-out (table metric) and LDS records, None when absent; `cost`: its
    entry of the results file's cost["estimators"] ({"fit_s", "score_s", "peak_mem_mb", ...}) or None.
    """

    label: str
    estimator: str
    params: dict
    cells: dict[int, Record]
    loo: Record | None = None
    lds: Record | None = None
    cost: dict | None = None

    @property
    def best_horizon(self) -> int | None:
        """The horizon with the highest mean (the shortest among equal means); None without one."""
        known = [(r.mean, -h) for h, r in self.cells.items() if r.mean is not None]
        return -max(known)[1] if known else None


@dataclass(frozen=True)
class Table:
    """One leaderboard table: one task version and spec hash, one gold standard, one metric.

    `gold` holds the gold-standard settings; `sources` every results file of the group (superseded
    ones included, see `footnotes`); `noise_ceiling` maps horizon → value (None if unknown);
    `dates` the sorted dates of the group's results files; `failures` the estimators whose newest
    results file records an error instead of results, with that error.
    """

    task: str
    task_version: int
    spec_hash: str
    metric: str
    gold: dict
    horizons: list[int]
    rows: list[Row]
    noise_ceiling: dict[int, float | None]
    sources: list[str]
    footnotes: list[str]
    dates: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  # estimator → why it has no results

    @property
    def title(self) -> str:
        """e.g. "breast-cancer-mlp v1 (spec sha256:0123456789ab)": first 12 digits of the hash."""
        algo, _, digest = self.spec_hash.rpartition(":")
        return f"{self.task} v{self.task_version} (spec {algo + ':' if algo else ''}{digest[:12]})"

    @property
    def key_horizons(self) -> list[int]:
        """The shortest, a middle (index ⌊(n − 1)/2⌋ of the sorted grid) and the longest horizon,
        without repeats."""
        h = self.horizons
        return sorted({h[0], h[(len(h) - 1) // 2], h[-1]}) if h else []

    @property
    def ranks(self) -> list[int | None]:
        """Per row, `stats.shared_ranks` at the longest horizon; None for a row without a mean
        there. A cell's interval is its bootstrap interval, or mean ± z·sem (z the normal quantile
        of BOOTSTRAP_LEVEL, 1.96) for records written without one, or the mean alone."""
        cells = [row.cells.get(self.horizons[-1]) if self.horizons else None for row in self.rows]
        means = [None if c is None else c.mean for c in cells]
        bounds = [_interval(c) for c in cells]
        ranks = shared_ranks(means, [b[0] for b in bounds], [b[1] for b in bounds])
        return [None if m is None else k for m, k in zip(means, ranks)]


_Z = NormalDist().inv_cdf(0.5 + BOOTSTRAP_LEVEL / 2.0)


def _interval(record: Record | None) -> tuple[float | None, float | None]:
    """(low, high): the record's bootstrap interval, else mean ± _Z·sem, else (None, None)."""
    if record is None or record.mean is None:
        return None, None
    if record.ci_low is not None and record.ci_high is not None:
        return record.ci_low, record.ci_high
    if record.sem is not None:
        return record.mean - _Z * record.sem, record.mean + _Z * record.sem
    return None, None


def _label(estimator: str, params: dict, several: bool) -> str:
    """`name`, or `name(k=v, ...)` (sorted keys, JSON values) if the estimator has several params."""
    if not several or not params:
        return estimator
    inner = ", ".join(f"{k}={v if isinstance(v, str) else params_json(v)}"
                      for k, v in sorted(params.items()))
    return f"{estimator}({inner})"


_Key = tuple[str, str]  # (estimator, params_json)
_Found = dict[_Key, tuple[list[Record], Results]]


def _cost(res: Results, estimator: str) -> dict | None:
    costs = res.cost.get("estimators") if isinstance(res.cost, dict) else None
    entry = costs.get(estimator) if isinstance(costs, dict) else None
    return entry if isinstance(entry, dict) else None


def _attach(ft: _Found, extras: dict[str, _Found]) -> dict[_Key, dict[str, tuple[list[Record], Results]]]:
    """Rows' keys → {ground truth: (records, file)}: a loo/lds entry joins the further-training
    row with the same estimator and params, else the only row of that estimator name that lacks
    one, else it gets a row of its own."""
    rows: dict[_Key, dict[str, tuple[list[Record], Results]]] = {k: {FURTHER_TRAINING: v}
                                                                 for k, v in ft.items()}
    for gt, found in extras.items():
        for key, value in sorted(found.items(), key=lambda kv: kv[0]):
            if key not in rows:
                same = [k for k in rows if k[0] == key[0] and gt not in rows[k]]
                if len(same) == 1:
                    key = same[0]
            rows.setdefault(key, {})[gt] = value
    return rows


def _rows(ft: _Found, extras: dict[str, _Found], horizons: list[int]) -> list[Row]:
    """Rows sorted by mean at the longest horizon, descending (no mean last), then by label."""
    joined = _attach(ft, extras)
    counts = Counter(est for est, _ in joined)
    rows = []
    for (est, pk), parts in joined.items():
        cells = {r.horizon: r for r in parts.get(FURTHER_TRAINING, ([], None))[0]}
        extra = {gt: max(parts[gt][0], key=lambda r: r.horizon) for gt in (LOO, LDS) if gt in parts}
        source = next(parts[gt][1] for gt in (FURTHER_TRAINING, LOO, LDS) if gt in parts)
        rows.append(Row(_label(est, json.loads(pk), counts[est] > 1), est, json.loads(pk), cells,
                        extra.get(LOO), extra.get(LDS), _cost(source, est)))
    last = max(horizons, default=None)

    def key(row: Row) -> tuple:
        mean = row.cells[last].mean if last in row.cells else None
        return (mean is None, -(mean or 0.0), row.label, params_json(row.params))
    return sorted(rows, key=key)


def _gold_settings(r: Results) -> tuple:
    g = r.gold_standard
    return (g.mode, g.epsilon, g.centered, g.seeds, g.horizon_unit, g.n_train_evaluated, g.n_test)


def _group_key(r: Results) -> tuple:
    return (r.task.name, r.task.version, r.task.spec_hash) + tuple(map(str, _gold_settings(r)))


def _age(r: Results) -> tuple:
    """Sort key, oldest first: the parsed `date` (naive = UTC; unparsable = oldest), then origin."""
    try:
        d = datetime.fromisoformat(r.date.replace("Z", "+00:00"))
    except ValueError:
        return (0, 0.0, r.date, _origin(r))
    d = d if d.tzinfo else d.replace(tzinfo=timezone.utc)
    return (1, d.timestamp(), r.date, _origin(r))


def _origin(r: Results) -> str:
    return r.origin or f"<results of {r.date}>"


def _newest(group: list[Results]) -> tuple[dict[tuple[str, str, str], Results], list[str]]:
    """Per (ground truth, estimator, params), the newest file holding records of it; footnotes."""
    owner: dict[tuple[str, str, str], list[Results]] = {}
    for res in sorted(group, key=_age):
        for rec in res.records:
            files = owner.setdefault((rec.ground_truth, rec.estimator, params_json(rec.params)), [])
            if not files or files[-1] is not res:
                files.append(res)
    newest, notes = {}, []
    for (gt, est, pk), files in sorted(owner.items()):
        newest[(gt, est, pk)] = files[-1]
        if len(files) > 1:
            old = ", ".join(_origin(f) for f in files[:-1])
            what = "" if gt == FURTHER_TRAINING else f" ({gt})"
            notes.append(f"{_label(est, json.loads(pk), True)}{what}: newest results used "
                         f"({_origin(files[-1])}, {files[-1].date}); superseded: {old}")
    return newest, notes


def _pick(newest: dict[tuple[str, str, str], Results], ground_truth: str, metric: str) -> _Found:
    """(estimator, params) → (its records of `ground_truth` and `metric` in its newest file, file)."""
    out: _Found = {}
    for (gt, est, pk), res in newest.items():
        recs = [r for r in res.records if r.ground_truth == gt == ground_truth
                and r.estimator == est and r.metric == metric and params_json(r.params) == pk]
        if recs:
            out[(est, pk)] = (recs, res)
    return out


def _ceiling(group: list[Results], horizons: list[int], metric: str) -> dict[int, float | None]:
    """Noise ceiling per horizon from the newest file that reports it."""
    out: dict[int, float | None] = {h: None for h in horizons}
    for res in sorted(group, key=_age):
        for c in res.gold_standard.noise_ceiling:
            if c.metric == metric and c.value is not None:
                out[c.horizon] = c.value
    return out


def _failures(group: list[Results]) -> dict[str, str]:
    """Estimator → its error, for those whose newest mention in the group is an error."""
    out: dict[str, str] = {}
    for res in sorted(group, key=_age):
        for name in {r.estimator for r in res.records}:
            out.pop(name, None)
        out.update(res.errors)
    return dict(sorted(out.items()))


def _table(group: list[Results], metric: str) -> Table:
    first = group[0]
    newest, notes = _newest(group)
    ft = _pick(newest, FURTHER_TRAINING, metric)
    extras = {LOO: _pick(newest, LOO, metric), LDS: _pick(newest, LDS, LDS)}
    horizons = sorted({h for r in group for h in r.gold_standard.horizons}
                      | {r.horizon for recs, _ in ft.values() for r in recs})
    g = first.gold_standard
    gold = {"mode": g.mode, "epsilon": g.epsilon, "centered": g.centered, "seeds": g.seeds,
            "horizon_unit": g.horizon_unit, "n_train_evaluated": g.n_train_evaluated,
            "n_test": g.n_test}
    return Table(first.task.name, first.task.version, first.task.spec_hash, metric, gold, horizons,
                 _rows(ft, extras, horizons), _ceiling(group, horizons, metric),
                 sorted({_origin(r) for r in group}), notes, sorted(r.date for r in group), _failures(group))


def build_leaderboard(results: list[Results], metric: str = "cosine") -> list[Table]:
    """One Table per (task name, version, spec hash, gold-standard settings), sorted by that key."""
    if metric not in METRICS:
        raise UnknownNameError("metric", metric, list(METRICS))
    groups: dict[tuple, list[Results]] = {}
    for r in results:
        groups.setdefault(_group_key(r), []).append(r)
    return [_table(groups[k], metric) for k in sorted(groups)]


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


def _cost_cells(cost: dict | None) -> list[str]:
    """[fit + score seconds, peak MB], "—" where unknown."""
    cost = cost or {}
    fit, score, peak = cost.get("fit_s"), cost.get("score_s"), cost.get("peak_mem_mb")
    seconds = format_seconds(fit + score) if isinstance(fit, (int, float)) and isinstance(
        score, (int, float)) else DASH
    return [seconds, f"{peak:.0f}" if isinstance(peak, (int, float)) else DASH]


def summary_grid(table: Table) -> tuple[list[str], list[list[str]]]:
    """The per-task summary: header and body (rows, then the noise ceiling), as strings.

    Columns: estimator; mean [interval] at `table.key_horizons`; best horizon; LDS; LOO (only when
    some row has it); fit + score seconds; peak MB; shared rank at the longest horizon.
    """
    unit, keys = table.gold["horizon_unit"], table.key_horizons
    with_loo = any(row.loo is not None for row in table.rows)
    last = table.horizons[-1] if table.horizons else None
    head = (["estimator"] + [f"{unit} {h}" for h in keys] + [f"best {unit}", "LDS"]
            + ([f"LOO ({table.metric})"] if with_loo else [])
            + ["fit + score (s)", "peak MB", f"rank at {unit} {last}"])
    body = []
    for row, rank in zip(table.rows, table.ranks):
        best = row.best_horizon
        body.append([row.label] + [format_interval(row.cells.get(h)) for h in keys]
                    + [DASH if best is None else str(best), format_interval(row.lds)]
                    + ([format_interval(row.loo)] if with_loo else [])
                    + _cost_cells(row.cost) + [DASH if rank is None else str(rank)])
    ceiling = ["noise ceiling"] + [format_cell(table.noise_ceiling.get(h), None) for h in keys]
    body.append(ceiling + [""] * (len(head) - len(ceiling)))
    return head, body


def _grid(rows: list[Row], ceiling: dict[int, float | None],
          horizons: list[int]) -> list[list[str]]:
    """Body cells: one line per row, then the noise-ceiling line."""
    body = [[row.label] + [format_cell(row.cells[h].mean, row.cells[h].sem) if h in row.cells
                           else DASH for h in horizons] for row in rows]
    return body + [["noise ceiling"] + [format_cell(ceiling.get(h), None) for h in horizons]]


def horizon_grid(table: Table) -> tuple[list[str], list[list[str]]]:
    """Every horizon: header and body, cells "mean ± sem", then the noise ceiling."""
    head = ["estimator"] + [f"{table.gold['horizon_unit']} {h}" for h in table.horizons]
    return head, _grid(table.rows, table.noise_ceiling, table.horizons)


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
    skipped = {h: n for h, n in _skipped(table.rows, table.horizons).items() if n}
    if skipped:
        notes.append("test points skipped as undefined (e.g. saturated, zero gold row), most over "
                     "estimators: " + ", ".join(f"{unit} {h}: {n}" for h, n in skipped.items()))
    return notes


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


def header_lines(tables: list[Table]) -> list[str]:
    """Plain sentences for the top of a leaderboard page: the seeds and the results' dates."""
    if not tables:
        return ["No results files."]
    seeds = "; ".join(f"{t.title}: {t.gold['seeds']}" for t in tables)
    lines = [f"Further-training seeds averaged in each gold standard: {seeds}."]
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
            "best: the horizon with the highest mean. LDS: linear datamodeling score (mean "
            "Spearman over test points against retraining on random subsets). LOO: agreement "
            "with leave-one-out retraining from scratch. fit + score and peak MB: the "
            "estimator's cost in that run.",
            "rank: 1 + the number of estimators whose interval at the longest horizon lies "
            "entirely above this one's; estimators with overlapping intervals share a rank "
            f"(mean ± {_Z:.2f} standard errors for results files without intervals)."]


def _md_table(head: list[str], body: list[list[str]]) -> list[str]:
    return (["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
            + ["| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |" for cells in body])


def _markdown(table: Table, plot: str | None) -> list[str]:
    lines = [f"## {table.title}", "", gold_line(table.gold), "", *_md_table(*summary_grid(table)),
             ""]
    if plot:
        lines += [f"![decay curve of {table.task}, {table.metric}](plots/{plot}.png) "
                  f"([SVG](plots/{plot}.svg))", ""]
    lines += [f"Metric: {table.metric}; cells: mean ± standard error over test points.", "",
              "Results files: " + ", ".join(f"`{s}`" for s in table.sources), "",
              *_md_table(*horizon_grid(table))]
    notes = table_notes(table)
    return lines + ([""] + [f"- {n}" for n in notes] if notes else []) + [""]


def leaderboard_markdown(tables: list[Table], command: str | None = None,
                         plots: list[str] | None = None) -> str:
    """The README.md text; `command` is quoted in the header, `plots` are `plot_names(tables)`
    (no images when None)."""
    sources = sorted({s for t in tables for s in t.sources})
    head = ([f"Command: `{command}`"] if command else []) + header_lines(tables)
    metric = tables[0].metric if tables else "pearson"
    lines = ["# tdabench leaderboard", "",
             "Generated from results files by `tdabench leaderboard`; do not edit by hand.", "",
             *[line for text in head + legend_lines(metric) for line in (text, "")],
             "Results files used:", *[f"- `{s}`" for s in sources], ""]
    for table, plot in zip(tables, plots or [None] * len(tables)):
        lines += _markdown(table, plot)
    return "\n".join(lines).rstrip("\n") + "\n"


def _csv_records(row: Row) -> list[Record]:
    """A row's further-training records by horizon, then its LOO and LDS records."""
    return [row.cells[h] for h in sorted(row.cells)] + [r for r in (row.loo, row.lds) if r]


def leaderboard_csv(tables: list[Table]) -> str:
    """Long format, one line per record of every table (further training by horizon, then LOO
    and LDS), with the columns CSV_COLUMNS."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for t in tables:
        for row in t.rows:
            for r in _csv_records(row):
                values = (t.task, t.task_version, t.spec_hash, row.estimator,
                          params_json(row.params), r.horizon, r.metric, r.mean, r.sem, r.n_test,
                          r.n_skipped, t.gold["horizon_unit"], t.gold["mode"], t.gold["seeds"],
                          r.ground_truth, r.ci_low, r.ci_high)
                writer.writerow(["" if v is None else repr(v) if isinstance(v, float) else v
                                 for v in values])
    return buf.getvalue()


def results_files(folder: str | Path) -> list[Path]:
    """Every `results.json` under `folder` (any depth), sorted; [] when the folder is missing."""
    return sorted(Path(folder).rglob("results.json")) if Path(folder).is_dir() else []


def read_relative(paths: list[str | Path], out_dir: str | Path) -> list[Results]:
    """Read results files (files or folders); each origin becomes the file's path relative to
    `out_dir`, with "/", so the pages link to it and do not depend on where the checkout lies."""
    out = Path(out_dir).resolve()
    results = []
    for p in paths:
        r = read_results(p)
        rel = Path(os.path.relpath(Path(r.origin or p).resolve(), out)).as_posix()
        results.append(dataclasses.replace(r, origin=rel))
    return results


def write_leaderboard(tables: list[Table], out_dir: str | Path, command: str | None = None,
                      plots: bool = True) -> list[Path]:
    """Write `README.md`, `leaderboard.csv`, `index.html` and (with `plots`) the decay plots
    `plots/<name>.png/.svg` into `out_dir`, atomically; older *.png/*.svg files in `plots/` that
    this build did not write are removed. Returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from tdabench.html_report import leaderboard_html
    names = plot_names(tables) if plots else None
    paths = [out / "README.md", out / "leaderboard.csv", out / "index.html"]
    atomic_write_text(paths[0], leaderboard_markdown(tables, command, names))
    atomic_write_text(paths[1], leaderboard_csv(tables))
    atomic_write_text(paths[2], leaderboard_html(tables, command, names))
    if names is not None:
        from tdabench.plots import write_decay_plot
        folder = out / "plots"
        folder.mkdir(exist_ok=True)
        for table, name in zip(tables, names):
            paths += write_decay_plot(table, folder / name)
        for old in sorted(folder.glob("*")):
            if old.suffix in (".png", ".svg") and old not in paths:
                old.unlink()
    return paths


def render_terminal_table(results: Results, metric: str) -> str:
    """Plain-text table of one results file: estimators × horizons, noise ceiling, skips, errors."""
    table = build_leaderboard([results], metric)[0]
    unit = table.gold["horizon_unit"]
    grid = [["estimator"] + [f"{unit} {h}" for h in table.horizons]]
    grid += _grid(table.rows, table.noise_ceiling, table.horizons)
    widths = [max(len(line[i]) for line in grid) for i in range(len(grid[0]))]
    lines = [f"{table.title}  [{metric}]"]
    lines += ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                        enumerate(zip(line, widths))).rstrip() for line in grid]
    skipped = _skipped(table.rows, table.horizons)
    lines.append("skipped test points (undefined, e.g. saturated): "
                 + ", ".join(f"{unit} {h}: {n}" for h, n in skipped.items()))
    if results.errors:
        lines += ["errors:"] + [f"  {name}: {msg}" for name, msg in sorted(results.errors.items())]
    return "\n".join(lines) + "\n"
