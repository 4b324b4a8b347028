"""The downstream evaluations of a leaderboard suite (an entry's `downstream: true` or list of checks).

An entry that asks for them gets `tdabench downstream` on its task, with its estimators (default:
every native one) and the checks it names (`true`: every check that fits the task,
`downstream.options.fitting_checks`), the settings its `downstream` mapping gives (suite.DOWNSTREAM_KEYS)
and all others at their defaults. The payload is written
as `downstream.json` next to the entry's `results.json` (`suite.results_dir`), with the resolved
settings (the estimators' resolved parameters included) stored under the top-level key "suite_entry";
like a comparison, it is stale when the file is missing, was made with other settings (or estimator
defaults), or with another version of the task spec. The pages read
every `downstream.json` that sits next to a results file they are built from.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Iterator

from tdabench.compare import recorded_params
from tdabench.downstream.options import DownstreamOptions, fitting_checks, task_mismatch
from tdabench.downstream.results import FILE_NAME, read_downstream, write_downstream
from tdabench.downstream.run import prepare, run_downstream
from tdabench.errors import SpecError, TdabenchError
from tdabench.registry import make_estimator
from tdabench.selection import parse_estimators
from tdabench.suite import SUITE_KEY, Suite, SuiteEntry, results_dir
from tdabench.task import find_spec


def entry_checks(entry: SuiteEntry) -> tuple[str, ...]:
    """The checks an entry asks for: its list, or every check that fits its task; () when none."""
    if entry.downstream is False:
        return ()
    return fitting_checks(find_spec(entry.task)) if entry.downstream is True else tuple(entry.downstream)


def check_downstream(suite: Suite, entry: SuiteEntry, **common: Any) -> None:
    """Before anything runs: the entry's checks fit its task, and everything `downstream.run.prepare`
    refuses before training (e.g. a `retrain` over its budget) is refused now, not after the suite's
    comparisons (SpecError naming the field otherwise). `common`: cache_dir (the task's data is loaded)."""
    checks = entry_checks(entry)
    if not checks:
        return
    where = f"tasks[{suite.entries.index(entry)}].downstream"
    mismatch = task_mismatch(find_spec(entry.task), checks)
    if mismatch:
        raise SpecError(suite.path, where, f"checks that fit the task ({mismatch})", list(checks))
    try:
        prepare(downstream_options(entry, **common))
    except TdabenchError as err:
        raise SpecError(suite.path, where, f"downstream settings the task can run ({err})") from None


def downstream_options(entry: SuiteEntry, **common: Any) -> DownstreamOptions:
    """The DownstreamOptions of an entry that asks for downstream checks; `common`: cache_dir, progress."""
    return DownstreamOptions(task=entry.task, estimators=entry.estimators, checks=entry_checks(entry),
                             **dict(entry.downstream_options), **common)


def downstream_settings(options: DownstreamOptions, default_labels: list[str]) -> dict[str, Any]:
    """What the stored file must have been made with: the options' settings, the task, the estimators'
    labels (`default_labels` when the entry lists none) and their resolved parameters (so that a
    changed default, e.g. the damping rule, makes the file stale)."""
    requests = options.estimators or [parse_estimators(label)[0] for label in default_labels]
    params = {r.label: recorded_params(make_estimator(r.name, **r.params)) for r in requests}
    return {"task": options.task, **options.settings(), "estimators": [r.label for r in requests],
            "estimator_params": params}


def downstream_path(out_dir: str | Path, entry: SuiteEntry) -> Path:
    """`<out>/results/<task>[-<mode>]/downstream.json`, next to the entry's results.json."""
    return results_dir(out_dir, entry) / FILE_NAME


def downstream_staleness(entry: SuiteEntry, out_dir: str | Path, wanted: dict[str, Any]) -> str | None:
    """Why the entry's downstream checks must run ("no downstream file", "other downstream settings", "task
    spec changed"), or None when its downstream.json is current."""
    path = downstream_path(out_dir, entry)
    if not path.exists():
        return "no downstream file"
    stored = read_downstream(path)
    if stored.get(SUITE_KEY) != wanted:
        return "other downstream settings"
    return "task spec changed" if stored["task"]["spec_hash"] != find_spec(entry.task).spec_hash else None


def downstream_status(entries: Iterable[SuiteEntry], out_dir: str | Path, default_labels: list[str],
                      **common: Any) -> Iterator[tuple[SuiteEntry, dict[str, Any], str | None]]:
    """(entry, wanted settings, `downstream_staleness`) of each entry that asks for downstream checks."""
    for entry in entries:
        if entry_checks(entry):
            wanted = downstream_settings(downstream_options(entry, **common), default_labels)
            yield entry, wanted, downstream_staleness(entry, out_dir, wanted)


def run_downstream_entries(plan: list[tuple[SuiteEntry, dict[str, Any]]], out_dir: str | Path,
                           **common: Any) -> Iterator[tuple[SuiteEntry, Path]]:
    """Run each (entry, wanted settings) of `plan` in this process, one after another, writing each
    downstream.json (with `wanted` under "suite_entry") as soon as it is done."""
    for entry, wanted in plan:
        payload = run_downstream(downstream_options(entry, **common)) | {SUITE_KEY: wanted}
        yield entry, write_downstream(payload, results_dir(out_dir, entry))


def downstream_payloads(results_paths: Iterable[str | Path], out_dir: str | Path) -> list[dict[str, Any]]:
    """The downstream.json beside each results file (a file or its folder), read and checked, each with
    "origin": its path relative to `out_dir` (with "/"), in the order of `results_paths`."""
    out, payloads = Path(out_dir).resolve(), []
    for p in results_paths:
        folder = Path(p) if Path(p).is_dir() else Path(p).parent
        path = folder / FILE_NAME
        if path.is_file():
            origin = Path(os.path.relpath(path.resolve(), out)).as_posix()
            payloads.append(read_downstream(path) | {"origin": origin})
    return payloads
