"""The settings of `tdabench concepts` and their checks, all made before anything trains.

`ConceptOptions` validates its own values on construction (one-line `TdabenchError`s, exit 2 on
the command line); `check_task` then refuses what does not fit the task — no `concept`, a layer the
model does not have, a k outside 1 … n_train − 1, a concept missing from a split, retraining
without a recipe — once the data is loaded and an untrained model is built, still before the final
model is trained.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from torch import nn

from tdabench.concepts.layers import resolve_layers
from tdabench.concepts.probes import L1_GRID, check_labels
from tdabench.concepts.removal import REMOVAL_MODES, RETRAIN
from tdabench.errors import TdabenchError, UnknownNameError
from tdabench.estimators.base import is_positive_int, is_seed
from tdabench.selection import EstimatorRequest
from tdabench.task.concepts import concept_labels
from tdabench.task.data import Dataset
from tdabench.task.probe import check_probe_layer
from tdabench.task.spec import TaskSpec

DEFAULT_AGREEMENT = (EstimatorRequest("grad-dot"), EstimatorRequest("trak"))
DEFAULT_FRACTIONS = (0.01, 0.05, 0.10)


@dataclass(frozen=True)
class ConceptOptions:
    """Settings of one `tdabench concepts` run; validated on construction (nothing trains before)."""

    task: str
    layers: tuple[str, ...] | None = None  # None: the eligible layers (layers.py)
    estimators: tuple[EstimatorRequest, ...] = DEFAULT_AGREEMENT  # agreement per layer; () = none
    gold_seeds: int | None = None  # the per-layer gold standards (None: the spec's)
    gold_horizons: tuple[int, ...] | None = None
    gold_n_train: int | None = None
    gold_n_test: int | None = None
    removal: tuple[str, ...] = REMOVAL_MODES  # () = no removal experiment
    removal_estimator: EstimatorRequest = EstimatorRequest("trak")
    removal_layer: str | None = None  # None: the layer of the best probe on the final model
    fractions: tuple[float, ...] = DEFAULT_FRACTIONS  # k = round(fraction · n_train)
    seeds: int = 3  # of the removal experiment
    n_concept_test: int = 100  # concept test points whose attributions are summed
    horizon: int | None = None  # further training, in the spec's unit (None: its longest horizon)
    l1_grid: tuple[float, ...] = L1_GRID
    seed: int = 0  # draws the concept test points and the L1 validation split
    cache_dir: Path | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("gold_seeds", "gold_n_train", "gold_n_test", "horizon"):
            if getattr(self, name) is not None and not is_positive_int(getattr(self, name)):
                raise TdabenchError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        for name in ("seeds", "n_concept_test"):
            if not is_positive_int(getattr(self, name)):
                raise TdabenchError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not is_seed(self.seed):
            raise TdabenchError(f"seed must be an integer >= 0, got {self.seed!r}")
        if self.layers is not None and (not self.layers or len(set(self.layers)) != len(self.layers)):
            raise TdabenchError(f"layers must be distinct layer names, got {list(self.layers)}")
        for mode in self.removal:
            if mode not in REMOVAL_MODES:
                raise UnknownNameError("removal mode", mode, list(REMOVAL_MODES))
        if len(set(self.removal)) != len(self.removal):
            raise TdabenchError(f"a removal mode is listed twice: {', '.join(self.removal)}")
        f = list(self.fractions)
        if not f or f != sorted(set(f)) or not all(isinstance(v, float) and 0 < v < 1 for v in f):
            raise TdabenchError(f"fractions must be strictly increasing numbers in (0, 1), got {f}")
        if not self.l1_grid or not all(isinstance(c, (int, float)) and c > 0 for c in self.l1_grid):
            raise TdabenchError(f"l1_grid must be positive numbers, got {list(self.l1_grid)}")

    def settings(self) -> dict:
        """The settings as JSON values, as concepts.json records them (no cache folder, no progress)."""
        out = {k: v for k, v in self.__dict__.items() if k not in ("cache_dir", "progress", "estimators",
                                                                   "removal_estimator")}
        lists = {k: list(v) for k, v in out.items() if isinstance(v, tuple)}
        return {**out, **lists, "estimators": [r.label for r in self.estimators],
                "removal_estimator": self.removal_estimator.label}


def removal_ks(fractions: Sequence[float], n_train: int) -> list[int]:
    """k = round(fraction · n_train) per fraction; each must lie in 1 … n_train − 1 and differ."""
    ks = [int(round(f * n_train)) for f in fractions]
    if any(k < 1 or k >= n_train for k in ks):
        raise TdabenchError(f"fractions {list(fractions)} of {n_train} training instances give k = {ks}; each k "
                            f"must lie in 1 … {n_train - 1}")
    if len(set(ks)) != len(ks):
        raise TdabenchError(f"fractions {list(fractions)} of {n_train} training instances give the same k twice: {ks}")
    return ks


def check_task(spec: TaskSpec, options: ConceptOptions, data: Dataset, model: nn.Module) -> tuple[list[str], list[int]]:
    """(layers, ks) after refusing what does not fit the task (module docstring); `model`: an untrained
    model of the task, for the layer names."""
    if spec.concept is None:
        raise TdabenchError(f"task '{spec.name}' names no `concept` to probe for (tasks with one: their spec's "
                            f"`concept` field, e.g. mnist-cnn, rt-bert-tiny)")
    layers = resolve_layers(model, options.layers, data.train.x[:2])
    if options.removal_layer is not None:
        check_probe_layer(model, options.removal_layer)
    for split, what in ((data.train, "training split"), (data.test, "test split")):
        check_labels(np.asarray(concept_labels(spec.concept, split)), what)
    if RETRAIN in options.removal and spec.training is None:
        raise TdabenchError(f"removal mode '{RETRAIN}' trains from scratch, but task '{spec.name}' has no "
                            f"`training` recipe")
    return layers, removal_ks(options.fractions, len(data.train)) if options.removal else []
