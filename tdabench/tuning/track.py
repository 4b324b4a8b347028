"""The tuned track of one comparison: sweep each estimator on the validation gold standard, then score
the chosen settings on the scored test points like the default track.

`run_tuned_track` is the one function `tdabench.compare` calls. Scoring a chosen setting is
compare's own `run_estimator` (fit, score at every horizon, agreement records), passed in as `score`
so that this layer does not import the one above it (the import-linter layers: compare > tuning).
Records of the overall choice carry the label + TUNED_SUFFIX, those of the per-horizon choices the
label + TUNED_PER_HORIZON_SUFFIX (each horizon's record from the setting chosen there).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Protocol

from tdabench.estimators.base import Estimator
from tdabench.registry import make_estimator
from tdabench.results import Record, params_json
from tdabench.selection import EstimatorRequest
from tdabench.task.context import TaskContext
from tdabench.truths.further import GoldStandard, run_gold_standard
from tdabench.tuning.choice import TUNED_PER_HORIZON_SUFFIX, TUNED_SUFFIX, TunedChoice
from tdabench.tuning.split import validation_config
from tdabench.tuning.sweep import search_space_of, sweep


class Outcome(Protocol):
    """What scoring one estimator returns (compare.EstimatorOutcome has it)."""

    records: list[Record]
    cost: dict
    error: str | None


Score = Callable[[EstimatorRequest, Estimator, TaskContext, GoldStandard, bool], Outcome]


@dataclass
class TunedTrack:
    """The tuned track's records (labels + TUNED_SUFFIX / TUNED_PER_HORIZON_SUFFIX), costs (each with
    the sweep's `search_s`), errors, TunedChoice dicts, and cost = {"validation_gold_standard_s",
    "n_validation", "metric"} (results.cost["tuning"])."""

    records: list[Record] = field(default_factory=list)
    costs: dict = field(default_factory=dict)
    errors: dict = field(default_factory=dict)
    choices: list[dict] = field(default_factory=list)
    cost: dict = field(default_factory=dict)


def run_tuned_track(ctx: TaskContext, gold: GoldStandard, requests: list[EstimatorRequest], score: Score, *,
                    n_validation: int | None = None, metric: str = "pearson",
                    search_spaces: dict[str, dict[str, list]] | None = None, centered: bool = False,
                    progress: bool = False) -> TunedTrack:
    """Sweep each estimator's search space (`search_spaces[name]` in place of the class's) on the
    validation gold standard (test points disjoint from `gold`'s), selecting by `metric`, then score
    the chosen settings on `gold` with `score`. Estimators with an empty search space are skipped."""
    cfg = gold.config
    vgold = run_gold_standard(ctx, validation_config(cfg, len(ctx.test), n_validation), progress=progress)
    track = TunedTrack(cost={"validation_gold_standard_s": round(vgold.seconds, 3),
                             "n_validation": len(vgold.config.test_idx), "metric": metric})
    for request in requests:
        space = search_space_of(request.name, (search_spaces or {}).get(request.name))
        if space:
            choice = sweep(request, space, ctx, vgold, metric, centered, tuple(cfg.test_idx))
            track.choices.append(choice.to_json())
            _score_choice(request, choice, ctx, gold, centered, track, score)
    return track


def _score_choice(request: EstimatorRequest, choice: TunedChoice, ctx: TaskContext, gold: GoldStandard,
                  centered: bool, track: TunedTrack, score: Score) -> None:
    """Score the overall choice (label + TUNED_SUFFIX) and the per-horizon ones (+ TUNED_PER_HORIZON_SUFFIX),
    each distinct setting once."""
    settings = [p for p in [choice.overall, *choice.per_horizon.values()] if p is not None]
    outcomes: dict[str, Any] = {}
    for params in {params_json(p): p for p in settings}.values():
        tuned = EstimatorRequest(request.name, {**request.params, **params})
        outcomes[params_json(params)] = score(tuned, make_estimator(tuned.name, **tuned.params), ctx, gold, centered)
    label = request.label + TUNED_SUFFIX
    if choice.overall is None:
        track.errors[label] = "no candidate of the search space had a validation score"
        return
    best = outcomes[params_json(choice.overall)]
    if best.error is not None:
        track.errors[label] = best.error
        return
    track.records += [replace(r, estimator=label) for r in best.records]
    track.costs[label] = best.cost | {"search_s": choice.search_s}
    for h, params in choice.per_horizon.items():
        track.records += [replace(r, estimator=request.label + TUNED_PER_HORIZON_SUFFIX)
                          for r in outcomes[params_json(params)].records if r.horizon == h]
