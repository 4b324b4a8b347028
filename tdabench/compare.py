"""`tdabench compare`: the gold standard once, every estimator against it, one results file.

Flow: spec → final model (cached) → gold standard (cached per seed, resumable) → for each estimator:
fit, score at every horizon, check the shape and the values, agreement per horizon and metric.
An estimator that raises or returns a wrong shape or non-finite values is recorded under `errors`;
the others are kept.

Optional analyses (docs/method.md, secondary ground truths and the noise ceiling): `retraining` adds the leave-one-out (LOO) and LDS ground truths of
tdabench.truths.retraining (records with `ground_truth` LOO/LDS of truths/names.py, horizon = the
training epochs; settings and cost in results.extra["retraining"]); `final_models` ≥ 2 adds the
seed-noise analysis of tdabench.truths.seed_noise over that many final models
(results.extra["seed_noise"]); `against_removal` (mode derivative) adds the removal gold standard on
the spec's number of evaluated instances and its agreement with the derivative
(results.extra["removal_vs_derivative"], truths/further/nonlinearity.py).

Where the work units run (the gold standard's seeds, the retraining seeds) is `executor`: in this
process, or as tasks of a Ray cluster (tdabench.execution); the final model and the estimators run
here. No number depends on it.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from tdabench.progress import shown

from tdabench import __version__
from tdabench.scoring.costs import measure
from tdabench.errors import TdabenchError, UnknownNameError
from tdabench.estimators.base import Estimator, is_positive_int
from tdabench.execution import RAY, Executor, check_executor_args, open_executor
from tdabench.scoring.metrics import METRICS, agreement, reliability
from tdabench.registry import estimator_names, estimators, make_estimator
from tdabench.precision import DtypeRequest, check_dtype
from tdabench.results import (FITTED_PREFIX, GoldSummary, NoiseCeiling, Record, Results, TaskInfo, git_hash,
                              now_iso)
from tdabench.selection import EstimatorRequest, parse_estimators
from tdabench.task import DEFAULT_TASK, TaskContext, build_context, find_spec
from tdabench.task.context import load_task_data
from tdabench.task.data import Dataset
from tdabench.task.device import context_as, context_on, resolve_device
from tdabench.task.interaction import make_interaction
from tdabench.task.spec import TaskSpec
from tdabench.task.targets import check_target_name, is_interaction
from tdabench.task.user_task import UserTask
from tdabench.truths.further import (GOLD_MODES, GoldConfig, GoldStandard, auto_chunk_size, check_epsilon,
                                     check_horizons, config_from_spec, run_gold_standard)
from tdabench.truths.further.nonlinearity import removal_config, removal_vs_derivative
from tdabench.truths.names import DERIVATIVE, DOWNWEIGHT, LDS, LDS_METRIC, LOO
from tdabench.truths.registry import RETRAINING
from tdabench.truths.retraining import (LeaveOneOut, RetrainingConfig, SubsetRetraining, check_retraining_counts,
                                        lds)
from tdabench.truths.seed_noise import run_seed_noise
from tdabench.tuning import TUNED_KEY, run_tuned_track, search_space_of, validation_config


@dataclass(frozen=True)
class CompareOptions:
    """Settings of one comparison; None means the task spec's default."""

    task: str | UserTask = DEFAULT_TASK  # a name, a spec file, or a task from the Python API
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
    retraining: tuple[str, ...] = ()  # retraining ground truths to add: names of truths.registry.RETRAINING
    retraining_seeds: int = 3  # retraining seeds averaged by both ground truths
    lds_subsets: int = 50  # random 50 % subsets of the LDS
    final_models: int = 1  # >= 2: seed-noise analysis over that many final models
    robust_threshold: float = 2.0  # seed noise: a pair is robust when |z_gold| >= this
    device: str = "cpu"  # auto | cpu | cuda[:k]: where the gold standard, retraining and estimators run (task/device.py)
    dtype: str | None = None  # None: the spec's; another only where tdabench/precision.py allows it
    against_removal: bool = False  # mode derivative: also the removal gold standard, and their agreement
    tuned: bool = False  # also the tuned track (tdabench.tuning): each search space swept on validation test points
    n_validation: int | None = None  # validation test points of the tuned track (None: every unscored one)
    tuning_metric: str = "pearson"  # the agreement the tuned track selects by
    search_spaces: dict[str, dict[str, list]] | None = None  # estimator name → its search space, replacing the class's
    executor: str | Executor = "local"  # where the work units run: local | ray (tdabench.execution), or an Executor
    ray_address: str | None = None  # executor "ray": the cluster's address (None: start a local Ray instance)
    unit_threads: int | None = None  # torch threads per work unit (None: as set locally, 1 on Ray)

    def __post_init__(self) -> None:
        """Refuse every setting that cannot work, before anything is loaded or trained."""
        for name in ("seeds", "n_train", "n_test", "chunk_size", "unit_threads"):
            _check_positive_int(name, getattr(self, name), optional=True)
        check_executor_args(self.executor, self.ray_address)
        if isinstance(self.executor, Executor) and self.unit_threads is not None:
            raise TdabenchError("unit_threads goes with an executor name; an Executor has its own threads")

        _check_positive_int("final_models", self.final_models)
        if self.horizons is not None:
            check_horizons(self.horizons)
        if self.mode is not None and self.mode not in GOLD_MODES:
            raise UnknownNameError("mode", self.mode, list(GOLD_MODES))
        if self.epsilon is not None:
            check_epsilon(self.epsilon)
        for name in self.retraining:
            if name not in RETRAINING:
                raise UnknownNameError("retraining ground truth", name, list(RETRAINING))
        if len(set(self.retraining)) != len(self.retraining):
            raise TdabenchError(f"a retraining ground truth is listed twice: {', '.join(self.retraining)}")
        check_retraining_counts(self.retraining_seeds, self.lds_subsets)
        device = resolve_device(self.device)  # a malformed or absent device fails before anything is trained
        if _executor_name(self.executor) == RAY and device.type != "cpu":
            raise TdabenchError(f"--executor ray runs the work units on the workers' CPUs; it goes with --device cpu "
                                f"(got '{self.device}')")
        _check_positive_int("n_validation", self.n_validation, optional=True)
        if self.tuning_metric not in METRICS:
            raise UnknownNameError("metric", self.tuning_metric, list(METRICS))
        if (self.n_validation is not None or self.search_spaces) and not self.tuned:
            raise TdabenchError("n_validation and search_spaces go with tuned=True (--tuned)")
        if not (isinstance(self.robust_threshold, (int, float)) and self.robust_threshold > 0):
            raise TdabenchError(f"robust_threshold must be positive, got {self.robust_threshold!r}")


