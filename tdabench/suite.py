"""Leaderboard suites: which comparisons the leaderboard is built from, and keeping them current.

A suite file (benchmarks/leaderboard_suite.yaml) is a mapping with the key `tasks`, a list of
entries, and optionally `tuned` and `search_spaces`, the defaults of every entry's:

    tasks:
      - task: breast-cancer-mlp        # a task name (required)
        seeds: 5                       # further-training seeds (required, ≥ 2 for a noise ceiling)
        estimators: [grad-dot, "if-explicit(damping=0.1)"]   # optional; default: every native one
        n_train: 100                   # optional: evaluated training instances
        n_test: 100                    # optional: test points
        horizons: [1, 2, 5, 10]        # optional; default: the spec's
        target: loss                   # optional; default: the spec's
        retraining: [loo, lds]         # optional secondary ground truths (default none)
        mode: derivative               # optional gold-standard mode (default: the spec's)
        against_removal: true          # optional, mode derivative: removal's agreement with it
        downstream: true               # optional: also `tdabench downstream` (true: every check that fits
                                       # the task; or a list such as [mislabel, randomization]; or a
                                       # mapping {checks: true or a list, and any of DOWNSTREAM_KEYS,
                                       # e.g. horizon: 10}); its downstream.json sits next to
                                       # results.json (suite_downstream.py)
        tuned: true                    # optional: also the tuned track (tdabench.tuning; default false)
        search_spaces:                 # optional, with tuned: estimator → its search space, in place of the class's
          if-explicit: {damping: [1, 10, 100]}
        n_validation: 50               # optional, with tuned: validation test points (default: every unscored one)

The results of an entry live in `<out>/results/<task>/results.json` (`<task>-<mode>` when the
entry sets `mode`), which records the entry's
settings (estimators resolved to labels) under the top-level key "suite_entry". An entry is stale
when that file is missing, was made with other settings, with another version of the task spec, or
with other resolved estimator parameters than this tdabench gives (a changed default).
Malformed files raise SpecError naming the file and the field.

The stale entries run on an executor (tdabench.execution). In this process, one after another,
each comparison's own work units on that executor. On a Ray cluster, each entry's whole comparison
is one unit (`compare_entry`, with the local executor on the worker, so the cache it reads and
writes is the worker's: `cache_dir` on shared storage lets the nodes share final models and gold
standards); its Results come back and are written here as they arrive, so an interrupted suite
resumes from the entries already written.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import yaml

from tdabench.compare import CompareOptions, default_requests, parameter_changes, run_compare
from tdabench.downstream.options import CHECKS, DownstreamOptions
from tdabench.errors import SpecError, TdabenchError
from tdabench.execution import Executor
from tdabench.registry import make_estimator
from tdabench.results import Results, read_results, write_results
from tdabench.selection import EstimatorRequest, parse_estimators
from tdabench.task import find_spec
from tdabench.tuning import search_space_of
from tdabench.truths.names import GOLD_MODES, RETRAINING_GROUND_TRUTHS

SUITE_KEY = "suite_entry"
_ENTRY_KEYS = ("task", "seeds", "estimators", "n_train", "n_test", "horizons", "target", "retraining", "mode",
               "against_removal", "downstream", "tuned", "search_spaces", "n_validation")
_SUITE_KEYS = ("tasks", "tuned", "search_spaces")  # tuned, search_spaces: every entry's default
# The DownstreamOptions fields a suite entry's `downstream` mapping may set (the rest keep their defaults).
DOWNSTREAM_KEYS = ("n_test", "top_k", "ks", "horizon", "gold_instances", "gold_seeds", "noise", "retrain")
_TASK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class SuiteEntry:
    """One comparison of the suite; None means the task spec's (or tdabench's) default."""

    task: str
    seeds: int
    estimators: tuple[EstimatorRequest, ...] | None = None
    n_train: int | None = None
    n_test: int | None = None
    horizons: tuple[int, ...] | None = None
    target: str | None = None
    retraining: tuple[str, ...] = ()
    mode: str | None = None
    against_removal: bool = False
    downstream: bool | tuple[str, ...] = False  # True: every check that fits the task; or these checks
    downstream_options: tuple[tuple[str, Any], ...] = ()  # (DownstreamOptions field, value) overrides
    tuned: bool = False
    search_spaces: dict[str, dict[str, list]] | None = None  # with tuned: estimator → search space
    n_validation: int | None = None  # with tuned: validation test points (None: every unscored one)


@dataclass(frozen=True)
class Suite:
    """A parsed suite file: `path` as given, entries in file order (task names unique)."""

    path: str
    entries: tuple[SuiteEntry, ...]

    def select(self, names: list[str] | None) -> tuple[SuiteEntry, ...]:
        """The entries of the given task names (all when None); an unknown name raises."""
        if names is None:
            return self.entries
        known = [e.task for e in self.entries]
        missing = [n for n in names if n not in known]
        if missing:
            raise TdabenchError(f"{self.path}: no entry for task(s) {', '.join(missing)}; the "
                                f"suite has: {', '.join(known)}")
        return tuple(e for e in self.entries if e.task in names)


def _positive_int(value: Any, path: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(path, where, "a positive integer", value)
    return value


def _estimators(value: Any, path: str, where: str) -> tuple[EstimatorRequest, ...]:
    """A list of items like "grad-dot" or "if-explicit(damping=0.1)", or one comma-separated
    string of them."""
    if isinstance(value, str):
        items = [value]
    elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        items = value
    else:
        raise SpecError(path, where, "a non-empty list of estimator names such as 'grad-dot' or "
                        "'if-explicit(damping=0.1)'", value)
    try:
        requests = tuple(r for item in items for r in parse_estimators(item))
    except TdabenchError as err:
        raise SpecError(path, where, f"estimator names with optional (key=value) params ({err})",
                        value) from None
    labels = [r.label for r in requests]
    if len(set(labels)) != len(labels):
        raise SpecError(path, where, "each estimator once", value)
    return requests


def _search_spaces(value: Any, path: str, where: str) -> dict[str, dict[str, list]] | None:
    """A mapping estimator name → {parameter: non-empty list of values}; whether the estimator has
    those parameters is `check_entry`'s question."""
    if value is None:
        return None
    expected = "a mapping of estimator names to {parameter: [values, ...]}"
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, dict) for k, v in value.items()):
        raise SpecError(path, where, expected, value)
    for name, space in value.items():
        for key, values in space.items():
            if not isinstance(key, str) or not isinstance(values, list) or not values:
                raise SpecError(path, f"{where}.{name}.{key}", "a non-empty list of values", values)
    return {name: {k: list(v) for k, v in space.items()} for name, space in value.items()}


