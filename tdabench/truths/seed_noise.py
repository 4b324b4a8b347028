"""Seed noise across final models: the Bayesian view of the gold standard (docs/method.md, the noise ceiling).

The final model is one draw from the models its recipe produces. Final models m = 0..F−1
(task/ensemble.py: member m is trained from `model.init_seed + m` with data-order seed
`training.seed + m`; member 0 is the task's own) each get their own gold standard a⁽ᵐ⁾_t (the same
GoldConfig: instances, test points, horizons, further-training seeds; seed-averaged, optionally
centered) and their own estimator scores s⁽ᵐ⁾_t (the estimator fit on member m, `score_horizons`).

Per train–test pair (j, i), across the F final models (metrics.seed_statistics, std with ddof=1):
mean = (1/F) Σ_m a⁽ᵐ⁾[j, i], std, z = mean / std (0 where std = 0); likewise for each estimator.
A pair is **robust** when |z_gold| ≥ `threshold`: the sign of its effect does not hinge on which
final model was drawn. `robust_share` is the fraction of robust pairs.

**Robust agreement**: for each test row j, R_j = {i : |z_gold[j, i]| ≥ threshold}; the agreement
(metrics.row_agreement, every metric) of the estimator's mean row with the gold's mean row over the
columns R_j only. Rows with |R_j| < `min_columns` are skipped (counted in n_skipped), as are rows
where the metric is undefined; mean ± sem over the rest (metrics.summarize). `sign_agreement`: the
share of robust pairs where sign(mean score) = sign(mean gold).
**Spread**: agreement(s⁽ᵐ⁾_t, a⁽ᵐ⁾_t, metric).mean for each final model m on all pairs; its mean,
std (ddof=1), min and max over the F models.

`SeedNoise.summary()` (stored as results.extra["seed_noise"]; JSON-safe, None for undefined):

    {"final_models": F, "threshold": 2.0, "min_columns": 3, "centered": false,
     "gold_seconds": [s per final model, 0 = cached], "errors": {label: message},
     "horizons": [{"horizon": h, "pairs": n_test·n_train, "robust_pairs": k, "robust_share": k/pairs,
                   "gold_abs_z_median": ...,
                   "estimators": {label: {"robust_share": share of pairs with |z_est| ≥ threshold,
                                          "sign_agreement": ...,
                                          "robust_agreement": {metric: {"mean", "sem", "n", "n_skipped"}},
                                          "spread": {metric: {"mean", "std", "min", "max", "n_models"}}}}}]}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from tdabench.errors import TdabenchError
from tdabench.estimators.base import Estimator
from tdabench.execution import Executor
from tdabench.scoring.metrics import METRICS, Summary, agreement, row_agreement, seed_statistics, summarize
from tdabench.task.context import TaskContext
from tdabench.task.ensemble import member_context
from tdabench.truths.further import GoldConfig, run_gold_standard


def robust_mask(z: np.ndarray, threshold: float = 2.0) -> np.ndarray:
    """Pairs whose |z| ≥ threshold (bool, same shape as z)."""
    return np.abs(np.asarray(z)) >= threshold


def masked_row_agreement(scores: np.ndarray, gold: np.ndarray, mask: np.ndarray, metric: str,
                         min_columns: int = 3) -> np.ndarray:
    """Per test row j, row_agreement over the columns where mask[j] holds; NaN when fewer than
    `min_columns` columns are left or the metric is undefined there. Shape (n_test,)."""
    scores, gold, mask = np.asarray(scores, float), np.asarray(gold, float), np.asarray(mask, bool)
    out = np.full(scores.shape[0], np.nan)
    for j in range(scores.shape[0]):
        cols = np.flatnonzero(mask[j])
        if len(cols) >= min_columns:
            out[j] = row_agreement(scores[j:j + 1, cols], gold[j:j + 1, cols], metric)[0]
    return out


def spread(values: Sequence[float | None]) -> dict[str, Any]:
    """mean, std (ddof=1; None below 2 values), min, max of the defined values, and their count."""
    v = np.array([x for x in values if x is not None], dtype=np.float64)
    if not v.size:
        return {"mean": None, "std": None, "min": None, "max": None, "n_models": 0}
    std = float(v.std(ddof=1)) if v.size > 1 else None
    return {"mean": float(v.mean()), "std": std, "min": float(v.min()), "max": float(v.max()),
            "n_models": int(v.size)}


def _summary_json(s: Summary) -> dict[str, Any]:
    return {"mean": s.mean, "sem": s.sem, "n": s.n, "n_skipped": s.n_skipped}


def _median_or_none(values: np.ndarray) -> float | None:
    return float(np.median(values)) if values.size else None


@dataclass(frozen=True)
class SeedNoise:
    """Per final model: gold (F, H, n_test, n_train) and each estimator's scores (F, H, n_test, n_train)."""

    config: GoldConfig
    gold: np.ndarray
    scores: dict[str, np.ndarray]
    threshold: float = 2.0
    min_columns: int = 3
    centered: bool = False
    gold_seconds: list[float] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    def statistics(self, h: int) -> dict[str, dict[str, np.ndarray]]:
        """Per-pair mean/std/z across final models at horizon index h: "gold" and each estimator."""
        return {"gold": seed_statistics(self.gold[:, h])} | {
            label: seed_statistics(s[:, h]) for label, s in self.scores.items()}

    def estimator_summary(self, label: str, h: int, gold: dict, robust: np.ndarray) -> dict[str, Any]:
        """Robust share, sign agreement, robust agreement and spread of one estimator at horizon h."""
        own, scores = seed_statistics(self.scores[label][:, h]), self.scores[label][:, h]
        signs = np.sign(own["mean"][robust]) == np.sign(gold["mean"][robust])
        robust_agreement = {m: _summary_json(summarize(masked_row_agreement(
            own["mean"], gold["mean"], robust, m, self.min_columns))) for m in METRICS}
        per_model = {m: spread([agreement(scores[f], self.gold[f, h], m).mean for f in range(len(scores))])
                     for m in METRICS}
        return {"robust_share": float(robust_mask(own["z"], self.threshold).mean()),
                "sign_agreement": float(signs.mean()) if signs.size else None,
                "robust_agreement": robust_agreement, "spread": per_model}

    def horizon_summary(self, h: int) -> dict[str, Any]:
        gold = seed_statistics(self.gold[:, h])
        robust = robust_mask(gold["z"], self.threshold)
        return {"horizon": int(self.config.horizons[h]), "pairs": int(robust.size),
                "robust_pairs": int(robust.sum()), "robust_share": float(robust.mean()),
                "gold_abs_z_median": _median_or_none(np.abs(gold["z"]).ravel()),
                "estimators": {label: self.estimator_summary(label, h, gold, robust) for label in self.scores}}

    def summary(self) -> dict[str, Any]:
        """The JSON-safe layout of the module docstring."""
        return {"final_models": int(self.gold.shape[0]), "threshold": self.threshold,
                "min_columns": self.min_columns, "centered": self.centered,
                "gold_seconds": [round(s, 3) for s in self.gold_seconds], "errors": dict(self.errors),
                "horizons": [self.horizon_summary(h) for h in range(len(self.config.horizons))]}