def _executor_name(executor: str | Executor) -> str:
    return executor.name if isinstance(executor, Executor) else executor


def _check_positive_int(name: str, value: object, optional: bool = False) -> None:
    if optional and value is None:
        return
    if not is_positive_int(value):
        raise TdabenchError(f"{name} must be a positive integer, got {value!r}")


@dataclass
class EstimatorOutcome:
    records: list[Record] = field(default_factory=list)
    cost: dict = field(default_factory=dict)
    error: str | None = None
    truth_error: str | None = None  # scoring every training instance failed (no retraining records)


def default_requests() -> tuple[EstimatorRequest, ...]:
    """Every native estimator that ships with tdabench, with its default parameters: no plugins,
    nothing registered at run time by other code, and not the adapters to other libraries (they
    recompute native estimators for cross-checks; ask for them by name)."""
    def shipped(name: str) -> bool:
        origin = estimators.origin(name)
        return (origin.kind == "built-in" and origin.target.startswith("tdabench.")
                and estimators.get(name).adapter_of is None)
    return tuple(EstimatorRequest(n) for n in estimator_names() if shipped(n))


def prepare(options: CompareOptions) -> tuple[TaskContext, GoldConfig, list[tuple[EstimatorRequest, Estimator]]]:
    """Validate everything cheap first (names, parameters, settings), then build the context."""
    user = options.task if isinstance(options.task, UserTask) else None
    spec = user.spec if user else find_spec(options.task)
    check_dtype(options.dtype, spec, DtypeRequest(options.mode or spec.gold_standard.mode, bool(options.retraining),
                                                  options.final_models, options.against_removal))
    requests = options.estimators or default_requests()
    made = [(r, make_estimator(r.name, **r.params)) for r in requests]
    labels = [r.label for r in requests]
    if len(set(labels)) != len(labels):
        raise TdabenchError(f"an estimator is listed twice: {', '.join(labels)}")
    data = user.data if user else load_task_data(spec, options.cache_dir)
    cfg = config_from_spec(
        spec.gold_standard, len(data.train), len(data.test), seeds=options.seeds, horizons=options.horizons,
        mode=options.mode, epsilon=options.epsilon, n_train_evaluated=options.n_train,
        n_test_evaluated=options.n_test, chunk_size=options.chunk_size)
    if options.epsilon is not None and cfg.mode != DOWNWEIGHT:
        raise TdabenchError(f"--epsilon goes with --mode downweight (the mode is '{cfg.mode}', which "
                            f"{'takes the limit ε → 0' if cfg.mode == DERIVATIVE else 'removes the instance'})")
    if options.against_removal and cfg.mode != DERIVATIVE:
        raise TdabenchError(f"--against-removal goes with --mode derivative (the mode is '{cfg.mode}')")
    check_target(options.target or spec.target, spec, data)  # a bad target fails before training
    check_recipe_needs(spec, options)
    if options.tuned:  # the validation split and the search spaces fail before training
        validation_config(cfg, len(data.test), options.n_validation)
        for r in requests:
            search_space_of(r.name, (options.search_spaces or {}).get(r.name))
    ctx = build_context(spec, options.cache_dir, options.target, **(user.context_args() if user else {"data": data}))
    if cfg.chunk_size is None:  # train copies in chunks when one vmapped step would not fit
        cfg = replace(cfg, chunk_size=auto_chunk_size(ctx, cfg.recipe, len(cfg.train_idx)))
    return ctx, cfg, made


