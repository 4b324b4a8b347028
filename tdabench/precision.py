"""Which precisions a comparison may run in besides its task's own (`--dtype`).

The final model is always trained and cached in the spec's `dtype`; `--dtype float32` on a float64
task rounds that model and the data to float32 (task/device.py, `context_as`) and runs the gold
standard and every estimator there. That is allowed only where a measurement showed that it
reproduces the float64 agreement figures: every native estimator's per-horizon Pearson (mean over
test points) within `PEARSON_BOUND` of float64's. The measurement is benchmarks/precision.py; its
result, benchmarks/results/precision.json, is summarised in `FLOAT32_CHANGE` below, the one place
that decides. Everything else is refused before anything is trained, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from tdabench.errors import TdabenchError
from tdabench.task.spec import TaskSpec
from tdabench.truths.names import REMOVAL

PEARSON_BOUND = 0.005  # the bound on |Pearson(float32) − Pearson(float64)|, per horizon and estimator
PRECISION_RESULT = "benchmarks/results/precision.json"


@dataclass(frozen=True)
class Measured:
    """The largest |Δ Pearson| of float32 against float64 over the native estimators and horizons of
    one task, measured on the spec with hash `spec_hash` (another spec of the same name is unmeasured)."""

    spec_hash: str
    max_change: float


# task name → its float32 measurement (benchmarks/results/precision.json: "max_abs_difference"),
# removal gold standard, 2 seeds, 50 training instances × 30 test points, every native estimator.
# On both breast-cancer tasks every estimator moves by about the same amount at a horizon: the float32
# gold standard's removal differences, not the estimators, lose the figures (largest at 10-50 epochs).
FLOAT32_CHANGE: dict[str, Measured] = {
    "breast-cancer-logreg": Measured("sha256:9e5634514d2bf84f05c4065db215643280697808bce215bf218749a83fd7c284", 0.0397),
    "breast-cancer-mlp": Measured("sha256:27ccb86b2a48d61494bafe749a27206e7883a695c3677018ed00d51ec3bfee45", 0.159),
    "diabetes-mlp": Measured("sha256:5c0bc373de3f20f91a59630a48413ec927f5cf91ce01a289eb9c9f41c76e05dd", 1.11e-05),
}


@dataclass(frozen=True)
class DtypeRequest:
    """What a comparison asks besides its dtype; float32 was measured on the removal gold standard
    and the estimators only (not retraining, seed noise, or the derivative and down-weighting modes)."""

    mode: str
    retraining: bool = False
    final_models: int = 1
    against_removal: bool = False


def check_dtype(dtype: str | None, spec: TaskSpec, request: DtypeRequest) -> None:
    """None or the spec's own dtype: always allowed. float32 on a float64 task: allowed where
    `FLOAT32_CHANGE` says it is within `PEARSON_BOUND`, for the removal gold standard and the
    estimators; anything else raises a one-line TdabenchError saying why."""
    if dtype is None or dtype == spec.dtype:
        return
    head = f"--dtype {dtype}: task '{spec.name}' runs in {spec.dtype}"
    if (spec.dtype, dtype) != ("float64", "float32"):
        raise TdabenchError(f"{head}, and only float32 in place of float64 has been measured; use the spec's dtype")
    measured = FLOAT32_CHANGE.get(spec.name)
    if measured is None or measured.spec_hash != spec.spec_hash:
        raise TdabenchError(f"{head}, and float32 has not been shown to reproduce its agreement figures "
                            f"(per-horizon Pearson within {PEARSON_BOUND}; measured by benchmarks/precision.py on "
                            f"the shipped tabular tasks only); use a spec file with `dtype: float32`")
    if measured.max_change > PEARSON_BOUND:
        raise TdabenchError(f"--dtype float32: float32 changes {spec.name}'s per-horizon Pearson by up to "
                            f"{measured.max_change:.3g} (> {PEARSON_BOUND}; {PRECISION_RESULT})")
    extras = ([f"--mode {request.mode}"] if request.mode != REMOVAL else []) + (
        ["retraining"] if request.retraining else []) + (
        [f"final_models={request.final_models}"] if request.final_models >= 2 else []) + (
        ["--against-removal"] if request.against_removal else [])
    if extras:
        raise TdabenchError(f"--dtype float32 was measured on the removal gold standard and the estimators only, "
                            f"not with {' and '.join(extras)}; leave --dtype out")
