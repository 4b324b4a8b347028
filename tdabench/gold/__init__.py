"""The further-training gold standard (DESIGN §2)."""

from tdabench.gold.config import GoldConfig, config_from_spec, select_indices
from tdabench.gold.runner import GoldStandard, run_gold_standard
from tdabench.gold.sequential import paired_differences_sequential
from tdabench.gold.vectorized import paired_differences

__all__ = ["GoldConfig", "GoldStandard", "config_from_spec", "paired_differences",
           "paired_differences_sequential", "run_gold_standard", "select_indices"]
