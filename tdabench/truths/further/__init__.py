"""The further-training gold standard (docs/method.md, the gold standard): K copies of the final model trained on, paired.

`config` (settings, validated and hashed), `vectorized` (all copies of a seed in one vmapped step),
`sequential` (the plain one-model-at-a-time reference), `runner` (seed by seed, resumable),
`memory` (how many copies fit one step), `replay` (the reference run step by step) and `derivative`
(the ε → 0 limit for every training instance by one reverse sweep, docs/method.md, derivative mode).
"""

from tdabench.truths.further.config import (DERIVATIVE, GOLD_MODES, GoldConfig, check_epsilon, check_horizons,
                                            config_from_spec, select_indices)
from tdabench.truths.further.derivative import derivatives
from tdabench.truths.further.memory import auto_chunk_size, bytes_per_copy
from tdabench.truths.further.runner import GoldSeed, GoldStandard, gold_entry, run_gold_standard
from tdabench.truths.further.sequential import paired_differences_sequential
from tdabench.truths.further.vectorized import paired_differences

__all__ = ["DERIVATIVE", "GOLD_MODES", "GoldConfig", "GoldSeed", "GoldStandard", "auto_chunk_size", "bytes_per_copy",
           "check_epsilon", "check_horizons", "derivatives", "config_from_spec", "gold_entry", "paired_differences",
           "paired_differences_sequential", "run_gold_standard", "select_indices"]
