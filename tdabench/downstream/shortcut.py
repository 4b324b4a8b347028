"""Shortcut detection (quanda, arXiv 2410.07158): does an estimator trace a model's use of a planted
shortcut back to the training images that carry it?

The task variant `<task>@shortcut` sets `data.shortcut_fraction` (task/shortcut.py): a seeded share
of class c's training images gets a bright corner patch, and the variant has its own final model
(its spec hash differs). The check takes test images of class c, adds the same patch (the
featurised values of a patched training image at the patch positions), and scores them with the
**loss** target in the tdabench sign (docs/method.md): score[j, i] > 0 means removing z_i increases
the loss of test image j, i.e. z_i supports its prediction. So an instance's support is the
*largest* end of the ranking. With P the patched training images (m of n):

    share@k = mean over test images j of |top-k(score[j]) ∩ P| / k         (chance: m / n)
    AUC     = AUC of s_i = Σ_j score[j, i] with P as the positives           (chance: 0.5)

A patch that the model uses shows up as share@k ≫ m / n and AUC ≫ 0.5 for a faithful estimator.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tdabench.downstream.metrics import Auc, auc, top_k
from tdabench.errors import TdabenchError
from tdabench.scoring.stats import bootstrap_ci
from tdabench.task.context import TaskContext
from tdabench.task.data import Split
from tdabench.task.shortcut import corner_mask
from tdabench.task.spec import TaskSpec

DEFAULT_SHORTCUT = 0.3
SHORTCUT_SUFFIX = "@shortcut"


def shortcut_spec(spec: TaskSpec, fraction: float = DEFAULT_SHORTCUT, cls: int = 0, seed: int = 0) -> TaskSpec:
    """The spec with a corner patch on `fraction` of class `cls`'s training images (seeded), named
    `<name>@shortcut`; a spec that already plants a shortcut is returned as it is."""
    if spec.objective.loss != "cross-entropy" or spec.modality != "image":
        raise TdabenchError(f"shortcut detection needs an image classification task; '{spec.name}' is "
                            f"{spec.modality} with the {spec.objective.loss} loss")
    if spec.data.shortcut_fraction > 0:
        return spec
    if not 0 < fraction <= 1:
        raise TdabenchError(f"the shortcut fraction must lie in (0, 1], got {fraction!r}")
    data = dataclasses.replace(spec.data, shortcut_fraction=float(fraction), shortcut_class=int(cls),
                               shortcut_seed=int(seed))
    return dataclasses.replace(spec, name=spec.name + SHORTCUT_SUFFIX, data=data)


def patch_mask(ctx: TaskContext) -> np.ndarray:
    """Boolean (n_features,): the flattened patch positions of the context's images."""
    data = ctx.spec.data
    return corner_mask(int(np.prod(ctx.train.x.shape[1:])), data.image_shape, data.shortcut_size)


def patched(ctx: TaskContext, x: torch.Tensor) -> torch.Tensor:
    """`x` (n, ...) with the patch added: at the patch positions, the featurised values of the first
    patched training image (every patched image has the same values there)."""
    if not ctx.data.shortcut:
        raise TdabenchError(f"task '{ctx.spec.name}' plants no shortcut (data.shortcut_fraction is 0)")
    flat, mask = x.reshape(len(x), -1).clone(), torch.as_tensor(patch_mask(ctx), device=x.device)
    flat[:, mask] = ctx.train.x[ctx.data.shortcut[0]].reshape(-1)[mask]
    return flat.reshape(x.shape)


def patched_test_context(ctx: TaskContext, test_idx: np.ndarray) -> TaskContext:
    """The context whose test split is the test images `test_idx` with the patch added (labels
    kept) and whose target is the loss. Caches keyed by the spec must not be used with it."""
    idx = torch.as_tensor(np.asarray(test_idx, dtype=np.int64), device=ctx.test.x.device)
    test = Split(patched(ctx, ctx.test.x[idx]), ctx.test.y[idx])
    return dataclasses.replace(ctx, data=dataclasses.replace(ctx.data, test=test)).with_target("loss")


@dataclass(frozen=True)
class ShortcutDetection:
    """share@k (mean over test images, bootstrap interval) and the summed-score AUC, with chance m / n."""

    k: int
    share: float
    share_low: float | None
    share_high: float | None
    chance: float
    auc: Auc

    def to_json(self) -> dict[str, Any]:
        return {"k": self.k, "share": self.share, "share_low": self.share_low, "share_high": self.share_high,
                "chance": self.chance, "auc": self.auc.value, "auc_low": self.auc.low, "auc_high": self.auc.high}


def shortcut_detection(scores: np.ndarray, planted: np.ndarray, k: int) -> ShortcutDetection:
    """share@k and AUC (module docstring) of a (n_test, n_train) loss-target score matrix; `planted`
    (n_train,) bool marks the patched training images."""
    planted = np.asarray(planted, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != len(planted):
        raise ValueError(f"scores {s.shape} must be (n_test, {len(planted)})")
    per_row = planted[top_k(s, k)].mean(axis=1)
    ci = bootstrap_ci(per_row)
    return ShortcutDetection(k, float(per_row.mean()), ci and ci[0], ci and ci[1], float(planted.mean()),
                             auc(s.sum(axis=0), planted))
