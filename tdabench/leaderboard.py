"""Leaderboard tables generated from results files (DESIGN.md §6): Markdown, CSV and the terminal.

Results are grouped by task name, task version and spec hash, and further by the gold-standard
settings (mode, ε, centering, seeds, horizon unit, evaluated sizes), so records scored against
different gold standards never share a table. Rows are estimators (labelled with their params when
one estimator appears with several param sets), columns are horizons, cells "mean ± sem", and a
last row gives the noise ceiling. When several files in a group hold the same estimator + params,
the newest (by `date`) wins and a footnote says so. Output depends only on the inputs.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from tdabench.errors import UnknownNameError
from tdabench.metrics import METRICS
from tdabench.results import Record, Results, atomic_write_text, params_json

DASH = "—"
CSV_COLUMNS = ("task", "task_version", "spec_hash", "estimator", "params", "horizon", "metric",
               "mean", "sem", "n_test", "n_skipped", "horizon_unit", "gold_mode", "gold_seeds")


@dataclass(frozen=True)
class Row:
    """One estimator with one param set; `cells` maps horizon → its record."""

    label: str
    estimator: str
    params: dict
    cells: dict[int, Record]


@dataclass(frozen=True)
class Table:
    """One leaderboard table: one task version and spec hash, one gold standard, one metric.

    `gold` holds the gold-standard settings; `sources` every results file of the group (superseded
    ones included, see `footnotes`); `noise_ceiling` maps horizon → value (None if unknown).
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

    @property
    def title(self) -> str:
        """e.g. "breast-cancer-mlp v1 (spec sha256:0123456789ab)": first 12 digits of the hash."""
        algo, _, digest = self.spec_hash.rpartition(":")
        return f"{self.task} v{self.task_version} (spec {algo + ':' if algo else ''}{digest[:12]})"


def _label(estimator: str, params: dict, several: bool) -> str:
    """`name`, or `name(k=v, ...)` (sorted keys, JSON values) if the estimator has several params."""
    if not several or not params:
        return estimator
    inner = ", ".join(f"{k}={v if isinstance(v, str) else params_json(v)}"
                      for k, v in sorted(params.items()))
    return f"{estimator}({inner})"


def _rows(records: list[Record], horizons: list[int]) -> list[Row]:
    """Records (of one metric) → rows sorted by mean at the longest horizon, descending."""
    cells: dict[tuple[str, str], dict[int, Record]] = {}
    for r in records:
        cells.setdefault((r.estimator, params_json(r.params)), {})[r.horizon] = r
    counts: dict[str, int] = {}
    for est, _ in cells:
        counts[est] = counts.get(est, 0) + 1
    rows = [Row(_label(est, json.loads(pk), counts[est] > 1), est, json.loads(pk), c)
            for (est, pk), c in cells.items()]
    last = max(horizons, default=None)

    def key(row: Row) -> tuple:
        mean = row.cells[last].mean if last in row.cells else None
        return (mean is None, -(mean or 0.0), row.label)
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


def _newest_records(group: list[Results], metric: str) -> tuple[list[Record], list[str]]:
    """Per estimator + params, the records of the newest file holding them; and footnotes."""
    owner: dict[tuple[str, str], list[Results]] = {}
    for res in sorted(group, key=_age):
        for rec in res.records:
            files = owner.setdefault((rec.estimator, params_json(rec.params)), [])
            if not files or files[-1] is not res:
                files.append(res)
    records, notes = [], []
    for (est, pk), files in sorted(owner.items()):
        newest = files[-1]
        records += [r for r in newest.records if (r.estimator, params_json(r.params)) == (est, pk)
                    and r.metric == metric]
        if len(files) > 1:
            old = ", ".join(_origin(f) for f in files[:-1])
            notes.append(f"{_label(est, json.loads(pk), True)}: newest results used "
                         f"({_origin(newest)}, {newest.date}); superseded: {old}")
    return records, notes


def _ceiling(group: list[Results], horizons: list[int], metric: str) -> dict[int, float | None]:
    """Noise ceiling per horizon from the newest file that reports it."""
    out: dict[int, float | None] = {h: None for h in horizons}
    for res in sorted(group, key=_age):
        for c in res.gold_standard.noise_ceiling:
            if c.metric == metric and c.value is not None:
                out[c.horizon] = c.value
    return out


