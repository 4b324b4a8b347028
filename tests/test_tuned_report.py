"""The tuned track in the leaderboard: kept out of the default rows and mean ranks, side by side with
ranks and rank changes computed by hand, the chosen settings in the notes, and the best damping per
horizon against 1/(ηT) as data and plot."""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

from tdabench.report import build_leaderboard, leaderboard_csv, write_leaderboard
from tdabench.report.damping_plot import best_damping_csv, damping_figure
from tdabench.report.tables import mean_ranks
from tdabench.report.text import leaderboard_markdown, summary_grid, table_notes, tuned_summary
from tdabench.report.tuned import best_damping, rank_change, tuned_ranks, tuned_track
from tdabench.results import GoldSummary, NoiseCeiling, Record, Results, TaskInfo
from tdabench.tuning import TUNED_KEY, Candidate, TunedChoice

HASH = "sha256:" + "a" * 64
LAMBDA_G = 0.002
STEPS_PER_EPOCH, LR = 10, 0.05


def ci(est: str, horizon: int, mean: float, half: float = 0.02, params: dict | None = None) -> Record:
    return Record(est, params or {}, horizon, "pearson", mean, half / 2, 10, 0, None, mean - half, mean + half)


def damped(damping: float) -> dict:
    return {"damping": damping, "damping_relative": True, "fitted.damping": damping * LAMBDA_G,
            "fitted.lambda_g": LAMBDA_G}


def choice(per_horizon: dict[int, float], overall: float) -> TunedChoice:
    grid = [1.0, 10.0, 100.0, 1000.0]
    cands = [Candidate({"damping": d}, {1: 0.5, 10: 0.5}) for d in grid]
    return TunedChoice("if-explicit", "pearson", {"damping": grid}, cands, {"damping": overall},
                       {h: {"damping": d} for h, d in per_horizon.items()}, [7, 8, 9], 1.5, [0, 1, 2])


def tuned_results(task: str = "toy") -> Results:
    """Default track: grad-dot 0.80 > kfac 0.70 > if-explicit 0.50 at epoch 10 (disjoint intervals:
    ranks 1, 2, 3). Tuned: if-explicit 0.90 (rank 1, ↑2), grad-dot (nothing to tune) rank 2 (↓1),
    kfac 0.60 (rank 3, ↓1)."""
    records = [ci("grad-dot", 1, 0.9), ci("grad-dot", 10, 0.8),
               ci("kfac", 1, 0.85, params=damped(1e4)), ci("kfac", 10, 0.7, params=damped(1e4)),
               ci("if-explicit", 1, 0.88, params=damped(1e4)), ci("if-explicit", 10, 0.5, params=damped(1e4)),
               ci("if-explicit (tuned)", 1, 0.89, params=damped(100.0)),
               ci("if-explicit (tuned)", 10, 0.9, params=damped(100.0)),
               ci("if-explicit (tuned per horizon)", 1, 0.9, params=damped(1000.0)),
               ci("if-explicit (tuned per horizon)", 10, 0.92, params=damped(10.0)),
               ci("kfac (tuned)", 1, 0.8, params=damped(1.0)), ci("kfac (tuned)", 10, 0.6, params=damped(1.0))]
    gold = GoldSummary("removal", 5, "epoch", [1, 10], 20, 3, False,
                       [NoiseCeiling(1, "pearson", 0.99), NoiseCeiling(10, "pearson", 0.98)],
                       steps_per_epoch=STEPS_PER_EPOCH)
    cost = {"gold_standard_s": 3.0, "tuning": {"validation_gold_standard_s": 2.0, "n_validation": 3, "metric": "pearson"},
            "estimators": {"if-explicit (tuned)": {"fit_s": 1.0, "score_s": 0.5, "search_s": 12.5}}}
    extra = {TUNED_KEY: [choice({1: 1000.0, 10: 10.0}, 100.0).to_json()]}
    return Results(TaskInfo(task, 1, HASH, {"further_training": {"lr": LR}}), gold, records, cost, {}, "0.1.0", None,
                   "2024-05-01T00:00:00+00:00", extra=extra, origin=f"results/{task}/results.json")


def test_tuned_records_are_not_rows_of_the_default_track() -> None:
    (table,) = build_leaderboard([tuned_results()], "pearson")
    assert [row.label for row in table.rows] == ["grad-dot", "kfac", "if-explicit"]
    assert table.ranks == [1, 2, 3]
    assert set(table.tuning.rows) == {"if-explicit", "kfac"} and set(table.tuning.per_horizon) == {"if-explicit"}
    assert table.tuning.choices["if-explicit"].overall == {"damping": 100.0}
    assert table.tuning.lr == LR and table.tuning.steps_per_epoch == STEPS_PER_EPOCH
    assert [m.estimator for m in mean_ranks([table])] == ["grad-dot", "kfac", "if-explicit"]