def _tuning(raw: dict, path: str, where: str, defaults: dict) -> tuple[bool, dict | None, int | None]:
    """(tuned, search_spaces, n_validation) of an entry: its own, else the suite's `defaults` (not
    n_validation, which depends on the task's test points); search spaces and n_validation go with tuned."""
    tuned = raw.get("tuned", defaults.get("tuned", False))
    if not isinstance(tuned, bool):
        raise SpecError(path, f"{where}.tuned", "true or false", tuned)
    spaces = _search_spaces(raw.get("search_spaces", defaults.get("search_spaces")), path, f"{where}.search_spaces")
    if spaces and not tuned:
        raise SpecError(path, f"{where}.search_spaces", "tuned: true with it (search spaces are the tuned track's)")
    n_validation = raw.get("n_validation")
    if n_validation is not None:
        n_validation = _positive_int(n_validation, path, f"{where}.n_validation")
        if not tuned:
            raise SpecError(path, f"{where}.n_validation", "tuned: true with it (validation points are the tuned track's)")
    return tuned, spaces, n_validation


def _entry(raw: Any, path: str, i: int, defaults: dict | None = None) -> SuiteEntry:
    where = f"tasks[{i}]"
    if not isinstance(raw, dict):
        raise SpecError(path, where, "a mapping with keys " + ", ".join(_ENTRY_KEYS), raw)
    unknown = sorted(set(map(str, raw)) - set(_ENTRY_KEYS))
    if unknown:
        raise SpecError(path, f"{where}.{unknown[0]}", "one of the keys " + ", ".join(_ENTRY_KEYS))
    task = raw.get("task")
    if not isinstance(task, str) or not _TASK_NAME.match(task):
        raise SpecError(path, f"{where}.task", "a task name (letters, digits, '_', '.', '-')", task)
    if "seeds" not in raw:
        raise SpecError(path, f"{where}.seeds", "the number of further-training seeds")
    seeds = _positive_int(raw["seeds"], path, f"{where}.seeds")
    n_train, n_test = ((None if raw.get(k) is None else _positive_int(raw[k], path, f"{where}.{k}"))
                       for k in ("n_train", "n_test"))
    horizons = raw.get("horizons")
    if horizons is not None:
        if not isinstance(horizons, list) or not horizons:
            raise SpecError(path, f"{where}.horizons", "a non-empty list of positive integers",
                            horizons)
        horizons = tuple(_positive_int(h, path, f"{where}.horizons") for h in horizons)
    target = raw.get("target")
    if target is not None and (not isinstance(target, str) or not target):
        raise SpecError(path, f"{where}.target", "a target name such as 'loss' or 'margin'", target)
    retraining = raw.get("retraining") or []
    if not isinstance(retraining, list) or any(r not in RETRAINING_GROUND_TRUTHS for r in retraining) \
            or len(set(retraining)) != len(retraining):
        raise SpecError(path, f"{where}.retraining", "a list of distinct values from "
                        + ", ".join(RETRAINING_GROUND_TRUTHS), raw.get("retraining"))
    mode = raw.get("mode")
    if mode is not None and mode not in GOLD_MODES:
        raise SpecError(path, f"{where}.mode", "one of " + ", ".join(GOLD_MODES), mode)
    against_removal = raw.get("against_removal", False)
    if not isinstance(against_removal, bool):
        raise SpecError(path, f"{where}.against_removal", "true or false", against_removal)
    estimators = raw.get("estimators")
    tuned, spaces, n_validation = _tuning(raw, path, where, defaults or {})
    return SuiteEntry(task, seeds,
                      None if estimators is None else _estimators(estimators, path, f"{where}.estimators"),
                      n_train, n_test, horizons, target, tuple(retraining), mode, against_removal,
                      *_downstream(raw.get("downstream", False), path, f"{where}.downstream"), tuned, spaces,
                      n_validation)


