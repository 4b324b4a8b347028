"""Top-k removal (brittleness; Ilyas et al. 2022, Park et al. 2023): does removing the k training
instances an estimator names as a test point's strongest support flip its prediction?

Convention. Scores are taken with the target **margin** m(z; θ) = log p_y/(1 − p_y) of the true class
y, in the tdabench sign (docs/method.md): score[j, i] > 0 means removing z_i *increases* the margin of
test point j. The support of j's prediction is therefore the *most negative* end: the instances
whose removal is predicted to decrease the true-class margin most. For each test point j (correctly
classified by the final model, so the true class is the prediction) and each k on the grid, one copy
of the final model is further-trained without j's k most negative instances (truths/further/subsets.py)
and compared, at the same horizon and seed, with the reference run on all of D: the prediction
*flips* when argmax of the copy's outputs on z_j differs from the reference run's. With retraining
(`retrained_flips`, small tasks) each copy is instead trained from the final model's initialisation
with its recipe (truths/scratch.py, retraining seed 0) without the removed set, and compared with the
copy retrained on all of D (seed 0's reference reproduces the final model). The control removes
k instances drawn at random (nested over k, seeded per test point). Reported per k: the share of test
points that flip (with a bootstrap interval over test points), and per test point the smallest k
on the grid that flips it (None: no k did).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from tdabench.progress import bar
from tdabench.scoring.stats import bootstrap_ci
from tdabench.task.context import TaskContext
from tdabench.task.spec import OptimizerSpec
from tdabench.truths.further.subsets import further_train_subsets
from tdabench.truths.scratch import scratch_outputs

RANDOM_STREAM = 3  # the random control's generator: default_rng([3, seed, j])


def removal_order(margin_scores: np.ndarray) -> np.ndarray:
    """(n_test, n_train): each row's training columns, most negative margin score first (ties: lower
    column first), i.e. the order in which the estimator's support of the prediction is removed."""
    return np.argsort(np.asarray(margin_scores, dtype=np.float64), axis=1, kind="stable")


def random_order(n_test: int, n_train: int, seed: int) -> np.ndarray:
    """(n_test, n_train): a random permutation of the training columns per test point (row j from
    `default_rng([RANDOM_STREAM, seed, j])`); its first k are the control's removed set."""
    return np.stack([np.random.default_rng([RANDOM_STREAM, seed, j]).permutation(n_train) for j in range(n_test)])


@dataclass(frozen=True)
class Flips:
    """flipped[a, j]: whether removing the first ks[a] instances of test point j's order flipped it."""

    ks: tuple[int, ...]
    flipped: np.ndarray  # (len(ks), n_test) bool

    def share(self) -> list[float]:
        return [float(row.mean()) for row in self.flipped]

    def intervals(self) -> list[tuple[float, float] | None]:
        return [bootstrap_ci(row.astype(float)) for row in self.flipped]

    def smallest_k(self) -> list[int | None]:
        """Per test point, the smallest k on the grid whose removal flips it (None: none did)."""
        return [next((k for k, f in zip(self.ks, column) if f), None) for column in self.flipped.T]

    def to_json(self) -> dict[str, Any]:
        cis = self.intervals()
        return {"share": self.share(), "share_low": [c and c[0] for c in cis], "share_high": [c and c[1] for c in cis],
                "smallest_k": self.smallest_k()}


def keep_masks(orders: np.ndarray, ks: Sequence[int]) -> np.ndarray:
    """(n_test · len(ks), n_train) bool, row j · len(ks) + a dropping the first ks[a] of orders[j]."""
    n_test, n_train = orders.shape
    keep = np.ones((n_test, len(ks), n_train), dtype=bool)
    for j in range(n_test):
        for a, k in enumerate(ks):
            keep[j, a, orders[j, :k]] = False
    return keep.reshape(n_test * len(ks), n_train)


def removal_flips(ctx: TaskContext, orders: np.ndarray, test_idx: Sequence[int], ks: Sequence[int],
                  recipe: OptimizerSpec, steps: int, seed: int = 0, chunk_size: int | None = None) -> Flips:
    """Further-train one copy per (test point j, k) without the first k of `orders[j]` for `steps`
    optimizer steps (further-training seed `seed`), and compare each copy's prediction on z_j with
    the reference run's."""
    ks = tuple(int(k) for k in ks)
    keep = keep_masks(orders, ks)
    n_chunks = -(-len(keep) // (chunk_size or max(len(keep), 1)))
    with bar(steps * n_chunks, "top-k removal", "step") as progress:
        reference, outputs = further_train_subsets(ctx, recipe, keep, seed, [steps], test_idx, chunk_size,
                                                   on_step=progress.update)
    n_test = len(test_idx)
    predicted = outputs[0].argmax(-1).reshape(n_test, len(ks), n_test)  # copy (j, a) on every eval point
    own = predicted[np.arange(n_test), :, np.arange(n_test)]  # (n_test, len(ks)): copy (j, a) on z_j
    return Flips(ks, (own != reference[0].argmax(-1)[:, None]).T)


def retrained_flips(ctx: TaskContext, orders: np.ndarray, test_idx: Sequence[int], ks: Sequence[int],
                    seed: int = 0, chunk_size: int | None = None) -> Flips:
    """Retrain from scratch (the final model's recipe, retraining seed `seed`) one copy per (test
    point j, k) without the first k of `orders[j]`, plus one on all of D, and compare each copy's
    prediction on z_j with that reference's. Cost: (1 + n_test · len(ks)) full trainings."""
    ks = tuple(int(k) for k in ks)
    keep = np.concatenate([np.ones((1, orders.shape[1]), dtype=bool), keep_masks(orders, ks)])
    size = chunk_size or len(keep)
    with bar(ctx.spec.training.epochs * -(-len(keep) // size), "top-k removal, retraining", "epoch") as progress:
        outputs = scratch_outputs(ctx, keep, seed, test_idx, size, on_epoch=lambda: progress.update(1))
    n_test = len(test_idx)
    predicted = outputs[1:].argmax(-1).reshape(n_test, len(ks), n_test)
    own = predicted[np.arange(n_test), :, np.arange(n_test)]  # (n_test, len(ks))
    return Flips(ks, (own != outputs[0].argmax(-1)[:, None]).T)
