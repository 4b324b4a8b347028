"""The README's first command, `make compare` = `tdabench compare` with every default (task
breast-cancer-mlp, 20,738 parameters, every native estimator), at reduced seeds and horizons, in a
subprocess whose environment lacks OPENBLAS_CORETYPE: it must exit 0 with no estimator errors.
Slow (about 3 minutes on 2 cores): `make test-slow`, or `pytest -m slow tests/test_default_command.py`."""

from __future__ import annotations

import json

import pytest

from subprocess_helpers import run_python
from tdabench.compare import default_requests


@pytest.mark.slow
def test_default_compare_exits_0_without_openblas_coretype(tmp_path):
    out = tmp_path / "out"
    proc = run_python(["-m", "tdabench.cli", "compare", "--seeds", "2", "--horizons", "1,5", "--out", str(out),
                       "--no-progress"], timeout=1800, TDABENCH_CACHE=str(tmp_path / "cache"))
    assert proc.returncode == 0, (proc.returncode, proc.stdout[-2000:], proc.stderr[-3000:])
    results = json.loads((out / "results.json").read_text())
    assert results["errors"] == {}
    assert results["task"]["name"] == "breast-cancer-mlp" and results["task"]["n_params"] == 20738
    assert {r["estimator"] for r in results["records"]} == {r.label for r in default_requests()}
    assert results["cost"]["estimators"]["if-explicit"]["peak_mem_mb"] > 3000, "the 20,738² matrix was factorised"
