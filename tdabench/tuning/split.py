"""The validation test points of the tuned track: test points of the task that compare does not score.

Compare scores `GoldConfig.test_idx` (`config_from_spec`: `n_test` points drawn with selection seed
1). The validation points are drawn from the complement, with seed VALIDATION_SEED, so the two index
sets are disjoint by construction; `validation_indices` asserts it all the same, and so does
`validation_config` for the config it returns (a setting chosen on a scored point would be tuned on
the answer).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tdabench.errors import TdabenchError
from tdabench.truths.further import GoldConfig

VALIDATION_SEED = 2  # seeds 0 and 1 draw the evaluated training instances and the scored test points


def validation_indices(n_test: int, scored: tuple[int, ...], n_validation: int | None = None) -> tuple[int, ...]:
    """Sorted test indices in range(n_test) not in `scored`: all of them, or `n_validation` of them
    drawn with VALIDATION_SEED. TdabenchError (one line) when too few are left."""
    rest = np.setdiff1d(np.arange(n_test), np.asarray(scored, dtype=np.int64))
    wanted = len(rest) if n_validation is None else n_validation
    if len(rest) == 0 or wanted > len(rest) or wanted < 1:
        raise TdabenchError(f"the tuned track needs {wanted or 1} validation test points outside the {len(scored)} "
                            f"scored ones, but the task has {n_test} test points; pass a smaller --n-test "
                            f"or --n-validation")
    picked = rest if wanted == len(rest) else np.sort(np.random.default_rng(VALIDATION_SEED).choice(
        rest, size=wanted, replace=False))
    out = tuple(int(i) for i in picked)
    check_disjoint(out, scored)
    return out


def check_disjoint(validation: tuple[int, ...], scored: tuple[int, ...]) -> None:
    """Raise AssertionError if a validation test point is also scored (never expected)."""
    shared = set(validation) & set(scored)
    if shared:
        raise AssertionError(f"validation and scored test points overlap at {sorted(shared)[:5]}")


def validation_config(cfg: GoldConfig, n_test: int, n_validation: int | None = None) -> GoldConfig:
    """`cfg` with the validation test points in place of the scored ones (same training instances,
    horizons, seeds and mode): the gold standard the tuned track selects on."""
    out = dataclasses.replace(cfg, test_idx=validation_indices(n_test, tuple(cfg.test_idx), n_validation))
    check_disjoint(tuple(out.test_idx), tuple(cfg.test_idx))
    return out
