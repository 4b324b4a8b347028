"""Leaderboard: grouping, newest wins, labels, ordering, LOO/LDS, ranks, Markdown, CSV, HTML, terminal."""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

import pytest

from tdabench.compare import headline
from tdabench.errors import UnknownNameError
from tdabench.report import (CSV_COLUMNS, build_leaderboard, format_cell, format_interval,
                             format_seconds, leaderboard_csv, leaderboard_html, leaderboard_markdown,
                             plot_names, read_relative, render_terminal_table, results_files,
                             summary_grid, table_notes, write_leaderboard)
from tdabench.results import GoldSummary, NoiseCeiling, Record, Results, TaskInfo, write_results

HASH_A = "sha256:" + "a" * 64
HASH_B = "sha256:" + "b" * 64


def rec(est: str, horizon: int, mean: float | None, params: dict | None = None,
        metric: str = "cosine", n_skipped: int = 0) -> Record:
    return Record(est, params or {}, horizon, metric, mean, None if mean is None else 0.01,
                  10 - n_skipped, n_skipped)


def res(records: list[Record], task: str = "toy", spec_hash: str = HASH_A,
        date: str = "2024-05-01T00:00:00+00:00", origin: str = "runs/a/results.json",
        errors: dict | None = None) -> Results:
    gold = GoldSummary("removal", 4, "epoch", [1, 10], 20, 10, False,
                       [NoiseCeiling(1, "cosine", 0.95), NoiseCeiling(10, "cosine", 0.8),
                        NoiseCeiling(1, "pearson", 0.5)])
    return Results(TaskInfo(task, 1, spec_hash), gold, records, {}, errors or {}, "0.1.0", None,
                   date, origin=origin)


def test_two_tasks_give_two_tables() -> None:
    tables = build_leaderboard([res([rec("grad-dot", 1, 0.9)], task="beta", origin="b"),
                                res([rec("grad-dot", 1, 0.7)], task="alpha", origin="a")])
    assert [t.task for t in tables] == ["alpha", "beta"]
    assert [t.rows[0].cells[1].mean for t in tables] == [0.7, 0.9]


def test_spec_hashes_are_never_mixed() -> None:
    tables = build_leaderboard([res([rec("grad-dot", 1, 0.9)], spec_hash=HASH_A, origin="a"),
                                res([rec("tracin", 1, 0.4)], spec_hash=HASH_B, origin="b")])
    assert [t.spec_hash for t in tables] == [HASH_A, HASH_B]
    assert [[r.estimator for r in t.rows] for t in tables] == [["grad-dot"], ["tracin"]]
    assert [t.sources for t in tables] == [["a"], ["b"]]
    assert tables[0].title == "toy v1 (spec sha256:aaaaaaaaaaaa)"


def test_newest_file_wins_with_footnote() -> None:
    old = res([rec("grad-dot", 1, 0.1), rec("tracin", 1, 0.3)], origin="old",
              date="2024-05-01T00:00:00+00:00")
    new = res([rec("grad-dot", 1, 0.2)], origin="new", date="2024-05-02T00:00:00Z")
    (table,) = build_leaderboard([new, old])
    means = {r.label: r.cells[1].mean for r in table.rows}
    assert means == {"grad-dot": 0.2, "tracin": 0.3}
    assert len(table.footnotes) == 1
    assert "grad-dot" in table.footnotes[0] and "superseded: old" in table.footnotes[0]


def test_failed_estimators_are_listed_until_a_newer_file_has_their_results() -> None:
    old = res([rec("grad-dot", 1, 0.1)], origin="old", date="2024-05-01T00:00:00+00:00",
              errors={"kfac": "Conv2d is not supported", "trak": "out of memory"})
    new = res([rec("trak", 1, 0.2)], origin="new", date="2024-05-02T00:00:00+00:00",
              errors={"if-cg": "not positive definite"})
    (table,) = build_leaderboard([new, old])
    assert table.failures == {"if-cg": "not positive definite", "kfac": "Conv2d is not supported"}
    notes = table_notes(table)
    assert "kfac did not run: Conv2d is not supported" in notes
    assert "if-cg did not run: not positive definite" in leaderboard_markdown([table])
    (again,) = build_leaderboard([res([rec("kfac", 1, 0.3)], origin="newer", date="2024-05-03T00:00:00+00:00"),
                                  new, old])
    assert again.failures == {"if-cg": "not positive definite"}


