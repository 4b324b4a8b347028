"""The salient Harsanyi interactions of a task's final model on test points, before and after further training.

For every coalition T ⊆ N of the d players with |T| ≤ `max_order`, v(x_T) is evaluated once
(memoised over T: one batch of M = Σ_{k ≤ max_order} C(d, k) masked inputs per test point, the
baseline and masking of task/interaction.py); then, for every S with 1 ≤ |S| ≤ max_order,

    I(S | x) = Σ_{T ⊆ S} (−1)^{|S|−|T|} v(x_T)          (a sparse signed sum, `mobius_matrix`).

Further training is the gold standard's reference run (truths/further/vectorized.py: the spec's
further-training recipe, no instance removed, reference seed `seed`), with the masked inputs as its
test points, so v(x_T; θ_t) is read off at every horizon t. Sparsity of a model: the share of the
S (1 ≤ |S| ≤ max_order) with |I(S)| above a threshold (absolute, or `relative` × max_S |I(S)|).
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import sparse

from tdabench import __version__
from tdabench.errors import TdabenchError
from tdabench.progress import bar, shown
from tdabench.results import git_hash, now_iso
from tdabench.task import build_context, find_spec
from tdabench.task.context import TaskContext, load_task_data
from tdabench.task.data import Split
from tdabench.task.interaction import Masker, make_masker, value_target
from tdabench.truths.further import config_from_spec
from tdabench.truths.further.vectorized import train_copies

SCHEMA_VERSION = 1  # of interactions.json
KIND = "tdabench-interactions"
MAX_COALITIONS = 50_000  # masked inputs per test point


@dataclass(frozen=True)
class InteractionOptions:
    """What `salient_interactions` computes: `test_indices` of the task's test split, interactions of
    order 1..`max_order` (at most MAX_COALITIONS coalitions; all d of them: every S ⊆ N),
    `threshold` (absolute) or `relative` × max |I| for the sparsity, the further-training
    `horizons` (default: the spec's) of reference seed `seed`."""

    task: str
    test_indices: tuple[int, ...]
    max_order: int = 3
    threshold: float | None = None
    relative: float = 0.05
    horizons: tuple[int, ...] | None = None
    seed: int = 0
    cache_dir: Path | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if not self.test_indices or min(self.test_indices) < 0 or len(set(self.test_indices)) != len(self.test_indices):
            raise TdabenchError(f"test indices must be distinct non-negative integers, got {list(self.test_indices)}")
        if self.max_order < 1:
            raise TdabenchError(f"max order must be at least 1, got {self.max_order}")
        if self.threshold is not None and not self.threshold > 0:
            raise TdabenchError(f"threshold must be positive, got {self.threshold}")
        if not 0 < self.relative < 1:
            raise TdabenchError(f"relative threshold must be in (0, 1), got {self.relative}")
        if self.seed < 0:
            raise TdabenchError(f"seed must be non-negative, got {self.seed}")


def coalitions(d: int, max_order: int) -> list[tuple[int, ...]]:
    """Every T ⊆ {0..d−1} with |T| ≤ max_order, by size, then lexicographically (T = () first)."""
    return [t for k in range(max_order + 1) for t in itertools.combinations(range(d), k)]


def keep_masks(sets: list[tuple[int, ...]], d: int) -> torch.Tensor:
    """(len(sets), d) bool: row r keeps the players of sets[r]."""
    keep = torch.zeros(len(sets), d, dtype=torch.bool)
    for r, t in enumerate(sets):
        keep[r, list(t)] = True
    return keep


def mobius_matrix(sets: list[tuple[int, ...]]) -> sparse.csr_matrix:
    """A (len(sets), len(sets)) with A[S, T] = (−1)^{|S|−|T|} for T ⊆ S: I = A v. `sets` must be
    closed under subsets (as `coalitions` is)."""
    index = {t: r for r, t in enumerate(sets)}
    rows, cols, signs = [], [], []
    for r, s in enumerate(sets):
        for k in range(len(s) + 1):
            for t in itertools.combinations(s, k):
                rows.append(r)
                cols.append(index[t])
                signs.append((-1.0) ** (len(s) - k))
    return sparse.csr_matrix((signs, (rows, cols)), shape=(len(sets), len(sets)))


def sparsity(values: np.ndarray, orders: np.ndarray, threshold: float) -> dict:
    """Share of |I(S)| > threshold over all S, and per order (values and orders: (M,))."""
    above = np.abs(values) > threshold
    return {"threshold": float(threshold), "share_above": float(above.mean()),
            "by_order": {str(k): float(above[orders == k].mean()) for k in np.unique(orders)}}


def _masked_split(masker: Masker, test: Split, test_indices: tuple[int, ...], keep: torch.Tensor) -> Split:
    """The masked inputs x_T of every test point and coalition, (P·M, d), labels repeated."""
    idx = torch.as_tensor(test_indices, device=test.x.device)
    x = masker.apply(test.x[idx], keep.to(test.x.device))
    return Split(x, test.y[idx].repeat_interleave(len(keep)))


def coalition_values(ctx: TaskContext, masked: Split, options: InteractionOptions) -> tuple[np.ndarray, list[int]]:
    """v(x_T) at the final model and at each horizon of the reference run, (1 + H, P·M) float64, and
    the horizons (in the spec's unit). `ctx` attributes v; its test split becomes `masked`."""
    final = ctx.target(ctx.params, masked.x, masked.y).double().cpu().numpy()
    cfg = config_from_spec(ctx.spec.gold_standard, len(ctx.train), len(masked), seeds=1, horizons=options.horizons,
                           mode="removal", n_train_evaluated=1, n_test_evaluated=len(masked))
    on_masked = dataclasses.replace(ctx, data=dataclasses.replace(ctx.data, test=masked))
    with shown(options.progress), bar(cfg.steps[-1], f"further training of {ctx.spec.name} (reference seed "
                                      f"{options.seed})", "step") as steps:
        trained = train_copies(on_masked, cfg, options.seed, np.array([-1]), steps.update)[:, 0]
    return np.concatenate([final[None], trained]), list(cfg.horizons)


def salient_interactions(options: InteractionOptions) -> dict[str, Any]:
    """Every I(S | x) with 1 ≤ |S| ≤ max_order on each test point, at the final model and after each
    horizon of further training, with their sparsity and v(x), v(b); the payload of report.py."""
    spec = find_spec(options.task)
    data = load_task_data(spec, options.cache_dir)
    masker = make_masker(spec, data)  # refuses inputs that are neither features nor tokens
    d = masker.n_players
    sets = coalitions(d, min(options.max_order, d))  # all of them: Σ_S I(S) = v(x) − v(b) (efficiency)
    if len(sets) > MAX_COALITIONS:
        raise TdabenchError(f"{len(sets)} coalitions of order <= {options.max_order} of {d} players: more than "
                            f"{MAX_COALITIONS}; lower the max order")
    if max(options.test_indices) >= len(data.test):
        raise TdabenchError(f"test index {max(options.test_indices)} out of range: the test split has {len(data.test)}")
    with shown(options.progress):
        ctx = build_context(spec, options.cache_dir, value_target(spec.objective), data)
    keep = torch.cat([keep_masks(sets, d), torch.ones(1, d, dtype=torch.bool)])  # the last row: x itself
    values, horizons = coalition_values(ctx, _masked_split(masker, ctx.test, options.test_indices, keep), options)
    values = values.reshape(len(values), len(options.test_indices), len(keep))  # (1 + H, P, M + 1)
    mobius = mobius_matrix(sets)
    interactions = np.stack([(mobius @ v[:, :-1].T).T for v in values])[..., 1:]  # (1 + H, P, M − 1): S ≠ ∅
    states = [{"name": "final", "horizon": 0}] + [{"name": f"{h} {spec.gold_standard.horizon_unit}(s)", "horizon": h}
                                                  for h in horizons]
    return {"schema_version": SCHEMA_VERSION, "kind": KIND, "tdabench_version": __version__, "git_hash": git_hash(),
            "date": now_iso(), "task": {"name": spec.name, "version": spec.version, "spec_hash": spec.spec_hash},
            "value": "margin" if value_target(spec.objective) == "margin" else "output",
            "baseline": masker.describe(), "max_order": min(options.max_order, d),
            "threshold": {"absolute": options.threshold} if options.threshold is not None else
            {"relative": options.relative}, "horizon_unit": spec.gold_standard.horizon_unit,
            "further_training": {**dataclasses.asdict(spec.gold_standard.further_training), "seed": options.seed},
            "states": states, "points": [_point(ctx, j, values[:, p], interactions[:, p], sets[1:], options)
                                         for p, j in enumerate(options.test_indices)]}


def _point(ctx: TaskContext, j: int, values: np.ndarray, interactions: np.ndarray, sets: list[tuple[int, ...]],
           options: InteractionOptions) -> dict[str, Any]:
    """One test point's record: v(x), v(b), Σ I per state; sparsity per state; every S by |I| at the final model."""
    orders = np.array([len(s) for s in sets])
    per_state = []
    for v, inter in zip(values, interactions):
        top = float(np.abs(inter).max())
        threshold = options.threshold if options.threshold is not None else options.relative * top
        per_state.append({"v_x": float(v[-1]), "v_baseline": float(v[0]), "sum_interactions": float(inter.sum()),
                          "max_abs": top, "sparsity": sparsity(inter, orders, threshold)})
    order = np.argsort(-np.abs(interactions[0]), kind="stable")
    return {"test_index": j, "label": ctx.test.y[j].item(), "states": per_state,
            "interactions": [{"features": list(sets[r]), "values": [float(x) for x in interactions[:, r]]}
                             for r in order]}
