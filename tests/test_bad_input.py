"""One table of bad inputs: every one exits with code 2 and one line on stderr, no traceback, before
anything is trained (the cache stays empty) and within seconds.

The table runs `tdabench.cli.main` in this process (fast); `test_cli.py` runs a few of the same
cases through a real subprocess.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from gold_helpers import write_small_spec
from tdabench.cli import main

# (name, arguments, text the one-line message must contain). {tmp} is a fresh folder per case,
# holding `good.yaml` (a small valid spec) and the files made by `make_files`.
COMPARE = [
    ("unknown task", ["--task", "no-such-task"], "valid tasks: breast-cancer-logreg"),
    ("malformed device", ["--device", "gpu"], "device must be one of auto, cpu, cuda, cuda:K"),
    ("absent CUDA device", ["--device", "cuda:7"], "cuda:7"),
    ("float32 beyond its measured bound", ["--dtype", "float32"],
     "float32 changes breast-cancer-mlp's per-horizon Pearson by up to"),
    ("unmeasured dtype", ["--task", "digits-mlp", "--dtype", "float32"],
     "has not been shown to reproduce its agreement figures"),
    ("float32 on a copy of a measured task", ["--task", "{tmp}/breast-cancer-mlp.yaml", "--dtype", "float32"],
     "has not been shown to reproduce its agreement figures"),
    ("float32 with retraining", ["--task", "diabetes-mlp", "--dtype", "float32", "--retraining", "loo"],
     "measured on the removal gold standard and the estimators only"),
    ("float64 on a float32 task", ["--task", "{tmp}/f32.yaml", "--dtype", "float64"],
     "only float32 in place of float64 has been measured"),
    ("unknown variant", ["--task", "mnist-cnn@no-such-variant"], "no-such-variant"),
    ("unknown estimator", ["--estimators", "no-such-estimator"], "valid estimators:"),
    ("near-miss estimator", ["--estimators", "grad-dott"], "valid estimators:"),
    ("unknown parameter", ["--estimators", "grad-dot(no_such_param=1)"], "no_such_param"),
    ("malformed estimator list", ["--estimators", "grad-dot(("], "unbalanced parentheses"),
    ("estimator listed twice", ["--estimators", "grad-dot,grad-dot"], "listed twice"),
    ("negative damping", ["--estimators", "if-explicit(damping=-1)"], "'damping' must be a finite number >= 0"),
    ("unknown curvature", ["--estimators", "if-cg(curvature=diagonal)"], "'curvature'"),
    ("zero CG iterations", ["--estimators", "if-cg(max_iter=0)"], "'max_iter' must be a positive integer"),
    ("zero LiSSA depth", ["--estimators", "if-lissa(depth=0)"], "'depth' must be a positive integer"),
    ("negative LiSSA seed", ["--estimators", "if-lissa(seed=-1)"], "'seed'"),
    ("Arnoldi rank above its iterations", ["--estimators", "if-arnoldi(rank=30,n_iterations=20)"], "'rank'"),
    ("zero projection dimension", ["--estimators", "trak(proj_dim=0)"], "'proj_dim' must be a positive integer"),
    ("horizon response steps", ["--estimators", "if-lissa-horizon(steps=-1)"], "'steps'"),
    ("damping_relative not a bool", ["--estimators", "datainf(damping_relative=maybe)"], "'damping_relative'"),
    ("non-finite damping", ["--estimators", "kfac(damping=nan)"], "'damping'"),
    ("zero batch size", ["--estimators", "grad-dot(batch_size=0)"], "'batch_size' must be a positive integer"),
    ("zero test points", ["--n-test", "0"], "n_test must be a positive integer"),
    ("negative test points", ["--n-test", "-3"], "n_test must be a positive integer"),
    ("zero training instances", ["--n-train", "0"], "n_train must be a positive integer"),
    ("negative training instances", ["--n-train", "-1"], "n_train must be a positive integer"),
    ("impossible training instances", ["--n-train", "100000"], "cannot evaluate 100000 training instances"),
    ("impossible test points", ["--n-test", "100000"], "cannot evaluate 100000 test points"),
    ("zero seeds", ["--seeds", "0"], "seeds must be a positive integer"),
    ("seeds not a number", ["--seeds", "many"], "argument --seeds"),
    ("zero horizon", ["--horizons", "0,1"], "horizons must be positive"),
    ("decreasing horizons", ["--horizons", "5,2"], "strictly increasing"),
    ("repeated horizon", ["--horizons", "2,2"], "strictly increasing"),
    ("horizons not numbers", ["--horizons", "a,b"], "argument --horizons"),
    ("unknown mode", ["--mode", "sideways"], "argument --mode"),
    ("epsilon above 1", ["--mode", "downweight", "--epsilon", "2"], "epsilon must be in (0, 1]"),
    ("zero epsilon", ["--mode", "downweight", "--epsilon", "0"], "epsilon must be in (0, 1]"),
    ("negative epsilon", ["--epsilon", "-0.5"], "epsilon must be in (0, 1]"),
    ("epsilon without down-weighting", ["--epsilon", "0.5"], "--epsilon goes with --mode downweight"),
    ("unknown target", ["--target", "nonsense"], "target"),
    ("logit of a class that does not exist", ["--target", "logit:99"], "logit:99"),
    ("probe of an unknown layer", ["--task", "{tmp}/probe.yaml", "--target", "probe:no.such"], "no.such"),
    ("zero chunk size", ["--chunk-size", "0"], "chunk_size must be a positive integer"),
    ("unknown retraining truth", ["--retraining", "foo"], "valid retraining ground truths: lds, loo"),
    ("retraining truth twice", ["--retraining", "loo,loo"], "listed twice"),
    ("zero retraining seeds", ["--retraining", "loo", "--retraining-seeds", "0"], "retraining seeds"),
    ("zero LDS subsets", ["--retraining", "lds", "--lds-subsets", "0"], "subsets"),
    ("zero final models", ["--final-models", "0"], "final_models must be a positive integer"),
    ("unknown metric", ["--metric", "accuracy"], "unknown metric 'accuracy'"),
    ("unknown executor", ["--executor", "dask"], "valid executors: local, ray"),
    ("Ray address without the Ray executor", ["--ray-address", "127.0.0.1:6379"],
     "--ray-address goes with --executor ray"),
    ("unreachable Ray address", ["--executor", "ray", "--ray-address", "127.0.0.1:1"],
     "cannot reach a Ray cluster at 127.0.0.1:1"),
    ("malformed Ray address", ["--executor", "ray", "--ray-address", "nowhere"], "not of the form host:port"),
    ("zero threads per unit", ["--unit-threads", "0"], "must be a positive integer"),
    ("output folder that cannot be created", ["--out", "/proc/tdabench-x"], "cannot write to /proc/tdabench-x"),
    ("output path that is a file", ["--out", "{tmp}/file.txt"], "file.txt"),
    ("malformed spec", ["--task", "{tmp}/bad_lr.yaml"], "field 'training.lr': expected a number"),
    ("unknown spec field", ["--task", "{tmp}/extra.yaml"], "no_such_field"),
    ("spec that is not YAML", ["--task", "{tmp}/binary.yaml"], "binary.yaml"),
    ("spec that is a folder", ["--task", "{tmp}/folder.yaml"], "folder.yaml"),
    ("spec that is a list", ["--task", "{tmp}/list.yaml"], "list.yaml"),
    ("missing spec file", ["--task", "{tmp}/missing.yaml"], "missing.yaml"),
]

LEADERBOARD = [
    ("missing results folder", ["--results", "/no/such/folder"], "/no/such/folder"),
    ("results file that is not JSON", ["--results", "{tmp}/not_json/results.json"], "results.json"),
    ("results of another schema version", ["--results", "{tmp}/schema99/results.json"], "schema_version"),
    ("rebuild-only with results", ["--rebuild-only", "--results", "{tmp}"], "--rebuild-only"),
    ("tasks without a suite", ["--tasks", "a", "--rebuild-only"], "--tasks selects suite entries"),
    ("nothing to build from", [], "give --results FILES, --suite FILE or --rebuild-only"),
    ("missing suite", ["--suite", "{tmp}/no-suite.yaml"], "no-suite.yaml"),
    ("unknown leaderboard executor", ["--executor", "dask", "--rebuild-only"], "valid executors: local, ray"),
    ("executor without a suite", ["--executor", "ray", "--rebuild-only"], "they go with --suite"),
    ("unreachable Ray address for a suite", ["--suite", "{tmp}/suite.yaml", "--executor", "ray", "--ray-address",
                                             "127.0.0.1:1"], "cannot reach a Ray cluster"),
    ("unknown leaderboard metric", ["--metric", "accuracy", "--rebuild-only"], "accuracy"),
    ("leaderboard folder that cannot be written", ["--out", "/proc/tdabench-x", "--rebuild-only"],
     "/proc/tdabench-x"),
]


def make_files(tmp: Path) -> None:
    """The spec and results files the table refers to."""
    write_small_spec(tmp, "bad_lr", **{"training.lr": "fast"})
    write_small_spec(tmp, "probe", **{"model.hidden": [8]})
    write_small_spec(tmp, "f32", dtype="float32")
    write_small_spec(tmp, "breast-cancer-mlp")  # the measured task's name on other settings
    extra = yaml.safe_load(write_small_spec(tmp, "extra").read_text())
    extra["no_such_field"] = 1
    (tmp / "extra.yaml").write_text(yaml.safe_dump(extra))
    (tmp / "binary.yaml").write_bytes(b"\x00\xff\xfe: [unclosed\n\t- {")
    (tmp / "folder.yaml").mkdir()
    (tmp / "list.yaml").write_text("- 1\n- 2\n")
    (tmp / "file.txt").write_text("not a folder\n")
    (tmp / "suite.yaml").write_text("tasks:\n  - {task: breast-cancer-mlp, seeds: 2, estimators: [grad-dot]}\n")
    (tmp / "not_json").mkdir()
    (tmp / "not_json" / "results.json").write_text("{ this is not json")
    (tmp / "schema99").mkdir()
    (tmp / "schema99" / "results.json").write_text(json.dumps({"schema_version": 99}))


CASES = [pytest.param(["compare", *args] + ([] if "--out" in args else ["--out", "{tmp}/out"]), needle, id=name)
         for name, args, needle in COMPARE]
CASES += [pytest.param(["leaderboard", *args] + ([] if "--out" in args else ["--out", "{tmp}/board"]), needle,
                       id=name) for name, args, needle in LEADERBOARD]


@pytest.mark.parametrize("args, needle", CASES)
def test_bad_input_is_one_line_exit_2_and_trains_nothing(args, needle, tmp_path, monkeypatch, capsys):
    make_files(tmp_path)
    cache = tmp_path / "cache"
    monkeypatch.setenv("TDABENCH_CACHE", str(cache))
    start = time.perf_counter()
    code = main([a.replace("{tmp}", str(tmp_path)) for a in args] + (["--no-progress"]))
    seconds = time.perf_counter() - start
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("tdabench: error: "), err
    assert needle.replace("{tmp}", str(tmp_path)) in lines[0], lines[0]
    trained = [p for p in cache.rglob("*.safetensors")] if cache.exists() else []
    assert not trained, f"trained before refusing: {trained}"
    assert seconds < 20, f"took {seconds:.1f} s to refuse"
