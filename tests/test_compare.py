"""compare: a failing estimator is recorded under `errors` and every other result is kept."""

from __future__ import annotations

import numpy as np
import pytest

from gold_helpers import write_small_spec
from tdabench.compare import CompareOptions, default_requests, run_compare
from tdabench.estimators.base import Estimator
from tdabench.estimators.grad_dot import GradDot
from tdabench.registry import estimators
from tdabench.results import read_results, write_results
from tdabench.selection import EstimatorRequest, parse_estimators
from tdabench.truths.names import FURTHER_TRAINING


class Raises(Estimator):
    uses = "final-model"
    def _score(self, test_idx, train_idx):
        raise RuntimeError("boom")


class WrongShape(Estimator):
    uses = "final-model"
    def _score(self, test_idx, train_idx):
        return np.zeros((len(train_idx), len(test_idx) + 1))


class CountsCalls(GradDot):
    """Grad-Dot that counts its scoring calls; with `refuse_over`, refuses more training columns."""

    calls: list[int] = []

    def __init__(self, *, batch_size: int = 256, refuse_over: int = 0) -> None:
        super().__init__(batch_size=batch_size)
        self.refuse_over = refuse_over

    def _score(self, test_idx, train_idx):
        type(self).calls.append(len(train_idx))
        if self.refuse_over and len(train_idx) > self.refuse_over:
            raise MemoryError("too many columns")
        return super()._score(test_idx, train_idx)


class NonFinite(Estimator):
    uses = "final-model"
    def _score(self, test_idx, train_idx):
        out = np.ones((len(test_idx), len(train_idx)))
        out[0, 0] = np.nan
        return out


@pytest.fixture
def broken_registered(monkeypatch):
    estimators.names()  # import the built-ins before taking the snapshot
    monkeypatch.setattr(estimators, "_entries", dict(estimators._entries))
    CountsCalls.calls = []
    for name, cls in [("test-raises", Raises), ("test-wrong-shape", WrongShape), ("test-nan", NonFinite),
                      ("test-counts", CountsCalls)]:
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


def test_retraining_scores_every_instance_once_and_slices_the_evaluated_ones(broken_registered, tmp_path):
    """With an LDS, one scoring call covers all training instances; the further-training records
    equal those of a run without it; a failure of that call keeps the further-training records."""
    spec, cache = write_small_spec(tmp_path), tmp_path / "cache"
    plain = run_compare(CompareOptions(task=str(spec), estimators=tuple(parse_estimators("test-counts")),
                                       progress=False, cache_dir=cache))
    n_evaluated = CountsCalls.calls[0]
    CountsCalls.calls.clear()
    refusing = f"test-counts(refuse_over={n_evaluated})"
    options = CompareOptions(task=str(spec), progress=False, cache_dir=cache, retraining=("lds",),
                             retraining_seeds=1, lds_subsets=4,
                             estimators=tuple(parse_estimators(f"test-counts,{refusing}")))
    results = run_compare(options)
    n_train = results.task.details["n_train"]
    assert CountsCalls.calls == [n_train, n_train, n_evaluated], "one call on all, then the refused one's fallback"
    further = lambda label: {(r.horizon, r.metric): r.mean for r in results.records
                             if r.estimator == label and r.ground_truth == FURTHER_TRAINING}
    assert further("test-counts") == pytest.approx({(r.horizon, r.metric): r.mean for r in plain.records}, rel=1e-12)
    assert further(refusing) == pytest.approx(further("test-counts"), rel=1e-12)
    assert [r.estimator for r in results.records if r.ground_truth == "lds"] == ["test-counts"]
    assert "MemoryError: too many columns" in results.extra["retraining"]["errors"][refusing]
    assert results.cost["estimators"]["test-counts"]["scored_train_instances"] == n_train
    assert not results.errors


def test_default_is_every_builtin_and_only_builtins(broken_registered):
    names = [r.name for r in default_requests()]
    assert {"grad-dot", "grad-cos", "if-explicit"} <= set(names)
    assert not any(n.startswith("test-") for n in names)  # registered in-process, but not shipped


def test_estimator_list_parsing():
    parsed = parse_estimators("grad-dot, if-explicit(damping=0.1,curvature=gauss-newton,damping_relative=false)")
    assert parsed == [EstimatorRequest("grad-dot"), EstimatorRequest(
        "if-explicit", {"damping": 0.1, "curvature": "gauss-newton", "damping_relative": False})]
    assert parsed[1].label == "if-explicit(curvature=gauss-newton,damping=0.1,damping_relative=False)"


class RecordsContext(GradDot):
    """Grad-Dot that remembers the contexts it was fitted on."""

    contexts: list = []

    def _fit(self, context):
        type(self).contexts.append(context)
        super()._fit(context)


def test_estimators_and_seed_noise_get_the_device_context(broken_registered, tmp_path, monkeypatch):
    """compare hands the estimators and the seed-noise analysis the context moved to --device (here a
    marked copy standing in for it, so that the check runs on a CPU-only machine)."""
    import dataclasses

    import tdabench.compare as compare

    moved, seed_noise_contexts = [], []

    def context_on(ctx, device):
        moved.append(dataclasses.replace(ctx))
        return moved[-1]

    class NoSummary:
        def summary(self):
            return {}

    def run_seed_noise(ctx, *args, **kwargs):
        seed_noise_contexts.append(ctx)
        return NoSummary()

    monkeypatch.setattr(compare, "context_on", context_on)
    monkeypatch.setattr(compare, "run_seed_noise", run_seed_noise)
    estimators.register("test-records-context")(RecordsContext)
    RecordsContext.contexts = []
    run_compare(CompareOptions(task=str(write_small_spec(tmp_path)), progress=False, cache_dir=tmp_path / "cache",
                               estimators=tuple(parse_estimators("test-records-context")), final_models=2))
    assert len(moved) == 1
    assert len(RecordsContext.contexts) == 1 and RecordsContext.contexts[0] is moved[0]
    assert len(seed_noise_contexts) == 1 and seed_noise_contexts[0] is moved[0]