def test_labels_rows_order_and_noise_ceiling() -> None:
    records = [rec("if-explicit", 1, 0.9, {"damping": 0.1}),
               rec("if-explicit", 10, 0.2, {"damping": 0.1}),
               rec("if-explicit", 10, 0.6, {"damping": 10.0}), rec("grad-dot", 10, 0.4),
               rec("trak", 10, None), rec("grad-dot", 10, 0.99, metric="pearson")]
    (table,) = build_leaderboard([res(records)])
    assert [r.label for r in table.rows] == ["if-explicit(damping=10.0)", "grad-dot",
                                             "if-explicit(damping=0.1)", "trak"]
    assert table.horizons == [1, 10]
    assert table.noise_ceiling == {1: 0.95, 10: 0.8}
    (pearson,) = build_leaderboard([res(records)], metric="pearson")
    assert [r.label for r in pearson.rows] == ["grad-dot"]
    assert pearson.noise_ceiling == {1: 0.5, 10: None}


def test_format_cell() -> None:
    assert format_cell(0.93012, 0.0104) == "0.930 ± 0.010"
    assert format_cell(-0.5, None) == "-0.500"
    assert format_cell(None, None) == "—"


def test_unknown_metric() -> None:
    with pytest.raises(UnknownNameError):
        build_leaderboard([res([])], metric="kendall")


def _inputs() -> list[Results]:
    return [res([rec("grad-dot", 1, 0.9), rec("grad-dot", 10, 0.5, n_skipped=3)], origin="a"),
            res([rec("tracin", 10, 0.7)], task="other", origin="b"),
            res([rec("grad-dot", 1, 0.8), rec("grad-dot", 10, 0.4, n_skipped=3)], origin="c",
                date="2024-06-01T00:00:00+00:00")]


