"""`TunedChoice`: what the tuned track chose for one estimator, and on what evidence.

Written to results.json as a list under the optional top-level key TUNED_KEY ("tuned"), one entry per
tuned estimator; files without it have no tuned track. Adding the key changes the meaning of no
other field, so the schema version stays 1 (tdabench/results.py). The scored records of the chosen
setting carry the estimator label + TUNED_SUFFIX ("if-explicit (tuned)") so they never merge with
the default track's; the per-horizon choice's records + TUNED_PER_HORIZON_SUFFIX.
Conventions: `params` hold only the searched parameters (the rest are the request's); `means` are
mean agreements over the validation test points (None where undefined), keyed by horizon.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tdabench.scoring.metrics import METRICS

TUNED_KEY = "tuned"
TUNED_SUFFIX = " (tuned)"
TUNED_PER_HORIZON_SUFFIX = " (tuned per horizon)"


@dataclass(frozen=True)
class Candidate:
    """One setting of the search space and its validation agreement per horizon (or why it failed)."""

    params: dict[str, Any]
    means: dict[int, float | None]
    error: str | None = None
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if any(m is not None and not math.isfinite(m) for m in self.means.values()):
            raise ValueError(f"candidate {self.params}: validation means must be finite or None")

    def to_json(self) -> dict[str, Any]:
        return {"params": dict(self.params), "means": [{"horizon": h, "mean": m} for h, m in self.means.items()],
                "error": self.error, "seconds": self.seconds}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Candidate:
        return cls(dict(d["params"]), {int(x["horizon"]): x["mean"] for x in d["means"]}, d.get("error"),
                   float(d.get("seconds", 0.0)))


@dataclass(frozen=True)
class TunedChoice:
    """The selection for the estimator labelled `estimator` (the default track's label), by `metric`.

    `space`: parameter → candidate values swept; `overall`: the candidate params with the best mean
    over horizons of its validation means; `per_horizon`: horizon → the best candidate there;
    `validation_test_idx`: the test points selected on (disjoint from the scored ones);
    `search_s`: seconds spent fitting and scoring every candidate (the validation gold standard's
    own cost is results.cost["tuning"]["validation_gold_standard_s"]).
    """

    estimator: str
    metric: str
    space: dict[str, list]
    candidates: list[Candidate]
    overall: dict[str, Any] | None
    per_horizon: dict[int, dict[str, Any]]
    validation_test_idx: list[int]
    search_s: float
    scored_test_idx: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {self.metric!r}")
        tried = [c.params for c in self.candidates]
        chosen = [self.overall] if self.overall is not None else []
        if any(p not in tried for p in chosen + list(self.per_horizon.values())):
            raise ValueError(f"{self.estimator}: a chosen setting is not among the candidates")
        shared = set(self.validation_test_idx) & set(self.scored_test_idx)
        if shared:
            raise ValueError(f"{self.estimator}: validation and scored test points overlap at {sorted(shared)[:5]}")

    def to_json(self) -> dict[str, Any]:
        return {"estimator": self.estimator, "metric": self.metric, "space": {k: list(v) for k, v in self.space.items()},
                "candidates": [c.to_json() for c in self.candidates], "overall": self.overall,
                "per_horizon": [{"horizon": h, "params": p} for h, p in self.per_horizon.items()],
                "validation_test_idx": list(self.validation_test_idx), "scored_test_idx": list(self.scored_test_idx),
                "search_s": self.search_s}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TunedChoice:
        return cls(d["estimator"], d["metric"], {k: list(v) for k, v in d["space"].items()},
                   [Candidate.from_json(c) for c in d["candidates"]], d["overall"],
                   {int(x["horizon"]): dict(x["params"]) for x in d["per_horizon"]},
                   list(d["validation_test_idx"]), float(d["search_s"]), list(d.get("scored_test_idx", [])))


def tuned_choices(extra: dict[str, Any]) -> list[TunedChoice]:
    """The TunedChoice entries of a results file's `extra` (`Results.extra`); [] without a tuned track."""
    return [TunedChoice.from_json(d) for d in extra.get(TUNED_KEY, [])]
