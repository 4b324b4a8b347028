"""Named registries of pluggable objects (estimators), with lazily discovered entry-point plugins.

Built-ins register with a decorator (``@register_estimator("grad-dot")``) or lazily by address
(``register_lazy("name", "module:attr")``). Installed distributions add more through an entry-point
group; for estimators, in the plugin's pyproject.toml::

    [project.entry-points."tdabench.estimators"]
    my-estimator = "my_package.module:MyEstimator"

Plugins are discovered on the first look-up (`names`, `get`, `origin`) and imported only when
fetched. A name is unique across built-ins and plugins: a collision is an error, never an override.
A registry with a `base` class refuses anything else: a decorated class at registration, an entry
point or a lazily registered address when it is first fetched.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable, Generic, Literal, TypeVar

from tdabench.errors import TdabenchError, UnknownNameError

if TYPE_CHECKING:
    from tdabench.estimators.base import Estimator

T = TypeVar("T")
_UNSET: Any = object()


@dataclass(frozen=True)
class Origin:
    """Where a registered object comes from; `target` is its address 'module:attr'.

    "built-in": registered in-process (decorator or `register_lazy`); "plugin": an entry point of an
    installed distribution, whose name and version are recorded.
    """

    kind: Literal["built-in", "plugin"]
    target: str
    distribution: str | None = None
    version: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return asdict(self)

    def __str__(self) -> str:
        if self.kind == "built-in":
            return f"built-in {self.target}"
        return f"plugin {self.target} (distribution {self.distribution} {self.version})"


@dataclass
class _Entry:
    origin: Origin
    obj: Any = _UNSET
    loader: Callable[[], Any] | None = None  # set for placeholders, called on first get


def _import_target(target: str) -> Any:
    module, _, attr = target.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _target_of(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', type(obj).__qualname__)}"


class Registry(Generic[T]):
    """name → object. `builtins` names a module imported on first use, so built-ins always exist;
    `base` ('module:attr', imported when first needed) is the class every registered object must
    subclass (None: anything goes); `check` ('module:attr', a function (obj, where) that raises
    ValueError) refuses further objects, e.g. an estimator class that does not declare `uses`."""

    def __init__(self, kind: str, entry_point_group: str | None = None, builtins: str | None = None,
                 base: str | None = None, check: str | None = None) -> None:
        self.kind, self.entry_point_group, self.builtins, self.base = kind, entry_point_group, builtins, base
        self.check = check  # 'module:attr' of f(obj, where) raising ValueError (one line) for a refused object
        self._entries: dict[str, _Entry] = {}
        self._plugins: dict[str, _Entry] | None = None  # None until discovered
        self._builtins_imported = builtins is None
        self._resolving: set[str] = set()

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register `obj` under `name` (and set `obj.name = name` for classes)."""
        def decorator(obj: T) -> T:
            self._check_base(name, obj, f"'{_target_of(obj)}'")
            self._add(name, _Entry(Origin("built-in", _target_of(obj)), obj))
            if isinstance(obj, type):
                obj.name = name  # type: ignore[attr-defined]
            return obj
        return decorator

    def register_lazy(self, name: str, target: str) -> None:
        """Register the address 'module:attr'; it is imported on the first `get(name)`."""
        if target.count(":") != 1 or not all(target.split(":")):
            raise TdabenchError(f"{self.kind} '{name}': target must look like 'module:attr', got {target!r}")
        self._add(name, _Entry(Origin("built-in", target), loader=lambda: _import_target(target)))

    def names(self) -> list[str]:
        return sorted(self._all())

    def get(self, name: str) -> T:
        entry = self._lookup(name)
        if entry.obj is _UNSET:
            self._resolve(name, entry)
        return entry.obj

    def origin(self, name: str) -> Origin:
        return self._lookup(name).origin

    def refresh(self) -> None:
        """Forget the discovered plugins; the next look-up discovers them again."""
        self._plugins = None

    def __contains__(self, name: object) -> bool:
        return name in self._all()

    def _lookup(self, name: str) -> _Entry:
        entries = self._all()
        if name not in entries:
            raise UnknownNameError(self.kind, name, list(entries))
        return entries[name]

    def _all(self) -> dict[str, _Entry]:
        self._import_builtins()
        if self._plugins is None:
            self._plugins = self._discover()
        return {**self._entries, **self._plugins}

    def _import_builtins(self) -> None:
        if not self._builtins_imported:
            self._builtins_imported = True  # set first: the import registers into this registry
            try:
                importlib.import_module(self.builtins)  # type: ignore[arg-type]
            except BaseException:
                self._builtins_imported = False
                raise

    def _known(self) -> list[str]:
        return sorted(set(self._entries) | set(self._plugins or {}))

    def _add(self, name: str, entry: _Entry) -> None:
        if not isinstance(name, str) or not name or name != name.strip():
            raise TdabenchError(f"{self.kind} names must be non-empty strings without spaces, got {name!r}")
        self._import_builtins()
        existing = (self._plugins or {}).get(name) or self._entries.get(name)
        if existing is None:
            self._entries[name] = entry
        elif (existing.obj is _UNSET and entry.obj is not _UNSET
              and (name in self._resolving or existing.origin.target == entry.origin.target)):
            existing.obj = entry.obj  # a placeholder's own module registering itself on import
        else:
            raise TdabenchError(f"{self.kind} '{name}' is registered twice: by {existing.origin} and by "
                                f"{entry.origin}; registered {self.kind}s: {', '.join(self._known())}")

    def _where(self, name: str, entry: _Entry) -> str:
        if entry.origin.kind == "plugin":
            return (f"entry point '{name} = {entry.origin.target}' of group '{self.entry_point_group}' "
                    f"(distribution {entry.origin.distribution} {entry.origin.version})")
        return f"'{entry.origin.target}'"

    def _check_base(self, name: str, obj: Any, where: str) -> None:
        if self.base is None:
            return
        base = _import_target(self.base)
        if not (isinstance(obj, type) and issubclass(obj, base)):
            raise TdabenchError(f"{self.kind} '{name}' from {where} is not a tdabench {base.__name__} subclass "
                                f"(it is {obj!r}); subclass {base.__module__}.{base.__qualname__}")
        if self.check is not None:
            try:
                _import_target(self.check)(obj, f"{self.kind} '{name}' from {where}")
            except ValueError as err:
                raise TdabenchError(str(err)) from None

    def _resolve(self, name: str, entry: _Entry) -> None:
        self._resolving.add(name)
        try:
            obj = entry.loader()  # type: ignore[misc]
        except Exception as err:
            raise TdabenchError(f"cannot load {self.kind} '{name}' from {self._where(name, entry)}: "
                                f"{type(err).__name__}: {err}") from err
        finally:
            self._resolving.discard(name)
        try:
            self._check_base(name, obj, self._where(name, entry))
        except TdabenchError:
            entry.obj = _UNSET  # not usable: every later look-up raises again
            raise
        entry.obj = obj
        if isinstance(obj, type):
            obj.name = name  # type: ignore[attr-defined]

    def _discover(self) -> dict[str, _Entry]:
        """Entry points of the group as unresolved placeholders; collisions raise TdabenchError."""
        if not self.entry_point_group:
            return {}
        found: dict[str, dict[Origin, _Entry]] = {}
        for ep in importlib.metadata.entry_points(group=self.entry_point_group):
            dist = getattr(ep, "dist", None)
            origin = Origin("plugin", ep.value, getattr(dist, "name", None), getattr(dist, "version", None))
            found.setdefault(ep.name, {})[origin] = _Entry(origin, loader=ep.load)
        valid = ", ".join(sorted(set(self._entries) | set(found)))
        plugins = {}
        for name, by_origin in found.items():
            if len(by_origin) > 1:
                dists = " and ".join(str(o) for o in by_origin)
                raise TdabenchError(f"{self.kind} '{name}' is provided by more than one plugin: {dists}; "
                                    f"uninstall one of them. {self.kind}s: {valid}")
            (entry,) = by_origin.values()
            plugins[name] = self._merge_with_builtin(name, entry, valid)
        return plugins

    def _merge_with_builtin(self, name: str, entry: _Entry, valid: str) -> _Entry:
        builtin = self._entries.get(name)
        if builtin is None:
            return entry
        if builtin.origin.target != entry.origin.target:
            raise TdabenchError(f"{self.kind} '{name}' of {entry.origin} collides with the {builtin.origin}; "
                                f"distribution {entry.origin.distribution} must rename its entry point. "
                                f"{self.kind}s: {valid}")
        entry.obj = builtin.obj  # the plugin's module was imported (and registered itself) earlier
        return entry


