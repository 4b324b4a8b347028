"""Reading task specs: YAML (or a mapping) → the frozen dataclasses of spec.py, with one-line errors.

`load_spec` reads a file, applies a variant, takes the file paths it names relative to the file,
and validates every field (`SpecError` names the file, the field and what was expected).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from tdabench.errors import SpecError
from tdabench.task.spec import FieldError, TaskSpec, _check


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (tuple, list):
        return f"a list of {_describe(typing.get_args(tp)[0])}"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is dict:
        return "a mapping of names to values"
    if dataclasses.is_dataclass(tp):
        return "a mapping with keys " + ", ".join(f.name for f in dataclasses.fields(tp))
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false",
            type(None): "null"}.get(tp, str(tp))


def _convert(value: Any, tp: Any, path: str) -> Any:
    """Convert a YAML value to type `tp`, raising FieldError(path, ...) when it does not fit."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path)
    if tp is Any:
        return value
    if origin is Literal:
        _check(value in typing.get_args(tp), path, _describe(tp), value)
        return value
    if origin is dict:
        _check(isinstance(value, dict) and all(isinstance(k, str) for k in value), path, _describe(tp), value)
        return dict(value)
    if origin in (tuple, list):
        _check(isinstance(value, (list, tuple)), path, _describe(tp), value)
        return tuple(_convert(v, typing.get_args(tp)[0], f"{path}[{i}]") for i, v in enumerate(value))
    if origin is typing.Union or type(tp).__name__ == "UnionType":
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None and len(options) < len(typing.get_args(tp)):
            return None
        if len(options) == 1:  # X | None: X's own error says what is wrong inside the value
            return _convert(value, options[0], path)
        for arg in typing.get_args(tp):
            try:
                return _convert(value, arg, path)
            except FieldError:
                continue
        raise FieldError(path, _describe(tp), value)
    if tp is type(None):
        _check(value is None, path, "null", value)
        return None
    if tp is float:
        _check(isinstance(value, (int, float)) and not isinstance(value, bool), path, "a number", value)
        return float(value)
    if tp is int:
        _check(isinstance(value, int) and not isinstance(value, bool), path, "an integer", value)
        return value
    _check(isinstance(value, tp), path, _describe(tp), value)
    return value


def _build(cls: type, raw: Any, path: str) -> Any:
    where = path or "<top level>"
    _check(isinstance(raw, dict), where, _describe(cls), raw)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if not f.metadata.get("derived")}
    unknown = sorted(set(raw) - names)
    _check(not unknown, f"{path + '.' if path else ''}{unknown[0] if unknown else ''}",
           "no such field; known fields: " + ", ".join(sorted(names)), None)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.metadata.get("derived"):
            continue
        sub = f"{path}.{f.name}" if path else f.name
        if f.name in raw:
            kwargs[f.name] = _convert(raw[f.name], hints[f.name], sub)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise FieldError(sub, "a value (the field is required)", None)
    try:
        return cls(**kwargs)
    except FieldError as err:  # raised by __post_init__ with the bare field name
        raise FieldError(f"{path}.{err.field}" if path else err.field, err.expected, err.got) from None


def parse_spec(raw: Any, source: str = "<spec>") -> TaskSpec:
    """Validate a spec given as a mapping; `source` names it in error messages."""
    try:
        return _build(TaskSpec, raw, "")
    except FieldError as err:
        raise SpecError(source, err.field, err.expected, err.got) from None


def _deep_merge(base: dict, override: dict) -> dict:
    """`base` with `override` applied key by key; nested mappings merge, everything else replaces."""
    out = dict(base)
    for key, value in override.items():
        out[key] = _deep_merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) \
            else value
    return out


def spec_variants(raw: Any) -> dict[str, dict]:
    """The `variants` mapping of a raw spec (variant name → overrides), {} if there is none."""
    variants = raw.get("variants", {}) if isinstance(raw, dict) else {}
    return variants if isinstance(variants, dict) else {}


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except OSError as err:
        raise SpecError(str(path), "<file>", "a readable YAML file", err.strerror or str(err)) from None
    except UnicodeDecodeError:
        raise SpecError(str(path), "<file>", "a UTF-8 text file (YAML)") from None
    except yaml.YAMLError as err:
        raise SpecError(str(path), "<file>", "valid YAML", str(err).splitlines()[0]) from None


def load_spec(path: str | Path, variant: str | None = None) -> TaskSpec:
    """Read and validate one YAML spec file, optionally one of its `variants`.

    A variant (e.g. `small`, the size the tests use) is a mapping of overrides merged into the
    spec; its task is named `<name>@<variant>`, so its caches and results never mix with the full one.
    """
    path = Path(path)
    raw = _read_yaml(path)
    variants = spec_variants(raw)
    if isinstance(raw, dict):
        raw = {k: v for k, v in raw.items() if k != "variants"}
    if variant is not None:
        if variant not in variants:
            raise SpecError(str(path), "variants", "one of: " + (", ".join(sorted(variants)) or "(none defined)"),
                            variant)
        raw = _deep_merge(raw, variants[variant])
        raw["name"] = f"{raw.get('name')}@{variant}"
    spec = parse_spec(relative_to(raw, path.resolve().parent), f"{path}" + (f" (variant {variant})" if variant else ""))
    return dataclasses.replace(spec, spec_file=str(path))


def _resolved(value: Any, base: Path) -> Any:
    """`value` (a path string) joined to `base` unless it is absolute; anything else unchanged."""
    return str(base / value) if isinstance(value, str) and value and not Path(value).is_absolute() else value


def relative_to(raw: Any, base: Path) -> Any:
    """The raw spec with its file paths (csv:/hf-disk: sources, model weights, pretrained folder,
    checkpoint weights) taken relative to `base`, the spec file's folder."""
    if not isinstance(raw, dict):
        return raw
    raw = dict(raw)
    data, model = raw.get("data"), raw.get("model")
    if isinstance(data, dict) and isinstance(data.get("source"), str):
        provider, sep, rest = data["source"].partition(":")
        if sep and provider in ("csv", "hf-disk"):
            raw["data"] = {**data, "source": f"{provider}:{_resolved(rest, base)}"}
    if isinstance(model, dict):
        model = {**model, **{k: _resolved(model[k], base) for k in ("weights", "pretrained") if k in model}}
        if isinstance(model.get("checkpoints"), list):
            model["checkpoints"] = [{**c, "weights": _resolved(c.get("weights"), base)} if isinstance(c, dict)
                                    else c for c in model["checkpoints"]]
        raw["model"] = model
    return raw
