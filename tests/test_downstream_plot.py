"""The downstream plot (tdabench/report/downstream_plot.py): what is drawn, from hand-built inputs."""

from __future__ import annotations

import pytest

from tdabench.cli import main
from tdabench.report.downstream_plot import (agreement_points, downstream_figure, downstream_scores,
                                             order_spearman, write_downstream_plot)
from tdabench.results import GoldSummary, Record, Results, TaskInfo, write_results

from gold_helpers import write_small_spec

pytest.importorskip("matplotlib")
NAMES = ("grad-dot", "tracin", "trak", "ekfac")


def _results(task: str = "toy", spec_hash: str = "sha256:" + "c" * 64) -> Results:
    gold = GoldSummary("removal", 5, "epoch", [1, 10], 20, 10, False, [])
    records = [Record(n, {}, h, "pearson", 0.1 * (i + 1) + 0.01 * h, 0.01, 10, 0, None, 0.05 * (i + 1), 0.5)
               for i, n in enumerate(NAMES) for h in (1, 10)]
    records.append(Record("trak", {}, 3, "pearson", 0.99, 0.01, 10, 0, None, None, None, "lds"))  # not drawn
    records.append(Record("datainf", {"fitted.damping": 0.1}, 1, "pearson", 0.7, 0.01, 10, 0))
    return Results(TaskInfo(task, 1, spec_hash), gold, records, {}, {}, "0.1.0", None, "2024-05-01T00:00:00+00:00")


def _payload() -> dict:
    auc = {n: {"auc": 0.5 + 0.1 * i, "auc_low": 0.4 + 0.1 * i, "auc_high": 0.6 + 0.1 * i} for i, n in enumerate(NAMES)}
    rho = {n: {"mean": 0.9 - 0.2 * i, "ci_low": 0.8 - 0.2 * i, "ci_high": 0.95 - 0.2 * i} for i, n in enumerate(NAMES)}
    return {"task": {"name": "toy"}, "checks": {"mislabel": {"estimators": auc}, "randomization": rho,
                                                 "cardinality": {n: {"distinct": 3 + i} for i, n in enumerate(NAMES)}}}


def test_scores_and_agreement_are_read_from_the_right_fields():
    scores = downstream_scores(_payload())
    assert list(scores) == ["mislabel AUC", "randomisation ρ", "top-k cardinality"]
    assert scores["mislabel AUC"]["trak"] == pytest.approx((0.7, 0.6, 0.8))
    assert scores["top-k cardinality"]["ekfac"] == (6.0, None, None)
    points = agreement_points(_results())
    assert points["tracin"] == pytest.approx((0.2 + 0.1, 0.1, 0.5))  # the longest horizon (10); lds left out
    assert points["datainf"] == points["datainf(fitted.damping=0.1)"] == (0.7, None, None)  # bare name too


def test_order_spearman_is_one_for_the_same_order_and_minus_one_reversed():
    xs = agreement_points(_results())
    scores = downstream_scores(_payload())
    assert order_spearman(xs, scores["mislabel AUC"]) == pytest.approx(1.0)
    assert order_spearman(xs, scores["randomisation ρ"]) == pytest.approx(-1.0)
    assert order_spearman({"a": (1, None, None)}, {"a": (2, None, None)}) is None


def test_one_panel_per_score_with_each_estimator_at_its_coordinates(tmp_path):
    fig = downstream_figure(_payload(), _results())
    assert len(fig.axes) == 3 and "order ρ = 1.00" in fig.axes[0].get_title()
    assert "order ρ = 1.00" in fig.axes[1].get_title()  # randomisation: lower is better, so its order is negated
    drawn = {c.get_label(): (float(c.lines[0].get_xdata()[0]), float(c.lines[0].get_ydata()[0]))
             for c in fig.axes[0].containers}
    assert set(drawn) == set(NAMES)
    for i, name in enumerate(NAMES):  # x: agreement at the longest horizon; y: the AUC
        assert drawn[name] == pytest.approx((0.1 * (i + 1) + 0.1, 0.5 + 0.1 * i))
    paths = write_downstream_plot(_payload(), tmp_path)  # without a compare file: categorical x
    assert [p.name for p in paths] == ["downstream.png", "downstream.svg"] and all(p.stat().st_size for p in paths)


def test_the_legend_names_an_estimator_missing_from_the_first_panel():
    payload = _payload()
    payload["checks"]["randomization"]["grad-cos"] = {"mean": 0.1, "ci_low": 0.0, "ci_high": 0.2}  # not in mislabel
    fig = downstream_figure(payload)
    assert "grad-cos" not in {c.get_label() for c in fig.axes[0].containers}
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == list(NAMES) + ["grad-cos"]
    assert all(ax.get_legend() is None for ax in fig.axes)  # one legend, not one per panel


def test_a_compare_file_of_another_task_is_refused_before_training(tmp_path, capsys):
    spec = write_small_spec(tmp_path)
    write_results(_results("other-task"), tmp_path / "cmp")
    code = main(["downstream", "--task", str(spec), "--compare-results", str(tmp_path / "cmp"), "--cache-dir",
                 str(tmp_path / "cache"), "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "not of 'small-bc'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "cache" / "final_models").exists()
