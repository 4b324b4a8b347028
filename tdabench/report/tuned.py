"""How the leaderboard shows a table's tuned track (tables.Tuning; tdabench.tuning, issue 18).

- `tuned_track(table)`: the tuned track as a table of its own: every default row replaced by its
  tuned row (one setting for all horizons) where it has one, the others (nothing to tune, e.g.
  grad-dot) as they are; its ranks are the tuned ranks, and `tables.mean_ranks` of such tables is
  the cross-task summary of the tuned track (never mixed with the default track's).
- `rank_change(default, tuned)`: "↑2" (two places better when tuned), "↓1", "=".
- `choice_notes(table)`: the settings chosen, by what, on how many validation test points.
- `best_damping(table)`: per damped estimator and horizon, the damping chosen for that horizon in
  absolute units next to 1/(ηT) (η: further-training learning rate, T: the horizon in steps), which
  DESIGN.md §4 predicts it follows; rows for BEST_DAMPING_COLUMNS (the plot's and the CSV's data).
"""

from __future__ import annotations

import dataclasses

from tdabench.report.tables import Table, row_order
from tdabench.results import FITTED_PREFIX, params_json

BEST_DAMPING_COLUMNS = ("task", "estimator", "horizon", "horizon_unit", "steps", "lr", "one_over_eta_t",
                        "damping", "damping_requested", "damping_relative", "lambda_g", "at_grid_edge", "metric",
                        "optimizer")


def tuned_track(table: Table) -> Table:
    """The table of the tuned track (see the module docstring); `tuning` None. Rows keep the default
    track's labels, so ranks of the two tracks compare row by row."""
    tuned = table.tuning.rows if table.tuning else {}
    rows = [dataclasses.replace(tuned[row.estimator], label=row.label, estimator=row.estimator)
            if row.estimator in tuned else row for row in table.rows]
    return dataclasses.replace(table, rows=row_order(rows, table.horizons), tuning=None)


def tuned_ranks(table: Table) -> list[int | None]:
    """Per row of `table` (the default track), its shared rank in `tuned_track(table)` at the
    longest horizon."""
    track = tuned_track(table)
    by_label = dict(zip((row.label for row in track.rows), track.ranks))
    return [by_label.get(row.label) for row in table.rows]


def rank_change(default: int | None, tuned: int | None) -> str:
    """"↑k" when tuning moves the row k places up (smaller rank), "↓k" down, "=" unchanged, "" if
    either rank is unknown."""
    if default is None or tuned is None:
        return ""
    return "=" if tuned == default else (f"↑{default - tuned}" if tuned < default else f"↓{tuned - default}")


def format_params(params: dict) -> str:
    """"damping=100, rank=50" (searched parameters only, sorted)."""
    return ", ".join(f"{k}={v if isinstance(v, str) else params_json(v)}" for k, v in sorted(params.items()))


def choice_notes(table: Table) -> list[str]:
    """One sentence per tuned estimator: the setting chosen for all horizons and per horizon, the
    space searched, the metric and the validation test points; then the shared validation cost."""
    tuning = table.tuning
    if tuning is None:
        return []
    unit = table.gold["horizon_unit"]
    notes = []
    for label, c in sorted(tuning.choices.items()):
        space = "; ".join(f"{k} ∈ {{{', '.join(params_json(v) for v in vs)}}}" for k, vs in c.space.items())
        per_h = ", ".join(f"{unit} {h}: {format_params(p)}" for h, p in sorted(c.per_horizon.items()))
        chosen = format_params(c.overall) if c.overall is not None else "nothing (no candidate had a score)"
        notes.append(f"{label} tuned: {chosen} for all horizons; per horizon {per_h or '—'} (searched {space}; "
                     f"{c.metric} on {len(c.validation_test_idx)} validation test points disjoint from the "
                     f"scored ones; search {c.search_s:.3g} s)")
    cost = tuning.cost
    if cost:
        seconds = cost.get("validation_gold_standard_s", 0)
        made = f"{seconds:.3g} s" if seconds else "read from the cache (computed by an earlier run)"
        notes.append(f"tuned track: validation gold standard {made} on "
                     f"{cost.get('n_validation')} test points, shared by every tuned estimator (not in its "
                     "'tuning (s)'); damping is relative to λ_G (mean squared entry of the per-sample training "
                     "gradients) unless damping_relative=false")
    return notes


def _steps(table: Table, horizon: int) -> int | None:
    tuning = table.tuning
    if table.gold["horizon_unit"] == "step":
        return horizon
    return horizon * tuning.steps_per_epoch if tuning and tuning.steps_per_epoch else None


def best_damping(table: Table) -> list[dict]:
    """Per tuned estimator whose per-horizon records carry an absolute damping ("fitted.damping")
    and per horizon: a dict of BEST_DAMPING_COLUMNS; `at_grid_edge`: the requested damping is the
    smallest or largest value of the searched grid, in the grid's units (the same `damping_relative`
    as the space's, or the request's when the space does not set it; the best may lie beyond). []
    without a tuned track."""
    tuning = table.tuning
    if tuning is None:
        return []
    out = []
    for label, row in sorted(tuning.per_horizon.items()):
        space = tuning.choices[label].space if label in tuning.choices else {}
        grid, units = space.get("damping") or [], space.get("damping_relative")
        for h, rec in sorted(row.cells.items()):
            damping = rec.params.get(f"{FITTED_PREFIX}damping")
            if not isinstance(damping, (int, float)):
                continue
            steps = _steps(table, h)
            eta_t = tuning.lr * steps if tuning.lr and steps else None
            requested = rec.params.get("damping")
            out.append(dict(zip(BEST_DAMPING_COLUMNS, (
                table.task, label, h, table.gold["horizon_unit"], steps, tuning.lr,
                None if eta_t is None else 1.0 / eta_t, damping, requested, rec.params.get("damping_relative"),
                rec.params.get(f"{FITTED_PREFIX}lambda_g"),
                bool(grid) and (units is None or rec.params.get("damping_relative") in units)
                and requested in (min(grid), max(grid)),
                table.metric, tuning.optimizer))))
    return out