def _checks(value: Any, path: str, where: str) -> bool | tuple[str, ...]:
    """true/false, or a non-empty list of distinct downstream check names."""
    if isinstance(value, bool):
        return value
    if not isinstance(value, list) or not value or any(c not in CHECKS for c in value) \
            or len(set(value)) != len(value):
        raise SpecError(path, where, "true, false or a list of distinct checks from " + ", ".join(CHECKS), value)
    return tuple(value)


def _downstream(value: Any, path: str, where: str) -> tuple[bool | tuple[str, ...], tuple[tuple[str, Any], ...]]:
    """(checks, option overrides) of the `downstream` field: checks alone, or a mapping of `checks` and
    DOWNSTREAM_KEYS, each value checked by DownstreamOptions (lists become tuples)."""
    if not isinstance(value, dict):
        return _checks(value, path, where), ()
    unknown = sorted(set(map(str, value)) - {"checks", *DOWNSTREAM_KEYS})
    if unknown:
        raise SpecError(path, f"{where}.{unknown[0]}", "one of the keys checks, " + ", ".join(DOWNSTREAM_KEYS))
    overrides = tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in sorted(value.items()) if k != "checks")
    try:
        DownstreamOptions(task="suite-entry", **dict(overrides))
    except TdabenchError as err:
        raise SpecError(path, where, f"valid downstream settings ({err})", value) from None
    return _checks(value.get("checks", True), path, f"{where}.checks"), overrides