def check_recipe_needs(spec: TaskSpec, options: CompareOptions) -> None:
    """Retraining and the seed-noise analysis train from scratch: they need the task's `training`."""
    wants = ([f"retraining ({', '.join(options.retraining)})"] if options.retraining else []) + (
        [f"final_models={options.final_models}"] if options.final_models >= 2 else [])
    if wants and spec.training is None:
        raise TdabenchError(f"{' and '.join(wants)} trains models from scratch, but task '{spec.name}' has no "
                            f"`training` recipe (its final model is the user's); add one to the spec")


def check_target(name: str, spec: TaskSpec, data: Dataset) -> None:
    """An unknown target raises before training (a probe's layer is checked by `build_context`,
    on the model it builds, before it trains)."""
    check_target_name(name, spec.objective, data.n_outputs, spec.concept)
    if is_interaction(name):  # its features against the data, and the task's inputs
        make_interaction(name, spec, data)


def _check_scores(scores: np.ndarray, expected: tuple[int, ...]) -> None:
    if not isinstance(scores, np.ndarray) or scores.shape != expected:
        shape = getattr(scores, "shape", type(scores).__name__)
        raise TdabenchError(f"returned scores of shape {shape}, expected {expected}")
    if not np.all(np.isfinite(scores)):
        raise TdabenchError(f"returned {int((~np.isfinite(scores)).sum())} non-finite scores")


Truths = dict[str, LeaveOneOut | SubsetRetraining]


