"""The results file of one (task, run), schema version 1 (docs/method.md, results files), and its CSV twin.

`Results.to_json()` gives the layout of docs/method.md; fields may be added, none renamed or removed without
raising SCHEMA_VERSION. Files are written atomically and never hold NaN or Infinity (None → null).
A record's `n_test` counts the test points whose agreement was defined (the mean is over them) and
`n_skipped` the undefined ones (saturated points, docs/method.md). Its `ground_truth` says what the
estimator was compared with (GROUND_TRUTHS, tdabench/truths/names.py), its `uses` what the estimator
read (tdabench.estimators.inputs; a field added without a new schema version: no field changed its
meaning, and older files read it as None); `ci_low`/`ci_high` bound the
mean (bootstrap over test points). Files written before these fields existed load with their defaults.
"""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import tempfile
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tdabench.errors import TdabenchError
from tdabench.storage import atomic_write_text
from tdabench.scoring.metrics import Summary
from tdabench.truths.names import FURTHER_TRAINING, GROUND_TRUTHS

SCHEMA_VERSION = 1
# A record's params: the estimator's resolved parameters, then its fitted state under keys with this prefix.
FITTED_PREFIX = "fitted."
CSV_COLUMNS = ("task", "task_version", "spec_hash", "estimator", "params", "horizon",
               "horizon_unit", "metric", "mean", "sem", "n_test", "n_skipped",
               "source_distribution", "source_version", "ground_truth", "ci_low", "ci_high", "gold_mode",
               "uses")
_TOP_KEYS = ("schema_version", "tdabench_version", "git_hash", "date", "task", "gold_standard",
             "records", "cost", "errors")


def _finite_or_none(name: str, value: float | None) -> None:
    if value is not None and not math.isfinite(value):
        raise ValueError(f"{name} must be finite or None, got {value}")


def _known(cls: type, d: dict[str, Any]) -> dict[str, Any]:
    """The keys of `d` that are fields of `cls` (keys added by a newer tdabench are ignored)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}


@dataclass(frozen=True)
class Record:
    """Agreement of one estimator (with `params`) with the gold standard at one horizon and metric.

    `source` is {"distribution": ..., "version": ...} for an estimator from a plugin, else None.
    [ci_low, ci_high]: bootstrap interval of the mean over test points (both None or both set,
    ci_low ≤ ci_high). `ground_truth`: what the agreement was measured against, one of
    GROUND_TRUTHS for the records tdabench writes (any other non-empty name is kept as read).
    `uses`: what the estimator's fit read (one of tdabench.estimators.inputs.INPUTS, e.g.
    "final-model"); None in files written before it was recorded.
    """

    estimator: str
    params: dict
    horizon: int
    metric: str
    mean: float | None
    sem: float | None
    n_test: int
    n_skipped: int
    source: dict | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    ground_truth: str = FURTHER_TRAINING
    uses: str | None = None

    def __post_init__(self) -> None:
        _finite_or_none("mean", self.mean)
        _finite_or_none("sem", self.sem)
        _finite_or_none("ci_low", self.ci_low)
        _finite_or_none("ci_high", self.ci_high)
        if (self.ci_low is None) != (self.ci_high is None):
            raise ValueError(f"ci_low and ci_high must both be set or both be None, got "
                             f"{self.ci_low} and {self.ci_high}")
        if self.ci_low is not None and self.ci_low > self.ci_high:
            raise ValueError(f"ci_low {self.ci_low} must not exceed ci_high {self.ci_high}")
        if not isinstance(self.ground_truth, str) or not self.ground_truth:
            raise ValueError(f"ground_truth must be a non-empty string, e.g. one of "
                             f"{', '.join(GROUND_TRUTHS)}; got {self.ground_truth!r}")

    @classmethod
    def from_summary(cls, estimator: str, params: dict, horizon: int, metric: str,
                     summary: Summary, source: dict | None = None,
                     ground_truth: str = FURTHER_TRAINING, uses: str | None = None) -> Record:
        """The record of a `metrics.Summary` (n_test = summary.n; its interval is copied)."""
        return cls(estimator, dict(params), horizon, metric, summary.mean, summary.sem,
                   summary.n, summary.n_skipped, source, summary.ci_low, summary.ci_high,
                   ground_truth, uses)


@dataclass(frozen=True)
class NoiseCeiling:
    """The gold standard's noise ceiling at one horizon and metric (see `metrics.reliability`).

    `value`: √reliability, the agreement a perfect estimator is expected to reach with this gold
    standard; `reliability`: the Spearman–Brown-corrected split-half agreement (docs/method.md, the noise ceiling).
    None where undefined.
    """

    horizon: int
    metric: str
    value: float | None
    reliability: float | None = None

    def __post_init__(self) -> None:
        _finite_or_none("noise ceiling", self.value)
        _finite_or_none("reliability", self.reliability)


@dataclass(frozen=True)
class GoldSummary:
    """The gold-standard settings a results file was scored against."""

    mode: str
    seeds: int
    horizon_unit: str
    horizons: list[int]
    n_train_evaluated: int
    n_test: int
    centered: bool
    noise_ceiling: list[NoiseCeiling]
    epsilon: float | None = None
    steps_per_epoch: int | None = None

    def to_json(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in ("mode", "seeds", "horizon_unit", "horizons",
                                           "n_train_evaluated", "n_test", "centered")}
        d["noise_ceiling"] = [vars(c).copy() for c in self.noise_ceiling]
        return {**d, "epsilon": self.epsilon, "steps_per_epoch": self.steps_per_epoch}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> GoldSummary:
        ceilings = [NoiseCeiling(**_known(NoiseCeiling, c)) for c in d["noise_ceiling"]]
        keep = _known(cls, d)
        return cls(**{**keep, "horizons": list(d["horizons"]), "noise_ceiling": ceilings})


@dataclass(frozen=True)
class TaskInfo:
    """Task identity; `details` are extra keys merged into the JSON "task" object."""

    name: str
    version: int
    spec_hash: str
    details: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        clash = {"name", "version", "spec_hash"} & set(self.details)
        if clash:
            raise ValueError(f"task details must not redefine {sorted(clash)}")

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "spec_hash": self.spec_hash,
                **self.details}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TaskInfo:
        details = {k: v for k, v in d.items() if k not in ("name", "version", "spec_hash")}
        return cls(d["name"], d["version"], d["spec_hash"], details)


@dataclass(frozen=True)
class Results:
    """One results file. `cost` = {"gold_standard_s": s, "estimators": {name: {"fit_s", "score_s",
    "peak_mem_mb", "scored_train_instances"}}}; `errors` = {estimator: message}; `extra` = further top-level keys.
    `origin` (the file it was read from) is not serialised and not compared."""

    task: TaskInfo
    gold_standard: GoldSummary
    records: list[Record]
    cost: dict
    errors: dict[str, str]
    tdabench_version: str
    git_hash: str | None
    date: str
    extra: dict = field(default_factory=dict)
    origin: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        clash = set(_TOP_KEYS) & set(self.extra)
        if clash:
            raise ValueError(f"extra keys must not redefine {sorted(clash)}")

    def to_json(self) -> dict[str, Any]:
        """The layout of docs/method.md (results files), then the `extra` keys."""
        return {"schema_version": SCHEMA_VERSION, "tdabench_version": self.tdabench_version,
                "git_hash": self.git_hash, "date": self.date, "task": self.task.to_json(),
                "gold_standard": self.gold_standard.to_json(),
                "records": [vars(r).copy() for r in self.records], "cost": self.cost,
                "errors": dict(self.errors), **self.extra}

    @classmethod
    def from_json(cls, d: dict[str, Any], origin: str = "<results>") -> Results:
        """Parse a results dict; a missing or different schema_version or a missing key raises
        TdabenchError naming `origin`."""
        version = d.get("schema_version") if isinstance(d, dict) else None
        if version != SCHEMA_VERSION:
            found = "no schema_version" if version is None else f"schema_version {version!r}"
            raise TdabenchError(f"{origin}: results file has {found}; this tdabench reads "
                                f"schema_version {SCHEMA_VERSION}")
        try:
            return cls(TaskInfo.from_json(d["task"]), GoldSummary.from_json(d["gold_standard"]),
                       [Record(**_known(Record, r)) for r in d["records"]], d["cost"], d["errors"],
                       d["tdabench_version"], d["git_hash"], d["date"],
                       {k: v for k, v in d.items() if k not in _TOP_KEYS}, origin)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise TdabenchError(f"{origin}: malformed results file ({type(exc).__name__}: {exc})") from None


def _json_default(obj: Any) -> Any:
    """numpy scalars and arrays → Python numbers and lists."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"cannot write {type(obj).__name__} to a results file")


