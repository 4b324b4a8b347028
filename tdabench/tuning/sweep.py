"""Sweep an estimator's search space on the validation gold standard and select its settings.

Every candidate (the product of the space's values, other parameters as requested, then the
request's own setting of the space's parameters — the default track's — when the product lacks it, so
that the tuned setting is never worse than the default on the validation points) is fitted on the
task and scored on the validation test points × the evaluated training instances at every horizon;
its validation mean agreement (the chosen metric) is recorded per horizon. `select` takes, per horizon,
the candidate with the highest mean there, and overall the one with the highest mean over the
horizons of its means; ties go to the earlier candidate (space order). A candidate that fails is
recorded with its error and never chosen.
"""

from __future__ import annotations

import itertools
import time
from typing import Any, Protocol

import numpy as np

from tdabench.errors import TdabenchError
from tdabench.progress import bar
from tdabench.registry import get_estimator, make_estimator
from tdabench.results import params_json
from tdabench.scoring.metrics import agreement
from tdabench.selection import EstimatorRequest
from tdabench.task.context import TaskContext
from tdabench.truths.further import GoldConfig
from tdabench.tuning.choice import Candidate, TunedChoice
from tdabench.tuning.split import check_disjoint


class ValidationGold(Protocol):
    """What a sweep needs of a gold standard (truths.further.GoldStandard has it)."""

    config: GoldConfig

    def mean(self, horizon_index: int, centered: bool = False) -> np.ndarray: ...


def search_space_of(name: str, override: dict[str, Any] | None = None) -> dict[str, tuple]:
    """The class's `search_space`, or `override` (the suite's) in its place; each key must be a
    parameter of the estimator and each value a non-empty list. TdabenchError otherwise."""
    cls = get_estimator(name)
    space = dict(cls.search_space if override is None else override)
    valid = cls._param_names()
    for key, values in space.items():
        if key not in valid:
            raise TdabenchError(f"search space of '{name}': no parameter '{key}'; valid parameters: {', '.join(valid)}")
        if not isinstance(values, (list, tuple)) or not values:
            raise TdabenchError(f"search space of '{name}': '{key}' must be a non-empty list, got {values!r}")
    return {k: tuple(v) for k, v in space.items()}


def candidates(space: dict[str, tuple]) -> list[dict[str, Any]]:
    """Every combination of the space's values (keys in the space's order; the last varies fastest)."""
    keys = list(space)
    return [dict(zip(keys, values)) for values in itertools.product(*(space[k] for k in keys))]


def with_default(request: EstimatorRequest, space: dict[str, tuple]) -> list[dict[str, Any]]:
    """`candidates(space)`, then the request's own values of the space's parameters (as the
    estimator resolves them: its defaults where the request sets none) if they are not among them."""
    tried = candidates(space)
    params = make_estimator(request.name, **request.params).get_params()
    default = {k: params[k] for k in space}
    return tried if default in tried else tried + [default]


def _validation_means(request: EstimatorRequest, params: dict[str, Any], ctx: TaskContext, gold: ValidationGold,
                      metric: str, centered: bool) -> dict[int, float | None]:
    cfg = gold.config
    estimator = make_estimator(request.name, **{**request.params, **params}).fit(ctx)
    scores = estimator.score_horizons(np.asarray(cfg.test_idx), np.asarray(cfg.train_idx), list(cfg.steps))
    if scores.shape != (len(cfg.horizons), len(cfg.test_idx), len(cfg.train_idx)) or not np.isfinite(scores).all():
        raise TdabenchError(f"returned scores of shape {scores.shape} or non-finite scores")
    return {h: agreement(scores[k], gold.mean(k, centered), metric).mean for k, h in enumerate(cfg.horizons)}


def _try(request: EstimatorRequest, params: dict[str, Any], ctx: TaskContext, gold: ValidationGold, metric: str,
         centered: bool) -> Candidate:
    start = time.perf_counter()
    try:
        means = _validation_means(request, params, ctx, gold, metric, centered)
    except Exception as err:  # one failing setting must not lose the others
        return Candidate(params, {}, f"{type(err).__name__}: {err}", time.perf_counter() - start)
    return Candidate(params, means, None, time.perf_counter() - start)


def select(tried: list[Candidate], horizons: list[int]) -> tuple[dict | None, dict[int, dict]]:
    """(overall choice, {horizon: choice}) as in the module docstring; None / absent where no
    candidate has a defined mean."""
    def best(value) -> dict | None:
        scored = [(value(c), -k) for k, c in enumerate(tried) if c.error is None and value(c) is not None]
        return tried[-max(scored)[1]].params if scored else None

    def overall(c: Candidate) -> float | None:
        known = [m for m in c.means.values() if m is not None]
        return sum(known) / len(known) if known else None
    per_horizon = {h: best(lambda c, h=h: c.means.get(h)) for h in horizons}
    return best(overall), {h: p for h, p in per_horizon.items() if p is not None}


def sweep(request: EstimatorRequest, space: dict[str, tuple], ctx: TaskContext, gold: ValidationGold,
          metric: str, centered: bool, scored_test_idx: tuple[int, ...]) -> TunedChoice:
    """Fit and score every candidate of `space` on `gold` (the validation gold standard), then select."""
    check_disjoint(tuple(gold.config.test_idx), tuple(scored_test_idx))
    start = time.perf_counter()
    settings = with_default(request, space)
    tried = []
    with bar(len(settings), f"tuning {request.label}", unit="setting") as shown:
        for params in settings:
            shown.set_postfix_str(params_json(params), refresh=False)
            tried.append(_try(request, params, ctx, gold, metric, centered))
            shown.update()
    overall, per_horizon = select(tried, list(gold.config.horizons))
    return TunedChoice(request.label, metric, {k: list(v) for k, v in space.items()}, tried, overall, per_horizon,
                       list(gold.config.test_idx), round(time.perf_counter() - start, 3), list(scored_test_idx))