def member_scores(estimator: Estimator, ctx: TaskContext, cfg: GoldConfig) -> np.ndarray:
    """Fit on `ctx` and score at every horizon: (H, n_test, n_train_evaluated), checked finite."""
    estimator.fit(ctx)
    scores = estimator.score_horizons(np.asarray(cfg.test_idx), np.asarray(cfg.train_idx),
                                      list(cfg.steps))
    expected = (len(cfg.horizons), len(cfg.test_idx), len(cfg.train_idx))
    if scores.shape != expected or not np.all(np.isfinite(scores)):
        raise TdabenchError(f"returned scores of shape {scores.shape} (expected {expected}) "
                            f"with {int((~np.isfinite(scores)).sum())} non-finite values")
    return scores


def _estimator_scores(members: list[TaskContext], cfg: GoldConfig, make: Callable[[], Estimator],
                      ) -> np.ndarray:
    return np.stack([member_scores(make(), member, cfg) for member in members])


def run_seed_noise(ctx: TaskContext, cfg: GoldConfig, estimators: Sequence[tuple[str, Callable[[], Estimator]]],
                   final_models: int, threshold: float = 2.0, min_columns: int = 3, centered: bool = False,
                   progress: bool = True, executor: Executor | None = None) -> SeedNoise:
    """Gold standard and scores of every estimator (`(label, factory)`) on final models 0..F−1
    (the gold standards' seeds on `executor`, None: in this process).

    Final models and gold standards are cached in the context's cache (task/ensemble.py,
    truths/further/runner.py). An
    estimator that fails on any final model is left out and its error kept in `SeedNoise.errors`.
    """
    if final_models < 2:
        raise TdabenchError(f"the seed-noise analysis needs at least 2 final models, got {final_models}")
    members = [member_context(ctx, m) for m in range(final_models)]
    golds = [run_gold_standard(member, cfg, progress=progress, executor=executor) for member in members]
    gold = np.stack([[g.mean(h, centered) for h in range(len(cfg.horizons))] for g in golds])
    scores, errors = {}, {}
    for label, make in estimators:
        try:
            scores[label] = _estimator_scores(members, cfg, make)
        except Exception as err:  # one estimator's failure must not lose the others
            errors[label] = f"{type(err).__name__}: {err}"
    return SeedNoise(cfg, gold, scores, threshold, min_columns, centered, [g.seconds for g in golds], errors)
