"""Results made with parameters that are no longer an estimator's defaults: `compare.parameter_changes`
and the leaderboard notes built on it (report/text.py `drift_notes`, `header_lines`)."""

from __future__ import annotations

from tdabench.compare import parameter_changes, recorded_params
from tdabench.registry import make_estimator
from tdabench.report import build_leaderboard, header_lines
from tdabench.report.text import drift_notes
from tdabench.results import FITTED_PREFIX, GoldSummary, Record, Results, TaskInfo

NOW = recorded_params(make_estimator("if-cg", max_iter=5))
OLD = NOW | {"damping": 10000.0, "damping_relative": True}  # the damping default before the λ_max rule


def test_changes_are_named_with_the_recorded_and_the_current_value() -> None:
    assert NOW["damping_relative"] == "lambda-max" and NOW["max_iter"] == 5
    assert parameter_changes("if-cg(max_iter=5)", NOW | {f"{FITTED_PREFIX}damping": 3.2}) == {}
    assert parameter_changes("if-cg(max_iter=5)", OLD) == {"damping": (10000.0, 1.0),
                                                           "damping_relative": (True, "lambda-max")}
    assert parameter_changes("if-cg(max_iter=5)", {k: v for k, v in NOW.items() if k != "tol"}) == \
        {"tol": ("(unset)", NOW["tol"])}
    assert parameter_changes("if-cg(max_iter=5)", {f"{FITTED_PREFIX}damping": 3.2}) == {}  # nothing recorded
    # labels that are not requests of an estimator registered here: nothing to compare
    assert parameter_changes("if-cg (tuned)", OLD) == {}
    assert parameter_changes("no-such-estimator", OLD) == {}


def _results(params: dict) -> Results:
    gold = GoldSummary("removal", 2, "epoch", [1], 10, 5, False, [])
    records = [Record(label, p, 1, "pearson", 0.5, 0.01, 5, 0)
               for label, p in (("if-cg(max_iter=5)", params), ("grad-dot", recorded_params(make_estimator("grad-dot"))))]
    return Results(TaskInfo("toy", 1, "sha256:" + "d" * 64), gold, records, {}, {}, "0.1.0", None,
                   "2024-05-01T00:00:00+00:00")


def test_the_leaderboard_notes_rows_made_under_older_defaults() -> None:
    (current,) = build_leaderboard([_results(NOW)], metric="pearson")
    assert drift_notes(current) == []
    assert not any("no longer the defaults" in line for line in header_lines([current]))
    (old,) = build_leaderboard([_results(OLD)], metric="pearson")
    assert drift_notes(old) == ["if-cg(max_iter=5): run with damping=10000.0, damping_relative=True, where today's "
                                "defaults are damping=1.0, damping_relative=lambda-max; rerunning the suite refreshes them"]
    assert any(line.endswith(f"(their notes say which): {old.title}.") for line in header_lines([old]))
