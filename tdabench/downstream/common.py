"""What every check of the downstream flow shares: how a failure and a task are recorded.

A check that fails for one estimator records one line under `errors[label][check]` and the run
goes on (downstream.json's `errors`); `Errors` is that mapping.
"""

from __future__ import annotations

import traceback
from typing import Any

from tdabench.errors import TdabenchError
from tdabench.task.spec import TaskSpec

Errors = dict[str, dict[str, str]]  # estimator label → check → what went wrong


def describe(err: Exception) -> str:
    """One line: a TdabenchError's own message, else the exception type, message and the function
    in which it was raised."""
    if isinstance(err, TdabenchError):
        return str(err)
    return f"{type(err).__name__}: {err} ({traceback.extract_tb(err.__traceback__)[-1].name})"


def record(errors: Errors, label: str, check: str, err: Exception) -> None:
    """errors[label][check] = describe(err)."""
    errors.setdefault(label, {})[check] = describe(err)


def task_info(spec: TaskSpec) -> dict[str, Any]:
    """The task as results files name it: name, version and spec hash."""
    return {"name": spec.name, "version": spec.version, "spec_hash": spec.spec_hash}