def parse_suite(raw: Any, path: str) -> Suite:
    """Validate a suite's YAML content (see the module docstring); `path` names it in errors."""
    if not isinstance(raw, dict) or "tasks" not in raw or not set(map(str, raw)) <= set(_SUITE_KEYS):
        raise SpecError(path, "<file>", "a mapping with the key 'tasks' (and optionally 'tuned', 'search_spaces')",
                        sorted(map(str, raw)) if isinstance(raw, dict) else raw)
    defaults = {k: raw[k] for k in ("tuned", "search_spaces") if k in raw}
    if not isinstance(defaults.get("tuned", False), bool):
        raise SpecError(path, "tuned", "true or false", defaults["tuned"])
    if not isinstance(raw["tasks"], list) or not raw["tasks"]:
        raise SpecError(path, "tasks", "a non-empty list of task entries", raw["tasks"])
    entries = tuple(_entry(item, path, i, defaults) for i, item in enumerate(raw["tasks"]))
    seen: set[str] = set()
    for i, e in enumerate(entries):
        if e.task in seen:
            raise SpecError(path, f"tasks[{i}].task", "each task once", e.task)
        seen.add(e.task)
    return Suite(path, entries)


def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite file."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise SpecError(str(path), "<file>", "a readable YAML file", str(err)) from None
    except yaml.YAMLError as err:
        raise SpecError(str(path), "<file>", "valid YAML", str(err).splitlines()[0]) from None
    return parse_suite(raw, str(path))


def results_dir(out_dir: str | Path, entry: SuiteEntry) -> Path:
    """Where an entry's results.json/.csv go: `<out>/results/<task>`, or `<task>-<mode>` for an
    entry that sets its mode (so suites of several modes can share one leaderboard folder)."""
    return Path(out_dir) / "results" / (entry.task if entry.mode is None else f"{entry.task}-{entry.mode}")


def supports_retraining() -> bool:
    """Whether this tdabench's CompareOptions has the `retraining` field."""
    return "retraining" in {f.name for f in dataclasses.fields(CompareOptions)}


def settings(entry: SuiteEntry, default_labels: list[str], retraining: bool) -> dict[str, Any]:
    """The JSON form of an entry as it is run: estimators resolved to labels (`default_labels`
    when the entry has none), retraining dropped when the comparison cannot do it; `mode`,
    `against_removal`, `tuned`, `search_spaces` and `n_validation` only when set (so results made
    before they existed stay current)."""
    labels = default_labels if entry.estimators is None else [r.label for r in entry.estimators]
    optional = ({"mode": entry.mode} if entry.mode is not None else {}) | (
        {"against_removal": True} if entry.against_removal else {}) | (
        {"tuned": True} if entry.tuned else {}) | ({"search_spaces": entry.search_spaces} if entry.search_spaces else {}) | (
        {"n_validation": entry.n_validation} if entry.n_validation is not None else {})
    return {"task": entry.task, "seeds": entry.seeds, "estimators": list(labels),
            "n_train": entry.n_train, "n_test": entry.n_test,
            "horizons": None if entry.horizons is None else list(entry.horizons),
            "target": entry.target, "retraining": list(entry.retraining) if retraining else []} | optional


def compare_options(entry: SuiteEntry, **common: Any) -> Any:
    """The CompareOptions of an entry; `common` adds e.g. cache_dir, progress. `retraining` is
    passed only when CompareOptions has that field."""
    kwargs = dict(task=entry.task, estimators=entry.estimators, seeds=entry.seeds,
                  horizons=entry.horizons, n_train=entry.n_train, n_test=entry.n_test,
                  target=entry.target, **common)
    if entry.mode is not None:  # like `settings`, only when set
        kwargs["mode"] = entry.mode
    if entry.against_removal:
        kwargs["against_removal"] = True
    if entry.tuned:
        kwargs |= {"tuned": True, "search_spaces": entry.search_spaces, "n_validation": entry.n_validation}
    if supports_retraining():
        kwargs["retraining"] = entry.retraining
    return CompareOptions(**kwargs)