def test_markdown_is_deterministic_and_complete(tmp_path: Path) -> None:
    paths = write_leaderboard(build_leaderboard(_inputs()), tmp_path / "one", plots=False)
    write_leaderboard(build_leaderboard(list(reversed(_inputs()))), tmp_path / "two", plots=False)
    assert [p.name for p in paths] == ["README.md", "leaderboard.csv", "index.html"]
    for name in ("README.md", "leaderboard.csv", "index.html"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    text = paths[0].read_text()
    assert "do not edit by hand" in text and "`tdabench leaderboard`" in text
    assert "- `a`\n- `b`\n- `c`\n" in text
    assert text.index("## other v1") < text.index("## toy v1")  # sorted by task name
    assert "| grad-dot | final model only | 0.800 ± 0.010 | 0.400 ± 0.010 |" in text  # c is newer than a
    assert "| noise ceiling |  | 0.950 | 0.800 |" in text
    assert "epoch 10: 3" in text and "superseded: a" in text
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == ["README.md", "index.html",
                                                                   "leaderboard.csv"]


def test_csv_content(tmp_path: Path) -> None:
    _, csv_path, _ = write_leaderboard(build_leaderboard(_inputs()), tmp_path, plots=False)
    rows = list(csv.reader(io.StringIO(csv_path.read_text())))
    assert tuple(rows[0]) == CSV_COLUMNS
    ft = ["further-training", "", ""]  # then `uses`: not in these records, so as the class declares
    assert rows[1:] == [
        ["other", "1", HASH_A, "tracin", "{}", "10", "cosine", "0.7", "0.01", "10", "0", "epoch",
         "removal", "4", *ft, "training-checkpoints"],
        ["toy", "1", HASH_A, "grad-dot", "{}", "1", "cosine", "0.8", "0.01", "10", "0", "epoch",
         "removal", "4", *ft, "final-model"],
        ["toy", "1", HASH_A, "grad-dot", "{}", "10", "cosine", "0.4", "0.01", "7", "3", "epoch",
         "removal", "4", *ft, "final-model"],
    ]


def test_gold_settings_are_not_mixed() -> None:
    a = res([rec("grad-dot", 1, 0.9)], origin="a")
    b = res([rec("grad-dot", 1, 0.8)], origin="b")
    b = Results(b.task, GoldSummary("downweight", 4, "epoch", [1], 20, 10, False, [], 0.5),
                b.records, {}, {}, "0.1.0", None, b.date, origin="b")
    assert [t.gold["mode"] for t in build_leaderboard([a, b])] == ["downweight", "removal"]


def test_terminal_table() -> None:
    records = [rec("grad-dot", 1, 0.9), rec("grad-dot", 10, 0.5, n_skipped=2),
               rec("tracin", 10, 0.7)]
    text = render_terminal_table(res(records, errors={"ekfac": "out of memory"}), "cosine")
    lines = text.splitlines()
    assert lines[0] == "toy v1 (spec sha256:aaaaaaaaaaaa)  [cosine]"
    assert lines[1].split() == ["estimator", "given", "epoch", "1", "epoch", "10"]
    assert lines[2].split() == ["tracin", "training", "checkpoints", "—", "0.700", "±", "0.010"]
    assert lines[3].split() == ["grad-dot", "final", "model", "only", "0.900", "±", "0.010", "0.500", "±", "0.010"]
    assert lines[4].split() == ["noise", "ceiling", "0.950", "0.800"]
    skipped = next(i for i, line in enumerate(lines) if line.startswith("skipped test points"))
    legend = " ".join(lines[5:skipped])
    assert legend.startswith("cells: mean over test points [95 % percentile-bootstrap interval")
    assert "± one standard error" in legend and all(len(line) <= 100 for line in lines[5:skipped])
    assert "epoch 1: 0, epoch 10: 2" in lines[skipped]
    assert lines[skipped + 1] == "cost per estimator in this run:"
    assert [line.split() for line in lines[skipped + 2:skipped + 5]] == [
        ["estimator", "fit", "(s)", "score", "(s)", "peak", "MB"], ["tracin", "—", "—", "—"], ["grad-dot", "—", "—", "—"]]
    assert lines[skipped + 5:] == ["errors:", "  ekfac: out of memory"]


def test_terminal_table_prints_intervals_and_costs() -> None:
    records = [Record("grad-dot", {}, 1, "pearson", 0.9, 0.01, 10, 0, None, 0.88, 0.93),
               Record("tracin", {}, 1, "pearson", 0.7, 0.02, 10, 0, None, 0.66, 0.74)]
    results = res(records)
    cost = {"gold_standard_s": 0.0, "estimators": {"grad-dot": {"fit_s": 0.0041, "score_s": 1.25, "peak_mem_mb": 545.4},
                                                   "tracin": {"fit_s": 12.0, "score_s": 1234.4, "peak_mem_mb": 600}}}
    results = Results(results.task, results.gold_standard, records, cost, {}, "0.1.0", None, results.date)
    lines = render_terminal_table(results, "pearson").splitlines()
    assert lines[2].split() == ["grad-dot", "final", "model", "only", "0.900", "[0.880,", "0.930]", "—"]
    assert lines[3].split() == ["tracin", "training", "checkpoints", "0.700", "[0.660,", "0.740]", "—"]
    costs = lines[lines.index("cost per estimator in this run:") + 2:]
    assert [line.split() for line in costs] == [["grad-dot", "0.0041", "1.25", "545"], ["tracin", "12", "1234", "600"]]


def ci(est: str, horizon: int, mean: float, lo: float, hi: float, metric: str = "pearson",
       gt: str = "further-training", params: dict | None = None) -> Record:
    return Record(est, params or {}, horizon, metric, mean, 0.01, 10, 0, None, lo, hi, gt)


def rich(records: list[Record] | None = None, date: str = "2024-05-01T00:00:00+00:00",
         origin: str = "results/toy/results.json") -> Results:
    gold = GoldSummary("removal", 5, "epoch", [1, 2, 5, 10, 20], 20, 10, False,
                       [NoiseCeiling(h, "pearson", v) for h, v in ((1, 0.99), (5, 0.98), (20, 0.97))])
    records = records if records is not None else [
        ci("grad-dot", 1, 0.9, 0.85, 0.95), ci("grad-dot", 2, 0.9, 0.84, 0.96),
        ci("grad-dot", 5, 0.7, 0.6, 0.8), ci("grad-dot", 20, 0.5, 0.4, 0.6),
        ci("if-explicit", 1, 0.6, 0.5, 0.7), ci("if-explicit", 10, 0.85, 0.8, 0.9),
        ci("if-explicit", 20, 0.8, 0.75, 0.85), ci("tracin", 20, 0.55, 0.3, 0.78),
        ci("grad-dot", 30, 0.7, 0.65, 0.75, gt="loo"),
        ci("grad-dot", 30, 0.2, 0.1, 0.3, metric="cosine", gt="loo"),
        ci("grad-dot", 20, 0.3, 0.25, 0.35, metric="lds", gt="lds"),
        # other (fitted) params than its further-training records: joins the only if-explicit row
        ci("if-explicit", 20, 0.4, 0.35, 0.45, metric="lds", gt="lds", params={"fitted.x": 1})]
    cost = {"gold_standard_s": 3.0, "estimators": {
        "grad-dot": {"fit_s": 0.5, "score_s": 0.25, "peak_mem_mb": 310.4},
        "if-explicit": {"fit_s": 1234.0, "score_s": 1.0, "peak_mem_mb": None}}}
    return Results(TaskInfo("toy", 1, HASH_A), gold, records, cost, {}, "0.1.0", None, date,
                   origin=origin)


def test_loo_and_lds_join_their_rows_and_stay_out_of_the_horizons() -> None:
    (table,) = build_leaderboard([rich()], "pearson")
    assert table.horizons == [1, 2, 5, 10, 20]
    assert table.key_horizons == [1, 5, 20]
    assert [r.label for r in table.rows] == ["if-explicit", "tracin", "grad-dot"]
    gd = table.rows[2]
    assert sorted(gd.cells) == [1, 2, 5, 20]
    assert (gd.loo.horizon, gd.loo.mean, gd.loo.metric) == (30, 0.7, "pearson")
    assert (gd.lds.mean, table.rows[0].lds.mean, table.rows[1].lds) == (0.3, 0.4, None)
    assert [r.best_horizon for r in table.rows] == [10, 20, 1]  # grad-dot: 1 and 2 tie → 1
    assert table.ranks == [1, 1, 2]  # at epoch 20 only if-explicit's [0.75, 0.85] is above grad-dot's
    (cos,) = build_leaderboard([rich()], "cosine")
    # no cosine further-training records: the rows carry only their LOO (cosine) and LDS records
    assert [(r.label, r.cells, r.loo and r.loo.mean, r.lds.mean) for r in cos.rows] == [
        ("grad-dot", {}, 0.2, 0.3), ("if-explicit", {}, None, 0.4)]


def test_summary_grid_by_hand() -> None:
    (table,) = build_leaderboard([rich()], "pearson")
    head, body = summary_grid(table)
    # every horizon once, with its interval: "best" always names a column of the table
    assert head == ["estimator", "given", "epoch 1", "epoch 2", "epoch 5", "epoch 10", "epoch 20", "best epoch",
                    "LDS", "LOO (pearson)", "fit + score (s)", "peak MB", "rank at epoch 20", "rank, same input"]
    assert body == [
        ["if-explicit", "final model only", "0.600 [0.500, 0.700]", "—", "—", "0.850 [0.800, 0.900]",
         "0.800 [0.750, 0.850]", "10", "0.400 [0.350, 0.450]", "—", "1235", "—", "1", "1"],
        ["tracin", "training checkpoints", "—", "—", "—", "—", "0.550 [0.300, 0.780]", "20", "—", "—", "—", "—",
         "1", "1"],  # alone in its group
        ["grad-dot", "final model only", "0.900 [0.850, 0.950]", "0.900 [0.840, 0.960]", "0.700 [0.600, 0.800]",
         "—", "0.500 [0.400, 0.600]", "1", "0.300 [0.250, 0.350]", "0.700 [0.650, 0.750]", "0.75", "310", "2", "2"],
        ["noise ceiling", "", "0.990", "—", "0.980", "—", "0.970", "", "", "", "", "", "", ""]]
    (plain,) = build_leaderboard([rich([ci("grad-dot", 20, 0.5, 0.4, 0.6)])], "pearson")
    assert "LOO (pearson)" not in summary_grid(plain)[0]  # shown only when some row has it


def test_rows_sharing_a_rank_are_ordered_by_their_whole_curve() -> None:
    # at epoch 20 all three intervals overlap (one shared rank); "late" has the highest mean there by
    # noise, "early" the best curve; "worst" is below both everywhere else; "gone" has no epoch 20
    records = [ci("late", 1, 0.2, 0.1, 0.3), ci("late", 20, 0.52, 0.2, 0.8),
               ci("early", 1, 0.9, 0.85, 0.95), ci("early", 20, 0.5, 0.2, 0.8),
               ci("worst", 1, 0.1, 0.0, 0.2), ci("worst", 20, 0.51, 0.2, 0.8),
               ci("gone", 1, 0.99, 0.98, 1.0), ci("top", 20, 0.95, 0.9, 0.99)]
    (table,) = build_leaderboard([rich(records)], "pearson")
    assert table.ranks == [1, 2, 2, 2, None]
    assert [r.label for r in table.rows] == ["top", "early", "late", "worst", "gone"]


def test_mean_ranks_across_tasks_by_hand() -> None:
    from tdabench.report import mean_rank_grid
    from tdabench.report.tables import band_horizons, mean_ranks

    a = rich([ci("x", 1, 0.9, 0.85, 0.95), ci("y", 1, 0.5, 0.4, 0.6), ci("x", 20, 0.5, 0.4, 0.6),
              ci("y", 20, 0.8, 0.7, 0.9)])
    b = rich([ci("x", 1, 0.2, 0.1, 0.3), ci("y", 1, 0.6, 0.5, 0.7), ci("x", 20, 0.5, 0.4, 0.6),
              ci("y(k=1)", 20, 0.55, 0.45, 0.65), ci("y(k=2)", 20, 0.2, 0.1, 0.3)], origin="r/b.json")
    b = dataclasses.replace(b, task=TaskInfo("other", 1, HASH_A))
    tables = build_leaderboard([a, b], "pearson")
    assert [band_horizons(t) for t in tables] == [{"shortest": 1, "middle": 5, "longest": 20}] * 2
    # shortest (epoch 1): x ranks 1 (toy), 2 (other); y 2, 1. middle (epoch 5): nobody.
    # longest (epoch 20): toy x 2, y 1; other: x 1, y(k=1) 1 and y(k=2) 3 → y's best, 1
    by_name = {m.estimator: m.by_band for m in mean_ranks(tables)}
    assert by_name == {"x": {"shortest": (1.5, 2), "middle": None, "longest": (1.5, 2)},
                       "y": {"shortest": (1.5, 2), "middle": None, "longest": (1.0, 2)}}
    head, body = mean_rank_grid(tables)
    assert head[1:] == ["mean rank, shortest horizon", "mean rank, middle horizon", "mean rank, longest horizon"]
    assert [[c.text for c in cells] for cells in body] == [["y", "1.50 (2)", "—", "1.00 (2)"],
                                                           ["x", "1.50 (2)", "—", "1.50 (2)"]]


def test_key_horizons_and_formatting() -> None:
    def table(horizons: list[int]):
        gold = GoldSummary("removal", 2, "step", horizons, 5, 5, False, [])
        return build_leaderboard([Results(TaskInfo("t", 1, HASH_A), gold, [], {}, {}, "0", None,
                                          "2024")], "pearson")[0]
    assert [table(h).key_horizons for h in ([3], [1, 10], [1, 2, 5, 10])] == [[3], [1, 10], [1, 2, 10]]
    assert format_interval(None) == "—"
    assert format_interval(rec("a", 1, 0.25)) == "0.250 ± 0.010"
    assert format_interval(ci("a", 1, -0.5, -0.61, -0.4)) == "-0.500 [-0.610, -0.400]"
    assert [format_seconds(x) for x in (0.00512, 59.16, 180.9, 1809.3)] == ["0.00512", "59.2",
                                                                           "181", "1809"]


def test_ranks_fall_back_to_normal_intervals_without_bootstrap() -> None:
    # sem 0.01: ± 1.96 · 0.01 = ± 0.0196; 0.50 vs 0.46 are disjoint, 0.50 vs 0.48 overlap
    apart = [rec("a", 10, 0.50, metric="pearson"), rec("b", 10, 0.46, metric="pearson")]
    close = [rec("a", 10, 0.50, metric="pearson"), rec("b", 10, 0.48, metric="pearson"),
             rec("c", 10, None, metric="pearson")]
    assert build_leaderboard([res(apart)], "pearson")[0].ranks == [1, 2]
    assert build_leaderboard([res(close)], "pearson")[0].ranks == [1, 1, None]


def test_newest_wins_per_ground_truth() -> None:
    old = rich([ci("grad-dot", 20, 0.1, 0.0, 0.2), ci("grad-dot", 20, 0.3, 0.2, 0.4, "lds", "lds")],
               origin="old")
    new = rich([ci("grad-dot", 20, 0.5, 0.4, 0.6)], date="2024-06-01T00:00:00+00:00", origin="new")
    (table,) = build_leaderboard([new, old], "pearson")
    (row,) = table.rows
    assert (row.cells[20].mean, row.lds.mean) == (0.5, 0.3)
    assert table.footnotes == ["grad-dot: newest results used (new, 2024-06-01T00:00:00+00:00); "
                               "superseded: old"]
    assert table.dates == ["2024-05-01T00:00:00+00:00", "2024-06-01T00:00:00+00:00"]


def test_csv_holds_every_record_with_ground_truth_and_interval(tmp_path: Path) -> None:
    text = leaderboard_csv(build_leaderboard([rich()], "pearson"))
    rows = [r for r in csv.DictReader(io.StringIO(text)) if r["estimator"] == "grad-dot"]
    assert [(r["horizon"], r["metric"], r["ground_truth"]) for r in rows] == [
        ("1", "pearson", "further-training"), ("2", "pearson", "further-training"),
        ("5", "pearson", "further-training"), ("20", "pearson", "further-training"),
        ("30", "pearson", "loo"), ("20", "lds", "lds")]
    assert (rows[0]["ci_low"], rows[0]["ci_high"]) == ("0.85", "0.95")


def test_pages_reproduce_byte_for_byte(tmp_path: Path) -> None:
    command = "tdabench leaderboard --suite benchmarks/leaderboard_suite.yaml"
    inputs = [rich(), res([rec("grad-dot", 1, 0.9, metric="pearson")], task="other", origin="b")]
    first = write_leaderboard(build_leaderboard(inputs, "pearson"), tmp_path / "one", command)
    write_leaderboard(build_leaderboard(inputs[::-1], "pearson"), tmp_path / "two", command)
    names = sorted(p.relative_to(tmp_path / "one").as_posix() for p in first)
    assert names == ["README.md", "index.html", "leaderboard.csv", "plots/other_pearson.png",
                     "plots/other_pearson.svg", "plots/toy_pearson.png", "plots/toy_pearson.svg"]
    listing = sorted(p.relative_to(tmp_path / "two").as_posix()
                     for p in (tmp_path / "two").rglob("*") if p.is_file())
    assert listing == names
    for name in names:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    readme = (tmp_path / "one" / "README.md").read_text()
    assert f"Command: `{command}`" in readme
    assert "Further-training seeds averaged in each gold standard: other v1 (spec " \
           "sha256:aaaaaaaaaaaa): 4; toy v1 (spec sha256:aaaaaaaaaaaa): 5." in readme
    assert "Results dated 2024-05-01T00:00:00+00:00." in readme
    assert "![decay curve of toy, pearson](plots/toy_pearson.png) ([SVG](plots/toy_pearson.svg))" \
        in readme
    assert ("| grad-dot | final model only | 0.900 [0.850, 0.950] | 0.900 [0.840, 0.960] | 0.700 [0.600, 0.800] | "
            "— | 0.500 [0.400, 0.600] | 1 | 0.300 [0.250, 0.350] | 0.700 [0.650, 0.750] | 0.75 | 310 | 2 | 2 |") in readme
    assert readme.count("| grad-dot |") == 3  # one table per task (toy, other) and the cross-task summary


def test_old_plots_are_removed_and_others_kept(tmp_path: Path) -> None:
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "gone_pearson.png").write_bytes(b"old")
    (tmp_path / "plots" / "notes.txt").write_text("keep")
    write_leaderboard(build_leaderboard([rich()], "pearson"), tmp_path)
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "notes.txt", "toy_pearson.png", "toy_pearson.svg"]


