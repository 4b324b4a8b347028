"""The command line end to end: list, compare (results.json as in docs/method.md), leaderboard, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gold_helpers import write_small_spec

BIN = Path(sys.executable).parent
NATIVE = {"grad-dot", "grad-cos", "tracin", "if-explicit", "if-cg", "if-lissa", "if-lissa-horizon", "if-arnoldi",
          "kfac", "ekfac", "datainf", "trak"}


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tdabench.cli", *args], capture_output=True, text=True,
                          env=env, timeout=600)


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """One small comparison with every built-in, shared by the checks below."""
    folder = tmp_path_factory.mktemp("compare")
    spec = write_small_spec(folder)
    proc = run_cli("compare", "--task", str(spec), "--out", str(folder / "out"), "--no-progress")
    return proc, folder / "out"


def test_list_shows_tasks_and_builtin_estimators():
    proc = subprocess.run([str(BIN / "tdabench"), "list", "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    listing = json.loads(proc.stdout)
    assert {"breast-cancer-mlp", "diabetes-mlp", "breast-cancer-logreg"} <= {t["name"] for t in listing["tasks"]}
    kinds = {e["name"]: e["kind"] for e in listing["estimators"]}
    assert {"grad-dot", "grad-cos", "if-explicit"} <= set(kinds)
    assert kinds["grad-dot"] == "built-in"
    uses = {e["name"]: e["uses"] for e in listing["estimators"]}
    assert uses["grad-dot"] == "final-model" and uses["if-lissa-horizon"] == "further-training-recipe"
    text = run_cli("list")
    assert text.returncode == 0 and "grad-dot" in text.stdout and "breast-cancer-mlp" in text.stdout
    where = {line.split()[0]: line.split()[1] for line in text.stdout.split("estimators:\n")[1].splitlines()}
    assert {n: w for n, w in where.items() if w == "adapter"}.keys() == {
        "tracin-captum", "if-dattri", "trak-traker", "ekfac-kronfluence"}  # by the class's `adapter_of`
    assert all(where[n] == "built-in" for n in NATIVE)
    assert "training checkpoints" in next(line for line in text.stdout.splitlines() if line.split()[:1] == ["tracin"])


def test_compare_writes_results_as_in_the_design(compared):
    proc, out = compared
    assert proc.returncode == 0, proc.stderr
    results = json.loads((out / "results.json").read_text())
    assert set(results) >= {"schema_version", "tdabench_version", "git_hash", "date", "task", "gold_standard",
                            "records", "cost", "errors"}
    assert results["schema_version"] == 1 and results["errors"] == {}
    assert results["task"]["name"] == "small-bc" and results["task"]["spec_hash"].startswith("sha256:")
    gold = results["gold_standard"]
    assert (gold["mode"], gold["seeds"], gold["horizons"], gold["horizon_unit"]) == ("removal", 2, [1, 3], "epoch")
    assert (gold["n_train_evaluated"], gold["n_test"], gold["centered"]) == (10, 8, False)
    assert {(c["horizon"], c["metric"]) for c in gold["noise_ceiling"]} == {
        (h, m) for h in (1, 3) for m in ("cosine", "pearson", "spearman")}
    estimators = {r["estimator"] for r in results["records"]}
    assert estimators == NATIVE, "the default is every native estimator, and no adapter"
    assert len(results["records"]) == len(NATIVE) * 2 * 3
    for record in results["records"]:
        assert -1 <= record["mean"] <= 1 and record["n_test"] + record["n_skipped"] == 8
    for name in estimators:
        cost = results["cost"]["estimators"][name]
        assert set(cost) == {"fit_s", "score_s", "peak_mem_mb", "scored_train_instances"}
        assert cost["scored_train_instances"] == 10, "without retraining, only the evaluated instances"
    assert results["cost"]["gold_standard_s"] > 0
    csv_lines = (out / "results.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + len(results["records"])
    assert "noise ceiling" in proc.stdout and "grad-dot" in proc.stdout


def test_compare_again_reuses_the_cached_gold_standard(compared, tmp_path):
    _, out = compared
    first = json.loads((out / "results.json").read_text())
    spec = out.parent / "small-bc.yaml"
    proc = run_cli("compare", "--task", str(spec), "--estimators", "grad-dot", "--out", str(tmp_path), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    again = json.loads((tmp_path / "results.json").read_text())
    assert again["cost"]["gold_standard_s"] < first["cost"]["gold_standard_s"]
    pick = lambda res: [(r["horizon"], r["metric"], r["mean"]) for r in res["records"] if r["estimator"] == "grad-dot"]
    assert pick(again) == pick(first)


def test_leaderboard_from_results(compared, tmp_path):
    _, out = compared
    proc = run_cli("leaderboard", "--results", str(out), "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    table = (tmp_path / "README.md").read_text()
    assert "small-bc" in table and "if-explicit" in table and "noise ceiling" in table
    assert (tmp_path / "leaderboard.csv").read_text().count("grad-dot") >= 2


@pytest.mark.parametrize("args,needle", [
    (["compare", "--task", "no-such-task"], "valid tasks: breast-cancer-logreg"),
    (["compare", "--estimators", "no-such-estimator"], "valid estimators:"),
    (["compare", "--estimators", "grad-dot(no_such_param=1)"], "no_such_param"),
    (["compare", "--n-train", "100000"], "cannot evaluate 100000 training instances"),
    (["compare", "--horizons", "0,1"], "horizons must be positive"),
    (["leaderboard", "--results", "/no/such/folder"], "/no/such/folder"),
])
def test_bad_input_is_one_line_and_exit_code_2(args, needle, tmp_path):
    proc = run_cli(*args, "--out", str(tmp_path)) if args[0] == "compare" else run_cli(*args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tdabench: error:") and needle in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_malformed_spec_is_one_line_and_exit_code_2(tmp_path):
    spec = write_small_spec(tmp_path, **{"training.lr": "fast"})
    proc = run_cli("compare", "--task", str(spec), "--out", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"tdabench: error: {spec}: field 'training.lr': expected a number (got 'fast')"
