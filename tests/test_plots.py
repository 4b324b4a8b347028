"""Decay plots: what is drawn (lines, bands, ceiling, log axis, title) and reproducible files."""

from __future__ import annotations

import dataclasses
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


def _legend(ax) -> list[str]:  # noqa: ANN001
    legend = ax.get_legend()
    return [] if legend is None else [t.get_text() for t in legend.get_texts()]


def test_what_is_drawn() -> None:
    (table,) = build_leaderboard([results()], "pearson")
    (ax,) = decay_figure(table).axes
    lines = {line.get_label(): line for line in ax.get_lines()}
    # rows in table order (both share rank 1 at the longest horizon; grad-dot's mean over horizons,
    # 0.6, is above tracin's 0.45), then the ceiling
    assert list(lines) == ["grad-dot", "tracin", "noise ceiling"]
    assert list(lines["grad-dot"].get_xdata()) == [1, 10, 100]
    assert list(lines["grad-dot"].get_ydata()) == [0.9, 0.6, 0.3]
    assert list(lines["tracin"].get_xdata()) == [1, 100]  # no record at 10: the line joins 1 and 100
    assert list(lines["tracin"].get_ydata()) == [0.5, 0.4]
    assert list(lines["noise ceiling"].get_ydata()) == [0.95, 0.9, 0.85]
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "10", "100"]
    # bands: grad-dot's bootstrap interval, tracin's mean ± sem (0.5 ± 0.1, 0.4 ± 0.1), the
    # ceiling up to 1
    spans = [(round(float(p.get_paths()[0].vertices[:, 1].min()), 12),
              round(float(p.get_paths()[0].vertices[:, 1].max()), 12)) for p in ax.collections]
    assert spans == [(0.2, 0.97), (0.3, 0.6), (0.85, 1.0)]
    # the legend lists exactly what is drawn
    assert _legend(ax) == ["grad-dot", "tracin", "noise ceiling (shaded: above it)"]
    title = decay_figure(table).get_suptitle()
    assert "toy v2" in title and "pearson" in title and "removal" in title and "5 seeds" in title
    assert ax.get_ylabel() == "agreement (pearson)"


def test_no_ceiling_without_ceiling_values() -> None:
    (table,) = build_leaderboard([results()], "spearman")
    (ax,) = decay_figure(table).axes
    assert [line.get_label() for line in ax.get_lines()] == [] and _legend(ax) == []


def test_each_estimator_keeps_its_style_in_every_plot() -> None:
    from tdabench.report.methods import builtin_names
    from tdabench.report.plots import estimator_style

    names = builtin_names()
    styles = [estimator_style(n) for n in names]
    assert len({(s.color, s.marker) for s in styles}) == len(names)  # no two built-ins alike
    assert len({s.color for s in styles}) == len(names)
    assert estimator_style("if-cg(max_iter=5)") == estimator_style("if-cg")
    assert estimator_style("my-plugin") == estimator_style("my-plugin")
    assert estimator_style("my-plugin").linestyle == "--"
    # the same estimator is drawn alike in two tables with different company
    one = build_leaderboard([results()], "pearson")[0]
    alone = build_leaderboard([dataclasses.replace(results(), records=[r for r in results().records
                                                                       if r.estimator == "tracin"])],
                              "pearson")[0]
    colours = [{ln.get_label(): (ln.get_color(), ln.get_marker()) for ln in decay_figure(t).axes[0].get_lines()}
               for t in (one, alone)]
    assert colours[0]["tracin"] == colours[1]["tracin"] == (estimator_style("tracin").color,
                                                            estimator_style("tracin").marker)


def _many() -> Results:
    """Seven built-in estimators (more than one panel holds) over two horizons, no ceiling at 10."""
    names = ["grad-dot", "grad-cos", "tracin", "if-cg", "if-explicit", "kfac", "trak"]
    records = [Record(n, {}, h, "pearson", 0.9 - 0.05 * k - 0.01 * h, 0.02, 10, 0, None,
                      0.85 - 0.05 * k - 0.01 * h, 0.95 - 0.05 * k - 0.01 * h)
               for k, n in enumerate(names) for h in (1, 10)]
    gold = GoldSummary("removal", 5, "epoch", [1, 10], 20, 10, False, [NoiseCeiling(1, "pearson", 0.97)])
    return Results(TaskInfo("many", 1, "sha256:" + "d" * 64), gold, records, {}, {}, "0.1.0", None,
                   "2024-05-01T00:00:00+00:00")


