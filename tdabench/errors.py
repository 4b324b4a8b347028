"""User-facing errors. The command line prints them on one line and exits with code 2."""

from __future__ import annotations


class TdabenchError(Exception):
    """An error caused by the user's input (a name, a file, a setting), not by a bug."""


class SpecError(TdabenchError):
    """A task spec file is malformed: names the file, the field and what was expected."""

    def __init__(self, path: str, field: str, expected: str, got: object = None) -> None:
        detail = f" (got {got!r})" if got is not None else ""
        super().__init__(f"{path}: field '{field}': expected {expected}{detail}")
        self.path, self.field, self.expected = path, field, expected


class UnknownNameError(TdabenchError):
    """A name that no registry entry has; the message lists the valid names."""

    def __init__(self, kind: str, name: str, valid: list[str]) -> None:
        super().__init__(f"unknown {kind} '{name}'; valid {kind}s: {', '.join(sorted(valid))}")
        self.kind, self.name, self.valid = kind, name, sorted(valid)


class CacheMismatchError(TdabenchError):
    """A cache entry exists under the same key but was made with other settings."""
