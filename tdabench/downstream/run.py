"""`tdabench downstream`: the downstream evaluations of one task for a list of estimators.

Flow: validate every setting and estimator (before anything trains) → final model (cached) → per
estimator: scores on the final model for `n_test` test points against every training instance,
top-k cardinality from them, the model-randomisation check, top-k removal (margin-target scores)
→ the noisy variant's final model → each estimator's self-influence and the gold standard's →
one payload for results.py. An estimator's failure in one check is recorded under `errors` and
the rest go on.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tdabench import __version__
from tdabench.compare import default_requests
from tdabench.downstream.brittleness import random_order, removal_flips, removal_order
from tdabench.downstream.metrics import top_k_cardinality
from tdabench.downstream.mislabel import DEFAULT_NOISE, detection, flipped_mask, noisy_spec
from tdabench.downstream.randomization import RANDOMIZATION_SEED, model_randomization
from tdabench.downstream.results import DOWNSTREAM_SCHEMA_VERSION, KIND
from tdabench.downstream.selfinfluence import estimator_self_influence, gold_self_influence
from tdabench.errors import TdabenchError, UnknownNameError
from tdabench.estimators.base import clone, is_positive_int
from tdabench.progress import shown
from tdabench.registry import make_estimator
from tdabench.results import git_hash, now_iso
from tdabench.selection import EstimatorRequest
from tdabench.task import build_context, find_spec
from tdabench.task.context import TaskContext, load_task_data
from tdabench.task.spec import TaskSpec
from tdabench.truths.further import check_horizons, select_indices

CHECKS = ("mislabel", "randomization", "brittleness", "cardinality")
CLASSIFICATION_CHECKS = ("mislabel", "brittleness")


@dataclass(frozen=True)
class DownstreamOptions:
    """Settings of one downstream run; validated on construction (nothing trains before)."""

    task: str
    estimators: tuple[EstimatorRequest, ...] | None = None  # None: every native estimator
    checks: tuple[str, ...] = CHECKS
    n_test: int = 20  # test points of randomisation, cardinality and brittleness
    top_k: int = 10  # cardinality's k
    ks: tuple[int, ...] = (1, 5, 10, 20, 50)  # brittleness grid
    horizon: int | None = None  # brittleness horizon, in the spec's unit (None: the spec's longest)
    noise: float = DEFAULT_NOISE
    noise_seed: int = 0
    gold_seeds: int = 1
    gold_horizons: tuple[int, ...] | None = None  # None: the spec's
    gold_instances: int = 200  # training instances of the gold self-influence (all if fewer)
    seed: int = 0
    cache_dir: Path | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        unknown = [c for c in self.checks if c not in CHECKS]
        if unknown or not self.checks:
            raise UnknownNameError("check", unknown[0] if unknown else "", list(CHECKS))
        for name in ("n_test", "top_k", "gold_seeds", "gold_instances"):
            if not is_positive_int(getattr(self, name)):
                raise TdabenchError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not self.ks or list(self.ks) != sorted(set(self.ks)) or not all(is_positive_int(k) for k in self.ks):
            raise TdabenchError(f"ks must be strictly increasing positive integers, got {list(self.ks)}")
        if self.horizon is not None and not is_positive_int(self.horizon):
            raise TdabenchError(f"horizon must be a positive integer, got {self.horizon!r}")
        if self.gold_horizons is not None:
            check_horizons(self.gold_horizons)
        if not 0 < self.noise < 1:
            raise TdabenchError(f"noise must lie in (0, 1), got {self.noise!r}")


def _describe(err: Exception) -> str:
    if isinstance(err, TdabenchError):
        return str(err)
    return f"{type(err).__name__}: {err} ({traceback.extract_tb(err.__traceback__)[-1].name})"


def check_task(spec: TaskSpec, options: DownstreamOptions, n_train: int) -> None:
    """Refuse checks that do not fit the task, and a k grid larger than its training split."""
    wants = [c for c in options.checks if c in CLASSIFICATION_CHECKS]
    if wants and spec.objective.loss != "cross-entropy":
        raise TdabenchError(f"{', '.join(wants)} need a classification task; '{spec.name}' uses the "
                            f"{spec.objective.loss} loss")
    if "brittleness" in options.checks and options.ks[-1] > n_train:
        raise TdabenchError(f"ks go up to {options.ks[-1]}, but the task has {n_train} training instances")
    if "cardinality" in options.checks and options.top_k > n_train:
        raise TdabenchError(f"top_k={options.top_k} exceeds the {n_train} training instances")


def _task_info(spec: TaskSpec) -> dict[str, Any]:
    return {"name": spec.name, "version": spec.version, "spec_hash": spec.spec_hash}


def run_downstream(options: DownstreamOptions) -> dict[str, Any]:
    """Every check of `options` on its task; the payload of results.py (schema version 1)."""
    spec = find_spec(options.task)
    requests = options.estimators or default_requests()
    made = [(r, make_estimator(r.name, **r.params)) for r in requests]
    labels = [r.label for r in requests]
    if len(set(labels)) != len(labels):
        raise TdabenchError(f"an estimator is listed twice: {', '.join(labels)}")
    noisy = noisy_spec(spec, options.noise, options.noise_seed) if "mislabel" in options.checks else None
    data = load_task_data(spec, options.cache_dir)
    check_task(spec, options, len(data.train))  # before the final model is trained
    with shown(options.progress):
        ctx = build_context(spec, options.cache_dir, data=data)
        errors: dict[str, dict[str, str]] = {}
        checks = _on_final_model(ctx, made, options, errors)
        if noisy is not None:
            checks["mislabel"] = _mislabel(build_context(noisy, options.cache_dir), made, options, errors)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in options.__dict__.items()
                if k not in ("estimators", "cache_dir", "progress", "task")}
    return {"schema_version": DOWNSTREAM_SCHEMA_VERSION, "kind": KIND, "tdabench_version": __version__,
            "git_hash": git_hash(), "date": now_iso(), "task": _task_info(spec),
            "settings": {**settings, "checks": list(options.checks), "ks": list(options.ks),
                         "estimators": labels}, "checks": checks, "errors": errors}


def _on_final_model(ctx: TaskContext, made: list, options: DownstreamOptions,
                    errors: dict[str, dict[str, str]]) -> dict[str, Any]:
    """Cardinality, randomisation and brittleness on the task's final model."""
    wanted = set(options.checks) - {"mislabel"}
    if not wanted:
        return {}
    test_idx = np.asarray(select_indices(len(ctx.test), min(options.n_test, len(ctx.test)), options.seed + 1,
                                         "test points"))
    train_idx = np.arange(len(ctx.train))
    out: dict[str, Any] = {name: {} for name in ("cardinality", "randomization") if name in wanted}
    brittle = _brittleness_setup(ctx, test_idx, options) if "brittleness" in wanted else None
    for request, estimator in made:
        failures = errors.setdefault(request.label, {})

        def fail(check: str, err: Exception, failures: dict[str, str] = failures) -> None:
            failures[check] = _describe(err)
        try:
            trained = estimator.fit(ctx).score(test_idx, train_idx) if wanted & {"cardinality", "randomization"} \
                else None
        except Exception as err:
            for check in wanted & {"cardinality", "randomization"}:
                fail(check, err)
            trained = None
        if trained is not None and "cardinality" in wanted:
            out["cardinality"][request.label] = {"k": options.top_k, "distinct": top_k_cardinality(
                trained, options.top_k), "n_test": len(test_idx), "n_train": len(train_idx)}
        if trained is not None and "randomization" in wanted:
            try:
                summary, _ = model_randomization(clone(estimator), ctx, test_idx, train_idx, RANDOMIZATION_SEED,
                                                 trained=trained)
                out["randomization"][request.label] = dict(summary.__dict__)
            except Exception as err:
                fail("randomization", err)
        if brittle is not None:
            try:
                brittle["estimators"][request.label] = _flips_of(clone(estimator), ctx, brittle, options)
            except Exception as err:
                fail("brittleness", err)
    if brittle is not None:
        out["brittleness"] = {k: v for k, v in brittle.items() if k != "recipe"}
    for label in [label for label, failures in errors.items() if not failures]:
        del errors[label]
    return out


