"""Results files: JSON layout and round trip, schema check, CSV twin, atomic writes."""

from __future__ import annotations

import csv
import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from tdabench.errors import TdabenchError
from tdabench.scoring.metrics import Summary
from tdabench.results import (CSV_COLUMNS, SCHEMA_VERSION, GoldSummary, NoiseCeiling, Record,
                              Results, TaskInfo, git_hash, now_iso, read_results, write_results)


def sample(**changes: object) -> Results:
    gold = GoldSummary("removal", 10, "epoch", [1, 2], 100, 50, False,
                       [NoiseCeiling(1, "cosine", 0.97), NoiseCeiling(2, "cosine", None)],
                       epsilon=1.0, steps_per_epoch=4)
    records = [Record("grad-dot", {}, 1, "cosine", 0.93, 0.01, 48, 2, ci_low=0.91, ci_high=0.95),
               Record("if-explicit", {"damping": 0.1}, 2, "cosine", 0.5, None, 1, 49,
                      source={"distribution": "tdabench-plugin", "version": "1.2"}),
               Record("trak", {"dim": 64}, 2, "pearson", None, None, 0, 50),
               Record("grad-dot", {}, 1, "lds", 0.4, 0.02, 50, 0, None, 0.36, 0.44, "lds")]
    fields = dict(task=TaskInfo("toy", 1, "sha256:abc", {"modality": "tabular"}),
                  gold_standard=gold, records=records,
                  cost={"gold_standard_s": 41.2,
                        "estimators": {"grad-dot": {"fit_s": 0.4, "score_s": 0.1,
                                                    "peak_mem_mb": 310}}},
                  errors={"ekfac": "out of memory"}, tdabench_version="0.1.0", git_hash=None,
                  date="2024-05-01T12:00:00+00:00", extra={"note": "hi"})
    fields.update(changes)
    return Results(**fields)


def test_json_layout() -> None:
    d = sample().to_json()
    assert list(d) == ["schema_version", "tdabench_version", "git_hash", "date", "task",
                       "gold_standard", "records", "cost", "errors", "note"]
    assert d["schema_version"] == SCHEMA_VERSION == 1
    assert d["task"] == {"name": "toy", "version": 1, "spec_hash": "sha256:abc",
                         "modality": "tabular"}
    assert d["gold_standard"]["noise_ceiling"][0] == {"horizon": 1, "metric": "cosine",
                                                      "value": 0.97, "reliability": None}
    assert d["records"][0] == {"estimator": "grad-dot", "params": {}, "horizon": 1,
                               "metric": "cosine", "mean": 0.93, "sem": 0.01, "n_test": 48,
                               "n_skipped": 2, "source": None, "ci_low": 0.91, "ci_high": 0.95,
                               "ground_truth": "further-training", "uses": None}
    assert d["records"][3]["ground_truth"] == "lds" and d["records"][3]["metric"] == "lds"


def test_round_trip_in_memory() -> None:
    original = sample()
    assert Results.from_json(json.loads(json.dumps(original.to_json()))) == original


def test_round_trip_through_files(tmp_path: Path) -> None:
    original = sample()
    json_path, csv_path = write_results(original, tmp_path / "run")
    assert (json_path, csv_path) == (tmp_path / "run" / "results.json",
                                     tmp_path / "run" / "results.csv")
    for where in (tmp_path / "run", json_path):
        loaded = read_results(where)
        assert loaded == original
        assert loaded.origin == str(json_path)


def test_no_nan_or_infinity_in_json(tmp_path: Path) -> None:
    json_path, _ = write_results(sample(), tmp_path)
    text = json_path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["records"][2]["mean"] is None
    with pytest.raises(ValueError):
        Record("grad-dot", {}, 1, "cosine", math.nan, None, 0, 0)
    with pytest.raises(ValueError):
        NoiseCeiling(1, "cosine", math.inf)
    with pytest.raises(ValueError):
        write_results(sample(cost={"gold_standard_s": math.nan}), tmp_path / "bad")


def test_numpy_scalars_are_written_as_numbers(tmp_path: Path) -> None:
    rec = Record("grad-dot", {"k": np.int64(3)}, np.int64(1), "cosine", np.float64(0.5), None, 1, 0)
    json_path, _ = write_results(sample(records=[rec]), tmp_path)
    assert json.loads(json_path.read_text())["records"][0]["params"] == {"k": 3}


def test_record_from_summary() -> None:
    rec = Record.from_summary("grad-dot", {}, 5, "cosine", Summary(0.8, 0.02, 97, 3))
    assert rec == Record("grad-dot", {}, 5, "cosine", 0.8, 0.02, 97, 3, None)
    assert (rec.ci_low, rec.ci_high, rec.ground_truth) == (None, None, "further-training")
    rec = Record.from_summary("grad-dot", {}, 3, "pearson", Summary(0.8, 0.02, 97, 3, 0.75, 0.84),
                              ground_truth="loo")
    assert (rec.ci_low, rec.ci_high, rec.ground_truth) == (0.75, 0.84, "loo")


