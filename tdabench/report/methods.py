"""What the reports say about each estimator: its family, one-line summary, citation and input.

These are read from the estimator's class (`Estimator.family`, `summary`, `citation`, `uses`), the one place
they are written; an estimator name that is not registered here (a plugin that is not installed,
a renamed estimator in an old results file) gets family "other" and empty texts.
"""

from __future__ import annotations

from dataclasses import dataclass

from tdabench.errors import TdabenchError
from tdabench.estimators.base import FAMILIES
from tdabench.registry import estimators


@dataclass(frozen=True)
class Method:
    """An estimator name with its class's description; `adapter_of`: the library an adapter uses."""

    name: str
    family: str = "other"
    summary: str = ""
    citation: str = ""
    adapter_of: str | None = None
    uses: str | None = None  # what the class declares it reads (tdabench.estimators.inputs), None if unknown

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {', '.join(FAMILIES)}, got {self.family!r}")


def base_name(estimator: str) -> str:
    """The registered name in a results file's estimator field: "if-cg" for
    "if-cg(curvature=gauss-newton,max_iter=5)" (a request with parameters), the name itself otherwise."""
    return estimator.partition("(")[0].strip()


def method_of(name: str) -> Method:
    """The Method of an estimator name (or request, see `base_name`); a bare Method for an unknown one."""
    name = base_name(name)
    try:
        cls = estimators.get(name)
    except (TdabenchError, ImportError):
        return Method(name)
    family = getattr(cls, "family", "other")
    return Method(name, family if family in FAMILIES else "other", getattr(cls, "summary", ""),
                  getattr(cls, "citation", ""), getattr(cls, "adapter_of", None), getattr(cls, "uses", None))


def builtin_names() -> list[str]:
    """The registered built-in estimators (natives and adapters, not plugins), by family (in
    FAMILIES order) and then by name: the order that fixes each one's plot style."""
    names = [n for n in estimators.names() if estimators.origin(n).kind == "built-in"]
    return sorted(names, key=lambda n: (FAMILIES.index(method_of(n).family), n))
