"""Settings of one gold-standard run, validated on construction and hashed for the cache."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tdabench.errors import TdabenchError
from tdabench.task.schedule import steps_per_epoch
from tdabench.task.spec import GoldSpec, OptimizerSpec
from tdabench.truths.names import DERIVATIVE, GOLD_MODES

GOLD_FORMAT = 2  # raise when the training code changes the numbers a config produces (2: batched-GEMM path)


def check_horizons(horizons: tuple[int, ...]) -> None:
    """Horizons: a non-empty, strictly increasing list of positive integers."""
    values = list(horizons)
    if not values or not all(isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in values):
        raise TdabenchError(f"horizons must be positive integers, got {values}")
    if values != sorted(set(values)):
        raise TdabenchError(f"horizons must be strictly increasing, got {values}")


def check_epsilon(epsilon: float) -> None:
    """The ε a user may ask for: down-weighting scales an instance's loss weight by 1 − ε, so
    0 < ε ≤ 1 (ε = 1 keeps the batch and gives the instance weight 0; ε > 1 would make its weight
    negative, ascent on its loss). `GoldConfig` itself takes any finite ε ≠ 0 (ε < 0 up-weights:
    central differences of the down-weighting response use ±ε)."""
    if not (isinstance(epsilon, (int, float)) and not isinstance(epsilon, bool) and 0 < epsilon <= 1):
        raise TdabenchError(f"epsilon must be in (0, 1] (the loss weight becomes 1 - epsilon), got {epsilon!r}")


@dataclass(frozen=True)
class GoldConfig:
    """What to further-train and where to record it.

    `train_idx`/`test_idx` index the training and test splits (`n_train`: the training split's
    size); `horizons` count epochs or steps (`horizon_unit`) of the `recipe`; `seeds` paired runs are
    averaged; `chunk_size` copies train together in one vmapped step (None = all instances of a seed
    at once; the numbers do not depend on it).

    Resolved once, on construction: `steps_per_epoch` (optimizer steps per epoch of the reference
    run, the last batch may be short) and `steps`, each horizon as a number of optimizer steps.
    """

    recipe: OptimizerSpec
    train_idx: tuple[int, ...]
    test_idx: tuple[int, ...]
    horizons: tuple[int, ...]
    horizon_unit: str = "epoch"
    seeds: int = 5
    mode: str = "removal"
    epsilon: float = 1.0
    chunk_size: int | None = None
    checkpoint_every: int | None = None
    adjoint_chunk: int | None = None
    n_train: int = field(kw_only=True)
    steps_per_epoch: int = field(init=False)
    steps: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        check_horizons(self.horizons)
        if not (isinstance(self.n_train, int) and self.n_train >= 1):
            raise TdabenchError(f"n_train must be a positive integer, got {self.n_train!r}")
        if self.train_idx and not 0 <= min(self.train_idx) <= max(self.train_idx) < self.n_train:
            raise TdabenchError(f"train_idx must lie in [0, {self.n_train}), got {min(self.train_idx)}.."
                                f"{max(self.train_idx)}")
        if self.seeds < 1:
            raise TdabenchError(f"seeds must be at least 1, got {self.seeds}")
        if self.mode not in GOLD_MODES:
            raise TdabenchError(f"mode must be one of {', '.join(GOLD_MODES)}, got '{self.mode}'")
        if not (isinstance(self.epsilon, (int, float)) and math.isfinite(self.epsilon) and self.epsilon != 0):
            raise TdabenchError(f"epsilon must be a finite number other than 0, got {self.epsilon!r}")
        if self.horizon_unit not in ("epoch", "step"):
            raise TdabenchError(f"horizon unit must be 'epoch' or 'step', got '{self.horizon_unit}'")
        if len(set(self.train_idx)) != len(self.train_idx) or not self.train_idx:
            raise TdabenchError("train_idx must be non-empty and free of repeats")
        if len(set(self.test_idx)) != len(self.test_idx) or not self.test_idx:
            raise TdabenchError("test_idx must be non-empty and free of repeats")
        if self.chunk_size is not None and self.chunk_size < 1:
            raise TdabenchError(f"chunk_size must be positive, got {self.chunk_size}")
        for name in ("checkpoint_every", "adjoint_chunk"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise TdabenchError(f"{name} must be positive, got {getattr(self, name)}")
        per_epoch = steps_per_epoch(self.n_train, self.recipe.batch_size)
        object.__setattr__(self, "steps_per_epoch", per_epoch)
        object.__setattr__(self, "steps", tuple(h * per_epoch if self.horizon_unit == "epoch" else h
                                                for h in self.horizons))

    def check_split(self, n_train: int) -> None:
        """Refuse a context whose training split is not the one this config was resolved for."""
        if n_train != self.n_train:
            raise TdabenchError(f"this gold-standard config was made for {self.n_train} training instances, "
                                f"the task has {n_train}")

    def settings(self, spec_hash: str, dtype: str | None = None) -> dict[str, Any]:
        """Everything that determines one seed's numbers, for the cache check.

        `seeds` is left out (seed s gives the same numbers whatever the total, so asking for more
        seeds later reuses the ones on disk), and so are `chunk_size`, `checkpoint_every` and
        `adjoint_chunk` (they change no number). `dtype`: the precision the gold standard runs in
        when it is not the spec's (`--dtype`); it enters the settings, and so the key, only then, so
        the caches made in the spec's dtype before `--dtype` existed stay valid, and a gold standard
        of one precision is never read back as one of another.
        """
        fields = dataclasses.asdict(self)
        for name in ("chunk_size", "checkpoint_every", "adjoint_chunk"):
            fields.pop(name)
        fields.pop("seeds")
        return ({"format": GOLD_FORMAT, "spec_hash": spec_hash, **json.loads(json.dumps(fields))}
                | ({"dtype": dtype} if dtype is not None else {}))

    def key(self, spec_hash: str, dtype: str | None = None) -> str:
        blob = json.dumps(self.settings(spec_hash, dtype), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def select_indices(n: int, k: int, seed: int, what: str) -> tuple[int, ...]:
    """k distinct indices of range(n) drawn with `seed`, sorted; all of them when k >= n is allowed."""
    if k < 1:
        raise TdabenchError(f"cannot evaluate {k} {what}: at least one is needed")
    if k > n:
        raise TdabenchError(f"cannot evaluate {k} {what}: the split has only {n}")
    if k == n:
        return tuple(range(n))
    return tuple(int(i) for i in np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False)))


def config_from_spec(spec: GoldSpec, n_train: int, n_test: int, *, seeds: int | None = None,
                     horizons: tuple[int, ...] | None = None, mode: str | None = None,
                     epsilon: float | None = None, n_train_evaluated: int | None = None,
                     n_test_evaluated: int | None = None, selection_seed: int = 0,
                     chunk_size: int | None = None) -> GoldConfig:
    """The spec's defaults, overridden by whatever the caller passes; the derivative mode
    evaluates every training instance unless `n_train_evaluated` says otherwise."""
    mode = mode or spec.mode
    if n_train_evaluated is None and mode == DERIVATIVE:
        n_train_evaluated = n_train
    n_eval = spec.n_train_evaluated if n_train_evaluated is None else n_train_evaluated
    n_tst = spec.n_test if n_test_evaluated is None else n_test_evaluated
    return GoldConfig(
        recipe=spec.further_training,
        train_idx=select_indices(n_train, min(n_eval, n_train) if n_train_evaluated is None else n_eval,
                                 selection_seed, "training instances"),
        test_idx=select_indices(n_test, min(n_tst, n_test) if n_test_evaluated is None else n_tst,
                                selection_seed + 1, "test points"),
        horizons=tuple(horizons or spec.horizons), horizon_unit=spec.horizon_unit,
        seeds=spec.seeds if seeds is None else seeds, mode=mode,
        epsilon=spec.epsilon if epsilon is None else epsilon, chunk_size=chunk_size, n_train=n_train)
