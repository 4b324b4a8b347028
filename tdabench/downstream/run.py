"""`tdabench downstream`: the downstream evaluations of one task for a list of estimators.

Flow: validate every setting and estimator (options.py; before anything trains) → final model
(cached) → the checks on it (final_checks.py: top-k cardinality, model randomisation, top-k removal)
→ the noisy variant's final model → mislabel detection (mislabel_check.py) → the shortcut
variant's final model → shortcut detection (shortcut_check.py) → one payload for results.py. An estimator's failure in one check is recorded under `errors` and the rest go on.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from tdabench import __version__
from tdabench.compare import default_requests, recorded_params
from tdabench.downstream.common import Errors, task_info
from tdabench.downstream.final_checks import final_model_checks
from tdabench.downstream.mislabel import noisy_spec
from tdabench.downstream.mislabel_check import mislabel_check
from tdabench.downstream.options import CHECKS, DownstreamOptions, check_retrain_size, check_task
from tdabench.downstream.shortcut import shortcut_spec
from tdabench.downstream.shortcut_check import shortcut_check
from tdabench.downstream.results import DOWNSTREAM_SCHEMA_VERSION, KIND
from tdabench.errors import TdabenchError
from tdabench.estimators.base import Estimator
from tdabench.progress import shown
from tdabench.registry import make_estimator
from tdabench.results import git_hash, now_iso
from tdabench.selection import EstimatorRequest
from tdabench.task import build_context, find_spec
from tdabench.task.context import load_task_data
from tdabench.task.device import context_on, resolve_device
from tdabench.task.data import Dataset
from tdabench.task.spec import TaskSpec

__all__ = ["CHECKS", "DownstreamOptions", "Prepared", "prepare", "run_downstream"]


@dataclass(frozen=True)
class Prepared:
    """What `prepare` checked and built: the task's spec and data, each request with its (unfitted)
    estimator, the noisy and the shortcut variants where their checks are asked for."""

    spec: TaskSpec
    data: Dataset
    made: list[tuple[EstimatorRequest, Estimator]]
    noisy: TaskSpec | None
    planted: tuple[TaskSpec, Dataset] | None


def prepare(options: DownstreamOptions) -> Prepared:
    """Every check that can fail before anything trains (TdabenchError, one line): the task, each
    estimator and its parameters, no label twice, the checks against the task's data, the retrain
    budget; the leaderboard suite calls it before its comparisons, `run_downstream` before its checks."""
    spec = find_spec(options.task)
    requests = options.estimators or default_requests()
    made = [(r, make_estimator(r.name, **r.params)) for r in requests]
    labels = [r.label for r in requests]
    if len(set(labels)) != len(labels):
        raise TdabenchError(f"an estimator is listed twice: {', '.join(labels)}")
    noisy = noisy_spec(spec, options.noise, options.noise_seed) if "mislabel" in options.checks else None
    data = load_task_data(spec, options.cache_dir)
    check_task(spec, options, data)
    check_retrain_size(options, len(data.train), len(made))
    return Prepared(spec, data, made, noisy, _shortcut_variant(spec, options))


def run_downstream(options: DownstreamOptions) -> dict[str, Any]:
    """Every check of `options` on its task; the payload of results.py (schema version 1)."""
    prepared = prepare(options)
    spec, data, made, noisy, planted = (prepared.spec, prepared.data, prepared.made, prepared.noisy,
                                        prepared.planted)
    labels = [r.label for r, _ in made]
    errors: Errors = {}
    cost: dict[str, float] = {}
    device = resolve_device(options.device)
    with shown(options.progress):
        with timed(cost, "final_model_checks_s"):
            ctx = context_on(build_context(spec, options.cache_dir, data=data), device)
            checks = final_model_checks(ctx, made, options, errors)
        if noisy is not None:
            with timed(cost, "mislabel_s"):
                nctx = context_on(build_context(noisy, options.cache_dir), device)
                checks["mislabel"] = mislabel_check(nctx, made, options, errors)
        if planted is not None:
            with timed(cost, "shortcut_s"):
                sctx = context_on(build_context(planted[0], options.cache_dir, data=planted[1]), device)
                checks["shortcut"] = shortcut_check(sctx, made, options, errors)
    return {"schema_version": DOWNSTREAM_SCHEMA_VERSION, "kind": KIND, "tdabench_version": __version__,
            "git_hash": git_hash(), "date": now_iso(), "task": task_info(spec), "device": str(device),
            "settings": {**options.settings(), "estimators": labels,
                         "estimator_params": {r.label: recorded_params(e) for r, e in made}},
            "checks": checks, "errors": errors,
            "cost": cost}


@contextmanager
def timed(cost: dict[str, float], key: str) -> Iterator[None]:
    """cost[key] = wall-clock seconds of the block (final models trained in it included)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        cost[key] = round(time.perf_counter() - start, 3)


def _shortcut_variant(spec: TaskSpec, options: DownstreamOptions) -> tuple[TaskSpec, Dataset] | None:
    """The `<task>@shortcut` spec and its data (loaded here, so a task it does not fit is refused
    before anything trains); None when the shortcut check is not asked for."""
    if "shortcut" not in options.checks:
        return None
    planted = shortcut_spec(spec, options.shortcut, options.shortcut_class, options.shortcut_seed)
    return planted, load_task_data(planted, options.cache_dir)
