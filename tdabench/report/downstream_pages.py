"""The downstream evaluations as leaderboard text: one section per task in README.md and index.html, and
downstream.csv (the scores and ranks of report/downstream_table.py, in long format).

Each section: the task and its spec hash, the settings of the checks, the downstream file, one table
(estimator; further-training agreement at the longest horizon with its rank; each score present with
its interval and rank; reference rows: the gold standard's own self-influence, random removal, chance),
the downstream plot, and notes (order agreement with further training, checks that did not apply or
failed). Every text depends only on its inputs.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from html import escape
from typing import Any

from tdabench.estimators.inputs import input_label
from tdabench.report.downstream_table import (Point, Score, further_points, matched_rows, matching_table,
                                              order_spearman, oriented, oriented_ranks, scores_of)
from tdabench.report.methods import method_of
from tdabench.report.tables import Table
from tdabench.report.text import DASH, GIVEN, Cell
from tdabench.results import csv_cell

HEADING = "Downstream evaluations next to further training"
ANCHOR = "downstream"
CSV_COLUMNS = ("task", "task_version", "spec_hash", "estimator", "score", "value", "low", "high", "rank",
               "further_metric", "further_value", "further_rank")


@dataclass(frozen=True)
class Section:
    """One task's downstream table: `labels` (rows), `cells` per row, `footer` (reference rows), the
    order agreement per score title (None: undefined), notes, and the plot stem (None: no plot)."""

    task: str
    title: str
    origin: str | None
    settings: str
    head: list[str]
    labels: list[str]
    uses: list[str | None]
    cells: list[list[Cell]]
    footer: list[list[Cell]]
    agreement: dict[str, tuple[float | None, float | None]]  # score → (ρ of the values, ρ of the shared ranks)
    notes: list[str]
    points: dict[str, dict[str, tuple[Point | None, int | None]]] = field(default_factory=dict)
    further: tuple[str, dict[str, tuple[Point, int | None]]] = ("", {})
    plot: str | None = None
    metric: str = "pearson"  # of the further-training column


def _text(point: Point | None, digits: int) -> Cell:
    """"0.987 [0.975, 0.998]", the value alone without an interval, "—" without a point."""
    if point is None:
        return Cell(DASH)
    v, lo, hi = point
    text = f"{v:.{digits}f}" + ("" if lo is None or hi is None else f" [{lo:.{digits}f}, {hi:.{digits}f}]")
    return Cell(text, v)


def _rank(rank: int | None) -> Cell:
    return Cell(DASH) if rank is None else Cell(str(rank), rank)


def settings_line(payload: dict[str, Any]) -> str:
    """One sentence on what was run: the checks and their sizes."""
    s, checks = payload["settings"], payload["checks"]
    parts = []
    if "mislabel" in checks:
        m = checks["mislabel"]
        parts.append(f"mislabel detection on {m['task']['name']} ({m['n_flipped']} of {m['n_train']} labels "
                     f"flipped; gold self-influence on {m['gold_subset']} instances, {s['gold_seeds']} seed(s))")
    if "randomization" in checks or "cardinality" in checks:
        parts.append(f"model randomisation and top-{s['top_k']} cardinality on {s['n_test']} test points")
    if "brittleness" in checks:
        b = checks["brittleness"]
        parts.append(f"top-k removal (k = {', '.join(map(str, b['ks']))}; further training to "
                     f"{b['horizon_unit']} {b['horizon']}{', and retraining' if s.get('retrain') else ''}; "
                     f"{len(b['test_idx'])} correctly classified test points)")
    if "shortcut" in checks:
        c = checks["shortcut"]
        parts.append(f"shortcut detection on {c['task']['name']} ({c['n_planted']} of {c['n_train']} training "
                     f"images patched, class {c['class']}, {len(c['test_idx'])} patched test images)")
    cost = payload.get("cost") or {}
    took = ", ".join(f"{k.removesuffix('_s').replace('_', ' ')} {v:.0f} s" for k, v in cost.items()
                     if isinstance(v, (int, float)))
    return "Checks: " + "; ".join(parts) + "." + (f" Wall-clock time of the run: {took}." if took else "")


def _reference(payload: dict[str, Any], scores: list[Score]) -> list[list[Cell]]:
    """The footer: gold self-influence at the longest horizon, random removal, chance."""
    checks, titles = payload["checks"], [s.title for s in scores]
    rows: list[tuple[str, dict[str, Point]]] = []
    gold = checks.get("mislabel", {}).get("gold") or []
    if gold:
        g = gold[-1]
        rows.append((f"gold self-influence, horizon {g['horizon']}",
                     {"mislabel AUC": (g["auc"], g["auc_low"], g["auc_high"]), "P@flip": (g["precision_at_flipped"],
                                                                                         None, None)}))
    brittle = checks.get("brittleness", {}).get("random")
    if brittle:
        last = lambda f: (f["share"][-1], f["share_low"][-1], f["share_high"][-1])  # noqa: E731
        random = {"flip share, largest k": last(brittle)}
        if brittle.get("retrained"):
            random["flip share, largest k, retrained"] = last(brittle["retrained"])
        rows.append(("random removal", random))
    chance: dict[str, Point] = {}
    if "mislabel" in checks:
        m = checks["mislabel"]
        chance |= {"mislabel AUC": (0.5, None, None), "P@flip": (m["n_flipped"] / m["n_train"], None, None)}
    if "shortcut" in checks:
        chance["shortcut AUC"] = (0.5, None, None)
    if chance:
        rows.append(("chance", chance))
    return [[Cell(name), Cell(""), Cell(""), Cell("")]
            + [c for s in scores for c in (_text(found.get(s.title), s.digits), Cell(""))]
            for name, found in rows if set(found) & set(titles)]


def _rho(value: float | None) -> str:
    return DASH if value is None else f"{value:+.2f}"


def _notes(payload: dict[str, Any], agreement: dict[str, tuple[float | None, float | None]], metric: str) -> list[str]:
    agree = "; ".join(f"{t}: {_rho(v)} ({_rho(r)})" for t, (v, r) in agreement.items())
    notes = [f"Order agreement with further training: Spearman ρ between the estimators' values of each score "
             f"(randomisation ρ negated) and their {metric} at the longest horizon, and in brackets between their "
             f"shared ranks: {agree}."] if agreement else []
    refused = payload["checks"].get("mislabel", {}).get("not_applicable", {})
    notes += [f"{label} mislabel: {why}" for label, why in refused.items()]
    notes += [f"{label} {check} failed: {msg}" for label, errs in payload.get("errors", {}).items()
              for check, msg in errs.items()]
    return notes


def build_section(payload: dict[str, Any], tables: list[Table], plot: str | None = None) -> Section:
    """The Section of one payload, joined with its task's further-training table (if any)."""
    table = matching_table(payload, tables)
    labels = list(payload["settings"]["estimators"])
    rows = matched_rows(table, labels)
    further = further_points(table, rows)
    f_ranks = dict(zip(further, oriented_ranks(list(further.values()), True)))
    scores = scores_of(payload)
    found = {s.title: s.points(payload) for s in scores}
    ranks = {s.title: dict(zip(found[s.title], oriented_ranks(list(found[s.title].values()), s.higher_is_better)))
             for s in scores}
    metric = f"{table.metric}, {table.gold['horizon_unit']} {table.horizons[-1]}" if table and table.horizons else ""
    head = ["estimator", GIVEN, f"further training ({metric})" if metric else "further training", "rank"]
    head += [h for s in scores for h in (s.title, "rank")]
    cells = [[Cell(label), Cell(input_label(rows[label].uses if label in rows else method_of(label).uses)),
              _text(further.get(label), 3), _rank(f_ranks.get(label))]
             + [c for s in scores for c in (_text(found[s.title].get(label), s.digits), _rank(ranks[s.title].get(label)))]
             for label in labels]
    agreement = {s.title: (order_spearman(further, oriented(s, found[s.title])),
                           order_spearman(_by_rank(f_ranks), _by_rank(ranks[s.title]))) for s in scores} if further else {}
    t = payload["task"]
    title = f"{t['name']} v{t['version']} (spec {t['spec_hash'][:19]})"
    points = {s.title: {label: (p, ranks[s.title][label]) for label, p in found[s.title].items()} for s in scores}
    return Section(t["name"], title, payload.get("origin"), settings_line(payload), head, labels,
                   [rows[label].uses if label in rows else method_of(label).uses for label in labels], cells,
                   _reference(payload, scores), agreement, _notes(payload, agreement, table.metric if table else ""),
                   points, (metric, {k: (p, f_ranks.get(k)) for k, p in further.items()}), plot,
                   table.metric if table else "pearson")


