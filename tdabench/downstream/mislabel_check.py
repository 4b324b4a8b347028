"""The mislabel-detection check of the downstream flow (the method and its conventions: mislabel.py).

On the noisy variant's own final model: every estimator's self-influence of every training
instance, its detection AUC and precision at the flipped fraction, also on a seeded subset of
`gold_instances` instances, and there the gold standard's self-influence at each horizon as reference.
An estimator whose self-influence is constant (grad-cos: the cosine of a gradient with itself is 1)
gets no AUC, whose value would only order rounding errors, but a line under `not_applicable`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tdabench.downstream.common import Errors, record, task_info
from tdabench.downstream.mislabel import constant_reason, detection, flipped_mask
from tdabench.downstream.options import DownstreamOptions
from tdabench.downstream.selfinfluence import estimator_self_influence, gold_self_influence
from tdabench.estimators.base import Estimator, clone
from tdabench.selection import EstimatorRequest
from tdabench.task.context import TaskContext
from tdabench.truths.further import select_indices


def mislabel_check(nctx: TaskContext, made: list[tuple[EstimatorRequest, Estimator]], options: DownstreamOptions,
                   errors: Errors) -> dict[str, Any]:
    """Self-influence detection of the flipped labels on the noisy variant, and the gold reference on a
    seeded subset of `gold_instances` training instances (estimators are also scored on it)."""
    n = len(nctx.train)
    idx = np.arange(n)
    flipped = flipped_mask(n, nctx.data.flipped, idx)
    subset = np.asarray(select_indices(n, min(options.gold_instances, n), options.seed, "training instances"))
    mixed = bool(flipped[subset].any() and not flipped[subset].all())  # the subset's AUC is defined
    out: dict[str, Any] = {"task": task_info(nctx.spec), "n_flipped": int(flipped.sum()), "n_train": n,
                           "gold_subset": len(subset), "estimators": {}, "not_applicable": {}, "gold": []}
    for request, estimator in made:
        try:
            scores = estimator_self_influence(clone(estimator), nctx, idx)
            why = constant_reason(scores)
            if why is not None:
                out["not_applicable"][request.label] = why
                continue
            result = detection(scores, flipped).to_json()
            if mixed:
                result["on_gold_subset"] = detection(scores[subset], flipped[subset]).to_json()
            out["estimators"][request.label] = result
        except Exception as err:
            record(errors, request.label, "mislabel", err)
    if mixed:
        gold = nctx.spec.gold_standard
        horizons = options.gold_horizons or gold.horizons
        values = gold_self_influence(nctx, gold.further_training, subset, tuple(horizons), gold.horizon_unit,
                                     options.gold_seeds, progress=options.progress)
        out["gold"] = [{"horizon": h, **detection(values[a], flipped[subset]).to_json()}
                       for a, h in enumerate(horizons)]
    return out
