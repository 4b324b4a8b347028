"""The tuned track: validation test points disjoint from the scored ones, selection on a hand-built
case whose best setting is known, and the TunedChoice record in results.json."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from tdabench.errors import TdabenchError
from tdabench.estimators.base import Estimator
from tdabench.registry import estimators
from tdabench.results import read_results, write_results
from tdabench.selection import EstimatorRequest
from tdabench.testing import planted_duplicate_context
from tdabench.truths.further import config_from_spec
from tdabench.tuning import (TUNED_KEY, Candidate, candidates, search_space_of, select, sweep,
                             tuned_choices, validation_config, validation_indices)
from tdabench.tuning.sweep import with_default
from tdabench.tuning.split import check_disjoint
from test_results import sample

HORIZONS = (1, 10, 100)
BEST_AT = {1: 0.1, 10: 1.0, 100: 10.0}  # the stub's agreement at horizon h peaks at damping BEST_AT[h]
RNG = np.random.default_rng(0)
TRUTH = RNG.normal(size=(len(HORIZONS), 6, 9))  # the validation gold standard, per horizon
NOISE = RNG.normal(size=(6, 9))


class Peaked(Estimator):
    """Scores = gold + |log10(damping / BEST_AT[h])| · noise: exact at the horizon's best damping."""

    uses = "final-model"
    horizon_dependent = True
    search_space = {"damping": (0.01, 0.1, 1.0, 10.0, 100.0)}

    def __init__(self, *, damping: float = 1.0) -> None:
        self.damping = damping

    def _score_horizons(self, test_idx, train_idx, steps):
        return np.stack([TRUTH[k] + abs(np.log10(self.damping / BEST_AT[h])) * NOISE
                         for k, h in enumerate(HORIZONS)])

    def _score(self, test_idx, train_idx):
        return self._score_horizons(test_idx, train_idx, [0])[-1]


@pytest.fixture
def peaked(monkeypatch):
    estimators.names()
    monkeypatch.setattr(estimators, "_entries", dict(estimators._entries))
    estimators.register("test-peaked")(Peaked)


def _gold(test_idx=tuple(range(6))):
    config = SimpleNamespace(test_idx=test_idx, train_idx=tuple(range(9)), horizons=HORIZONS, steps=HORIZONS)
    return SimpleNamespace(config=config, mean=lambda k, centered=False: TRUTH[k])


def test_validation_points_are_the_unscored_ones_and_disjoint() -> None:
    ctx = planted_duplicate_context()
    cfg = config_from_spec(ctx.spec.gold_standard, len(ctx.train), 40, n_test_evaluated=15)
    every = validation_config(cfg, 40)
    assert set(every.test_idx).isdisjoint(cfg.test_idx) and len(every.test_idx) == 25
    assert set(every.test_idx) | set(cfg.test_idx) == set(range(40))
    some = validation_config(cfg, 40, n_validation=10)
    assert len(some.test_idx) == 10 and set(some.test_idx) <= set(every.test_idx)
    assert some.test_idx == validation_config(cfg, 40, n_validation=10).test_idx  # seeded
    assert (some.train_idx, some.horizons, some.seeds) == (cfg.train_idx, cfg.horizons, cfg.seeds)


def test_no_validation_points_left_is_a_one_line_error() -> None:
    with pytest.raises(TdabenchError, match="validation test points") as err:
        validation_indices(5, (0, 1, 2, 3, 4))
    assert "\n" not in str(err.value)
    with pytest.raises(TdabenchError):
        validation_indices(10, (0, 1, 2), n_validation=8)
    with pytest.raises(AssertionError, match="overlap"):
        check_disjoint((1, 2, 3), (3, 4))


def test_selection_by_hand() -> None:
    tried = [Candidate({"d": 1}, {1: 0.9, 2: 0.1}), Candidate({"d": 2}, {1: 0.5, 2: 0.6}),
             Candidate({"d": 3}, {1: None, 2: 0.7}), Candidate({"d": 4}, {}, error="boom")]
    overall, per_horizon = select(tried, [1, 2])
    assert overall == {"d": 3}  # mean over its defined horizons: 0.7 > 0.55 > 0.5
    assert per_horizon == {1: {"d": 1}, 2: {"d": 3}}
    assert select([Candidate({"d": 1}, {1: 0.5}), Candidate({"d": 2}, {1: 0.5})], [1])[0] == {"d": 1}  # tie: first
    assert select([Candidate({"d": 4}, {}, error="boom")], [1]) == (None, {})


def test_candidates_are_the_product_of_the_space() -> None:
    assert candidates({"a": (1, 2), "b": ("x", "y")}) == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"},
                                                          {"a": 2, "b": "x"}, {"a": 2, "b": "y"}]


