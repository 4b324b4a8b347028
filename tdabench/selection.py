"""Parsing estimator selections: `grad-dot,if-explicit(damping=0.1,curvature=gauss-newton)`.

Parameter values are read as YAML scalars (numbers, booleans, null, strings).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from tdabench.errors import TdabenchError

_ITEM = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(?:\((.*)\))?\s*$")


@dataclass(frozen=True)
class EstimatorRequest:
    """An estimator name and the parameters to construct it with."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        inner = ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.name}({inner})" if inner else self.name


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            raise TdabenchError(f"unbalanced parentheses in estimator list '{text}'")
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if depth != 0:
        raise TdabenchError(f"unbalanced parentheses in estimator list '{text}'")
    return [*parts, current]


def _parse_params(text: str, item: str) -> dict[str, Any]:
    params = {}
    for pair in filter(str.strip, text.split(",")):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise TdabenchError(f"estimator parameter '{pair.strip()}' in '{item}' must look like name=value")
        params[key.strip()] = yaml.safe_load(value.strip())
    return params


def parse_estimators(text: str) -> list[EstimatorRequest]:
    """`a,b(k=v,k2=v2)` → requests in the given order."""
    requests = []
    for item in filter(str.strip, _split_top_level(text)):
        match = _ITEM.match(item)
        if match is None:
            raise TdabenchError(f"cannot read estimator '{item.strip()}'; expected NAME or NAME(key=value,...)")
        requests.append(EstimatorRequest(match.group(1), _parse_params(match.group(2) or "", item)))
    if not requests:
        raise TdabenchError("the estimator list is empty")
    return requests
