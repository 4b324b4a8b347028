"""Leaderboard: grouping, newest wins, labels, ordering, Markdown and CSV output, terminal table."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from tdabench.errors import UnknownNameError
from tdabench.leaderboard import (CSV_COLUMNS, build_leaderboard, format_cell,
                                  render_terminal_table, write_leaderboard)
from tdabench.results import GoldSummary, NoiseCeiling, Record, Results, TaskInfo

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
    paths = write_leaderboard(build_leaderboard(_inputs()), tmp_path / "one")
    write_leaderboard(build_leaderboard(list(reversed(_inputs()))), tmp_path / "two")
    assert [p.name for p in paths] == ["README.md", "leaderboard.csv"]
    for name in ("README.md", "leaderboard.csv"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    text = paths[0].read_text()
    assert "do not edit by hand" in text and "`tdabench leaderboard`" in text
    assert "- `a`\n- `b`\n- `c`\n" in text
    assert text.index("## other v1") < text.index("## toy v1")  # sorted by task name
    assert "| grad-dot | 0.800 ± 0.010 | 0.400 ± 0.010 |" in text  # c is newer than a
    assert "| noise ceiling | 0.950 | 0.800 |" in text
    assert "epoch 10: 3" in text and "superseded: a" in text
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == ["README.md", "leaderboard.csv"]


def test_csv_content(tmp_path: Path) -> None:
    _, csv_path = write_leaderboard(build_leaderboard(_inputs()), tmp_path)
    rows = list(csv.reader(io.StringIO(csv_path.read_text())))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert rows[1:] == [
        ["other", "1", HASH_A, "tracin", "{}", "10", "cosine", "0.7", "0.01", "10", "0", "epoch",
         "removal", "4"],
        ["toy", "1", HASH_A, "grad-dot", "{}", "1", "cosine", "0.8", "0.01", "10", "0", "epoch",
         "removal", "4"],
        ["toy", "1", HASH_A, "grad-dot", "{}", "10", "cosine", "0.4", "0.01", "7", "3", "epoch",
         "removal", "4"],
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
    assert lines[1].split() == ["estimator", "epoch", "1", "epoch", "10"]
    assert lines[2].split() == ["tracin", "—", "0.700", "±", "0.010"]
    assert lines[3].split() == ["grad-dot", "0.900", "±", "0.010", "0.500", "±", "0.010"]
    assert lines[4].split() == ["noise", "ceiling", "0.950", "0.800"]
    assert "epoch 1: 0, epoch 10: 2" in lines[5]
    assert lines[6:] == ["errors:", "  ekfac: out of memory"]