@pytest.mark.parametrize("changes, needle", [
    ({"ci_low": math.nan, "ci_high": 0.5}, "ci_low must be finite"),
    ({"ci_low": 0.1, "ci_high": math.inf}, "ci_high must be finite"),
    ({"ci_low": 0.1}, "both be set or both be None"),
    ({"ci_low": 0.6, "ci_high": 0.5}, "must not exceed"),
    ({"ground_truth": ""}, "ground_truth must be a non-empty string"),
])
def test_record_checks_interval_and_ground_truth(changes: dict, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        Record("grad-dot", {}, 1, "cosine", 0.5, 0.1, 10, 0, **changes)


def test_files_without_the_added_fields_still_load(tmp_path: Path) -> None:
    d = sample().to_json()
    for r in d["records"]:
        for key in ("ci_low", "ci_high", "ground_truth"):
            del r[key]
    (tmp_path / "results.json").write_text(json.dumps(d))
    loaded = read_results(tmp_path)
    assert d["schema_version"] == 1
    assert [(r.ci_low, r.ci_high, r.ground_truth) for r in loaded.records] == \
        [(None, None, "further-training")] * 4
    assert [r.mean for r in loaded.records] == [0.93, 0.5, None, 0.4]


@pytest.mark.parametrize("version, needle", [(2, "schema_version 2"), (None, "no schema_version")])
def test_schema_version_mismatch(tmp_path: Path, version: int | None, needle: str) -> None:
    d = sample().to_json()
    d.pop("schema_version") if version is None else d.update(schema_version=version)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(d))
    with pytest.raises(TdabenchError) as err:
        read_results(path)
    assert str(path) in str(err.value) and needle in str(err.value)
    assert f"reads schema_version {SCHEMA_VERSION}" in str(err.value)


def test_malformed_and_missing_files(tmp_path: Path) -> None:
    d = sample().to_json()
    del d["records"]
    (tmp_path / "results.json").write_text(json.dumps(d))
    with pytest.raises(TdabenchError, match="records"):
        read_results(tmp_path)
    with pytest.raises(TdabenchError, match="no such results file"):
        read_results(tmp_path / "missing")


def test_unknown_record_fields_are_ignored() -> None:
    d = sample().to_json()
    d["records"][0]["added_later"] = 1
    assert Results.from_json(d).records[0] == sample().records[0]


def test_csv_columns_and_rows(tmp_path: Path) -> None:
    _, csv_path = write_results(sample(), tmp_path)
    with csv_path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert tuple(reader.fieldnames) == CSV_COLUMNS
    assert len(rows) == 4
    assert rows[0] == {"task": "toy", "task_version": "1", "spec_hash": "sha256:abc",
                       "estimator": "grad-dot", "params": "{}", "horizon": "1",
                       "horizon_unit": "epoch", "metric": "cosine", "mean": "0.93", "sem": "0.01",
                       "n_test": "48", "n_skipped": "2", "source_distribution": "",
                       "source_version": "", "ground_truth": "further-training",
                       "ci_low": "0.91", "ci_high": "0.95", "gold_mode": sample().gold_standard.mode,
                           "uses": ""}
    assert (rows[1]["ci_low"], rows[1]["ci_high"]) == ("", "")
    assert (rows[3]["ground_truth"], rows[3]["metric"], rows[3]["ci_low"]) == ("lds", "lds", "0.36")
    assert rows[3]["gold_mode"] == "", "the retraining ground truths have no gold-standard mode"
    assert rows[1]["params"] == '{"damping": 0.1}' and rows[1]["sem"] == ""
    assert (rows[1]["source_distribution"], rows[1]["source_version"]) == ("tdabench-plugin", "1.2")


def test_atomic_write_leaves_no_temp_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_results(sample(), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv", "results.json"]
    before = (tmp_path / "results.json").read_text()

    def fail(*args: object) -> None:
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        write_results(sample(date="2025-01-01T00:00:00+00:00"), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv", "results.json"]
    assert (tmp_path / "results.json").read_text() == before


def test_clashing_extra_keys_rejected() -> None:
    with pytest.raises(ValueError):
        sample(extra={"records": []})
    with pytest.raises(ValueError):
        TaskInfo("toy", 1, "sha256:abc", {"name": "other"})


def test_git_hash_and_now_iso() -> None:
    h = git_hash()
    assert h is None or (len(h) == 40 and all(c in "0123456789abcdef" for c in h))
    stamp = datetime.fromisoformat(now_iso())
    assert stamp.utcoffset() is not None and stamp.utcoffset().total_seconds() == 0
    assert abs((datetime.now(timezone.utc) - stamp).total_seconds()) < 60
