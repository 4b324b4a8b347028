"""Paired summaries of the removal experiment over seeds, with Student-t intervals.

Input: values v (S seeds, C conditions in `removal.condition_names` order, L layers, M metrics of
`removal.METRICS`). For a condition c, layer l and metric m, over the seeds s:

- `value`: mean of v[s, c, l, m] and its t-interval (what the plot draws);
- `delta`: mean of v[s, c, l, m] − v[s, none, l, m] (the same seed with nothing removed: a paired
  reference, so the seed's own noise cancels) and its t-interval;
- for top-k only, `vs_random`: mean of v[s, top-k, l, m] − v[s, random-k, l, m] and its
  t-interval: does removing the top-attributed k move the probe more than k random instances?

Intervals are None with a single seed. `best_layers`: per condition, the layer of the highest
mean probe accuracy (ties: the earliest).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from tdabench.concepts.removal import METRICS, NONE
from tdabench.scoring.stats import t_interval

Interval = dict[str, float | None]


def interval(values: np.ndarray) -> Interval:
    """{"mean", "low", "high"} of `values` (1-D) with the t-interval of its mean (None below 2)."""
    ci = t_interval(values)
    return {"mean": float(np.mean(values)), "low": ci and ci[0], "high": ci and ci[1]}


def summarise(values: np.ndarray, conditions: Sequence[str], layers: Sequence[str]) -> dict[str, Any]:
    """condition → layer → metric → {"value", "delta"[, "vs_random"]: Interval} (module docstring)."""
    none = conditions.index(NONE)
    out: dict[str, Any] = {}
    for c, name in enumerate(conditions):
        partner = conditions.index(name.replace("top-", "random-")) if name.startswith("top-") else None
        out[name] = {}
        for li, layer in enumerate(layers):
            entry = {}
            for mi, metric in enumerate(METRICS):
                v = values[:, c, li, mi]
                entry[metric] = {"value": interval(v), "delta": interval(v - values[:, none, li, mi])}
                if partner is not None:
                    entry[metric]["vs_random"] = interval(v - values[:, partner, li, mi])
            out[name][layer] = entry
    return out


def best_layers(values: np.ndarray, conditions: Sequence[str], layers: Sequence[str]) -> dict[str, str]:
    """condition → the layer with the highest mean probe accuracy over seeds (ties: the earliest)."""
    accuracy = values[..., METRICS.index("accuracy")].mean(axis=0)  # (C, L)
    return {name: layers[int(np.argmax(accuracy[c]))] for c, name in enumerate(conditions)}