def run_estimator(request: EstimatorRequest, estimator: Estimator, ctx: TaskContext, gold: GoldStandard,
                  centered: bool, truths: Truths | None = None) -> EstimatorOutcome:
    """Fit, score at every horizon, and compare; failures become `EstimatorOutcome.error`.

    With retraining `truths`, the estimator scores *every* training instance in one call (the LDS
    needs them all) and the evaluated columns are sliced from it, so an expensive transform of the
    test gradients (if-cg, if-lissa) runs once. Should that call fail, the evaluated columns are
    scored alone and the failure is kept in `truth_error`: the further-training records survive.
    """
    cfg, outcome = gold.config, EstimatorOutcome()
    test_idx, train_idx = np.asarray(cfg.test_idx), np.asarray(cfg.train_idx)
    steps = list(cfg.steps)
    try:
        with measure() as fit_cost:
            estimator.fit(ctx)
        uses = estimator.fitted_input()  # what this fit read (tdabench.estimators.inputs)
        with measure() as score_cost:
            every, outcome.truth_error = (_score_every_instance(estimator, cfg, steps, len(ctx.train))
                                          if truths else (None, None))
            scores = (estimator.score_horizons(test_idx, train_idx, steps) if every is None
                      else every[:, :, train_idx])
        _check_scores(scores, (len(cfg.horizons), len(test_idx), len(train_idx)))
    except Exception as err:  # an estimator's failure must not lose the others' results
        outcome.error = _describe(err)
        return outcome
    peak = max(v for v in (fit_cost.peak_mem_mb, score_cost.peak_mem_mb, 0.0) if v is not None)
    outcome.cost = {"fit_s": round(fit_cost.seconds, 4), "score_s": round(score_cost.seconds, 4),
                    "peak_mem_mb": peak or None,
                    "scored_train_instances": len(train_idx) if every is None else len(ctx.train)}
    params, source = _json_params(estimator), _source(request.name)
    for h, horizon in enumerate(cfg.horizons):
        target = gold.mean(h, centered)
        for metric in METRICS:
            summary = agreement(scores[h], target, metric)
            outcome.records.append(Record.from_summary(request.label, params, horizon, metric, summary, source,
                                                       uses=uses))
    if every is not None:
        try:
            outcome.records += retraining_records(request.label, params, source, every[-1], ctx, cfg, truths,
                                                  centered, uses)
        except Exception as err:  # keep the further-training records of this estimator
            outcome.truth_error = _describe(err)
    return outcome


def _score_every_instance(estimator: Estimator, cfg: GoldConfig, steps: list[int],
                          n_train: int) -> tuple[np.ndarray | None, str | None]:
    """((horizons, n_test, n_train) scores against every training instance, None), or (None, why it
    failed). At the longest horizon they are what the retraining ground truths compare with."""
    test_idx = np.asarray(cfg.test_idx)
    try:
        scores = estimator.score_horizons(test_idx, np.arange(n_train), steps)
        _check_scores(scores, (len(cfg.horizons), len(test_idx), n_train))
    except Exception as err:
        return None, _describe(err)
    return scores, None


def run_retraining(ctx: TaskContext, cfg: GoldConfig, options: CompareOptions,
                   executor: Executor | None = None) -> Truths:
    """The retraining ground truths asked for, on the gold standard's instances and test points, their
    seeds on `executor` (None: in this process)."""
    rcfg = RetrainingConfig(cfg.train_idx, cfg.test_idx, options.retraining_seeds, options.lds_subsets,
                            chunk_size=cfg.chunk_size)
    return {name: RETRAINING[name].runner(ctx, rcfg, options.progress, executor=executor)
            for name in options.retraining}


def retraining_records(label: str, params: dict, source: dict | None, scores: np.ndarray, ctx: TaskContext,
                       cfg: GoldConfig, truths: Truths, centered: bool, uses: str | None = None) -> list[Record]:
    """Records against each retraining ground truth (horizon = training epochs); `scores`: (n_test,
    n_train) against every training instance, at the gold standard's longest horizon."""
    args, records = (label, params, ctx.spec.training.epochs), []
    if LOO in truths:
        loo = truths[LOO].mean(centered)
        for metric in METRICS:
            summary = agreement(scores[:, list(cfg.train_idx)], loo, metric)
            records.append(Record.from_summary(*args, metric, summary, source, ground_truth=LOO, uses=uses))
    if LDS in truths:
        summary = lds(scores, truths[LDS].keep, truths[LDS].targets())
        records.append(Record.from_summary(*args, LDS_METRIC, summary, source, ground_truth=LDS, uses=uses))
    return records


def _describe(err: BaseException) -> str:
    """One line for a failure; where it happened unless it is one of tdabench's own errors."""
    text = f"{type(err).__name__}: {err}".strip()
    return text if isinstance(err, TdabenchError) else f"{text} [{_where(err)}]"


