"""The further-training gold standard (docs/method.md, the gold standard): K copies of the final model trained on, paired.

`config` (settings, validated and hashed), `vectorized` (all copies of a seed in one vmapped step),
`sequential` (the plain one-model-at-a-time reference), `runner` (seed by seed, resumable),
`memory` (how many copies fit one step).
"""

from tdabench.truths.further.config import (GOLD_MODES, GoldConfig, check_epsilon, check_horizons,
                                            config_from_spec, select_indices)
from tdabench.truths.further.memory import auto_chunk_size, bytes_per_copy
from tdabench.truths.further.runner import GoldStandard, gold_entry, run_gold_standard
from tdabench.truths.further.sequential import paired_differences_sequential
from tdabench.truths.further.vectorized import paired_differences

__all__ = ["GOLD_MODES", "GoldConfig", "GoldStandard", "auto_chunk_size", "bytes_per_copy", "check_epsilon",
           "check_horizons", "config_from_spec", "gold_entry", "paired_differences",
           "paired_differences_sequential", "run_gold_standard", "select_indices"]
