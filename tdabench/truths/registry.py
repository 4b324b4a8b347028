"""The ground truths and their runners: one entry per name of truths/names.py.

`FURTHER` is the gold standard every comparison computes (runner: `run_gold_standard(ctx,
GoldConfig, progress)`); `RETRAINING` the optional ones trained from scratch, by name
(runner: `(ctx, RetrainingConfig, progress)` → LeaveOneOut or SubsetRetraining).
`GROUND_TRUTH_REGISTRY` holds all of them in the order of `names.GROUND_TRUTHS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from tdabench.truths.further import run_gold_standard
from tdabench.truths.names import FURTHER_TRAINING, LDS, LOO
from tdabench.truths.retraining import run_leave_one_out, run_subset_retraining


@dataclass(frozen=True)
class GroundTruth:
    """A ground truth: its name in results records, the function that computes it, one line on it."""

    name: str
    runner: Callable[..., Any]
    description: str


FURTHER = GroundTruth(FURTHER_TRAINING, run_gold_standard,
                      "further training of the final model, paired, without each instance (docs/method.md)")
RETRAINING: dict[str, GroundTruth] = {truth.name: truth for truth in (
    GroundTruth(LOO, run_leave_one_out, "leave-one-out retraining from the final model's initialisation"),
    GroundTruth(LDS, run_subset_retraining, "linear datamodeling score: retraining on random subsets"),
)}
GROUND_TRUTH_REGISTRY: dict[str, GroundTruth] = {FURTHER.name: FURTHER, **RETRAINING}
