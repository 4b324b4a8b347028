"""The leaderboard's downstream tables (report/downstream_table.py, downstream_pages.py) on hand-built inputs:
ranks in each score's better direction, the order agreement with further training, the reference rows."""

from __future__ import annotations

import pytest

from tdabench.report.downstream_pages import build_section, downstream_csv, downstream_markdown
from tdabench.report.downstream_table import SCORES, matched_rows, matching_table, oriented_ranks, order_spearman
from tdabench.report.tables import build_leaderboard
from tdabench.results import GoldSummary, Record, Results, TaskInfo

NAMES = ("grad-dot", "tracin", "trak", "ekfac")
HASH = "sha256:" + "d" * 64


def _table(spec_hash: str = HASH):
    gold = GoldSummary("removal", 5, "epoch", [1, 10], 20, 10, False, [])
    records = [Record(n, {}, 10, "pearson", 0.2 + 0.1 * i, 0.01, 10, 0, None, 0.19 + 0.1 * i, 0.21 + 0.1 * i)
               for i, n in enumerate(NAMES)]
    return build_leaderboard([Results(TaskInfo("toy", 1, spec_hash), gold, records, {}, {}, "0.1.0", None,
                                      "2024-05-01T00:00:00+00:00")], "pearson")


def _payload(spec_hash: str = HASH) -> dict:
    auc = {n: {"auc": 0.6 + 0.1 * i, "auc_low": 0.56 + 0.1 * i, "auc_high": 0.64 + 0.1 * i,
               "precision_at_flipped": 0.5} for i, n in enumerate(NAMES)}
    rho = {n: {"mean": m, "ci_low": m - 0.05, "ci_high": m + 0.05} for n, m in zip(NAMES, (0.9, 0.1, 0.5, 0.3))}
    flips = {"share": [0.0, 0.1], "share_low": [0.0, 0.0], "share_high": [0.0, 0.3]}
    return {"task": {"name": "toy", "version": 1, "spec_hash": spec_hash},
            "settings": {"estimators": list(NAMES), "gold_seeds": 1, "top_k": 3, "n_test": 10, "retrain": False},
            "checks": {"mislabel": {"task": {"name": "toy@noisy"}, "n_flipped": 4, "n_train": 40, "gold_subset": 40,
                                    "estimators": auc, "gold": [{"horizon": 10, "auc": 0.95, "auc_low": 0.9,
                                                                 "auc_high": 1.0, "precision_at_flipped": 0.75}],
                                    "not_applicable": {"grad-cos": "self-influence is constant"}},
                       "randomization": rho,
                       "cardinality": {n: {"distinct": d} for n, d in zip(NAMES, (5, 5, 7, 9))},
                       "brittleness": {"ks": [1, 5], "horizon": 10, "horizon_unit": "epoch", "test_idx": [0, 1],
                                       "estimators": {"grad-dot": {**flips, "share": [0.0, 0.2]}},
                                       "random": flips}},
            "errors": {"trak": {"brittleness": "ValueError: boom (f)"}}}


def test_ranks_follow_each_scores_better_direction():
    assert oriented_ranks([(0.9, 0.8, 1.0), (0.5, 0.4, 0.6), None], True) == [1, 2, None]
    # lower is better: the smaller value ranks first, overlapping intervals share
    assert oriented_ranks([(0.9, 0.8, 1.0), (0.5, 0.4, 0.6), (0.55, 0.45, 0.85)], False) == [2, 1, 1]
    assert oriented_ranks([(5.0, None, None), (5.0, None, None), (9.0, None, None)], True) == [2, 2, 1]


def test_section_by_hand():
    section = build_section(_payload(), _table())
    assert section.head[:4] == ["estimator", "given", "further training (pearson, epoch 10)", "rank"]
    titles = [h for h in section.head[4::2]]
    assert titles == ["mislabel AUC", "P@flip", "randomisation ρ", "top-k cardinality", "flip share, largest k"]
    pts = section.points
    assert {n: r for n, (_, r) in pts["mislabel AUC"].items()} == {"grad-dot": 4, "tracin": 3, "trak": 2, "ekfac": 1}
    assert {n: r for n, (_, r) in pts["randomisation ρ"].items()} == {"grad-dot": 4, "tracin": 1, "trak": 3,
                                                                       "ekfac": 2}
    assert {n: r for n, (_, r) in pts["top-k cardinality"].items()} == {"grad-dot": 3, "tracin": 3, "trak": 2,
                                                                         "ekfac": 1}
    # further training orders 0.2 < 0.3 < 0.4 < 0.5: the AUC in the same order (ρ = 1); randomisation, negated,
    # orders −0.9, −0.1, −0.5, −0.3: ranks 1, 4, 2, 3 against 1, 2, 3, 4, Σd² = 6, ρ = 1 − 6·6/(4·15) = 0.4
    assert section.agreement["mislabel AUC"] == pytest.approx((1.0, 1.0))
    assert section.agreement["randomisation ρ"][0] == pytest.approx(0.4)
    assert section.agreement["P@flip"] == (None, None)  # a constant order
    row = dict(zip(section.labels, section.cells))["ekfac"]
    assert [c.text for c in row[:6]] == ["ekfac", "final model only", "0.500 [0.490, 0.510]", "1",
                                         "0.900 [0.860, 0.940]", "1"]
    footer = {r[0].text: [c.text for c in r] for r in section.footer}
    assert footer["gold self-influence, horizon 10"][4:7] == ["0.950 [0.900, 1.000]", "", "0.750"]
    assert footer["chance"][4:7] == ["0.500", "", "0.100"] and footer["random removal"][12] == "0.100 [0.000, 0.300]"
    notes = " ".join(section.notes)
    assert "mislabel AUC: +1.00 (+1.00)" in notes and "randomisation ρ: +0.40" in notes
    assert "grad-cos mislabel: self-influence is constant" in notes and "trak brittleness failed" in notes
    text = "\n".join(downstream_markdown([section]))
    assert "### toy v1 (spec sha256:dddddddddddd)" in text and "| ekfac | final model only |" in text
    csv_lines = downstream_csv([section], [_payload()]).splitlines()
    assert len(csv_lines) == 1 + 4 * 4 + 1  # 4 estimators × 4 scores, and grad-dot's flip share


def test_another_spec_hash_is_never_joined_and_labels_join_by_bare_name():
    section = build_section(_payload("sha256:" + "e" * 64), _table())
    assert section.agreement == {} and all(row[2].text == "—" for row in section.cells)
    tables = _table()
    table = tables[0]
    assert matching_table(_payload(), tables) is table
    assert set(matched_rows(table, ["ekfac(damping=0.1)", "tracin", "nope"])) == {"ekfac(damping=0.1)", "tracin"}


def test_order_spearman_and_score_fields():
    assert order_spearman({"a": (1, None, None), "b": (2, None, None)}, {"a": (1, None, None), "b": (2, None, None)}) \
        is None  # fewer than 3
    retrained = next(s for s in SCORES if s.sub == "retrained")
    payload = {"checks": {"brittleness": {"estimators": {
        "x": {"share": [0.0, 0.2], "share_low": [0, 0.1], "share_high": [0, 0.3],
              "retrained": {"share": [0.1, 0.4], "share_low": [0, 0.2], "share_high": [0.2, 0.6]}},
        "y": {"share": [0.0, 0.0], "share_low": [0, 0], "share_high": [0, 0]}}}}}
    assert retrained.points(payload) == {"x": (0.4, 0.2, 0.6)}  # y has no retrained entry