def _by_rank(ranks: dict[str, int | None]) -> dict[str, Point]:
    """Label → (−rank, None, None) for the labels with a rank (higher = better, for `order_spearman`)."""
    return {k: (-float(r), None, None) for k, r in ranks.items() if r is not None}


def downstream_legend() -> str:
    return ("Each downstream score per estimator, with its 95 % interval where the check gives one (mislabel and "
            "shortcut AUC: DeLong; randomisation ρ and flip shares: percentile bootstrap over test points), and "
            "its rank (1 = best; estimators whose intervals overlap share a rank), next to its agreement with the "
            "further-training gold standard at the longest horizon. Better is higher, except randomisation ρ "
            "(Spearman between scores on the trained and on a re-initialised model: near 1 means the scores do "
            "not depend on what the model learned). P@flip: precision among the m highest self-influences, m = "
            "number of flipped labels. flip share: share of correctly classified test points whose prediction "
            "flips when their k most supporting training instances (by margin scores) are removed, at the "
            "largest k of the grid. The reference rows give the gold standard's own self-influence, random "
            "removal and chance.")


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def downstream_markdown(sections: list[Section]) -> list[str]:
    """README lines: a heading, the legend, then per task its settings, file, table, plot and notes."""
    if not sections:
        return []
    lines = [f"## {HEADING}", "", downstream_legend(), ""]
    for s in sections:
        lines += [f"### {s.title}", "", s.settings, ""] + ([f"Downstream file: `{s.origin}`", ""] if s.origin else [])
        lines += [_md_row(s.head), "|---|" + "---:|" * (len(s.head) - 1)]
        lines += [_md_row([c.text for c in row]) for row in s.cells + s.footer] + [""]
        if s.plot:
            lines += [f"![downstream scores of {s.task}](plots/{s.plot}.png) ([SVG](plots/{s.plot}.svg))", ""]
        lines += [f"- {n}" for n in s.notes] + ([""] if s.notes else [])
    return lines