def test_html_is_static_and_escaped() -> None:
    records = [ci("<b>&x", 20, 0.5, 0.4, 0.6)]
    page = leaderboard_html(build_leaderboard([rich(records)], "pearson"), "tdabench leaderboard",
                            ["toy_pearson"])
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</html>\n")
    # one inline script, nothing fetched from elsewhere
    assert page.count("<script") == 1 and "<script>" in page and "src=\"http" not in page
    assert "http" not in page and "<link" not in page and "import(" not in page
    assert "<style>" in page and "&lt;b&gt;&amp;x" in page and "<b>&x" not in page
    assert '<img src="plots/toy_pearson.png"' in page and 'href="plots/toy_pearson.svg"' in page
    assert "<td>noise ceiling</td>" in page and "<code>tdabench leaderboard</code>" in page


def test_plot_names_are_unique() -> None:
    a = res([rec("grad-dot", 1, 0.9)], spec_hash=HASH_A, origin="a")
    b = res([rec("grad-dot", 1, 0.9)], spec_hash=HASH_B, origin="b")
    c = res([rec("grad-dot", 1, 0.9)], task="we ird/name", origin="c")
    d = dataclasses.replace(a, gold_standard=dataclasses.replace(a.gold_standard, mode="derivative"), origin="d")
    assert plot_names(build_leaderboard([a, b, c, d])) == ["toy-derivative_cosine", "toy_cosine", "toy-2_cosine",
                                                           "we-ird-name_cosine"]


