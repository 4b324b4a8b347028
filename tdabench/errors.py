"""User-facing errors. The command line prints them on one line and exits with code 2."""

from __future__ import annotations

import difflib


class TdabenchError(Exception):
    """An error caused by the user's input (a name, a file, a setting), not by a bug."""


class SpecError(TdabenchError):
    """A task spec file is malformed: names the file, the field and what was expected."""

    def __init__(self, path: str, field: str, expected: str, got: object = None) -> None:
        detail = f" (got {got!r})" if got is not None else ""
        super().__init__(f"{path}: field '{field}': expected {expected}{detail}")
        self.path, self.field, self.expected = path, field, expected


class UnknownNameError(TdabenchError):
    """A name that no registry entry has; the message lists the valid names, then the close ones
    ("did you mean 'grad-dot'?", in `suggestions`)."""

    def __init__(self, kind: str, name: str, valid: list[str]) -> None:
        self.kind, self.name, self.valid = kind, name, sorted(valid)
        self.suggestions = close_matches(name, self.valid)
        hint = f"; did you mean {_or(self.suggestions)}?" if self.suggestions else ""
        super().__init__(f"unknown {kind} '{name}'; valid {kind}s: {', '.join(self.valid)}{hint}")


def close_matches(name: object, valid: list[str], n: int = 3) -> list[str]:
    """The valid names closest to `name` (difflib, ignoring case), best first."""
    if not isinstance(name, str):
        return []
    by_lower = {v.lower(): v for v in valid}
    return [by_lower[m] for m in difflib.get_close_matches(name.lower(), list(by_lower), n=n, cutoff=0.6)]


def _or(names: list[str]) -> str:
    quoted = [f"'{n}'" for n in names]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


class CacheMismatchError(TdabenchError):
    """A cache entry exists under the same key but was made with other settings."""