def test_tuned_ranks_and_changes_by_hand() -> None:
    (table,) = build_leaderboard([tuned_results()], "pearson")
    track = tuned_track(table)
    assert [(row.label, row.cells[10].mean) for row in track.rows] == [("if-explicit", 0.9), ("grad-dot", 0.8),
                                                                       ("kfac", 0.6)]
    assert tuned_ranks(table) == [2, 3, 1]  # grad-dot, kfac, if-explicit (default-track order)
    assert [rank_change(a, b) for a, b in zip(table.ranks, tuned_ranks(table))] == ["↓1", "↓1", "↑2"]
    assert rank_change(2, 2) == "=" and rank_change(None, 1) == ""
    head, body = summary_grid(table)
    assert head[-3:] == ["tuned, epoch 10", "tuned rank", "tuning (s)"]
    assert body[2][-3:] == ["0.900 [0.880, 0.920]", "1 ↑2", "12.5"]
    assert body[0][-3:] == ["—", "2 ↓1", "—"]  # grad-dot: nothing tuned, moved down by if-explicit
    (summary,) = tuned_summary([table])
    assert [(m.estimator, m.by_band["longest"][0]) for m in mean_ranks([summary])] == [
        ("if-explicit", 1.0), ("grad-dot", 2.0), ("kfac", 3.0)]


def test_chosen_settings_are_in_the_notes_and_the_markdown() -> None:
    (table,) = build_leaderboard([tuned_results()], "pearson")
    notes = table_notes(table)
    assert any(n.startswith("if-explicit tuned: damping=100.0 for all horizons; per horizon epoch 1: damping=1000.0, "
                            "epoch 10: damping=10.0") and "3 validation test points" in n for n in notes)
    assert any(n.startswith("tuned track: validation gold standard 2 s on 3 test points") for n in notes)
    cached = tuned_results()
    cached.cost["tuning"]["validation_gold_standard_s"] = 0.0  # every seed was read from the cache
    (again,) = build_leaderboard([cached], "pearson")
    assert any("validation gold standard read from the cache" in n for n in table_notes(again))
    readme = leaderboard_markdown([table])
    assert "## Across tasks: mean rank against the removal gold standard, tuned track" in readme
    assert "if-explicit (tuned)" not in readme.split("## toy")[0]  # no tuned rows in the summaries


def test_best_damping_against_one_over_eta_t_by_hand() -> None:
    (table,) = build_leaderboard([tuned_results()], "pearson")
    rows = best_damping(table)
    assert [(r["estimator"], r["horizon"], r["steps"]) for r in rows] == [("if-explicit", 1, 10), ("if-explicit", 10, 100)]
    assert rows[0]["one_over_eta_t"] == 1 / (LR * 10) and rows[1]["one_over_eta_t"] == 1 / (LR * 100)
    assert [r["damping"] for r in rows] == [1000.0 * LAMBDA_G, 10.0 * LAMBDA_G]
    assert [r["at_grid_edge"] for r in rows] == [True, False]  # 1000 is the largest value searched
    parsed = list(csv.DictReader(io.StringIO(best_damping_csv([table]))))
    assert [float(r["damping"]) for r in parsed] == [r["damping"] for r in rows]


def test_the_damping_plot_has_a_panel_per_sgd_task_only() -> None:
    def further_trained_by(optimizer: str | None, task: str) -> Results:
        res = tuned_results(task)
        recipe = {"lr": LR} | ({} if optimizer is None else {"optimizer": optimizer})
        return dataclasses.replace(res, task=dataclasses.replace(res.task, details={"further_training": recipe}))
    tables = build_leaderboard([further_trained_by("sgd", "a-sgd"), further_trained_by("adamw", "b-adamw"),
                                further_trained_by(None, "c-unrecorded")], "pearson")
    assert [r["optimizer"] for t in tables for r in best_damping(t)] == ["sgd"] * 2 + ["adamw"] * 2 + [None] * 2
    fig = damping_figure(tables)
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert len(titles) == 2 and titles[0].startswith("a-sgd") and titles[1].startswith("c-unrecorded")
    assert damping_figure([tables[1]]) is None  # AdamW alone: no panel, no figure


def test_pages_with_a_tuned_track(tmp_path: Path) -> None:
    plain = dataclasses.replace(tuned_results("plain"), records=[ci("grad-dot", 10, 0.8)], extra={})
    tables = build_leaderboard([tuned_results(), plain], "pearson")
    written = {p.relative_to(tmp_path).as_posix() for p in write_leaderboard(tables, tmp_path)}
    assert {"best_damping.csv", "plots/best_damping.png", "plots/best_damping.svg"} <= written
    assert "![best damping against 1/(ηT)](plots/best_damping.png)" in (tmp_path / "README.md").read_text()
    lines = list(csv.DictReader(io.StringIO(leaderboard_csv(tables))))
    per_h = [(r["horizon"], r["params"]) for r in lines if r["estimator"] == "if-explicit (tuned per horizon)"]
    assert [(h, '"damping": 1000.0' in p) for h, p in per_h] == [("1", True), ("10", False)]
    assert not any(n.startswith("if-explicit tuned") for n in table_notes(tables[0]))  # "plain": no tuned track
    bare = build_leaderboard([plain], "pearson")
    assert "tuned" not in summary_grid(bare[0])[0][-1] and bare[0].tuning is None