def _where(err: BaseException) -> str:
    frame = traceback.extract_tb(err.__traceback__)[-1]
    return f"{Path(frame.filename).name}:{frame.lineno}"


def _json_value(value: Any) -> Any:
    return value if isinstance(value, (int, float, str, bool, type(None))) else repr(value)


def recorded_params(estimator: Estimator) -> dict[str, Any]:
    """The estimator's resolved parameters (`get_params`, defaults filled in) as a record stores
    them: JSON scalars, anything else as its repr. A record's params also hold the fitted state
    (`describe`) under keys starting with FITTED_PREFIX."""
    return {k: _json_value(v) for k, v in estimator.get_params().items()}


def parameter_changes(label: str, params: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{name: (recorded, now)} for each parameter where a record of the estimator request `label`
    (e.g. "if-cg(max_iter=5)") with resolved `params` (FITTED_PREFIX keys ignored) differs from what
    this tdabench resolves that request to, e.g. after a default changed ("(unset)" where one side
    lacks the name); {} when they agree, when nothing but fitted state was recorded, or when `label`
    is not a request of a registered estimator (a tuned-track label, a plugin not installed here)."""
    then = {k: v for k, v in params.items() if not k.startswith(FITTED_PREFIX)}
    if not then:
        return {}
    try:
        (request,) = parse_estimators(label)
        now = recorded_params(make_estimator(request.name, **request.params))
    except (TdabenchError, ValueError, TypeError):
        return {}
    unset = "(unset)"
    return {k: (then.get(k, unset), now.get(k, unset)) for k in sorted(set(then) | set(now))
            if then.get(k, unset) != now.get(k, unset)}


def _json_params(estimator: Estimator) -> dict:
    fitted = {f"{FITTED_PREFIX}{k}": _json_value(v) for k, v in estimator.describe().items()}
    return recorded_params(estimator) | fitted


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
    details = {"modality": spec.modality, "target": ctx.target_name, "dtype": str(ctx.dtype).removeprefix("torch."),
               "n_params": ctx.n_params, "n_train": len(ctx.train), "n_test": len(ctx.test),
               "final_model": ctx.final_metrics,
               "further_training": {"optimizer": cfg.recipe.optimizer, "lr": cfg.recipe.lr,
                                    "momentum": cfg.recipe.momentum, "batch_size": cfg.recipe.batch_size},
               "train_indices": list(cfg.train_idx), "test_indices": list(cfg.test_idx),
               "attributed_parameters": sorted({k.rpartition(".")[0] or k for k in ctx.params})}
    if ctx.probe is not None:
        details["probe"] = {"layer": ctx.probe.layer, "concept": ctx.probe.concept,
                            "train_accuracy": ctx.probe.train_accuracy}
    if ctx.interaction is not None:
        details["interaction"] = ctx.interaction.describe()
    return TaskInfo(spec.name, spec.version, spec.spec_hash, details)


def headline(results: Results) -> str:
    """One line on the final model and one on the gold standard, printed above the table."""
    task, gold = results.task.details, results.gold_standard
    quality = ", ".join(f"{split} {name} {value:.3f}" for split, metrics in task["final_model"].items()
                        for name, value in metrics.items())
    return (f"final model: {task['n_params']} parameters; {quality}\n"
            f"gold standard: {gold.mode}, {gold.seeds} seeds, {gold.n_train_evaluated} training instances x "
            f"{gold.n_test} test points, target '{task['target']}', {_gold_time(results.cost['gold_standard_s'])}")


def _gold_time(seconds: float) -> str:
    """How the gold standard was obtained: read from the cache, or how long its new seeds took."""
    if seconds == 0:
        return "every seed read from the cache"
    return f"computed in {seconds:.1f} s (seeds found in the cache not counted)"


def run_compare(options: CompareOptions) -> Results:
    """The whole comparison; the caller writes or prints the returned Results. With
    `options.progress`, the long steps inside it (final-model training, CG, LiSSA, Hessian columns)
    show their own bars too (tdabench.progress). The executor is started (a Ray cluster reached)
    before anything is trained, and closed after, unless `options.executor` is an Executor."""
    with shown(options.progress), open_executor(options.executor, options.ray_address,
                                                options.unit_threads) as executor:
        return run_prepared(*prepare(options), options, executor)


def comparison_context(ctx: TaskContext, options: CompareOptions) -> TaskContext:
    """The final model's context on the comparison's device, in its dtype (`options.dtype`, None:
    the spec's); the final model itself stays trained and cached in the spec's dtype."""
    return context_on(context_as(ctx, getattr(torch, options.dtype or ctx.spec.dtype)), resolve_device(options.device))


def run_prepared(ctx: TaskContext, cfg: GoldConfig, made: list[tuple[EstimatorRequest, Estimator]],
                 options: CompareOptions, executor: Executor | None = None) -> Results:
    """Everything after `prepare`: the gold standard, the optional analyses and every estimator, on
    `comparison_context`, the work units on `executor` (None: in this process). Whether
    `options.dtype` is allowed is `prepare`'s check, not this one's (benchmarks/precision.py runs the
    casts it measures through here)."""
    on_device = comparison_context(ctx, options)
    gold = run_gold_standard(on_device, cfg, progress=options.progress, executor=executor)
    linearity = (removal_vs_derivative(on_device, gold, *removal_config(cfg, ctx.spec.gold_standard.n_train_evaluated),
                                       centered=options.centered, progress=options.progress, executor=executor)
                 if options.against_removal else None)
    truths = run_retraining(on_device, cfg, options, executor)
    requests = [request for request, _ in made]
    records, costs, errors, truth_errors = [], {}, {}, {}
    bar = tqdm(total=len(made), desc="estimators", disable=not options.progress, leave=False)
    while made:  # pop each estimator, so its fitted state (a factorised curvature…) is freed after use
        request, estimator = made.pop(0)
        bar.set_postfix_str(request.label)
        outcome = run_estimator(request, estimator, on_device, gold, options.centered, truths)
        if outcome.truth_error is not None:
            truth_errors[request.label] = outcome.truth_error
        del estimator
        records += outcome.records
        if outcome.error is None:
            costs[request.label] = outcome.cost
        else:
            errors[request.label] = outcome.error
        bar.update()
    bar.close()
    tuned = (run_tuned_track(on_device, gold, requests, run_estimator, n_validation=options.n_validation,
                             metric=options.tuning_metric, search_spaces=options.search_spaces,
                             centered=options.centered, progress=options.progress) if options.tuned else None)
    if tuned is not None:
        records, errors = records + tuned.records, errors | tuned.errors
        costs |= tuned.costs
    steps = cfg.steps_per_epoch if cfg.horizon_unit == "epoch" else None
    return Results(task_info(on_device, cfg), gold_summary(gold, options.centered, steps), records,
                   {"gold_standard_s": round(gold.seconds, 3), "estimators": costs}
                   | ({"tuning": tuned.cost} if tuned else {}), errors,
                   __version__, git_hash(), now_iso(),
                   extra=_extra(on_device, cfg, options, truths, truth_errors, requests, executor)
                   | ({"removal_vs_derivative": linearity} if linearity is not None else {})
                   | ({TUNED_KEY: tuned.choices} if tuned else {}))


def _extra(ctx: TaskContext, cfg: GoldConfig, options: CompareOptions, truths: Truths,
           truth_errors: dict[str, str], requests: list[EstimatorRequest], executor: Executor | None) -> dict:
    """results.extra: {"retraining": {...}} and {"seed_noise": {...}} when asked for; `ctx` is the
    context on the comparison's device (the seed-noise final models, gold standards and estimators
    run there)."""
    extra = {}
    if truths:
        extra["retraining"] = {name: truth.summary(options.centered) for name, truth in truths.items()} | {
            "training_epochs": ctx.spec.training.epochs,
            "estimator_horizon_steps": cfg.steps[-1], "errors": truth_errors}
    if options.final_models >= 2:
        factories = [(r.label, lambda r=r: make_estimator(r.name, **r.params)) for r in requests]
        extra["seed_noise"] = run_seed_noise(ctx, cfg, factories, options.final_models, options.robust_threshold,
                                             centered=options.centered, progress=options.progress,
                                             executor=executor).summary()
    return extra
