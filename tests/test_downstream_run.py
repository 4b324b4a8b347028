"""The whole downstream flow on a small spec: one failing estimator is recorded under `errors` per check while
the others go on; an estimator whose self-influence is constant gets a note instead of a mislabel AUC."""

from __future__ import annotations

import numpy as np

from tdabench.downstream.mislabel import constant_reason
from tdabench.downstream.options import DownstreamOptions, retrain_size
from tdabench.downstream.run import run_downstream
from tdabench.selection import parse_estimators

from gold_helpers import write_small_spec




def test_a_failing_estimator_is_recorded_per_check_and_the_others_continue(tmp_path, raising_registered):
    options = DownstreamOptions(task=str(write_small_spec(tmp_path)),
                                estimators=tuple(parse_estimators("grad-dot,test-raises,grad-cos")),
                                checks=("mislabel", "randomization", "brittleness", "cardinality"), n_test=4,
                                top_k=3, ks=(1, 2), horizon=1, gold_instances=20, cache_dir=tmp_path / "cache",
                                progress=False)
    payload = run_downstream(options)
    checks, errors = payload["checks"], payload["errors"]
    assert set(errors) == {"test-raises"}
    assert set(errors["test-raises"]) == {"mislabel", "randomization", "brittleness", "cardinality"}
    assert all("RuntimeError: boom" in msg for msg in errors["test-raises"].values())
    # the estimators after the failing one still ran every check
    for label in ("grad-dot", "grad-cos"):
        assert label in checks["randomization"] and label in checks["cardinality"]
        assert label in checks["brittleness"]["estimators"]
    assert set(checks["mislabel"]["estimators"]) == {"grad-dot"}
    assert "cannot rank them: no AUC" in checks["mislabel"]["not_applicable"]["grad-cos"]
    assert checks["mislabel"]["gold"]  # the reference is computed whatever the estimators did


def test_constant_self_influence_is_recognised_up_to_rounding():
    ones = np.ones(7) + np.array([0, 1, -1, 2, 0, 0, 1]) * np.finfo(float).eps  # cos(g, g) in float64
    assert "same for every instance (1 up to rounding" in constant_reason(ones)
    assert constant_reason(np.zeros(3)) is not None
    assert constant_reason(np.array([1.0, 1.0 + 1e-6, 1.0])) is None


def test_the_retraining_size_counts_every_model_retrained():
    options = DownstreamOptions(task="x", n_test=4, ks=(1, 2, 5), retrain=True)
    # 2 estimators + the random control, each 1 reference + 4 test points × 3 ks, on 40 instances
    assert retrain_size(options, 40, 2) == 40 * 3 * (1 + 4 * 3)