def _table(group: list[Results], metric: str) -> Table:
    first = group[0]
    horizons = sorted({h for r in group for h in r.gold_standard.horizons})
    records, notes = _newest_records(group, metric)
    horizons = sorted(set(horizons) | {r.horizon for r in records})
    g = first.gold_standard
    gold = {"mode": g.mode, "epsilon": g.epsilon, "centered": g.centered, "seeds": g.seeds,
            "horizon_unit": g.horizon_unit, "n_train_evaluated": g.n_train_evaluated,
            "n_test": g.n_test}
    return Table(first.task.name, first.task.version, first.task.spec_hash, metric, gold, horizons,
                 _rows(records, horizons), _ceiling(group, horizons, metric),
                 sorted({_origin(r) for r in group}), notes)


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


def _grid(rows: list[Row], ceiling: dict[int, float | None],
          horizons: list[int]) -> list[list[str]]:
    """Body cells: one line per row, then the noise-ceiling line."""
    body = [[row.label] + [format_cell(row.cells[h].mean, row.cells[h].sem) if h in row.cells
                           else DASH for h in horizons] for row in rows]
    return body + [["noise ceiling"] + [format_cell(ceiling.get(h), None) for h in horizons]]


def _gold_line(gold: dict) -> str:
    mode = gold["mode"] + (f" (ε = {gold['epsilon']})" if gold.get("epsilon") is not None else "")
    centered = "centered" if gold["centered"] else "not centered"
    return (f"Gold standard: further training, {mode}, {gold['seeds']} seeds, horizons in "
            f"{gold['horizon_unit']}s, {gold['n_train_evaluated']} training instances × "
            f"{gold['n_test']} test points, {centered}.")


def _skipped(rows: list[Row], horizons: list[int]) -> dict[int, int]:
    """Per horizon, the most test points any estimator had to skip (undefined agreement)."""
    return {h: max((r.cells[h].n_skipped for r in rows if h in r.cells), default=0)
            for h in horizons}


def _markdown(table: Table) -> list[str]:
    unit = table.gold["horizon_unit"]
    head = ["estimator"] + [f"{unit} {h}" for h in table.horizons]
    lines = [f"## {table.title}", "", _gold_line(table.gold), "",
             f"Metric: {table.metric}; cells: mean ± standard error over test points.", "",
             "Results files: " + ", ".join(f"`{s}`" for s in table.sources), "",
             "| " + " | ".join(head) + " |", "|" + "---|" + "---:|" * len(table.horizons)]
    grid = _grid(table.rows, table.noise_ceiling, table.horizons)
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |" for cells in grid]
    notes = list(table.footnotes)
    skipped = {h: n for h, n in _skipped(table.rows, table.horizons).items() if n}
    if skipped:
        notes.append("test points skipped as undefined (e.g. saturated, zero gold row), most over "
                     "estimators: " + ", ".join(f"{unit} {h}: {n}" for h, n in skipped.items()))
    return lines + ([""] + [f"- {n}" for n in notes] if notes else []) + [""]


def leaderboard_markdown(tables: list[Table]) -> str:
    """The README.md text."""
    sources = sorted({s for t in tables for s in t.sources})
    lines = ["# tdabench leaderboard", "",
             "Generated from results files by `tdabench leaderboard`; do not edit by hand.", "",
             "Results files used:", *[f"- `{s}`" for s in sources], ""]
    for table in tables:
        lines += _markdown(table)
    return "\n".join(lines).rstrip("\n") + "\n"


def leaderboard_csv(tables: list[Table]) -> str:
    """Long format, one line per (table, row, horizon), with the columns CSV_COLUMNS."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for t in tables:
        for row in t.rows:
            for h in sorted(row.cells):
                r = row.cells[h]
                values = (t.task, t.task_version, t.spec_hash, row.estimator,
                          params_json(row.params), h, t.metric, r.mean, r.sem, r.n_test,
                          r.n_skipped, t.gold["horizon_unit"], t.gold["mode"], t.gold["seeds"])
                writer.writerow(["" if v is None else repr(v) if isinstance(v, float) else v
                                 for v in values])
    return buf.getvalue()


def write_leaderboard(tables: list[Table], out_dir: str | Path) -> list[Path]:
    """Write `out_dir/README.md` and `out_dir/leaderboard.csv` atomically; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "README.md", out / "leaderboard.csv"]
    atomic_write_text(paths[0], leaderboard_markdown(tables))
    atomic_write_text(paths[1], leaderboard_csv(tables))
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