def check_entry(suite: Suite, entry: SuiteEntry) -> None:
    """Before anything runs: the task exists, every estimator is known and accepts its params, and
    every search space names an estimator's parameters (SpecError naming the suite file and the
    entry's field otherwise)."""

    where = f"tasks[{suite.entries.index(entry)}]"
    try:
        find_spec(entry.task)
    except TdabenchError as err:
        raise SpecError(suite.path, f"{where}.task", f"a known task ({err})", entry.task) from None
    for request in entry.estimators or ():
        try:
            make_estimator(request.name, **request.params)
        except TdabenchError as err:
            raise SpecError(suite.path, f"{where}.estimators", f"known estimators and params ({err})",
                            request.label) from None
    for name, space in (entry.search_spaces or {}).items():
        try:
            search_space_of(name, space)
        except TdabenchError as err:
            raise SpecError(suite.path, f"{where}.search_spaces.{name}", f"an estimator's parameters ({err})",
                            space) from None


def staleness(entry: SuiteEntry, out_dir: str | Path, wanted: dict[str, Any]) -> str | None:
    """Why an entry must be run ("no results file", "other settings", "task spec changed", or an
    estimator's parameters changed: `changed_parameters`), or
    None when its results file is current. `wanted` is `settings(entry, ...)`; the task must exist
    (`check_entry`)."""

    path = results_dir(out_dir, entry) / "results.json"
    if not path.exists():
        return "no results file"
    stored = read_results(path)
    if stored.extra.get(SUITE_KEY) != wanted:
        return "other settings"
    if stored.task.spec_hash != find_spec(entry.task).spec_hash:
        return "task spec changed"
    return changed_parameters(entry, stored)


def changed_parameters(entry: SuiteEntry, stored: Results) -> str | None:
    """"estimator parameters changed (LABEL: NAME OLD → NEW, ...)" for the first of the entry's
    estimators whose default-track records were made with other resolved parameters than this
    tdabench gives its request (`compare.parameter_changes`: a changed default, e.g. the damping
    rule), else None. Estimators without records (errors) are not compared."""
    recorded = {r.estimator: r.params for r in stored.records}
    for request in entry.estimators or default_requests():
        diff = parameter_changes(request.label, recorded[request.label]) if request.label in recorded else {}
        if diff:
            changes = ", ".join(f"{k} {then!r} → {now!r}" for k, (then, now) in diff.items())
            return f"estimator parameters changed ({request.label}: {changes})"
    return None


def run_entry(entry: SuiteEntry, wanted: dict[str, Any], out_dir: str | Path,
              **common: Any) -> Path:
    """Run the entry's comparison (`common`: further CompareOptions such as cache_dir, progress)
    and write its results, with `wanted` stored, to `results_dir`; returns the results.json path."""

    results = with_settings(run_compare(compare_options(entry, **common)), wanted)
    return write_results(results, results_dir(out_dir, entry))[0]


def compare_entry(options: CompareOptions) -> Results:
    """One entry's comparison, the unit an executor outside this process runs."""
    return run_compare(options)


def run_entries(plan: list[tuple[SuiteEntry, dict[str, Any]]], out_dir: str | Path, executor: Executor,
                **common: Any) -> Iterator[tuple[SuiteEntry, Path]]:
    """Run each (entry, wanted settings) of `plan`, writing its results as soon as it is done;
    yields (entry, results.json path) in the order they finish. Each entry is one unit of `executor`
    (its torch threads apply to the whole comparison); in this process, one entry after another
    (`run_entry`), its own work units on `executor` too; outside it, see the module docstring
    (progress bars off on the workers)."""
    if executor.in_process:
        run = lambda item: run_entry(item[0], item[1], out_dir, executor=executor, **common)
        for i, path in executor.map_unordered(run, plan):
            yield plan[i][0], path
        return
    options = [compare_options(entry, **(common | {"progress": False})) for entry, _ in plan]
    for i, results in executor.map_unordered(compare_entry, options):
        entry, wanted = plan[i]
        yield entry, write_results(with_settings(results, wanted), results_dir(out_dir, entry))[0]


def with_settings(results: Results, wanted: dict[str, Any]) -> Results:
    """`results` with the entry's settings stored under "suite_entry"."""
    return dataclasses.replace(results, extra={**results.extra, SUITE_KEY: wanted})
