"""Each estimator's agreement with the further-training gold standard of each layer's probe target.

For layer L the target is `probe:L` (the logit of the frozen concept probe on L's activations,
task/probe.py), and the comparison is `tdabench compare --target probe:L` itself (compare.py's
`run_compare`: same gold standard, cached per seed under the target's name, same estimators, same
metrics and bootstrap intervals over test points). Kept per layer: the records (estimator, horizon,
metric, mean, interval), the noise ceiling, the gold standard's size and time, and errors.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Sequence

from tdabench.compare import CompareOptions, run_compare
from tdabench.results import Results



def layer_agreement(results: Results) -> dict[str, Any]:
    """The compact entry of one layer's comparison (module docstring)."""
    gold = results.gold_standard
    return {
        "records": [{"estimator": r.estimator, "horizon": r.horizon, "metric": r.metric, "mean": r.mean,
                     "ci_low": r.ci_low, "ci_high": r.ci_high, "n_test": r.n_test, "n_skipped": r.n_skipped}
                    for r in results.records],
        "noise_ceiling": [{"horizon": c.horizon, "metric": c.metric, "value": c.value} for c in gold.noise_ceiling],
        "gold_standard": {"mode": gold.mode, "seeds": gold.seeds, "horizons": list(gold.horizons),
                          "horizon_unit": gold.horizon_unit, "n_train_evaluated": gold.n_train_evaluated,
                          "n_test": gold.n_test, "seconds": results.cost["gold_standard_s"]},
        "errors": dict(results.errors),
    }


def agreement_by_layer(base: CompareOptions, layers: Sequence[str],
                       on_layer: Callable[[str], None] | None = None) -> dict[str, dict[str, Any]]:
    """Layer → `layer_agreement` of `run_compare(base with target probe:LAYER)`."""
    out = {}
    for layer in layers:
        if on_layer is not None:
            on_layer(layer)
        out[layer] = layer_agreement(run_compare(replace(base, target=f"probe:{layer}")))
    return out
