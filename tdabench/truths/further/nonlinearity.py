"""How well removal agrees with its linearisation: the removal gold standard against the derivative.

Removal (docs/method.md) changes the batches and is a finite change; the derivative mode (the derivative mode) is the
ε → 0 limit of down-weighting. On the same instances, test points, seeds and horizons, the
agreement (per horizon and metric, mean ± sem over test points, metrics.agreement) of the
seed-averaged removal differences a_t with the seed-averaged derivatives d_t measures the
nonlinearity of removal (1 = removal is linear in the weight; lower = batch shift and curvature
matter). Removal's own noise ceiling is reported beside it: seed noise alone keeps the agreement
below about that value.

The removal instances are `n` of the derivative's evaluated instances, at the positions
`select_indices(m, n, 0)` of its m instances: with all training instances these are exactly the
spec's default removal instances, so the removal seeds are shared with `--mode removal` runs.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from tdabench.execution import Executor
from tdabench.scoring.metrics import METRICS, agreement, reliability
from tdabench.task.context import TaskContext
from tdabench.truths.further.config import GoldConfig, select_indices
from tdabench.truths.further.runner import GoldStandard, run_gold_standard
from tdabench.truths.names import DERIVATIVE, REMOVAL


def removal_config(cfg: GoldConfig, n: int) -> tuple[GoldConfig, np.ndarray]:
    """(the removal config on `n` of the derivative config's instances, their positions in it)."""
    positions = np.asarray(select_indices(len(cfg.train_idx), min(n, len(cfg.train_idx)), 0, "training instances"))
    train_idx = tuple(cfg.train_idx[p] for p in positions)
    return dataclasses.replace(cfg, mode=REMOVAL, train_idx=train_idx, checkpoint_every=None,
                               adjoint_chunk=None), positions


def removal_vs_derivative(ctx: TaskContext, derivative: GoldStandard, removal_cfg: GoldConfig,
                          positions: np.ndarray, centered: bool = False, progress: bool = True,
                          executor: Executor | None = None) -> dict[str, Any]:
    """results.extra["removal_vs_derivative"]: the removal gold standard on `removal_cfg` (computed
    or read from the cache) against the derivative gold standard's columns `positions`.

    {"n_train_evaluated", "seeds", "centered", "gold_standard_s",
     "agreement": [{"horizon", "metric", "mean", "sem", "n_test", "n_skipped"}, ...],
     "removal_noise_ceiling": [{"horizon", "metric", "value"}, ...]}
    """
    if derivative.config.mode != DERIVATIVE:
        raise ValueError(f"expected a derivative-mode gold standard, got mode '{derivative.config.mode}'")
    removal = run_gold_standard(ctx, removal_cfg, progress=progress, executor=executor)
    rows, ceilings = [], []
    for h, horizon in enumerate(removal_cfg.horizons):
        d = derivative.per_seed[:, h][:, :, positions].mean(axis=0)
        if centered:
            d = d - d.mean(axis=1, keepdims=True)
        for metric in METRICS:
            s = agreement(removal.mean(h, centered), d, metric)
            rows.append({"horizon": horizon, "metric": metric, "mean": s.mean, "sem": s.sem, "n_test": s.n,
                         "n_skipped": s.n_skipped})
            rel = reliability(removal.seeds_at(h, centered), metric)
            ceilings.append({"horizon": horizon, "metric": metric, "value": None if rel is None else rel.ceiling})
    return {"n_train_evaluated": len(removal_cfg.train_idx), "seeds": removal_cfg.seeds, "centered": centered,
            "gold_standard_s": round(removal.seconds, 3), "agreement": rows, "removal_noise_ceiling": ceilings}
