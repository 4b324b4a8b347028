"""Ground truths: what the estimators' scores are compared with (docs/method.md: the gold standard, secondary ground truths).

`further/` the further-training gold standard (config, vectorised and sequential training,
resumable runner, memory budget); `stacked` the stacked, vmapped parameter copies that further
training and training from scratch share; `scratch` K copies trained from the final model's
initialisation; `retraining` leave-one-out and LDS on top of it; `seed_noise` the gold standard
across final models; `names` the ground truths' names as results records carry them; `registry`
each name with its runner.

Importing this package imports only `names` (re-exported here), so that the results schema and
the reports can use the names without the training code; import the rest from its module.
"""

from tdabench.truths.names import (FURTHER_TRAINING, GROUND_TRUTHS, LDS, LDS_METRIC, LOO,
                                   RETRAINING_GROUND_TRUTHS)

__all__ = ["FURTHER_TRAINING", "GROUND_TRUTHS", "LDS", "LDS_METRIC", "LOO", "RETRAINING_GROUND_TRUTHS"]
