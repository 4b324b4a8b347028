"""The leaderboard's table model, built from results files (docs/method.md, results files): rows, grouping, ranks.

Results are grouped by task name, task version and spec hash, and further by the gold-standard
settings (mode, ε, centering, seeds, horizon unit, evaluated sizes), so records scored against
different gold standards never share a table. Rows are estimators (labelled with their params when
one estimator appears with several param sets), columns are horizons, cells "mean ± sem", and a
last row gives the noise ceiling. Further-training records fill the horizon cells; a row also
carries the estimator's leave-one-out ("loo", in the table's metric) and LDS records and its cost.
When several files in a group hold the same estimator + params (per ground truth), the newest (by
`date`) wins and a footnote says so. Output depends only on the inputs (no clock, no host).

The tuned track (tdabench.tuning, records labelled "<label> (tuned)" and "<label> (tuned per
horizon)") never becomes rows of its own: `Table.rows` is the default track, and `Table.tuning`
holds, per default label, its tuned rows from the newest file with a tuned track for it, the
TunedChoice and the tuning cost (`report.tuned` presents them).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from statistics import NormalDist

from tdabench.errors import UnknownNameError
from tdabench.scoring.metrics import METRICS
from tdabench.report.methods import base_name, method_of
from tdabench.results import Record, Results, params_json
from tdabench.scoring.stats import BOOTSTRAP_LEVEL, shared_ranks
from tdabench.truths.names import FURTHER_TRAINING, LDS, LDS_METRIC, LOO, REMOVAL
from tdabench.tuning import TUNED_KEY, TUNED_PER_HORIZON_SUFFIX, TUNED_SUFFIX, TunedChoice, tuned_choices

# The normal quantile of BOOTSTRAP_LEVEL (1.96): intervals mean ± NORMAL_Z·sem without a bootstrap.
NORMAL_Z = NormalDist().inv_cdf(0.5 + BOOTSTRAP_LEVEL / 2.0)


@dataclass(frozen=True)
class Row:
    """One estimator with one param set; `cells` maps horizon → its further-training record.

    `loo`/`lds`: its leave-one-out (table metric) and LDS records, None when absent; `cost`: its
    entry of the results file's cost["estimators"] ({"fit_s", "score_s", "peak_mem_mb", ...}) or None;
    `uses`: what the estimator read (tdabench.estimators.inputs): as its records say, else as its
    class declares, else None.
    """

    label: str
    estimator: str
    params: dict
    cells: dict[int, Record]
    loo: Record | None = None
    lds: Record | None = None
    cost: dict | None = None
    uses: str | None = None

    @property
    def best_horizon(self) -> int | None:
        """The horizon with the highest mean (the shortest among equal means); None without one."""
        known = [(r.mean, -h) for h, r in self.cells.items() if r.mean is not None]
        return -max(known)[1] if known else None


def tuned_base(estimator: str) -> tuple[str, str] | None:
    """(default label, suffix) of a tuned-track record's estimator field; None for the default track."""
    for suffix in (TUNED_SUFFIX, TUNED_PER_HORIZON_SUFFIX):
        if estimator.endswith(suffix):
            return estimator[:-len(suffix)], suffix
    return None