def params_json(params: Any) -> str:
    """Canonical JSON of an estimator's params (sorted keys; numpy scalars as numbers)."""
    return json.dumps(params, sort_keys=True, default=_json_default)


def check_writable_folder(folder: Path) -> None:
    """Create `folder` if needed and check that a file can be written in it; TdabenchError (one
    line) otherwise. Called before a long computation whose results go there."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise TdabenchError(f"cannot write to {folder}: {reason}") from None


def csv_cell(value: Any) -> str:
    """A CSV cell: None → "", floats in full precision (repr), anything else as str()."""
    return "" if value is None else repr(value) if isinstance(value, float) else str(value)


def results_csv(results: Results) -> str:
    """One row per record, columns CSV_COLUMNS; None → empty cell, floats in full precision.
    `gold_mode` is the further-training gold standard's mode (removal, downweight, derivative) for
    its records, empty for the retraining ground truths."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    t, unit = results.task, results.gold_standard.horizon_unit
    for r in results.records:
        src = r.source or {}
        row = (t.name, t.version, t.spec_hash, r.estimator, params_json(r.params),
               r.horizon, unit, r.metric, r.mean, r.sem, r.n_test, r.n_skipped,
               src.get("distribution"), src.get("version"), r.ground_truth, r.ci_low, r.ci_high,
               results.gold_standard.mode if r.ground_truth == FURTHER_TRAINING else None, r.uses)
        writer.writerow([csv_cell(v) for v in row])
    return buf.getvalue()


def write_results(results: Results, out_dir: str | Path) -> tuple[Path, Path]:
    """Write `out_dir/results.json` and `out_dir/results.csv` atomically; returns both paths.

    Raises ValueError if any number is NaN or infinite (JSON is written with allow_nan=False).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results.to_json(), indent=2, allow_nan=False, default=_json_default) + "\n"
    json_path, csv_path = out / "results.json", out / "results.csv"
    atomic_write_text(json_path, text)
    atomic_write_text(csv_path, results_csv(results))
    return json_path, csv_path


def read_results(path_or_dir: str | Path) -> Results:
    """Read a results file, given either the file or the folder holding `results.json`."""
    path = Path(path_or_dir)
    if path.is_dir():
        path = path / "results.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TdabenchError(f"{path}: no such results file") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise TdabenchError(f"{path}: cannot read results file ({exc})") from None
    return Results.from_json(data, origin=str(path))


def git_hash() -> str | None:
    """HEAD commit of the repository holding this package (best effort; None on any failure)."""
    try:
        proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                              capture_output=True, text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() or None


def now_iso() -> str:
    """The current UTC time in ISO 8601, to the second, e.g. 2024-05-01T12:00:00+00:00."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
