"""`tdabench downstream` end to end on a small spec, its file, and its one-line input errors."""

from __future__ import annotations

import json

import pytest

from tdabench.cli import main
from tdabench.downstream.results import DOWNSTREAM_SCHEMA_VERSION, read_downstream
from tdabench.errors import TdabenchError

from gold_helpers import write_small_spec


def test_downstream_writes_a_versioned_file_with_every_check(tmp_path, capsys):
    spec = write_small_spec(tmp_path)
    args = ["downstream", "--task", str(spec), "--estimators", "grad-dot,grad-cos", "--ks", "1,5", "--n-test", "6",
            "--top-k", "3", "--horizon", "1", "--retrain", "--gold-instances", "40", "--out", str(tmp_path / "out"),
            "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    assert main(args) == 0
    assert "grad-dot" in capsys.readouterr().out
    payload = read_downstream(tmp_path / "out")
    assert payload["schema_version"] == DOWNSTREAM_SCHEMA_VERSION and payload["errors"] == {}
    checks = payload["checks"]
    assert checks["mislabel"]["task"]["name"] == "small-bc@noisy" and checks["mislabel"]["n_flipped"] == 4
    assert checks["mislabel"]["task"]["spec_hash"] != payload["task"]["spec_hash"]
    assert 0 <= checks["mislabel"]["estimators"]["grad-dot"]["auc"] <= 1
    assert "grad-cos" in checks["mislabel"]["not_applicable"]  # cos(g, g) = 1: no AUC
    for label in ("grad-dot", "grad-cos"):
        assert -1 <= checks["randomization"][label]["mean"] <= 1
        assert 3 <= checks["cardinality"][label]["distinct"] <= 18
        assert len(checks["brittleness"]["estimators"][label]["share"]) == 2
        assert len(checks["brittleness"]["estimators"][label]["retrained"]["share"]) == 2
    assert len(checks["brittleness"]["random"]["retrained"]["smallest_k"]) == len(checks["brittleness"]["test_idx"])
    assert [g["horizon"] for g in checks["mislabel"]["gold"]] == [1, 3]
    # another schema version is refused on reading
    path = tmp_path / "out" / "downstream.json"
    path.write_text(json.dumps({**payload, "schema_version": 99}))
    with pytest.raises(TdabenchError, match="schema version 99"):
        read_downstream(path)


@pytest.mark.parametrize("extra, message", [
    (["--checks", "mislabel,nonsense"], "unknown check 'nonsense'"),
    (["--ks", "5,1"], "strictly increasing"),
    (["--ks", "1,500"], "training instances"),
    (["--noise", "1.5"], "noise"),
    (["--estimators", "grad-dott"], "did you mean 'grad-dot'"),
    (["--checks", "shortcut"], "shortcut needs an image task"),
    (["--checks", "mislabel", "--retrain"], "retrain applies to the brittleness check"),
    (["--shortcut", "0"], "shortcut must lie in (0, 1]"),
    (["--retrain", "--ks", "1,5", "--retrain-budget", "1000"], "--retrain would train"),
    (["--retrain-budget", "0"], "retrain_budget must be a positive integer"),
])
def test_bad_input_is_one_line_exit_2_before_any_training(tmp_path, capsys, extra, message):
    spec = write_small_spec(tmp_path)
    cache = tmp_path / "cache"
    code = main(["downstream", "--task", str(spec), "--cache-dir", str(cache), "--out", str(tmp_path / "o"),
                 "--no-progress", *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (cache / "final_models").exists()  # nothing was trained


def test_mislabel_on_a_regression_task_is_refused(tmp_path, capsys):
    assert main(["downstream", "--task", "diabetes-mlp", "--checks", "mislabel", "--cache-dir", str(tmp_path),
                 "--out", str(tmp_path / "o")]) == 2
    assert "classification" in capsys.readouterr().err