def _th(head: str, numeric: bool, desc: bool) -> str:
    return (f'<th data-type="{"number" if numeric else "text"}" data-order="{"desc" if desc else "asc"}">'
            f"{escape(head)}</th>")


def _td(cell: Cell) -> str:
    value = "" if cell.value is None else f' data-value="{cell.value!r}"'
    return f'<td class="num"{value}>{escape(cell.text)}</td>'


def downstream_html(sections: list[Section]) -> list[str]:
    """index.html lines: one section per task, sortable and filterable like the task tables (rows carry
    data-estimator and data-uses; a section data-task)."""
    if not sections:
        return []
    lines = [f'<section id="{ANCHOR}">', f"<h2>{escape(HEADING)}</h2>", f'<p class="note">{escape(downstream_legend())}</p>']
    for s in sections:
        lines += [f'<section class="task" data-task="{escape(s.task)}">', f"<h3>{escape(s.title)}</h3>",
                  f"<p>{escape(s.settings)}</p>"]
        if s.origin:
            lines.append(f'<p class="note">Downstream file: <a href="{escape(s.origin)}">{escape(s.origin)}</a>.</p>')
        lines += ['<table class="sortable filterable downstream-table">', "<thead><tr>" + "".join(
            _th(h, i > 1, i > 1 and h != "rank" and h != "randomisation ρ") for i, h in enumerate(s.head))
            + "</tr></thead>", "<tbody>"]
        for label, uses, row in zip(s.labels, s.uses, s.cells):
            lines.append(f'<tr data-estimator="{escape(label)}" data-uses="{escape(uses or "")}">'
                         + f"<td>{escape(label)}</td><td>{escape(row[1].text)}</td>" + "".join(map(_td, row[2:]))
                         + "</tr>")
        lines.append("</tbody>")
        if s.footer:
            lines += ["<tfoot>"] + ["<tr>" + f"<td>{escape(r[0].text)}</td>" + "".join(map(_td, r[1:])) + "</tr>"
                                    for r in s.footer] + ["</tfoot>"]
        lines.append("</table>")
        if s.plot:
            lines.append(f'<p><a href="plots/{escape(s.plot)}.svg"><img src="plots/{escape(s.plot)}.png" '
                         f'alt="downstream scores of {escape(s.task)}" loading="lazy"></a></p>')
        if s.notes:
            lines += ['<ul class="note">', *[f"<li>{escape(n)}</li>" for n in s.notes], "</ul>"]
        lines.append("</section>")
    return lines + ["</section>"]


def downstream_csv(sections: list[Section], payloads: list[dict[str, Any]]) -> str:
    """Long format, one line per (task, estimator, score) with a value: CSV_COLUMNS."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for s, p in zip(sections, payloads):
        t, (metric, further) = p["task"], s.further
        for title, found in s.points.items():
            for label, ((v, lo, hi), rank) in found.items():
                f_point, f_rank = further.get(label, (None, None))
                writer.writerow([csv_cell(x) for x in (t["name"], t["version"], t["spec_hash"], label, title, v, lo, hi,
                                                       rank, metric, f_point and f_point[0], f_rank)])
    return buf.getvalue()
