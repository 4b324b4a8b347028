"""compare: a failing estimator is recorded under `errors` and every other result is kept."""

from __future__ import annotations

import numpy as np
import pytest

from gold_helpers import write_small_spec
from tdabench.compare import CompareOptions, default_requests, run_compare
from tdabench.estimators.base import Estimator
from tdabench.registry import estimators
from tdabench.results import read_results, write_results
from tdabench.selection import EstimatorRequest, parse_estimators


class Raises(Estimator):
    def _score(self, test_idx, train_idx):
        raise RuntimeError("boom")


class WrongShape(Estimator):
    def _score(self, test_idx, train_idx):
        return np.zeros((len(train_idx), len(test_idx) + 1))


class NonFinite(Estimator):
    def _score(self, test_idx, train_idx):
        out = np.ones((len(test_idx), len(train_idx)))
        out[0, 0] = np.nan
        return out


@pytest.fixture
def broken_registered(monkeypatch):
    estimators.names()  # import the built-ins before taking the snapshot
    monkeypatch.setattr(estimators, "_entries", dict(estimators._entries))
    for name, cls in [("test-raises", Raises), ("test-wrong-shape", WrongShape), ("test-nan", NonFinite)]:
        estimators.register(name)(cls)


def test_failures_are_recorded_and_the_rest_is_kept(broken_registered, tmp_path):
    spec = write_small_spec(tmp_path)
    requests = tuple(parse_estimators("grad-dot,test-raises,test-wrong-shape,test-nan"))
    results = run_compare(CompareOptions(task=str(spec), estimators=requests, progress=False,
                                         cache_dir=tmp_path / "cache"))
    assert set(results.errors) == {"test-raises", "test-wrong-shape", "test-nan"}
    assert "RuntimeError: boom" in results.errors["test-raises"]
    assert "shape (2, 10, 9)" in results.errors["test-wrong-shape"] and "(2, 8, 10)" in results.errors["test-wrong-shape"]
    assert "2 non-finite" in results.errors["test-nan"]
    assert {r.estimator for r in results.records} == {"grad-dot"}
    assert set(results.cost["estimators"]) == {"grad-dot"}
    json_path, _ = write_results(results, tmp_path / "out")
    assert read_results(json_path).errors == results.errors


def test_default_is_every_builtin_and_only_builtins(broken_registered):
    names = [r.name for r in default_requests()]
    assert {"grad-dot", "grad-cos", "if-explicit"} <= set(names)
    assert not any(n.startswith("test-") for n in names)  # registered in-process, but not shipped


def test_estimator_list_parsing():
    parsed = parse_estimators("grad-dot, if-explicit(damping=0.1,curvature=gauss-newton,damping_relative=false)")
    assert parsed == [EstimatorRequest("grad-dot"), EstimatorRequest(
        "if-explicit", {"damping": 0.1, "curvature": "gauss-newton", "damping_relative": False})]
    assert parsed[1].label == "if-explicit(curvature=gauss-newton,damping=0.1,damping_relative=False)"
