"""The checks on the task's own final model: top-k cardinality, model randomisation, top-k removal.

Per estimator: one score matrix for `n_test` test points (seeded by `options.seed + 1`) against every
training instance, in the task's target; cardinality and randomisation read it; top-k removal
refits with the margin target (removal_check.py). A failure is recorded per (estimator, check).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tdabench.downstream.common import Errors, record
from tdabench.downstream.metrics import top_k_cardinality
from tdabench.downstream.options import DownstreamOptions
from tdabench.downstream.randomization import RANDOMIZATION_SEED, model_randomization
from tdabench.downstream.removal_check import estimator_flips, removal_setup
from tdabench.estimators.base import Estimator, clone
from tdabench.selection import EstimatorRequest
from tdabench.task.context import TaskContext
from tdabench.truths.further import select_indices

SCORED = {"cardinality", "randomization"}  # the checks that read the final model's score matrix


def final_test_points(ctx: TaskContext, options: DownstreamOptions) -> np.ndarray:
    """min(n_test, |test|) test points drawn with seed `options.seed + 1`."""
    return np.asarray(select_indices(len(ctx.test), min(options.n_test, len(ctx.test)), options.seed + 1,
                                     "test points"))


def final_model_checks(ctx: TaskContext, made: list[tuple[EstimatorRequest, Estimator]],
                       options: DownstreamOptions, errors: Errors) -> dict[str, Any]:
    """{"cardinality": {label: ...}, "randomization": {label: ...}, "brittleness": {...}} for the
    checks of `options` among these three (an empty dict if none)."""
    wanted = set(options.checks) & (SCORED | {"brittleness"})
    if not wanted:
        return {}
    test_idx = final_test_points(ctx, options)
    out: dict[str, Any] = {name: {} for name in sorted(wanted & SCORED)}
    brittle = removal_setup(ctx, test_idx, options) if "brittleness" in wanted else None
    for request, estimator in made:
        if wanted & SCORED:
            _scored_checks(ctx, request.label, estimator, test_idx, options, out, errors)
        if brittle is not None:
            try:
                brittle["estimators"][request.label] = estimator_flips(clone(estimator), ctx, brittle, options)
            except Exception as err:
                record(errors, request.label, "brittleness", err)
    if brittle is not None:
        out["brittleness"] = brittle
    return out


def _scored_checks(ctx: TaskContext, label: str, estimator: Estimator, test_idx: np.ndarray,
                   options: DownstreamOptions, out: dict[str, Any], errors: Errors) -> None:
    """Cardinality and randomisation of one estimator from one score matrix (n_test, n_train)."""
    train_idx = np.arange(len(ctx.train))
    try:
        trained = estimator.fit(ctx).score(test_idx, train_idx)
    except Exception as err:
        for check in sorted(out.keys() & SCORED):
            record(errors, label, check, err)
        return
    if "cardinality" in out:
        out["cardinality"][label] = {"k": options.top_k, "distinct": top_k_cardinality(trained, options.top_k),
                                     "n_test": len(test_idx), "n_train": len(train_idx)}
    if "randomization" in out:
        try:
            summary, _ = model_randomization(clone(estimator), ctx, test_idx, train_idx, RANDOMIZATION_SEED,
                                             trained=trained)
            out["randomization"][label] = dict(summary.__dict__)
        except Exception as err:
            record(errors, label, "randomization", err)
