"""The names of the ground truths, as results records carry them (`Record.ground_truth`).

This module imports nothing, so that the results schema and the reports can use the names
without importing any training code; the runner of each name is in truths/registry.py.
"""

from __future__ import annotations

# further-training: the gold standard (docs/method.md), metrics cosine/pearson/spearman per horizon;
# loo: leave-one-out retraining from scratch, same metrics at horizon = its retraining epochs;
# lds: linear datamodeling score, metric "lds" (mean Spearman over test points).
FURTHER_TRAINING = "further-training"
LOO = "loo"
LDS = "lds"
LDS_METRIC = LDS  # the metric of the LDS records (the other ground truths use metrics.METRICS)

RETRAINING_GROUND_TRUTHS: tuple[str, ...] = (LOO, LDS)  # trained from scratch (truths/retraining.py)
GROUND_TRUTHS: tuple[str, ...] = (FURTHER_TRAINING, *RETRAINING_GROUND_TRUTHS)
