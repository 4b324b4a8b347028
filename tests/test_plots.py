"""Decay plots: what is drawn (lines, bands, ceiling, log axis, title) and reproducible files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tdabench.report.plots import decay_figure, write_decay_plot, write_results_plots
from tdabench.report.tables import build_leaderboard
from tdabench.results import GoldSummary, NoiseCeiling, Record, Results, TaskInfo

pytest.importorskip("matplotlib")


def results() -> Results:
    gold = GoldSummary("removal", 5, "epoch", [1, 10, 100], 20, 10, False,
                       [NoiseCeiling(1, "pearson", 0.95), NoiseCeiling(10, "pearson", 0.9),
                        NoiseCeiling(100, "pearson", 0.85), NoiseCeiling(1, "cosine", 0.5)])
    records = [
        # with bootstrap intervals
        Record("grad-dot", {}, 1, "pearson", 0.9, 0.05, 10, 0, None, 0.8, 0.97),
        Record("grad-dot", {}, 10, "pearson", 0.6, 0.05, 10, 0, None, 0.5, 0.7),
        Record("grad-dot", {}, 100, "pearson", 0.3, 0.05, 10, 0, None, 0.2, 0.45),
        # without: the band is mean ± sem
        Record("tracin", {}, 1, "pearson", 0.5, 0.1, 10, 0),
        Record("tracin", {}, 100, "pearson", 0.4, 0.1, 10, 0),
        # not further training: not drawn
        Record("grad-dot", {}, 3, "pearson", 0.2, 0.01, 10, 0, None, None, None, "loo"),
        Record("grad-dot", {}, 3, "lds", 0.2, 0.01, 10, 0, None, None, None, "lds")]
    return Results(TaskInfo("toy", 2, "sha256:" + "c" * 64), gold, records, {}, {}, "0.1.0", None,
                   "2024-05-01T00:00:00+00:00")


def test_what_is_drawn() -> None:
    (table,) = build_leaderboard([results()], "pearson")
    ax = decay_figure(table).axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    # rows in table order (mean at the longest horizon: tracin 0.4 > grad-dot 0.3), then the ceiling
    assert list(lines) == ["tracin", "grad-dot", "noise ceiling"]
    assert list(lines["grad-dot"].get_xdata()) == [1, 10, 100]
    assert list(lines["grad-dot"].get_ydata()) == [0.9, 0.6, 0.3]
    assert list(lines["tracin"].get_xdata()) == [1, 100]  # no record at 10: the line joins 1 and 100
    assert list(lines["tracin"].get_ydata()) == [0.5, 0.4]
    assert list(lines["noise ceiling"].get_ydata()) == [0.95, 0.9, 0.85]
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "10", "100"]
    # bands: tracin's mean ± sem (0.5 ± 0.1, 0.4 ± 0.1), grad-dot's bootstrap interval, the
    # ceiling up to 1
    spans = [(round(float(p.get_paths()[0].vertices[:, 1].min()), 12),
              round(float(p.get_paths()[0].vertices[:, 1].max()), 12)) for p in ax.collections]
    assert spans == [(0.3, 0.6), (0.2, 0.97), (0.85, 1.0)]
    title = ax.get_title()
    assert "toy v2" in title and "pearson" in title and "removal" in title and "5 seeds" in title
    assert ax.get_ylabel() == "agreement (pearson)"


def test_no_ceiling_line_without_ceiling_values() -> None:
    (table,) = build_leaderboard([results()], "spearman")
    ax = decay_figure(table).axes[0]
    assert [line.get_label() for line in ax.get_lines()] == []


def test_files_are_reproducible(tmp_path: Path) -> None:
    paths = write_results_plots(results(), "pearson", tmp_path / "a")
    again = write_results_plots(results(), "pearson", tmp_path / "b")
    assert [p.name for p in paths] == ["decay_pearson.png", "decay_pearson.svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = paths[1].read_text()
    assert svg.lstrip().startswith("<?xml") and "<dc:date>" not in svg
    for p, q in zip(paths, again):
        assert p.read_bytes() == q.read_bytes()
    (table,) = build_leaderboard([results()], "cosine")
    stems = write_decay_plot(table, tmp_path / "c" / "toy_cosine")
    assert [p.name for p in stems] == ["toy_cosine.png", "toy_cosine.svg"]
    assert stems[1].read_bytes() != paths[1].read_bytes()


def test_compare_writes_plots_next_to_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture) -> None:
    import tdabench.report.plots
    from tdabench.cli import _write_decay_plots
    from tdabench.errors import TdabenchError

    _write_decay_plots(results(), "spearman", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["decay_spearman.png", "decay_spearman.svg"]
    assert f"wrote {tmp_path / 'decay_spearman.png'} and " in capsys.readouterr().out

    def no_matplotlib(*args: object) -> list[Path]:
        raise TdabenchError("plots need matplotlib")
    monkeypatch.setattr(tdabench.report.plots, "write_results_plots", no_matplotlib)
    _write_decay_plots(results(), "pearson", tmp_path / "none")  # a note, not a failure
    assert capsys.readouterr().out == "note: no decay plot: plots need matplotlib\n"
