"""Third-party estimators: a real package installed with pip, found through its entry point."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gold_helpers import write_small_spec

PLUGINS = Path(__file__).parent / "plugins"


def pip_install(package: Path, target: Path) -> None:
    """Install a copy of `package` (so the build leaves nothing in the source tree) into `target`."""
    source = target.parent / f"src-{package.name}"
    shutil.copytree(package, source, dirs_exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(source)], check=True, timeout=300,
                   capture_output=True)


def env_with(*paths: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), env.get("PYTHONPATH", "")])
    return env


def run_cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tdabench.cli", *args], capture_output=True, text=True,
                          env=env, timeout=600)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("plugin") / "site"
    pip_install(PLUGINS / "example", target)
    assert any(target.glob("tdabench_example_plugin-0.3.1.dist-info"))
    return target


def test_list_shows_the_plugin_and_its_distribution(installed):
    proc = run_cli(env_with(installed), "list", "--json")
    assert proc.returncode == 0, proc.stderr
    entry = {e["name"]: e for e in json.loads(proc.stdout)["estimators"]}["grad-dot-last-layer"]
    assert entry["kind"] == "plugin"
    assert (entry["distribution"], entry["version"]) == ("tdabench-example-plugin", "0.3.1")
    assert entry["target"] == "tdabench_example_plugin:LastLayerGradDot"
    assert "grad-dot-last-layer" not in run_cli(env_with(), "list").stdout  # absent when not installed


def test_compare_runs_the_plugin_and_records_its_source(installed, tmp_path):
    spec = write_small_spec(tmp_path)
    proc = run_cli(env_with(installed), "compare", "--task", str(spec), "--estimators",
                   "grad-dot,grad-dot-last-layer(n_tensors=4)", "--out", str(tmp_path / "out"), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["errors"] == {}
    records = [r for r in results["records"] if r["estimator"].startswith("grad-dot-last-layer")]
    assert len(records) == 2 * 3 and all(r["params"]["n_tensors"] == 4 for r in records)
    assert all(r["source"]["distribution"] == "tdabench-example-plugin" for r in records)
    assert all(r["source"]["version"] == "0.3.1" for r in records)
    assert all(r["source"] is None for r in results["records"] if r["estimator"] == "grad-dot")


def test_plugin_passes_check_estimator(installed, monkeypatch):
    monkeypatch.syspath_prepend(str(installed))
    from tdabench.testing import check_estimator
    from tdabench_example_plugin import LastLayerGradDot

    check_estimator(LastLayerGradDot())


def test_a_plugin_that_collides_with_a_builtin_is_an_error(installed, tmp_path):
    target = tmp_path / "site"
    pip_install(PLUGINS / "colliding", target)
    proc = run_cli(env_with(installed, target), "list")
    assert proc.returncode == 2
    message = proc.stderr.strip()
    assert message.startswith("tdabench: error:") and "grad-dot" in message and "tdabench-colliding-plugin" in message
    assert "valid estimators" in message or "grad-cos" in message


def test_a_plugin_that_is_not_an_estimator_is_refused(tmp_path):
    target = tmp_path / "site"
    pip_install(PLUGINS / "not-an-estimator", target)
    env = env_with(target)
    listing = run_cli(env, "list")
    assert listing.returncode == 0 and "not-an-estimator" in listing.stdout  # listing imports no plugin
    proc = run_cli(env, "compare", "--task", str(write_small_spec(tmp_path)), "--estimators", "not-an-estimator",
                   "--out", str(tmp_path / "out"), "--no-progress")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tdabench: error: estimator 'not-an-estimator' from entry point "
                                                   "'not-an-estimator = tdabench.estimators.base:clone'"), proc.stderr
    assert "(distribution tdabench-not-an-estimator-plugin 0.0.2) is not a tdabench Estimator subclass" in lines[0]