def test_more_than_six_lines_are_split_by_family() -> None:
    (table,) = build_leaderboard([_many()], "pearson")
    fig = decay_figure(table)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["gradient similarity", "influence function",
                                               "per-layer curvature", "random projection"]
    drawn = [[ln.get_label() for ln in ax.get_lines()] for ax in axes]
    assert drawn == [["grad-dot", "grad-cos", "tracin", "noise ceiling"],
                     ["if-cg", "if-explicit", "noise ceiling"], ["kfac", "noise ceiling"],
                     ["trak", "noise ceiling"]]
    for ax, labels in zip(axes, drawn):
        # the ceiling is known at epoch 1 only: its line has a gap at 10, and the legend lists it
        assert _legend(ax) == labels[:-1] + ["noise ceiling (shaded: above it)"]
    assert sorted(label for labels in drawn for label in labels[:-1]) == sorted(r.label for r in table.rows)


def test_one_horizon_draws_points_with_intervals_and_the_ceiling() -> None:
    one = dataclasses.replace(results(), records=[r for r in results().records if r.horizon == 1])
    one = dataclasses.replace(one, gold_standard=dataclasses.replace(one.gold_standard, horizons=[1]))
    (table,) = build_leaderboard([one], "pearson")
    (ax,) = decay_figure(table).axes
    bars = {c.get_label(): c for c in ax.containers}
    assert sorted(bars) == ["grad-dot", "tracin"]
    # the error bars span the intervals: grad-dot [0.8, 0.97], tracin 0.5 ± 0.1
    spans = {}
    for label, c in bars.items():
        (segments,) = [lc for lc in c.lines[2]]
        (seg,) = segments.get_segments()
        spans[label] = (round(float(seg[:, 1].min()), 12), round(float(seg[:, 1].max()), 12))
    assert spans == {"grad-dot": (0.8, 0.97), "tracin": (0.4, 0.6)}
    xs = [float(c.lines[0].get_xdata()[0]) for c in bars.values()]
    assert len(set(xs)) == 2  # spread sideways, not on top of each other
    ceiling = [ln for ln in ax.get_lines() if ln.get_label() == "noise ceiling"]
    assert len(ceiling) == 1 and list(ceiling[0].get_ydata()) == [0.95, 0.95]
    band = ax.collections[-1].get_paths()[0].vertices[:, 1]
    assert (round(float(band.min()), 12), float(band.max())) == (0.95, 1.0)
    assert sorted(_legend(ax)) == ["grad-dot", "noise ceiling (shaded: above it)", "tracin"]


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
    from tdabench.task.packages import MissingPackageError

    _write_decay_plots(results(), "spearman", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["decay_spearman.png", "decay_spearman.svg"]
    assert f"wrote {tmp_path / 'decay_spearman.png'} and " in capsys.readouterr().out

    def no_matplotlib(*args: object) -> list[Path]:
        raise MissingPackageError("plots need matplotlib")
    monkeypatch.setattr(tdabench.report.plots, "write_results_plots", no_matplotlib)
    _write_decay_plots(results(), "pearson", tmp_path / "none")  # a note, not a failure
    assert capsys.readouterr().out == "note: no decay plot: plots need matplotlib\n"

    def broken(*args: object) -> list[Path]:
        raise TdabenchError("a real plotting error")
    monkeypatch.setattr(tdabench.report.plots, "write_results_plots", broken)
    with pytest.raises(TdabenchError, match="a real plotting error"):  # surfaces, never a quiet note
        _write_decay_plots(results(), "pearson", tmp_path / "none")


def test_a_line_hidden_under_another_says_so() -> None:
    base = [r for r in results().records if r.estimator == "grad-dot" and r.ground_truth == "further-training"]
    twin = [dataclasses.replace(r, estimator="if-cg(max_iter=5)", mean=r.mean + 0.001) for r in base]
    (table,) = build_leaderboard([dataclasses.replace(results(), records=base + twin)], "pearson")
    (ax,) = decay_figure(table).axes
    # if-cg's means are 0.001 above grad-dot's: the row drawn first is listed under the one on top
    first, second = [r.label for r in table.rows]
    legend = [text.replace("\n", " ") for text in _legend(ax)]
    assert legend[:2] == [f"{first} (hidden under {second.partition('(')[0]})", second]
