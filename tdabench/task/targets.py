"""Attribution targets f(z; θ): per-example scalars that the gold standard and every estimator share.

Names: 'loss' (the per-example loss, the default), 'margin' (log p_y/(1 − p_y) of the true class),
'logit:K' (the output of class K), 'probe:LAYER' (the logit of a frozen linear probe for the
spec's concept on the activations of module LAYER; see `probe.py`) and 'interaction:S' (the
Harsanyi AND-interaction of the input features or token positions S = i,j,…; see `interaction.py`).
The first three are functions of the model outputs (`OutputFn`); a probe needs the activations and
an interaction the outputs on masked inputs, so the context evaluates them.
"""

from __future__ import annotations

from tdabench.errors import TdabenchError, UnknownNameError
from tdabench.task.objective import OutputFn, margin, per_example_loss
from tdabench.task.spec import ObjectiveSpec

TARGET_FORMS = ("loss", "margin", "logit:K", "probe:LAYER", "interaction:S")
MAX_INTERACTION_ORDER = 4  # |S| ≤ 4: 2^|S| masked forward passes per example


def _logit(k: int) -> OutputFn:
    return lambda out, y: out[..., k]


def is_probe(name: str) -> bool:
    return name.startswith("probe:")


def is_interaction(name: str) -> bool:
    return name.startswith("interaction:")


def interaction_features(name: str) -> tuple[int, ...]:
    """The indices S of 'interaction:S' (1 to MAX_INTERACTION_ORDER distinct non-negative integers,
    comma-separated), in the order given; a malformed S raises. Their range is checked against the
    data (`interaction.make_interaction`)."""
    text = name.partition(":")[2]
    parts = [p.strip() for p in text.split(",")]
    if not text or not all(p.isdigit() for p in parts):
        raise TdabenchError(f"target '{name}': S must be comma-separated feature indices, e.g. interaction:0,1")
    features = tuple(int(p) for p in parts)
    if len(set(features)) != len(features):
        raise TdabenchError(f"target '{name}': the features of S must be distinct")
    if len(features) > MAX_INTERACTION_ORDER:
        raise TdabenchError(f"target '{name}': at most {MAX_INTERACTION_ORDER} features "
                            f"(2^|S| masked forward passes per example), got {len(features)}")
    return features


def _valid(spec: ObjectiveSpec) -> list[str]:
    return list(TARGET_FORMS) if spec.loss == "cross-entropy" else ["loss", "logit:0", "interaction:S"]


def make_target(name: str, spec: ObjectiveSpec, n_outputs: int | None = None) -> OutputFn:
    """The output target `name` as f(outputs (B, C), y (B,)) -> (B,). Probe targets raise: they are
    not functions of the outputs (`TaskContext.target` evaluates them)."""
    if name == "loss":
        return per_example_loss(spec)
    if name == "margin" and spec.loss == "cross-entropy":
        return margin
    if name.startswith("logit:"):
        k = name.partition(":")[2]
        if not k.isdigit() or (n_outputs is not None and int(k) >= n_outputs):
            raise TdabenchError(f"target '{name}': K must be a class index in 0..{(n_outputs or 1) - 1}")
        return _logit(int(k))
    if is_probe(name) or is_interaction(name):
        kind = "a probe target" if is_probe(name) else "an interaction target (outputs on masked inputs)"
        raise TdabenchError(f"target '{name}' is {kind}, not a function of the model outputs "
                            "(this code path supports loss, margin and logit:K)")
    raise UnknownNameError("target", name, _valid(spec))


def check_target_name(name: str, spec: ObjectiveSpec, n_outputs: int, concept: str | None) -> None:
    """Fail early on a malformed target name (a probe's layer is checked when the model exists, an
    interaction's features against the data by `interaction.make_interaction`)."""
    if name == "loss":  # always valid (a custom loss is the context's own)
        return
    if is_probe(name):
        if not name.partition(":")[2]:
            raise TdabenchError("target 'probe:LAYER' needs a layer name, e.g. probe:3")
        if concept is None:
            raise TdabenchError(f"target '{name}' needs the task spec to name a `concept` to probe for")
        return
    if is_interaction(name):
        interaction_features(name)
        return
    make_target(name, spec, n_outputs)
