"""Counterfactual removal (Konz et al. 2023): remove the training data an estimator says the concept
rests on, train again, and see whether the concept moves.

Ranking. The estimator is fitted with the target `probe:L` (the concept probe's logit at layer L)
and scores the concept's test points J (test points whose concept label is true, where the probe
logit should be high) against every training instance: S (|J|, n), tdabench sign (DESIGN.md §3):
S[j, i] > 0 means removing z_i *increases* the probe logit at z_j. The total attribution of z_i is
t_i = Σ_{j∈J} S[j, i]; the instances that most *support* the concept are those whose removal is
predicted to *decrease* the logit most, the most negative t_i. `removal_order` sorts by t ascending
(stable: ties keep the lower index first), and the top k are its first k.

Copies. Per seed s, one copy per condition: `none` (all of D: the paired reference), `top-k` (the
first k of the order removed) and `random-k` (the first k of a permutation drawn from
default_rng([RANDOM_STREAM, s]), nested over k: the control), for each k. They train together as
stacked copies, either (a) from scratch with the final model's recipe (truths/scratch.py,
retraining seed s: seed 0's `none` copy is the final model) or (b) further-trained from θᶠ with the
gold standard's recipe for `steps` optimizer steps (truths/further/subsets.py, seed s). Then every
copy's probes are re-fitted on every layer (probes.py; the L1 probe's C fixed per layer to the one
chosen on the final model).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from tdabench.concepts.layers import copy_params, layer_activations
from tdabench.concepts.probes import LayerProbe, layer_probe
from tdabench.task.context import TaskContext
from tdabench.truths.further.subsets import further_train_params
from tdabench.truths.scratch import scratch_params
from tdabench.truths.stacked import Tensors

RANDOM_STREAM = 5  # the random control's generator: default_rng([RANDOM_STREAM, seed])
RETRAIN, FURTHER = "retrain", "further"
REMOVAL_MODES = (RETRAIN, FURTHER)
NONE = "none"
METRICS = ("accuracy", "loss", "nonzero_share", "l1_accuracy")  # LayerProbe fields summarised per copy


def concept_test_points(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Up to `n` test indices whose concept label is true, drawn without replacement with
    default_rng(seed) (all of them when there are fewer), sorted."""
    positive = np.flatnonzero(labels)
    if len(positive) <= n:
        return positive
    return np.sort(np.random.default_rng(seed).choice(positive, size=n, replace=False))


def removal_order(scores: np.ndarray) -> np.ndarray:
    """Training columns by total attribution t_i = Σ_j scores[j, i], most negative (most support of
    the probe logit) first; ties keep the lower column first. scores: (n_concept_test, n_train)."""
    return np.argsort(np.asarray(scores, dtype=np.float64).sum(axis=0), kind="stable")


def random_order(n_train: int, seed: int) -> np.ndarray:
    """The random control's permutation of the training columns for seed `seed`."""
    return np.random.default_rng([RANDOM_STREAM, seed]).permutation(n_train)


def condition_names(ks: Sequence[int]) -> list[str]:
    """["none", "top-k" for each k, "random-k" for each k]: the copies of one seed, in order."""
    return [NONE] + [f"top-{k}" for k in ks] + [f"random-{k}" for k in ks]


def keep_masks(top: np.ndarray, random: np.ndarray, ks: Sequence[int]) -> np.ndarray:
    """(1 + 2·len(ks), n) bool in `condition_names` order: all of D, then without top[:k], then
    without random[:k]."""
    n = len(top)
    keep = np.ones((1 + 2 * len(ks), n), dtype=bool)
    for a, k in enumerate(ks):
        keep[1 + a, top[:k]] = False
        keep[1 + len(ks) + a, random[:k]] = False
    return keep


def trained_copies(ctx: TaskContext, keep: np.ndarray, mode: str, seed: int, steps: int,
                   on_progress: Callable[[], None] | None = None) -> Tensors:
    """The stacked copies of `keep`, retrained from scratch (RETRAIN; `on_progress` per epoch) or
    further-trained from θᶠ for `steps` steps (FURTHER; `on_progress` per step), under `seed`."""
    if mode == RETRAIN:
        return scratch_params(ctx, keep, seed, on_progress)
    return further_train_params(ctx, ctx.spec.gold_standard.further_training, keep, seed, steps, on_progress)


def copy_probes(ctx: TaskContext, stacked: Tensors, layers: Sequence[str], y_train: np.ndarray,
                y_test: np.ndarray, l1_cs: dict[str, float]) -> list[list[LayerProbe]]:
    """[copy][layer] probes of each stacked copy, re-fitted on its own activations."""
    out = []
    for k in range(next(iter(stacked.values())).shape[0]):
        params = copy_params(stacked, k)
        train = layer_activations(ctx.model, params, ctx.buffers, ctx.train.x, layers)
        test = layer_activations(ctx.model, params, ctx.buffers, ctx.test.x, layers)
        out.append([layer_probe(layer, train[layer], test[layer], y_train, y_test, ctx.spec.concept,
                                l1_cs[layer]) for layer in layers])
    return out


def metric_array(probes: list[list[list[LayerProbe]]]) -> np.ndarray:
    """[seed][condition][layer] probes → values (S, C, L, len(METRICS)), float64."""
    return np.array([[[[getattr(p, m) for m in METRICS] for p in row] for row in seed] for seed in probes],
                    dtype=np.float64)
