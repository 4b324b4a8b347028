"""Durable files and the resumable store of work units.

Every file tdabench writes goes through `atomic_write_bytes` or `atomic_save_tensors`: the data go
to a temporary file in the same folder, which is flushed to disk (fsync) and renamed over the
target, and the folder is fsynced so the rename itself survives a power cut. A reader sees the old
file or the complete new one, never a half-written or empty one.

A `UnitStore` is one cache folder of work units that share `settings` (every setting that
determines the numbers; `settings.json` is compared on open, and a folder made with other settings
is refused, never reused). A unit is a pure function of the store's settings and its name (a
gold-standard seed, a retraining seed, a final model), saved as one safetensors file as soon as it
is done; `run_units` computes only the missing ones, so an interrupted run resumes and ends with
the same numbers. A unit file that cannot be read (truncated, corrupt, missing tensors) is moved
aside as `<name>.safetensors.corrupt` with a warning and computed again.

The missing units run on an executor (tdabench.execution: in this process, or as tasks of a Ray
cluster); whichever it is, this process alone writes each result to the store as it arrives, so a
distributed run resumes like a local one and workers need no shared filesystem.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

import torch
from safetensors.torch import load, save_file
from tqdm.auto import tqdm

from tdabench.errors import CacheMismatchError, TdabenchError
from tdabench.execution import Executor, LocalExecutor

Tensors = dict[str, torch.Tensor]


def cache_root() -> Path:
    """$TDABENCH_CACHE, else ~/.cache/tdabench."""
    return Path(os.environ.get("TDABENCH_CACHE", Path.home() / ".cache" / "tdabench"))


class TaskIdentity(Protocol):
    """What names a task's cache folders (a TaskSpec has it)."""

    name: str
    version: int
    spec_hash: str


