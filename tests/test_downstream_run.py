"""The whole downstream flow on a small spec: one failing estimator is recorded under `errors` per check while
the others go on; an estimator whose self-influence is constant gets a note instead of a mislabel AUC."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tdabench.cli import main
from tdabench.downstream.mislabel import constant_reason
from tdabench.downstream.options import DownstreamOptions, retrain_size
from tdabench.downstream.run import run_downstream
from tdabench.errors import TdabenchError
from tdabench.selection import parse_estimators

from device_helpers import DEVICES
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


def test_an_absent_device_is_refused_before_anything_trains(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(TdabenchError, match="no CUDA device"):
        DownstreamOptions(task="breast-cancer-mlp", device="cuda")
    with pytest.raises(TdabenchError, match="device must be one of"):
        DownstreamOptions(task="breast-cancer-mlp", device="gpu")
    code = main(["downstream", "--task", str(write_small_spec(tmp_path)), "--device", "cuda", "--cache-dir",
                 str(tmp_path / "cache"), "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "no CUDA device" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "cache").exists()


def _close(a, b, path="") -> None:
    """Equal structure and values; floats to a relative 1e-6 (a device's rounding, not its results)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _close(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and not isinstance(b, bool):
        assert math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9), (path, a, b)
    else:
        assert a == b, (path, a, b)


@pytest.mark.parametrize("device", DEVICES[1:])  # the CPU run is the reference
def test_every_check_on_a_device_equals_the_cpu(tmp_path, device):
    spec = str(write_small_spec(tmp_path))

    def run(where: str) -> dict:
        return run_downstream(DownstreamOptions(
            task=spec, estimators=tuple(parse_estimators("grad-dot,if-explicit")), n_test=4, top_k=3, ks=(1, 2),
            horizon=1, gold_instances=20, cache_dir=tmp_path / where, progress=False, device=where))
    on_device, cpu = run(device), run("cpu")
    assert on_device["device"].startswith(device) and cpu["device"] == "cpu"
    assert cpu["checks"]["mislabel"]["estimators"] and cpu["checks"]["brittleness"]["estimators"]
    _close(on_device["checks"], cpu["checks"])
    assert on_device["errors"] == cpu["errors"] == {}
