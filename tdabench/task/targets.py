"""Attribution targets f(z; θ): per-example scalars that the gold standard and every estimator share.

Names: 'loss' (the per-example loss, the default), 'margin' (log p_y/(1 − p_y) of the true class),
'logit:K' (the output of class K) and 'probe:LAYER' (the logit of a frozen linear probe for the
spec's concept on the activations of module LAYER; see `probe.py`). The first three are functions
of the model outputs (`OutputFn`); a probe needs the activations, so the context evaluates it.
"""

from __future__ import annotations

from tdabench.errors import TdabenchError, UnknownNameError
from tdabench.task.objective import OutputFn, margin, per_example_loss
from tdabench.task.spec import ObjectiveSpec

TARGET_FORMS = ("loss", "margin", "logit:K", "probe:LAYER")


def _logit(k: int) -> OutputFn:
    return lambda out, y: out[..., k]


def is_probe(name: str) -> bool:
    return name.startswith("probe:")


def _valid(spec: ObjectiveSpec) -> list[str]:
    return list(TARGET_FORMS) if spec.loss == "cross-entropy" else ["loss", "logit:0"]


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
    if is_probe(name):
        raise TdabenchError(f"target '{name}' is a probe target, not a function of the model outputs "
                            "(this code path supports loss, margin and logit:K)")
    raise UnknownNameError("target", name, _valid(spec))


def check_target_name(name: str, spec: ObjectiveSpec, n_outputs: int, concept: str | None) -> None:
    """Fail early on a malformed target name (a probe's layer is checked when the model exists)."""
    if name == "loss":  # always valid (a custom loss is the context's own)
        return
    if is_probe(name):
        if not name.partition(":")[2]:
            raise TdabenchError("target 'probe:LAYER' needs a layer name, e.g. probe:3")
        if concept is None:
            raise TdabenchError(f"target '{name}' needs the task spec to name a `concept` to probe for")
        return
    make_target(name, spec, n_outputs)
