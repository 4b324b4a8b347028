"""What an estimator was given, besides the training set and the test points (issue 18, item 4).

Every registered estimator class declares `uses`, one of INPUTS:

- "final-model": the final model θᶠ only (the setting of docs/method.md): Grad-Dot, the influence
  functions, TRAK, K-FAC, DataInf;
- "training-checkpoints": parameters saved while the final model trained (TracIn-CP);
- "further-training-recipe": the gold standard's own further-training recipe (learning rate,
  momentum, batch size, steps): `if-lissa-horizon`, which knows what the gold standard will do;
- "retrained-models": models retrained from scratch on subsets of the training set.

The declaration states the most an estimator reads when it is available; `Estimator.fitted_input()`
says what one fit actually read (TracIn on a task without checkpoints reads the final model only),
and that is what results files record. The registry refuses a class without a valid declaration.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

EstimatorInput = Literal["final-model", "training-checkpoints", "further-training-recipe", "retrained-models"]
INPUTS: tuple[str, ...] = get_args(EstimatorInput)
# How reports show each input, in INPUTS order.
INPUT_LABELS: dict[str, str] = dict(zip(INPUTS, ("final model only", "training checkpoints",
                                                 "further-training recipe", "retrained models")))


class MissingInputDeclaration(ValueError):
    """A class whose `uses` is absent or not one of INPUTS (the message is one line)."""


def input_error(value: Any, where: str) -> str | None:
    """None when `value` is one of INPUTS, else a one-line message naming `where` and the valid values."""
    if isinstance(value, str) and value in INPUTS:
        return None
    found = "does not declare `uses`" if value is None else f"declares uses={value!r}"
    return (f"{where} {found}: set the class attribute `uses` to what the estimator reads, one of "
            f"{', '.join(repr(v) for v in INPUTS)} (tdabench.estimators.inputs)")


def check_declares_input(cls: Any, where: str | None = None) -> None:
    """Raise MissingInputDeclaration unless class `cls` declares a valid `uses`."""
    message = input_error(getattr(cls, "uses", None), where or getattr(cls, "__qualname__", repr(cls)))
    if message is not None:
        raise MissingInputDeclaration(message)


def input_label(value: str | None) -> str:
    """"final model only" for "final-model"; "—" for None (not recorded); an unknown value as is."""
    return "—" if value is None else INPUT_LABELS.get(value, value)