def _brittleness_setup(ctx: TaskContext, test_idx: np.ndarray, options: DownstreamOptions) -> dict[str, Any]:
    """The correctly classified test points, the horizon in steps, and the random control's flips."""
    gold = ctx.spec.gold_standard
    predicted = ctx.outputs(ctx.params, ctx.test.x[test_idx]).argmax(-1).cpu().numpy()
    correct = test_idx[predicted == ctx.test.y[test_idx].cpu().numpy()]
    if len(correct) == 0:
        raise TdabenchError("brittleness: the final model classifies none of the chosen test points correctly")
    horizon = options.horizon or gold.horizons[-1]
    per_epoch = -(-len(ctx.train) // gold.further_training.batch_size)
    steps = horizon * per_epoch if gold.horizon_unit == "epoch" else horizon
    control = removal_flips(ctx, random_order(len(correct), len(ctx.train), options.seed), correct, options.ks,
                            gold.further_training, steps, options.seed)
    return {"ks": list(options.ks), "horizon": horizon, "horizon_unit": gold.horizon_unit, "steps": steps,
            "test_idx": [int(i) for i in correct], "random": control.to_json(), "estimators": {},
            "recipe": gold.further_training}


def _flips_of(estimator, ctx: TaskContext, brittle: dict[str, Any], options: DownstreamOptions) -> dict:
    correct = np.asarray(brittle["test_idx"])
    scores = estimator.fit(ctx.with_target("margin")).score(correct, np.arange(len(ctx.train)))
    flips = removal_flips(ctx, removal_order(scores), correct, options.ks, brittle["recipe"], brittle["steps"],
                          options.seed)
    return flips.to_json()


def _mislabel(nctx: TaskContext, made: list, options: DownstreamOptions,
              errors: dict[str, dict[str, str]]) -> dict[str, Any]:
    """Self-influence detection of the flipped labels on the noisy variant, and the gold reference on a
    seeded subset of `gold_instances` training instances (estimators are also scored on it)."""
    n = len(nctx.train)
    idx = np.arange(n)
    flipped = flipped_mask(n, nctx.data.flipped, idx)
    subset = np.asarray(select_indices(n, min(options.gold_instances, n), options.seed, "training instances"))
    out: dict[str, Any] = {"task": _task_info(nctx.spec), "n_flipped": int(flipped.sum()), "n_train": n,
                           "gold_subset": len(subset), "estimators": {}, "gold": []}
    for request, estimator in made:
        try:
            scores = estimator_self_influence(clone(estimator), nctx, idx)
            result = detection(scores, flipped).to_json()
            if flipped[subset].any() and not flipped[subset].all():
                result["on_gold_subset"] = detection(scores[subset], flipped[subset]).to_json()
            out["estimators"][request.label] = result
        except Exception as err:
            errors.setdefault(request.label, {})["mislabel"] = _describe(err)
    gold = nctx.spec.gold_standard
    horizons = options.gold_horizons or gold.horizons
    if flipped[subset].any() and not flipped[subset].all():
        values = gold_self_influence(nctx, gold.further_training, subset, tuple(horizons), gold.horizon_unit,
                                     options.gold_seeds)
        out["gold"] = [{"horizon": h, **detection(values[a], flipped[subset]).to_json()}
                       for a, h in enumerate(horizons)]
    return out
