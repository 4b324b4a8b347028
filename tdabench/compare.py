"""`tdabench compare`: the gold standard once, every estimator against it, one results file.

Flow: spec → final model (cached) → gold standard (cached per seed, resumable) → for each estimator:
fit, score at every horizon, check the shape and the values, agreement per horizon and metric.
An estimator that raises or returns a wrong shape or non-finite values is recorded under `errors`;
the others are kept.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from tdabench import __version__
from tdabench.costs import measure
from tdabench.errors import TdabenchError
from tdabench.estimators.base import Estimator
from tdabench.gold import GoldConfig, GoldStandard, config_from_spec, run_gold_standard
from tdabench.metrics import METRICS, agreement, reliability
from tdabench.registry import estimator_names, estimators, make_estimator
from tdabench.results import GoldSummary, NoiseCeiling, Record, Results, TaskInfo, git_hash, now_iso
from tdabench.selection import EstimatorRequest
from tdabench.task import DEFAULT_TASK, TaskContext, build_context, find_spec
from tdabench.task.context import load_task_data
from tdabench.task.objective import make_target


@dataclass(frozen=True)
class CompareOptions:
    """Settings of one comparison; None means the task spec's default."""

    task: str = DEFAULT_TASK
    estimators: tuple[EstimatorRequest, ...] | None = None  # None: every built-in estimator
    seeds: int | None = None
    horizons: tuple[int, ...] | None = None
    mode: str | None = None
    epsilon: float | None = None
    n_train: int | None = None
    n_test: int | None = None
    centered: bool = False
    target: str | None = None
    chunk_size: int | None = None
    cache_dir: Path | None = None
    progress: bool = True


@dataclass
class EstimatorOutcome:
    records: list[Record] = field(default_factory=list)
    cost: dict = field(default_factory=dict)
    error: str | None = None


def default_requests() -> tuple[EstimatorRequest, ...]:
    """Every native estimator that ships with tdabench, with its default parameters: no plugins,
    nothing registered at run time by other code, and not the adapters to other libraries (they
    recompute native estimators for cross-checks; ask for them by name)."""
    def shipped(name: str) -> bool:
        origin = estimators.origin(name)
        return (origin.kind == "built-in" and origin.target.startswith("tdabench.")
                and not origin.target.startswith("tdabench.adapters."))
    return tuple(EstimatorRequest(n) for n in estimator_names() if shipped(n))


def prepare(options: CompareOptions) -> tuple[TaskContext, GoldConfig, list[tuple[EstimatorRequest, Estimator]]]:
    """Validate everything cheap first (names, parameters, settings), then build the context."""
    spec = find_spec(options.task)
    requests = options.estimators or default_requests()
    made = [(r, make_estimator(r.name, **r.params)) for r in requests]
    labels = [r.label for r in requests]
    if len(set(labels)) != len(labels):
        raise TdabenchError(f"an estimator is listed twice: {', '.join(labels)}")
    data = load_task_data(spec)
    cfg = config_from_spec(
        spec.gold_standard, len(data.train), len(data.test), seeds=options.seeds, horizons=options.horizons,
        mode=options.mode, epsilon=options.epsilon, n_train_evaluated=options.n_train,
        n_test_evaluated=options.n_test, chunk_size=options.chunk_size)
    make_target(options.target or spec.target, spec.objective)  # an unknown target fails before training
    return build_context(spec, options.cache_dir, options.target, data), cfg, made


def _check_scores(scores: np.ndarray, expected: tuple[int, ...]) -> None:
    if not isinstance(scores, np.ndarray) or scores.shape != expected:
        shape = getattr(scores, "shape", type(scores).__name__)
        raise TdabenchError(f"returned scores of shape {shape}, expected {expected}")
    if not np.all(np.isfinite(scores)):
        raise TdabenchError(f"returned {int((~np.isfinite(scores)).sum())} non-finite scores")


def run_estimator(request: EstimatorRequest, estimator: Estimator, ctx: TaskContext,
                  gold: GoldStandard, centered: bool) -> EstimatorOutcome:
    """Fit, score at every horizon, and compare; failures become `EstimatorOutcome.error`."""
    cfg, outcome = gold.config, EstimatorOutcome()
    test_idx, train_idx = np.asarray(cfg.test_idx), np.asarray(cfg.train_idx)
    try:
        with measure() as fit_cost:
            estimator.fit(ctx)
        with measure() as score_cost:
            scores = estimator.score_horizons(test_idx, train_idx, cfg.horizon_steps(len(ctx.train)))
        _check_scores(scores, (len(cfg.horizons), len(test_idx), len(train_idx)))
    except Exception as err:  # an estimator's failure must not lose the others' results
        outcome.error = f"{type(err).__name__}: {err}".strip()
        outcome.error += "" if isinstance(err, TdabenchError) else f" [{_where(err)}]"
        return outcome
    peak = max(v for v in (fit_cost.peak_mem_mb, score_cost.peak_mem_mb, 0.0) if v is not None)
    outcome.cost = {"fit_s": round(fit_cost.seconds, 4), "score_s": round(score_cost.seconds, 4),
                    "peak_mem_mb": peak or None}
    params = _json_params(estimator)
    source = _source(request.name)
    for h, horizon in enumerate(cfg.horizons):
        target = gold.mean(h, centered)
        for metric in METRICS:
            summary = agreement(scores[h], target, metric)
            outcome.records.append(Record.from_summary(request.label, params, horizon, metric, summary, source))
    return outcome