def _two_modes() -> list:
    """Tables of tasks toy and other: toy against removal (4 and 8 seeds) and derivative, other
    against removal only."""
    toy = res([rec("x", 10, 0.9), rec("y", 10, 0.5)], origin="toy")

    def variant(origin: str, records: list[Record], **gold) -> Results:
        return dataclasses.replace(toy, gold_standard=dataclasses.replace(toy.gold_standard, **gold),
                                   origin=origin, records=records)
    return build_leaderboard([toy, variant("toy8", [rec("x", 10, 0.1), rec("y", 10, 0.9)], seeds=8),
                              variant("toyd", [rec("x", 10, 0.2), rec("y", 10, 0.95)], mode="derivative"),
                              res([rec("x", 10, 0.8), rec("y", 10, 0.3)], task="other", origin="other")])


def test_cross_task_summaries_never_mix_modes_or_count_a_task_twice() -> None:
    from tdabench.report.tables import mean_ranks, summary_groups

    tables = _two_modes()
    groups = summary_groups(tables)
    assert [(mode, [(t.task, t.gold["seeds"]) for t in group]) for mode, group in groups] == [
        ("removal", [("other", 4), ("toy", 8)]), ("derivative", [("toy", 4)])]
    # removal: other x 1 y 2 (intervals 0.8±0.02 vs 0.3±0.02); toy (8 seeds) x 2 y 1
    removal = {m.estimator: m.by_band["longest"] for m in mean_ranks(groups[0][1])}
    assert removal == {"x": (1.5, 2), "y": (1.5, 2)}
    derivative = {m.estimator: m.by_band["longest"] for m in mean_ranks(groups[1][1])}
    assert derivative == {"y": (1.0, 1), "x": (2.0, 1)}
    with pytest.raises(ValueError, match="one table per task"):
        mean_ranks(tables)


