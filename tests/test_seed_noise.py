"""Seed noise across final models: z-scores and robust share by hand, robust agreement, end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import tiny_spec
from tdabench.estimators.base import Estimator
from tdabench.registry import make_estimator
from tdabench.task import build_context, parse_spec
from tdabench.task.spec import OptimizerSpec
from tdabench.truths.further import GoldConfig
from tdabench.truths.seed_noise import SeedNoise, masked_row_agreement, robust_mask, run_seed_noise, spread


def _config(n_train: int, n_test: int = 1, horizons: tuple[int, ...] = (1,)) -> GoldConfig:
    return GoldConfig(OptimizerSpec(lr=0.05, batch_size=8), train_idx=tuple(range(n_train)),
                      test_idx=tuple(range(n_test)), horizons=horizons, seeds=1, n_train=n_train)


def test_z_scores_and_robust_share_by_hand():
    # per pair across F = 3 final models: [1,1,1] std 0 → z 0; [1,2,3] mean 2, std 1 → z 2;
    # [−2,−3,−4] → z −3; [1,−1,0] → z 0.  Robust at |z| ≥ 2: pairs 1 and 2, share 0.5.
    gold = np.array([[1.0, 1, -2, 1], [1, 2, -3, -1], [1, 3, -4, 0]])[:, None, None, :]
    # estimator: [1,1,1] z 0; [4,5,6] z 5; [−1,−1,−1] std 0 → z 0; [0,0,1] z 1/√3 → robust share 1/4
    scores = {"est": np.array([[1.0, 4, -1, 0], [1, 5, -1, 0], [1, 6, -1, 1]])[:, None, None, :]}
    noise = SeedNoise(_config(4), gold, scores, threshold=2.0, min_columns=2)
    stats = noise.statistics(0)["gold"]
    np.testing.assert_allclose(stats["mean"], [[1, 2, -3, 0]])
    np.testing.assert_allclose(stats["std"], [[0, 1, 1, 1]])
    np.testing.assert_allclose(stats["z"], [[0, 2, -3, 0]])
    summary = noise.horizon_summary(0)
    assert (summary["robust_pairs"], summary["pairs"], summary["robust_share"]) == (2, 4, 0.5)
    est = summary["estimators"]["est"]
    assert est["sign_agreement"] == 1.0  # est means 5 and −1 have the gold signs of pairs 1 and 2
    assert est["robust_share"] == 0.25
    np.testing.assert_allclose(noise.statistics(0)["est"]["z"], [[0, 5, 0, 1 / np.sqrt(3)]])
    # robust columns 1, 2: est means (5, −1) against gold means (2, −3), two points in the same order
    assert est["robust_agreement"]["pearson"]["mean"] == pytest.approx(1.0)


def test_robust_agreement_masks_each_row():
    scores = np.array([[1.0, 2, 3, 100], [1, 2, 3, 4]])
    gold = np.array([[2.0, 4, 6, -50], [1, 2, 3, 4]])
    mask = np.array([[True, True, True, False], [True, True, False, False]])
    rows = masked_row_agreement(scores, gold, mask, "pearson", min_columns=3)
    assert rows[0] == pytest.approx(1.0) and np.isnan(rows[1])  # row 1: 2 robust columns < 3
    full = masked_row_agreement(scores, gold, np.ones_like(mask), "pearson")
    assert full[0] < 0  # without the mask, the noisy column dominates
    assert np.isclose(masked_row_agreement(scores, gold, mask, "cosine", 2)[1], 1.0)


def test_spread_and_robust_mask():
    out = spread([0.5, None, 0.7])
    assert out["mean"] == pytest.approx(0.6) and out["std"] == pytest.approx(np.sqrt(0.02))
    assert (out["min"], out["max"], out["n_models"]) == (0.5, 0.7, 2)
    assert spread([None])["mean"] is None and spread([0.3])["std"] is None
    np.testing.assert_array_equal(robust_mask(np.array([-2.0, 1.99, 2.0]), 2.0), [True, False, True])


class Broken(Estimator):
    uses = "final-model"
    def _score(self, test_idx, train_idx):
        raise RuntimeError("boom")


def test_two_final_models_end_to_end(tmp_path):
    ctx = build_context(parse_spec(tiny_spec("tiny-seed-noise")), tmp_path)
    cfg = GoldConfig(OptimizerSpec(lr=0.1, batch_size=16), train_idx=tuple(range(0, 60, 6)),
                     test_idx=(0, 1, 2, 3, 4), horizons=(1, 3), seeds=2, n_train=len(ctx.train))
    noise = run_seed_noise(ctx, cfg, [("grad-dot", lambda: make_estimator("grad-dot")), ("broken", Broken)],
                           final_models=2, progress=False)
    assert noise.gold.shape == (2, 2, 5, 10) and noise.scores["grad-dot"].shape == (2, 2, 5, 10)
    assert not np.allclose(noise.gold[0], noise.gold[1]), "the two final models must differ"
    assert "boom" in noise.errors["broken"] and "broken" not in noise.scores
    summary = json.loads(json.dumps(noise.summary(), allow_nan=False))
    assert summary["final_models"] == 2 and [h["horizon"] for h in summary["horizons"]] == [1, 3]
    est = summary["horizons"][1]["estimators"]["grad-dot"]
    assert est["spread"]["pearson"]["n_models"] == 2
    assert set(est["robust_agreement"]) == {"cosine", "pearson", "spearman"}
    assert 0.0 <= summary["horizons"][0]["robust_share"] <= 1.0