def test_sweep_picks_the_known_best_setting(peaked) -> None:
    ctx = planted_duplicate_context()
    choice = sweep(EstimatorRequest("test-peaked"), search_space_of("test-peaked"), ctx, _gold(), "pearson",
                   False, scored_test_idx=(6, 7))
    assert choice.per_horizon == {h: {"damping": d} for h, d in BEST_AT.items()}
    assert choice.overall in [{"damping": d} for d in BEST_AT.values()]
    assert len(choice.candidates) == 5 and all(c.error is None for c in choice.candidates)
    best = next(c for c in choice.candidates if c.params == {"damping": 1.0})
    assert best.means[10] == pytest.approx(1.0)
    assert choice.validation_test_idx == list(range(6)) and choice.search_s >= 0
    with pytest.raises(AssertionError, match="overlap"):  # never select on a scored test point
        sweep(EstimatorRequest("test-peaked"), {"damping": (1.0,)}, ctx, _gold(), "pearson", False, (5, 6))


def test_the_default_setting_is_always_a_candidate(peaked) -> None:
    """Damping 3 (off the grid) is the request's: it is tried after the grid; 1.0 already is on it."""
    assert with_default(EstimatorRequest("test-peaked", {"damping": 3.0}), {"damping": (0.1, 1.0)}) == [
        {"damping": 0.1}, {"damping": 1.0}, {"damping": 3.0}]
    assert with_default(EstimatorRequest("test-peaked"), {"damping": (0.1, 1.0)}) == [{"damping": 0.1}, {"damping": 1.0}]
    choice = sweep(EstimatorRequest("test-peaked", {"damping": 10.0}), {"damping": (0.01, 100.0)}, planted_duplicate_context(),
                   _gold(), "pearson", False, scored_test_idx=(6, 7))
    assert choice.per_horizon[100] == {"damping": 10.0}  # exact there (BEST_AT[100] = 10): the default wins


def test_search_space_override_is_checked(peaked) -> None:
    assert search_space_of("test-peaked", {"damping": [3.0]}) == {"damping": (3.0,)}
    assert search_space_of("grad-dot") == {}
    with pytest.raises(TdabenchError, match="no parameter 'rank'"):
        search_space_of("test-peaked", {"rank": [1]})
    with pytest.raises(TdabenchError, match="non-empty list"):
        search_space_of("test-peaked", {"damping": []})


def test_tuned_choice_round_trips_through_results_json(tmp_path, peaked) -> None:
    choice = sweep(EstimatorRequest("test-peaked"), search_space_of("test-peaked"), planted_duplicate_context(),
                   _gold(), "pearson", False, scored_test_idx=(6, 7))
    results = dataclasses.replace(sample(), extra={**sample().extra, TUNED_KEY: [choice.to_json()]})
    write_results(results, tmp_path)
    back = read_results(tmp_path)
    assert tuned_choices(back.extra) == [choice]
    assert tuned_choices(sample().extra) == []
    with pytest.raises(ValueError, match="overlap"):
        dataclasses.replace(choice, scored_test_idx=[0])
    with pytest.raises(ValueError, match="not among the candidates"):
        dataclasses.replace(choice, overall={"damping": 3.0})


def test_compare_tuned_track_end_to_end(tmp_path) -> None:
    from tdabench.compare import CompareOptions, run_compare
    from tdabench.selection import parse_estimators
    from gold_helpers import write_small_spec

    options = CompareOptions(task=str(write_small_spec(tmp_path)), progress=False, cache_dir=tmp_path / "cache",
                             estimators=tuple(parse_estimators("grad-dot,if-explicit")), tuned=True,
                             search_spaces={"if-explicit": {"damping": [0.01, 1.0, 1e4]}})
    results = run_compare(options)
    (choice,) = tuned_choices(results.extra)  # grad-dot has nothing to tune
    scored = results.task.details["test_indices"]
    assert choice.estimator == "if-explicit" and choice.space == {"damping": [0.01, 1.0, 1e4]}
    assert set(choice.validation_test_idx).isdisjoint(scored) and len(choice.validation_test_idx) == 4
    labels = {r.estimator for r in results.records}
    assert {"grad-dot", "if-explicit", "if-explicit (tuned)", "if-explicit (tuned per horizon)"} <= labels
    tuned = [r for r in results.records if r.estimator == "if-explicit (tuned)"]
    assert {r.params["damping"] for r in tuned} == {choice.overall["damping"]}
    assert results.cost["tuning"]["n_validation"] == 4 and "search_s" in results.cost["estimators"]["if-explicit (tuned)"]
    with pytest.raises(TdabenchError, match="validation test points"):
        run_compare(dataclasses.replace(options, n_validation=5))  # refused before training: only 4 are left
