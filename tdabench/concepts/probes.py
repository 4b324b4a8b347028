"""How well, and how sparsely, one layer's activations encode the concept.

Per layer, on activations A (n, d) of the training split and B of the test split:

- **probe accuracy**: the probe of the `probe:LAYER` target (task/probe.py: L2 logistic regression,
  C = 1, on A standardised with its mean μ and std σ), applied to the test split: the share of test
  points with 1[w·(b − μ)/σ + c > 0] = concept label; also its mean test log loss
  log(1 + exp(−s·logit)), s = ±1 the label's sign (a continuous companion of the accuracy).
- **probe sparsity**: an L1 logistic probe (liblinear, which penalises |w|₁ and, lightly, the
  intercept) on the same standardised A; its C is the smallest of `grid` whose accuracy on a
  validation split (a seeded `validation_fraction` of the training rows; the probe is fitted on
  the rest) is within one standard error of the best (`choose_l1_c`); then refitted on all of A. Reported: the
  share of its d weights that are exactly non-zero, their count, and its test accuracy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import sklearn
import torch
from sklearn.linear_model import LogisticRegression

from tdabench.errors import TdabenchError
from tdabench.task.probe import Probe, probe_from_activations

L1_GRID = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
VALIDATION_FRACTION = 0.25
L1_MAX_ITER = 1000


@dataclass(frozen=True)
class LayerProbe:
    """What the probes of one layer measure (module docstring)."""

    layer: str
    dim: int
    accuracy: float  # test accuracy of the L2 probe (the probe target's probe)
    loss: float  # its mean test log loss
    train_accuracy: float
    l1_c: float  # the L1 probe's C
    nonzero: int  # its non-zero weights
    nonzero_share: float  # nonzero / dim
    l1_accuracy: float  # its test accuracy

    def to_json(self) -> dict:
        return asdict(self)


def check_labels(labels: np.ndarray, what: str) -> None:
    """A probe needs both classes of the concept among `labels`."""
    if labels.all() or not labels.any():
        raise TdabenchError(f"the concept is {'present in' if labels.all() else 'absent from'} every example of "
                            f"the {what}: a probe needs both")


def probe_scores(probe: Probe, acts: torch.Tensor, labels: np.ndarray) -> tuple[float, float]:
    """(accuracy, mean log loss) of `probe` on activations `acts` (n, d) with boolean `labels` (n,)."""
    logit = probe.logit(acts.to(probe.weight.dtype)).double().cpu().numpy()
    sign = np.where(labels, 1.0, -1.0)
    return float(np.mean((logit > 0) == labels)), float(np.mean(np.logaddexp(0.0, -sign * logit)))


def standardised(probe: Probe, acts: torch.Tensor) -> np.ndarray:
    """(acts − μ) / σ with the probe's μ, σ, float64 (n, d)."""
    return ((acts.double() - probe.mean.double()) / probe.std.double()).cpu().numpy()


def _l1_penalty() -> dict[str, object]:
    """The L1 penalty in this scikit-learn's words: `l1_ratio=1` from 1.8 on (`penalty` is deprecated
    there), `penalty="l1"` before (where `l1_ratio` alone is ignored)."""
    major, minor = (int(v) for v in sklearn.__version__.split(".")[:2])
    return {"l1_ratio": 1.0} if (major, minor) >= (1, 8) else {"penalty": "l1"}


def l1_fit(z: np.ndarray, labels: np.ndarray, c: float) -> LogisticRegression:
    """The L1 logistic probe with inverse regularisation strength `c` (liblinear)."""
    return LogisticRegression(solver="liblinear", C=c, max_iter=L1_MAX_ITER, **_l1_penalty()).fit(z, labels)


def choose_l1_c(z: np.ndarray, labels: np.ndarray, grid: Sequence[float] = L1_GRID,
                validation_fraction: float = VALIDATION_FRACTION, seed: int = 0) -> float:
    """The C of `grid` for the L1 probe, by the one-standard-error rule: fit on a seeded
    (1 − validation_fraction) share of the rows of z, score accuracy a_C on the other n_val rows,
    and return the smallest C with a_C ≥ a* − √(a*(1 − a*)/n_val), a* = max_C a_C (the sparsest
    probe that validation cannot tell apart from the best). The fitting rows must hold both classes."""
    order = np.random.default_rng(seed).permutation(len(z))
    n_val = max(1, int(round(validation_fraction * len(z))))
    val, fit = order[:n_val], order[n_val:]
    check_labels(labels[fit], "probe's fitting rows")
    cs = sorted(grid)
    accuracies = np.array([l1_fit(z[fit], labels[fit], c).score(z[val], labels[val]) for c in cs])
    best = accuracies.max()
    return float(cs[int(np.argmax(accuracies >= best - np.sqrt(best * (1 - best) / n_val)))])


def layer_probe(layer: str, train: torch.Tensor, test: torch.Tensor, y_train: np.ndarray, y_test: np.ndarray,
                concept: str, l1_c: float | None = None, grid: Sequence[float] = L1_GRID, seed: int = 0) -> LayerProbe:
    """Both probes of one layer from its activations on the train (n, d) and test (m, d) splits;
    `l1_c` None: chosen on a validation split (`choose_l1_c`), else used as given (the removal
    experiment fixes each layer's C on the final model, so the copies' sparsity is comparable)."""
    probe = probe_from_activations(train, y_train, layer, concept, torch.float64)
    accuracy, loss = probe_scores(probe, test, y_test)
    z_train, z_test = standardised(probe, train), standardised(probe, test)
    c = choose_l1_c(z_train, y_train, grid, seed=seed) if l1_c is None else l1_c
    sparse = l1_fit(z_train, y_train, c)
    nonzero = int(np.count_nonzero(sparse.coef_[0]))
    return LayerProbe(layer, int(train.shape[1]), accuracy, loss, probe.train_accuracy, c, nonzero,
                      nonzero / train.shape[1], float(sparse.score(z_test, y_test)))


def best_layer(probes: Sequence[LayerProbe]) -> str:
    """The layer whose probe has the highest test accuracy (ties: the earliest layer)."""
    return probes[int(np.argmax([p.accuracy for p in probes]))].layer