estimators: Registry[type[Estimator]] = Registry("estimator", "tdabench.estimators", builtins="tdabench.estimators",
                                                 base="tdabench.estimators.base:Estimator",
                                                 check="tdabench.estimators.inputs:check_declares_input")


def register_estimator(name: str) -> Callable[[T], T]:
    """Class decorator: make an Estimator subclass available as `name` (lowercase-with-hyphens)."""
    return estimators.register(name)  # type: ignore[return-value]


def get_estimator(name: str) -> type[Estimator]:
    return estimators.get(name)


def estimator_names() -> list[str]:
    return estimators.names()


def make_estimator(name: str, **params: Any) -> Estimator:
    """Instantiate estimator `name` and check its parameter values (`Estimator.check_params`); an
    unknown parameter or a bad value raises TdabenchError (unknown ones listing the valid ones)."""
    cls = get_estimator(name)
    try:
        estimator = cls(**params)
    except TypeError:
        valid = _param_names(cls)
        unknown = sorted(set(params) - set(valid))
        if not unknown:
            raise
        raise TdabenchError(f"estimator '{name}' has no parameter {', '.join(map(repr, unknown))}; "
                            f"valid parameters: {', '.join(valid) or '(none)'}") from None
    return estimator.check_params()


def _param_names(cls: type) -> list[str]:
    try:
        return sorted(cls().get_params(deep=False))
    except Exception:  # a class whose defaults cannot be built: fall back to the signature
        import inspect

        return sorted(p for p in list(inspect.signature(cls.__init__).parameters)[1:])