def _where(err: BaseException) -> str:
    frame = traceback.extract_tb(err.__traceback__)[-1]
    return f"{Path(frame.filename).name}:{frame.lineno}"


def _json_params(estimator: Estimator) -> dict:
    params = dict(estimator.get_params())
    params.update({f"fitted.{k}": v for k, v in estimator.describe().items()})
    return {k: (v if isinstance(v, (int, float, str, bool, type(None))) else repr(v)) for k, v in params.items()}


def _source(name: str) -> dict | None:
    origin = estimators.origin(name)
    return None if origin.kind == "built-in" else origin.to_dict()


def gold_summary(gold: GoldStandard, centered: bool, steps_per_epoch: int) -> GoldSummary:
    cfg = gold.config
    ceilings = []
    for i, h in enumerate(cfg.horizons):
        for m in METRICS:
            rel = reliability(gold.seeds_at(i, centered), m)
            ceilings.append(NoiseCeiling(h, m, None if rel is None else rel.ceiling,
                                         None if rel is None else rel.reliability))
    return GoldSummary(cfg.mode, cfg.seeds, cfg.horizon_unit, list(cfg.horizons), len(cfg.train_idx),
                       len(cfg.test_idx), centered, ceilings,
                       epsilon=cfg.epsilon if cfg.mode == "downweight" else None,
                       steps_per_epoch=steps_per_epoch)


def task_info(ctx: TaskContext, cfg: GoldConfig) -> TaskInfo:
    spec = ctx.spec
    details = {"modality": spec.modality, "target": ctx.target_name, "dtype": spec.dtype,
               "n_params": ctx.n_params, "n_train": len(ctx.train), "n_test": len(ctx.test),
               "final_model": ctx.final_metrics,
               "further_training": {"optimizer": cfg.recipe.optimizer, "lr": cfg.recipe.lr,
                                    "momentum": cfg.recipe.momentum, "batch_size": cfg.recipe.batch_size},
               "train_indices": list(cfg.train_idx), "test_indices": list(cfg.test_idx)}
    return TaskInfo(spec.name, spec.version, spec.spec_hash, details)


def headline(results: Results) -> str:
    """One line on the final model and one on the gold standard, printed above the table."""
    task, gold = results.task.details, results.gold_standard
    quality = ", ".join(f"{split} {name} {value:.3f}" for split, metrics in task["final_model"].items()
                        for name, value in metrics.items())
    return (f"final model: {task['n_params']} parameters; {quality}\n"
            f"gold standard: {gold.mode}, {gold.seeds} seeds, {gold.n_train_evaluated} training instances x "
            f"{gold.n_test} test points, target '{task['target']}', computed in "
            f"{results.cost['gold_standard_s']:.1f} s (0 = cached)")


def run_compare(options: CompareOptions) -> Results:
    """The whole comparison; the caller writes or prints the returned Results."""
    ctx, cfg, made = prepare(options)
    gold = run_gold_standard(ctx, cfg, options.cache_dir, progress=options.progress)
    records, costs, errors = [], {}, {}
    bar = tqdm(total=len(made), desc="estimators", disable=not options.progress, leave=False)
    while made:  # pop each estimator, so its fitted state (a factorised curvature…) is freed after use
        request, estimator = made.pop(0)
        bar.set_postfix_str(request.label)
        outcome = run_estimator(request, estimator, ctx, gold, options.centered)
        del estimator
        records += outcome.records
        if outcome.error is None:
            costs[request.label] = outcome.cost
        else:
            errors[request.label] = outcome.error
        bar.update()
    bar.close()
    steps = cfg.horizon_steps(len(ctx.train))[0] // cfg.horizons[0] if cfg.horizon_unit == "epoch" else None
    return Results(task_info(ctx, cfg), gold_summary(gold, options.centered, steps), records,
                   {"gold_standard_s": round(gold.seconds, 3), "estimators": costs}, errors,
                   __version__, git_hash(), now_iso())
