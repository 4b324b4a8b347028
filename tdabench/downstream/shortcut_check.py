"""The shortcut-detection check of the downstream flow (the method and its conventions: shortcut.py).

On the `<task>@shortcut` variant's own final model: `n_test` test images of the shortcut class
(seeded by `options.seed + 2`) with the patch added, each estimator's loss-target scores of them
against every training instance, and share@k and the summed-score AUC of the patched images. How
strongly the model took the shortcut is reported beside them (`patch_effect`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tdabench.downstream.common import Errors, record, task_info
from tdabench.downstream.options import DownstreamOptions
from tdabench.downstream.shortcut import patched, patched_test_context, shortcut_detection
from tdabench.errors import TdabenchError
from tdabench.estimators.base import Estimator, clone
from tdabench.selection import EstimatorRequest
from tdabench.task.context import TaskContext
from tdabench.truths.further import select_indices


def shortcut_test_points(sctx: TaskContext, options: DownstreamOptions) -> np.ndarray:
    """min(n_test, n_c) test images of the shortcut class c, drawn with seed `options.seed + 2`."""
    members = np.flatnonzero(sctx.test.y.cpu().numpy() == sctx.spec.data.shortcut_class)
    if len(members) == 0:
        raise TdabenchError(f"shortcut: the test split has no image of class {sctx.spec.data.shortcut_class}")
    chosen = select_indices(len(members), min(options.n_test, len(members)), options.seed + 2, "test images")
    return members[np.asarray(chosen)]


def patch_effect(sctx: TaskContext) -> dict[str, float]:
    """Among the test images of the other classes: the share the final model assigns to class c,
    without and with the patch (how strongly it took the shortcut)."""
    cls = sctx.spec.data.shortcut_class
    others = sctx.test.x[sctx.test.y != cls]
    with torch.no_grad():
        clean = sctx.outputs(sctx.params, others).argmax(-1) == cls
        patch = sctx.outputs(sctx.params, patched(sctx, others)).argmax(-1) == cls
    return {"clean": float(clean.double().mean()), "patched": float(patch.double().mean()), "n": len(others)}


def shortcut_check(sctx: TaskContext, made: list[tuple[EstimatorRequest, Estimator]], options: DownstreamOptions,
                   errors: Errors) -> dict[str, Any]:
    """The shortcut entry of downstream.json: the variant, the class, the patched training images,
    the patch effect and each estimator's detection (shortcut.ShortcutDetection)."""
    test_idx = shortcut_test_points(sctx, options)
    pctx = patched_test_context(sctx, test_idx)
    planted = np.zeros(len(sctx.train), dtype=bool)
    planted[list(sctx.data.shortcut)] = True
    train_idx = np.arange(len(sctx.train))
    out: dict[str, Any] = {"task": task_info(sctx.spec), "class": sctx.spec.data.shortcut_class,
                           "n_planted": int(planted.sum()), "n_train": len(planted),
                           "test_idx": [int(i) for i in test_idx], "patch_effect": patch_effect(sctx),
                           "estimators": {}}
    for request, estimator in made:
        try:
            scores = clone(estimator).fit(pctx).score(np.arange(len(test_idx)), train_idx)
            out["estimators"][request.label] = shortcut_detection(scores, planted, options.top_k).to_json()
        except Exception as err:
            record(errors, request.label, "shortcut", err)
    return out
