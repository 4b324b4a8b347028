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

# The modes of the further-training gold standard (truths/further/config.py): removal and
# down-weighting by ε train a copy per instance; derivative is their ε → 0 limit (docs/method.md, derivative mode).
REMOVAL, DOWNWEIGHT, DERIVATIVE = "removal", "downweight", "derivative"
GOLD_MODES: tuple[str, ...] = (REMOVAL, DOWNWEIGHT, DERIVATIVE)