def task_entry(root: Path | None, kind: str, spec: TaskIdentity, *parts: str) -> Path:
    """The cache folder `root/kind/<task>-v<version>-<spec hash>[-part…]` (root None: cache_root())."""
    name = "-".join([f"{spec.name}-v{spec.version}-{spec.spec_hash[7:23]}", *parts])
    return (root or cache_root()) / kind / name


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic(path: Path, write: Callable[[str], None]) -> None:
    """`write(tmp)` into a temporary file beside `path`, fsync it, rename it over `path`, fsync the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` durably and atomically (creating its folder)."""
    _atomic(Path(path), lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_text(path: Path, text: str) -> None:
    """UTF-8 text (newlines as given), durably and atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_payload(payload: dict[str, Any], path: Path, kind: str, version: int, indent: int = 1) -> Path:
    """A results payload as JSON at `path` (durably, atomically; NaN refused). A payload that does
    not carry this `kind` and schema `version` is refused (ValueError: a programming error)."""
    if payload.get("schema_version") != version or payload.get("kind") != kind:
        raise ValueError(f"payload must carry schema_version {version} and kind {kind!r}")
    atomic_write_text(Path(path), json.dumps(payload, indent=indent, allow_nan=False) + "\n")
    return Path(path)


def read_payload(path_or_dir: str | Path, file_name: str, kind: str, version: int, what: str) -> dict[str, Any]:
    """A payload of `write_payload` at `path_or_dir` (a folder: its `file_name`); an unreadable file,
    another kind or another schema version raise TdabenchError naming `what` (e.g. "concepts results file")."""
    path = Path(path_or_dir)
    path = path / file_name if path.is_dir() else path
    try:
        payload = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise TdabenchError(f"{path}: cannot read a {what} ({err})") from None
    if not isinstance(payload, dict) or payload.get("kind") != kind:
        raise TdabenchError(f"{path}: not a tdabench {what}")
    if payload.get("schema_version") != version:
        raise TdabenchError(f"{path}: {what} schema version {payload.get('schema_version')!r} is not supported "
                            f"(this tdabench reads version {version})")
    return payload


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def atomic_save_tensors(path: Path, tensors: Tensors) -> None:
    """Tensors as one safetensors file, durably and atomically."""
    plain = {k: v.detach().contiguous() for k, v in tensors.items()}
    _atomic(Path(path), lambda tmp: save_file(plain, tmp))


class CorruptFileError(TdabenchError):
    """A cached file exists but cannot be read."""


def load_tensors(path: Path, keys: Iterable[str] = ()) -> Tensors:
    """The tensors of a safetensors file; CorruptFileError when it is unreadable or lacks `keys`.

    Read into memory, not memory-mapped (safetensors' `load_file` maps the file, so tensors loaded
    from it would change, or fault, if the file were later truncated or written in place)."""
    try:
        tensors = load(Path(path).read_bytes())
    except Exception as err:  # safetensors raises its own error type for a bad header
        raise CorruptFileError(f"cannot read {path}: {type(err).__name__}: {err}") from None
    missing = sorted(set(keys) - set(tensors))
    if missing:
        raise CorruptFileError(f"{path} lacks the tensors {', '.join(missing)}")
    return tensors


def check_settings(entry: Path, settings: dict[str, Any],
                   normalise: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> bool:
    """True if `entry` holds settings equal to `settings` (both after `normalise`, which maps a
    settings dict written by any version to one canonical form); False if it has none yet.

    Raises CacheMismatchError when it holds different ones (or an unreadable settings file).
    """
    path = entry / "settings.json"
    if not path.exists():
        return False
    try:
        stored = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CacheMismatchError(f"cache entry {entry} has an unreadable settings.json ({err}); delete the "
                                 f"folder or set TDABENCH_CACHE to another one") from None
    settings = json.loads(json.dumps(settings))
    if normalise is not None:
        stored, settings = normalise(stored), normalise(settings)
    if stored != settings:
        diff = sorted(k for k in set(stored) | set(settings) if stored.get(k) != settings.get(k))
        raise CacheMismatchError(
            f"cache entry {entry} was made with other settings (differing: {', '.join(diff)}); "
            f"delete it or set TDABENCH_CACHE to another folder")
    return True


@dataclass(frozen=True)
class UnitStore:
    """The work units of one settings dict, in folder `entry`; each unit must hold `keys`.
    `normalise`: maps stored and current settings to a canonical form before they are compared."""

    entry: Path
    settings: dict[str, Any]
    keys: tuple[str, ...] = ()
    normalise: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def open(self) -> UnitStore:
        """Refuse a folder made with other settings; record the settings in a new one."""
        if not check_settings(self.entry, self.settings, self.normalise):
            atomic_write_json(self.entry / "settings.json", self.settings)
        return self

    def path(self, unit: str) -> Path:
        return self.entry / f"{unit}.safetensors"

    def load(self, unit: str) -> Tensors | None:
        """The unit's tensors; None when it is missing or unreadable (an unreadable file is moved aside)."""
        path = self.path(unit)
        if not path.exists():
            return None
        try:
            return load_tensors(path, self.keys)
        except CorruptFileError as err:
            os.replace(path, path.with_name(path.name + ".corrupt"))
            print(f"tdabench: warning: {err}; moved it aside and computing it again", file=sys.stderr)
            return None

    def save(self, unit: str, tensors: Tensors) -> None:
        atomic_save_tensors(self.path(unit), tensors)


def seed_unit(seed: int) -> str:
    """The unit name of a per-seed computation (file seed_0003.safetensors)."""
    return f"seed_{seed:04d}"


def unit_seed(unit: str) -> int:
    """The seed of a `seed_unit` name."""
    return int(unit.removeprefix("seed_"))


def run_units(store: UnitStore, units: list[str], compute: Callable[[str], Tensors],
              before: Callable[[list[str]], None] | None = None,
              after_unit: Callable[[str], None] | None = None,
              executor: Executor | None = None) -> tuple[dict[str, Tensors], float]:
    """Load every unit of `units` from `store`, computing (and saving, one by one as they finish) the
    missing ones on `executor` (None: one after another in this process; outside it, `compute` must
    pickle with cloudpickle).

    `before(missing)` is called once with the units to compute (e.g. to size a progress bar);
    `after_unit(u)` once unit u is on disk. Returns unit → tensors, and the seconds spent computing.
    """
    store.open()
    done = {u: store.load(u) for u in units}
    missing = [u for u in units if done[u] is None]
    if before is not None:
        before(missing)
    start = time.perf_counter()
    for i, tensors in (executor or LocalExecutor()).map_unordered(compute, missing):
        unit = missing[i]
        done[unit] = tensors
        store.save(unit, tensors)
        if after_unit is not None:
            after_unit(unit)
    return done, time.perf_counter() - start


def _no_tick() -> None:
    """The progress callback of a unit that runs outside this process (its bar advances on arrival)."""


@dataclass(frozen=True)
class SeedUnit:
    """A per-seed computation as a unit function: unit name → `compute(seed, tick)`, ticks ignored."""

    compute: Callable[[int, Callable[[], None]], Tensors]

    def __call__(self, unit: str) -> Tensors:
        return self.compute(unit_seed(unit), _no_tick)


def run_seeds(store: UnitStore, seeds: int, compute: Callable[[int, Callable[[], None]], Tensors], *, what: str,
              ticks_per_seed: int, tick_unit: str, progress: bool = True,
              after_seed: Callable[[int], None] | None = None,
              executor: Executor | None = None) -> tuple[list[Tensors], float]:
    """`run_units` over seeds 0..seeds−1 (units `seed_unit(s)`): `compute(seed, tick)` makes a
    missing seed, calling `tick()` `ticks_per_seed` times, which advances one progress bar
    "`what` (k seeds)" over the missing ones (on an executor outside this process, the bar advances
    by a seed's ticks as each seed arrives). Returns the seeds' tensors in order, and the seconds."""
    bars: list[tqdm] = []
    local = executor is None or executor.in_process

    def start(missing: list[str]) -> None:
        bars.append(tqdm(total=len(missing) * ticks_per_seed, desc=f"{what} ({len(missing)} seeds)",
                         unit=tick_unit, disable=not progress or not missing, leave=False))

    def arrived(unit: str) -> None:
        if not local:
            bars[0].update(ticks_per_seed)
        if after_seed is not None:
            after_seed(unit_seed(unit))

    units = [seed_unit(s) for s in range(seeds)]
    unit_fn = (lambda u: compute(unit_seed(u), bars[0].update)) if local else SeedUnit(compute)
    done, seconds = run_units(store, units, unit_fn, before=start, after_unit=arrived, executor=executor)
    bars[0].close()
    return [done[u] for u in units], seconds