def test_page_ids_and_headings_are_unique_per_mode() -> None:
    import re

    from tdabench.report.html import anchors

    tables = _two_modes()
    ids = anchors(tables)
    assert len(set(ids)) == len(ids) and "task-toy-v1-derivative" in ids and "task-toy-v1-2" in ids
    assert len({t.title for t in tables if t.task == "toy" and t.gold["seeds"] == 4}) == 2  # removal, derivative
    page = leaderboard_html(tables)
    page_ids = re.findall(r'id="([^"]+)"', page)
    assert len(page_ids) == len(set(page_ids))
    links = re.findall(r'<nav id="contents">.*?</nav>', page, re.S)[0]
    targets = re.findall(r'href="#([^"]+)"', links)
    assert len(targets) == len(set(targets)) and set(targets) <= set(page_ids)
    assert {"across-tasks", "across-tasks-derivative"} <= set(targets)
    markdown = leaderboard_markdown(tables)
    assert markdown.count("## Across tasks: mean rank against the removal gold standard") == 1
    assert markdown.count("## Across tasks: mean rank against the derivative gold standard") == 1


def test_read_relative_sets_origins_relative_to_the_output(tmp_path: Path) -> None:
    write_results(rich(), tmp_path / "board" / "results" / "toy")
    write_results(rich(), tmp_path / "runs" / "x")
    found = results_files(tmp_path / "board" / "results")
    assert found == [tmp_path / "board" / "results" / "toy" / "results.json"]
    assert results_files(tmp_path / "missing") == []
    loaded = read_relative([*found, tmp_path / "runs" / "x"], tmp_path / "board")
    assert [r.origin for r in loaded] == ["results/toy/results.json", "../runs/x/results.json"]