@dataclass(frozen=True)
class Tuning:
    """The tuned track of one table, keyed by the default track's estimator field (request label).

    `rows`: the setting chosen for all horizons, scored like the default track (a Row labelled
    "<label> (tuned)"); `per_horizon`: each horizon's record from the setting chosen for that
    horizon (params differ per cell: read each record's); `choices`: the TunedChoice; `cost`:
    results.cost["tuning"] ({"validation_gold_standard_s", "n_validation", "metric"}); `lr`: the
    further-training learning rate η and `steps_per_epoch` (None for horizons in steps), which turn
    a horizon into ηT; `optimizer` the further-training optimizer (the 1/(ηT) rule is SGD's). Each
    from the newest file of the group that holds it.
    """

    rows: dict[str, Row]
    per_horizon: dict[str, Row]
    choices: dict[str, TunedChoice]
    cost: dict
    lr: float | None
    steps_per_epoch: int | None
    optimizer: str | None = None


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
    tuning: Tuning | None = None  # the tuned track, None without one

    @property
    def mode(self) -> str:
        """The gold standard's mode: "removal", "downweight" or "derivative"."""
        return self.gold["mode"]

    @property
    def title(self) -> str:
        """e.g. "breast-cancer-mlp v1 (spec sha256:0123456789ab)": first 12 digits of the hash; a
        gold standard in another mode than removal says so: "…, derivative gold standard"."""
        algo, _, digest = self.spec_hash.rpartition(":")
        base = f"{self.task} v{self.task_version} (spec {algo + ':' if algo else ''}{digest[:12]})"
        return base if self.mode == REMOVAL else f"{base}, {self.mode} gold standard"

    @property
    def key_horizons(self) -> list[int]:
        """The shortest, a middle (index ⌊(n − 1)/2⌋ of the sorted grid) and the longest horizon,
        without repeats."""
        h = self.horizons
        return sorted({h[0], h[(len(h) - 1) // 2], h[-1]}) if h else []

    @property
    def ranks(self) -> list[int | None]:
        """Per row, `ranks_at` the longest horizon."""
        return self.ranks_at(self.horizons[-1]) if self.horizons else [None] * len(self.rows)

    @property
    def group_ranks(self) -> list[int | None]:
        """Per row, its shared rank at the longest horizon among the rows with the same `uses` (what
        the estimators were given: final model only, checkpoints, the recipe…)."""
        last = self.horizons[-1] if self.horizons else None
        out: list[int | None] = [None] * len(self.rows)
        for group in {row.uses for row in self.rows}:
            members = [k for k, row in enumerate(self.rows) if row.uses == group]
            ranks = _ranks([self.rows[k].cells.get(last) if last is not None else None for k in members])
            for k, rank in zip(members, ranks):
                out[k] = rank
        return out

    def ranks_at(self, horizon: int) -> list[int | None]:
        """Per row, `stats.shared_ranks` at `horizon`; None for a row without a mean there. A cell's
        interval is `interval(record)`: its bootstrap interval, or mean ± z·sem (z = NORMAL_Z, 1.96)
        for records written without one, or the mean alone."""
        return _ranks([row.cells.get(horizon) for row in self.rows])


def _ranks(cells: list[Record | None]) -> list[int | None]:
    """`stats.shared_ranks` of the cells' means and intervals; None for a cell without a mean."""
    means = [None if c is None else c.mean for c in cells]
    bounds = [interval(c) for c in cells]
    ranks = shared_ranks(means, [b[0] for b in bounds], [b[1] for b in bounds])
    return [None if m is None else k for m, k in zip(means, ranks)]


def interval(record: Record | None) -> tuple[float | None, float | None]:
    """(low, high): the record's bootstrap interval, else mean ± NORMAL_Z·sem, else (None, None)."""
    if record is None or record.mean is None:
        return None, None
    if record.ci_low is not None and record.ci_high is not None:
        return record.ci_low, record.ci_high
    if record.sem is not None:
        return record.mean - NORMAL_Z * record.sem, record.mean + NORMAL_Z * record.sem
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
    """The estimator's entry of the file's cost["estimators"], None if absent or not a dict."""
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
    """Rows in `row_order`."""
    joined = _attach(ft, extras)
    counts = Counter(est for est, _ in joined)
    rows = []
    for (est, pk), parts in joined.items():
        cells = {r.horizon: r for r in parts.get(FURTHER_TRAINING, ([], None))[0]}
        extra = {gt: max(parts[gt][0], key=lambda r: r.horizon) for gt in (LOO, LDS) if gt in parts}
        source = next(parts[gt][1] for gt in (FURTHER_TRAINING, LOO, LDS) if gt in parts)
        recorded = [r.uses for r in [*cells.values(), *extra.values()] if r.uses is not None]
        rows.append(Row(_label(est, json.loads(pk), counts[est] > 1), est, json.loads(pk), cells,
                        extra.get(LOO), extra.get(LDS), _cost(source, est),
                        recorded[0] if recorded else method_of(est).uses))
    return row_order(rows, horizons)


def row_order(rows: list[Row], horizons: list[int]) -> list[Row]:
    """Sorted by shared rank at the longest horizon; within a rank, by the mean over horizons of the
    row's means, descending (estimators the longest horizon cannot separate are ordered by the
    whole decay curve, not by noise at one horizon); then by label. Rows without a mean at the
    longest horizon come after those with one."""
    last = max(horizons, default=None)
    ranks = _ranks([row.cells.get(last) if last is not None else None for row in rows])

    def key(item: tuple[Row, int | None]) -> tuple:
        row, rank = item
        means = [r.mean for r in row.cells.values() if r.mean is not None]
        average = sum(means) / len(means) if means else None
        return (rank is None, rank or 0, average is None, -(average or 0.0), row.label,
                params_json(row.params))
    return [row for row, _ in sorted(zip(rows, ranks), key=key)]


def _gold_settings(r: Results) -> tuple:
    """The gold-standard settings that keep records in separate tables."""
    g = r.gold_standard
    return (g.mode, g.epsilon, g.centered, g.seeds, g.horizon_unit, g.n_train_evaluated, g.n_test)


def _group_key(r: Results) -> tuple:
    """(task name, version, spec hash, gold settings as strings): one table per key."""
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
    """The file's origin, or a stand-in naming its date."""
    return r.origin or f"<results of {r.date}>"


def _newest(group: list[Results]) -> tuple[dict[tuple[str, str, str], Results], list[str]]:
    """Per (ground truth, estimator, params), the newest file holding records of it; footnotes."""
    owner: dict[tuple[str, str, str], list[Results]] = {}
    for res in sorted(group, key=_age):
        for rec in res.records:
            if tuned_base(rec.estimator) is not None:  # the tuned track: `_tuning`
                continue
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


def _gold(r: Results) -> dict:
    """Table.gold: the gold-standard settings of a group's file, by name."""
    g = r.gold_standard
    return {"mode": g.mode, "epsilon": g.epsilon, "centered": g.centered, "seeds": g.seeds,
            "horizon_unit": g.horizon_unit, "n_train_evaluated": g.n_train_evaluated,
            "n_test": g.n_test}


def _tuning(group: list[Results], metric: str) -> Tuning | None:
    """The group's tuned track (see `Tuning`); None when no file has one."""
    rows: dict[str, dict[str, Row]] = {TUNED_SUFFIX: {}, TUNED_PER_HORIZON_SUFFIX: {}}
    choices: dict[str, TunedChoice] = {}
    cost, lr, steps, optimizer = {}, None, None, None
    for res in sorted(group, key=_age):  # newer files overwrite older ones
        found: dict[str, list[Record]] = {}
        for r in res.records:
            if r.ground_truth == FURTHER_TRAINING and r.metric == metric and tuned_base(r.estimator):
                found.setdefault(r.estimator, []).append(r)
        for est, recs in found.items():
            base, suffix = tuned_base(est)
            shared = {params_json(r.params) for r in recs}
            rows[suffix][base] = Row(est, est, recs[0].params if len(shared) == 1 else {},
                                     {r.horizon: r for r in recs}, cost=_cost(res, est),
                                     uses=recs[0].uses or method_of(est).uses)
        choices |= {c.estimator: c for c in tuned_choices(res.extra)}
        if TUNED_KEY in res.extra:
            cost = dict(res.cost.get("tuning") or {})
            recipe = res.task.details.get("further_training") or {}
            lr, optimizer = recipe.get("lr"), recipe.get("optimizer")
            steps = res.gold_standard.steps_per_epoch
    if not choices and not rows[TUNED_SUFFIX]:
        return None
    return Tuning(rows[TUNED_SUFFIX], rows[TUNED_PER_HORIZON_SUFFIX], choices, cost, lr, steps, optimizer)


def _table(group: list[Results], metric: str) -> Table:
    """The Table of one group of results files (one `_group_key`)."""
    first = group[0]
    newest, notes = _newest(group)
    ft = _pick(newest, FURTHER_TRAINING, metric)
    extras = {LOO: _pick(newest, LOO, metric), LDS: _pick(newest, LDS, LDS_METRIC)}
    horizons = sorted({h for r in group for h in r.gold_standard.horizons}
                      | {r.horizon for recs, _ in ft.values() for r in recs})
    return Table(first.task.name, first.task.version, first.task.spec_hash, metric, _gold(first), horizons,
                 _rows(ft, extras, horizons), _ceiling(group, horizons, metric),
                 sorted({_origin(r) for r in group}), notes, sorted(r.date for r in group), _failures(group),
                 _tuning(group, metric))


def build_leaderboard(results: list[Results], metric: str = "cosine") -> list[Table]:
    """One Table per (task name, version, spec hash, gold-standard settings), sorted by that key."""
    if metric not in METRICS:
        raise UnknownNameError("metric", metric, list(METRICS))
    groups: dict[tuple, list[Results]] = {}
    for r in results:
        groups.setdefault(_group_key(r), []).append(r)
    return [_table(groups[k], metric) for k in sorted(groups)]


# The horizon bands of the cross-task summary: a task's shortest, middle (index ⌊(n − 1)/2⌋ of its
# sorted grid) and longest horizon.
BANDS = ("shortest", "middle", "longest")


@dataclass(frozen=True)
class MeanRank:
    """One estimator's shared ranks averaged over tasks, per band: band → (mean rank, n tasks), or
    None where no task has a result for it in that band."""

    estimator: str
    by_band: dict[str, tuple[float, int] | None]


def band_horizons(table: Table) -> dict[str, int]:
    """Band name → the table's horizon in that band ({} for a table without horizons)."""
    h = table.horizons
    return dict(zip(BANDS, (h[0], h[(len(h) - 1) // 2], h[-1]))) if h else {}


def _summary_preference(table: Table) -> tuple:
    """Which of a task's tables in one mode the cross-task summary takes: most seeds, then most
    evaluated instances and test points, then the newest results."""
    g = table.gold
    return (g["seeds"], g["n_train_evaluated"], g["n_test"], table.dates[-1] if table.dates else "")


def summary_groups(tables: list[Table]) -> list[tuple[str, list[Table]]]:
    """The tables of each cross-task summary: one summary per gold-standard mode (removal first,
    then by name), holding one table per task (`_summary_preference`), in the order of `tables`.
    Ranks against different gold standards are never averaged together, and no task counts twice."""
    chosen: dict[tuple[str, str], Table] = {}
    for t in tables:
        key = (t.mode, t.task)
        if key not in chosen or _summary_preference(t) > _summary_preference(chosen[key]):
            chosen[key] = t
    modes = sorted({t.mode for t in tables}, key=lambda m: (m != REMOVAL, m))
    return [(m, [t for t in tables if chosen.get((m, t.task)) is t]) for m in modes]


def mean_ranks(tables: list[Table]) -> list[MeanRank]:
    """Per estimator name (`methods.base_name`; several param sets in one task: the best rank), the mean over tables of its
    shared rank (`Table.ranks_at`) at each band's horizon. Sorted by the mean rank of the longest
    band, then the middle, then the shortest (missing last), then by name. The tables must share one
    gold-standard mode and name each task once (`summary_groups` makes such lists); ValueError otherwise."""
    if len({t.mode for t in tables}) > 1 or len({t.task for t in tables}) < len(tables):
        raise ValueError("mean_ranks takes one table per task, all of one gold-standard mode "
                         "(see summary_groups)")
    found: dict[str, dict[str, list[int]]] = {}
    for table in tables:
        for band, h in band_horizons(table).items():
            best: dict[str, int] = {}
            for row, rank in zip(table.rows, table.ranks_at(h)):
                if rank is not None:
                    name = base_name(row.estimator)
                    best[name] = min(rank, best.get(name, rank))
            for est, rank in best.items():
                found.setdefault(est, {}).setdefault(band, []).append(rank)
    out = [MeanRank(est, {b: (sum(v) / len(v), len(v)) if (v := bands.get(b)) else None for b in BANDS})
           for est, bands in found.items()]

    def key(m: MeanRank) -> tuple:
        parts = [m.by_band[b] for b in reversed(BANDS)]
        return tuple(x for p in parts for x in (p is None, p[0] if p else 0.0)) + (m.estimator,)
    return sorted(out, key=key)
