"""The settings of `tdabench downstream` and their checks, all made before anything trains.

`DownstreamOptions` validates its own values on construction (one-line `TdabenchError`s, exit code 2
on the command line); `check_task` then refuses what does not fit the task (a classification check
on a regression task, a k larger than the training split) once the data is loaded, still before
the final model is trained.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tdabench.downstream.mislabel import DEFAULT_NOISE
from tdabench.downstream.shortcut import DEFAULT_SHORTCUT
from tdabench.errors import TdabenchError, UnknownNameError
from tdabench.estimators.base import is_positive_int
from tdabench.selection import EstimatorRequest
from tdabench.task.data import Dataset
from tdabench.task.device import resolve_device
from tdabench.task.spec import TaskSpec
from tdabench.truths.further import check_horizons

CHECKS = ("mislabel", "randomization", "brittleness", "cardinality", "shortcut")
DEFAULT_CHECKS = ("mislabel", "randomization", "brittleness", "cardinality")  # shortcut: image tasks, asked for
CLASSIFICATION_CHECKS = ("mislabel", "brittleness", "shortcut")
# --retrain trains (1 + n_test · len(ks)) models from scratch per order (each estimator and the random
# control); the guard refuses more than this many n_train × models (breast-cancer-logreg, 398 training
# instances, with the 12 native estimators, n_test 20 and 5 ks: 398 × 13 × 101 ≈ 5.2e5 passes).
RETRAIN_BUDGET = 1_000_000


@dataclass(frozen=True)
class DownstreamOptions:
    """Settings of one downstream run; validated on construction (nothing trains before)."""

    task: str
    estimators: tuple[EstimatorRequest, ...] | None = None  # None: every native estimator
    checks: tuple[str, ...] = DEFAULT_CHECKS
    n_test: int = 20  # test points of randomisation, cardinality and brittleness
    top_k: int = 10  # the k of cardinality and of the shortcut share
    ks: tuple[int, ...] = (1, 5, 10, 20, 50)  # brittleness grid
    horizon: int | None = None  # brittleness horizon, in the spec's unit (None: the spec's longest)
    retrain: bool = False  # brittleness also by retraining from scratch (small tasks)
    retrain_budget: int = RETRAIN_BUDGET  # most n_train × models retrained from scratch (`check_retrain_size`)
    noise: float = DEFAULT_NOISE
    noise_seed: int = 0
    gold_seeds: int = 1
    gold_horizons: tuple[int, ...] | None = None  # None: the spec's
    gold_instances: int = 200  # training instances of the gold self-influence (all if fewer)
    shortcut: float = DEFAULT_SHORTCUT  # share of the shortcut class's training images with the patch
    shortcut_class: int = 0
    shortcut_seed: int = 0
    seed: int = 0
    cache_dir: Path | None = None
    progress: bool = True
    device: str = "cpu"  # auto | cpu | cuda[:k]: where the final models, further training and estimators run

    def __post_init__(self) -> None:
        unknown = [c for c in self.checks if c not in CHECKS]
        if unknown or not self.checks:
            raise UnknownNameError("check", unknown[0] if unknown else "", list(CHECKS))
        for name in ("n_test", "top_k", "gold_seeds", "gold_instances", "retrain_budget"):
            if not is_positive_int(getattr(self, name)):
                raise TdabenchError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not self.ks or list(self.ks) != sorted(set(self.ks)) or not all(is_positive_int(k) for k in self.ks):
            raise TdabenchError(f"ks must be strictly increasing positive integers, got {list(self.ks)}")
        if self.horizon is not None and not is_positive_int(self.horizon):
            raise TdabenchError(f"horizon must be a positive integer, got {self.horizon!r}")
        if self.gold_horizons is not None:
            check_horizons(self.gold_horizons)
        if not 0 < self.noise < 1:
            raise TdabenchError(f"noise must lie in (0, 1), got {self.noise!r}")
        if self.retrain and "brittleness" not in self.checks:
            raise TdabenchError("retrain applies to the brittleness check, which is not among the checks")
        if not 0 < self.shortcut <= 1:
            raise TdabenchError(f"shortcut must lie in (0, 1], got {self.shortcut!r}")
        if not isinstance(self.shortcut_class, int) or self.shortcut_class < 0:
            raise TdabenchError(f"shortcut_class must be a class index >= 0, got {self.shortcut_class!r}")
        resolve_device(self.device)  # a malformed or absent device fails before anything is trained

    def settings(self) -> dict:
        """The settings as JSON values, as downstream.json records them (no estimators, cache, task or
        device: the numbers do not depend on where they were computed)."""
        out = {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()
               if k not in ("estimators", "cache_dir", "progress", "task", "retrain_budget", "device")}
        return {**out, "checks": list(self.checks), "ks": list(self.ks)}


def task_mismatch(spec: TaskSpec, checks: tuple[str, ...]) -> str | None:
    """Why some of `checks` do not fit the task (one line), or None: the classification checks need the
    cross-entropy loss, shortcut an image task."""
    wants = [c for c in checks if c in CLASSIFICATION_CHECKS]
    if wants and spec.objective.loss != "cross-entropy":
        return f"{', '.join(wants)} need a classification task; '{spec.name}' uses the {spec.objective.loss} loss"
    if "shortcut" in checks and spec.modality != "image":
        return f"shortcut needs an image task; '{spec.name}' is {spec.modality}"
    return None


def fitting_checks(spec: TaskSpec) -> tuple[str, ...]:
    """Every check that fits the task, in CHECKS order (what a suite's `downstream: true` runs)."""
    return tuple(c for c in CHECKS if task_mismatch(spec, (c,)) is None)


def retrain_size(options: DownstreamOptions, n_train: int, n_estimators: int) -> int:
    """n_train × the models `--retrain` trains from scratch: (1 + n_test · len(ks)) per order, one order per
    estimator and one for the random control (n_test bounds the correctly classified test points)."""
    return n_train * (n_estimators + 1) * (1 + options.n_test * len(options.ks))


def check_retrain_size(options: DownstreamOptions, n_train: int, n_estimators: int) -> None:
    """Refuse `retrain` when `retrain_size` exceeds `options.retrain_budget` (before anything trains)."""
    size = retrain_size(options, n_train, n_estimators)
    if options.retrain and size > options.retrain_budget:
        models = size // n_train
        raise TdabenchError(f"--retrain would train {models:,} models from scratch on {n_train:,} instances "
                            f"({size:,} instance-models > the budget {options.retrain_budget:,}); lower --n-test, "
                            f"--ks or the estimators, or raise --retrain-budget")


def check_task(spec: TaskSpec, options: DownstreamOptions, data: Dataset) -> None:
    """Refuse checks that do not fit the task, a k grid larger than its training split, and a
    shortcut class the task does not have."""
    n_train = len(data.train)
    mismatch = task_mismatch(spec, options.checks)
    if mismatch:
        raise TdabenchError(mismatch)
    if "brittleness" in options.checks and options.ks[-1] > n_train:
        raise TdabenchError(f"ks go up to {options.ks[-1]}, but the task has {n_train} training instances")
    if {"cardinality", "shortcut"} & set(options.checks) and options.top_k > n_train:
        raise TdabenchError(f"top_k={options.top_k} exceeds the {n_train} training instances")
    if "shortcut" in options.checks and options.shortcut_class >= data.n_outputs:
        raise TdabenchError(f"shortcut_class={options.shortcut_class}, but the task has {data.n_outputs} classes")