@pytest.mark.parametrize("seconds, words", [(0.0, "every seed read from the cache"),
                                            (41.25, "computed in 41.2 s (seeds found in the cache not counted)")])
def test_headline_says_cached_in_words(seconds: float, words: str) -> None:
    base = res([rec("grad-dot", 1, 0.9)])
    task = TaskInfo("toy", 1, HASH_A, {"n_params": 62, "target": "loss",
                                       "final_model": {"test": {"accuracy": 0.9}}})
    results = Results(task, base.gold_standard, base.records, {"gold_standard_s": seconds, "estimators": {}},
                      {}, "0.1.0", None, base.date)
    line = headline(results).splitlines()[1]
    assert line.endswith(f"target 'loss', {words}") and "0 = cached" not in line


def test_every_builtin_estimator_describes_its_method() -> None:
    from tdabench.estimators.base import FAMILIES
    from tdabench.report.methods import builtin_names, method_of

    names = builtin_names()
    assert "grad-dot" in names and "trak-traker" in names  # natives and adapters
    for name in names:
        m = method_of(name)
        assert m.family in FAMILIES[:-1] and m.summary and m.citation, name
    assert method_of("if-cg(max_iter=5)") == method_of("if-cg")
    assert method_of("not-installed").family == "other" and method_of("not-installed").citation == ""


def test_page_links_results_files_and_task_specs(tmp_path: Path) -> None:
    from tdabench.report.write import spec_links

    tables = build_leaderboard([rich(), res([rec("grad-dot", 1, 0.9, metric="pearson")],
                                            task="mnist-cnn@small", origin="b/results.json")], "pearson")
    links = spec_links(tables, tmp_path)
    # a built-in task (variant suffix dropped) gets its spec, relative to the pages; "toy" has none
    assert list(links) == ["mnist-cnn@small"] and links["mnist-cnn@small"].endswith("tasks/mnist-cnn.yaml")
    assert (tmp_path / links["mnist-cnn@small"]).resolve().is_file()
    page = leaderboard_html(tables, None, None, links)
    assert f'<a href="{links["mnist-cnn@small"]}">' in page
    assert '<a href="b/results.json">' in page and '<a href="results/toy/results.json">' in page
    assert page.count('<section class="task"') == 2 and 'id="submit"' in page and 'id="methods"' in page
