"""Harsanyi AND-interaction targets (Ren et al., arXiv 2111.06206): f(z; θ) = I(S | x).

    I(S | x) = Σ_{T ⊆ S} (−1)^{|S|−|T|} v(x_T),

where x_T keeps the players (input features, or token positions) in T and sets every other player
of the whole input to the baseline b, and v is the log-odds of the true class log p_y/(1 − p_y)
(the 'margin' target) for classification, the model output for regression. Baselines:

- tabular features: the training mean of each feature (0 after standardisation), fixed per task;
- token ids (text tasks tokenised by tdabench's 'wordpiece' tokenizer): a masked position holds
  [PAD] (id 0), which the BERT models drop from attention, so the token is absent rather than
  replaced by an untrained [MASK] embedding; special tokens ([CLS], [SEP], [PAD]) are not players
  and keep their ids (an S holding one has I(S) = 0).

The target needs 2^|S| forward passes per example, stacked into one batch of B·2^|S| inputs with
each example's masked copies consecutive (the per-layer factored gradients of estimators/layers.py
rely on that order). It is differentiable in θ like any other target; sign and shape as in
targets.py: (B,) per example.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from tdabench.errors import TdabenchError
from tdabench.task.data import Dataset
from tdabench.task.objective import OutputFn
from tdabench.task.spec import ObjectiveSpec, TaskSpec
from tdabench.task.targets import interaction_features, make_target
from tdabench.task.text import PAD_ID, SPECIAL_TOKENS


_KEPT_TOKENS = tuple(SPECIAL_TOKENS.index(t) for t in ("[PAD]", "[CLS]", "[SEP]"))  # not players


def value_target(objective: ObjectiveSpec) -> str:
    """The target name of v: 'margin' (log-odds of the true class) or 'logit:0' (the regression output)."""
    if objective.loss == "cross-entropy":
        return "margin"
    if objective.loss == "squared":
        return "logit:0"
    raise TdabenchError("interaction targets need a cross-entropy or squared loss (v is the log-odds of "
                        f"the true class or the regression output), not '{objective.loss}'")


@dataclass(frozen=True)
class Masker:
    """How a player outside a coalition is masked: `baseline` (d,) holds the feature values of the
    baseline; None means token ids, masked to [PAD] unless they hold a special token."""

    n_players: int
    baseline: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.baseline is not None and tuple(self.baseline.shape) != (self.n_players,):
            raise TdabenchError(f"interaction baseline must have shape ({self.n_players},), "
                                f"got {tuple(self.baseline.shape)}")

    def base(self, x: torch.Tensor) -> torch.Tensor:
        """The baseline input of each example of x (B, d): b, or x with its word tokens → [PAD]."""
        if self.baseline is not None:
            return self.baseline.to(x.dtype).expand_as(x)
        special = (x.unsqueeze(-1) == torch.tensor(_KEPT_TOKENS, device=x.device)).any(-1)
        return torch.where(special, x, torch.full_like(x, PAD_ID))

    def apply(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """x (B, d) and coalitions keep (m, d) bool → (B·m, d): row b·m + t is x_{T_t} of example b."""
        out = torch.where(keep.unsqueeze(0), x.unsqueeze(1), self.base(x).unsqueeze(1))
        return out.reshape(-1, x.shape[-1])

    def describe(self) -> str | list[float]:
        if self.baseline is None:
            return "token ids: masked positions -> [PAD] (id 0, dropped from attention); [CLS]/[SEP]/[PAD] kept"
        return [float(v) for v in self.baseline]


@functools.lru_cache(maxsize=64)
def subset_masks(features: tuple[int, ...], n_players: int) -> torch.Tensor:
    """keep (2^k, d) bool: row t keeps the features S[j] whose bit j of t is set (t = 0: none).
    Cached: callers must not modify it."""
    k = len(features)
    keep = torch.zeros(2 ** k, n_players, dtype=torch.bool)
    for t, j in itertools.product(range(2 ** k), range(k)):
        keep[t, features[j]] = bool(t >> j & 1)
    return keep


@dataclass(frozen=True)
class Interaction:
    """The target I(S | x) for S = `features`; `value` is v(outputs (B, C), y (B,)) -> (B,)."""

    features: tuple[int, ...]
    masker: Masker
    value: OutputFn = field(repr=False)
    value_name: str = "margin"

    def __post_init__(self) -> None:
        d = self.masker.n_players
        if not self.features or len(set(self.features)) != len(self.features):
            raise TdabenchError(f"interaction features must be distinct and non-empty, got {self.features}")
        if not all(0 <= i < d for i in self.features):
            raise TdabenchError(f"interaction features {list(self.features)} out of range: the inputs have "
                                f"{d} players (indices 0..{d - 1})")

    def signs(self, like: torch.Tensor) -> torch.Tensor:
        """(−1)^{|S|−|T|} of each coalition T of `subset_masks`, (2^k,), dtype/device of `like`."""
        sizes = torch.tensor([bin(t).count("1") for t in range(2 ** len(self.features))])
        return ((-1.0) ** (len(self.features) - sizes)).to(dtype=like.dtype, device=like.device)

    def evaluate(self, outputs_of: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                 y: torch.Tensor) -> torch.Tensor:
        """I(S | x) per example, (B,): one forward pass `outputs_of` over all B·2^|S| masked inputs."""
        keep = subset_masks(self.features, self.masker.n_players).to(x.device)
        m = keep.shape[0]
        outputs = outputs_of(self.masker.apply(x, keep))
        values = self.value(outputs, y.unsqueeze(1).expand(-1, m).reshape(-1)).reshape(-1, m)
        return values @ self.signs(values)

    def describe(self) -> dict[str, Any]:
        """What results.json records: S, v and the baseline."""
        return {"features": list(self.features), "value": self.value_name, "baseline": self.masker.describe()}


def make_masker(spec: TaskSpec, data: Dataset) -> Masker:
    """The task's masker: training means of tabular features, [PAD] for wordpiece token ids; other
    inputs (images, frozen MiniLM features, another tokenizer's ids) raise."""
    x = data.train.x
    if spec.modality == "tabular" and x.dim() == 2 and x.is_floating_point():
        return Masker(int(x.shape[1]), x.mean(0))
    if spec.modality == "text" and x.dim() == 2 and not x.is_floating_point() and spec.data.tokenizer == "wordpiece":
        return Masker(int(x.shape[1]))
    what = "frozen MiniLM features" if spec.model.kind == "minilm" else f"{spec.modality} inputs of shape " \
        f"{tuple(x.shape[1:])}"
    raise TdabenchError(f"interaction targets need tabular features or wordpiece token ids; task '{spec.name}' "
                        f"has {what}")


def make_interaction(name: str, spec: TaskSpec, data: Dataset) -> Interaction:
    """The target 'interaction:S' of this task (every check before any training)."""
    value_name = value_target(spec.objective)
    value = make_target(value_name, spec.objective, data.n_outputs)
    return Interaction(interaction_features(name), make_masker(spec, data), value,
                       "margin" if value_name == "margin" else "output")
