"""`--dtype`: a context cast to float32, the gold standard's cache kept apart per dtype, and float32
reproducing float64's agreement figures where tdabench/precision.py allows it (the refusals are
in test_bad_input.py's table)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tdabench.compare import CompareOptions, run_compare
from tdabench.precision import FLOAT32_CHANGE, PEARSON_BOUND, PRECISION_RESULT
from tdabench.selection import EstimatorRequest
from tdabench.task import find_spec
from tdabench.task.device import context_as
from tdabench.truths.further import config_from_spec, gold_entry

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = sorted(name for name, m in FLOAT32_CHANGE.items() if m.max_change <= PEARSON_BOUND)


def test_context_as_casts_real_values_and_keeps_labels(tiny_mlp_context):
    ctx = tiny_mlp_context
    narrow = context_as(ctx, torch.float32)
    assert narrow.dtype == torch.float32 and ctx.dtype == torch.float64, "the original is untouched"
    assert all(v.dtype == torch.float32 for v in narrow.params.values())
    assert narrow.train.x.dtype == torch.float32 and narrow.train.y.dtype == ctx.train.y.dtype == torch.int64
    assert all(c.params[k].dtype == torch.float32 for c in narrow.checkpoints for k in c.params)
    assert all(p.dtype == torch.float32 for p in narrow.model.parameters())
    assert torch.equal(narrow.params["0.weight"], ctx.params["0.weight"].float()), "the same model, rounded"
    assert narrow.loss(narrow.params, narrow.train.x[:4], narrow.train.y[:4]).dtype == torch.float32
    assert context_as(ctx, torch.float64) is ctx


def test_gold_cache_is_kept_apart_per_dtype(tiny_mlp_context, tmp_path):
    ctx = dataclasses.replace(tiny_mlp_context, cache_dir=tmp_path)
    cfg = config_from_spec(ctx.spec.gold_standard, len(ctx.train), len(ctx.test), horizons=(1,),
                           n_train_evaluated=3, n_test_evaluated=2)
    spec_hash = ctx.spec.spec_hash
    assert cfg.key(spec_hash) == cfg.key(spec_hash, None), "caches made in the spec's dtype stay valid"
    assert "dtype" not in cfg.settings(spec_hash)
    assert gold_entry(context_as(ctx, torch.float32), cfg) != gold_entry(ctx, cfg)


@pytest.mark.skipif(not ALLOWED, reason="float32 is refused on every task (tdabench/precision.py)")
def test_float32_reproduces_float64_agreement_where_allowed(tmp_path):
    """End to end through `run_compare` on the first allowed task, small: every per-horizon Pearson
    of float32 within PEARSON_BOUND of float64's, both computed here, from one final model and two
    gold-standard cache entries."""
    task = ALLOWED[0]
    assert find_spec(task).dtype == "float64"
    base = CompareOptions(task=task, estimators=(EstimatorRequest("grad-dot"), EstimatorRequest("if-explicit")),
                          seeds=1, horizons=(1, 5), n_train=12, n_test=6, cache_dir=tmp_path, progress=False)
    runs = {dtype: run_compare(dataclasses.replace(base, dtype=dtype)) for dtype in (None, "float32")}
    assert runs[None].task.details["dtype"] == "float64" and runs["float32"].task.details["dtype"] == "float32"
    assert not runs[None].errors and not runs["float32"].errors
    assert len(list(tmp_path.glob("gold/*/settings.json"))) == 2, "one gold-standard entry per dtype"
    pearson = {dtype: {(r.estimator, r.horizon): r.mean for r in results.records if r.metric == "pearson"}
               for dtype, results in runs.items()}
    assert pearson[None].keys() == pearson["float32"].keys() and len(pearson[None]) == 4
    changes = np.array([pearson["float32"][k] - pearson[None][k] for k in pearson[None]])
    assert np.all(np.abs(changes) <= PEARSON_BOUND), changes
    assert np.any(changes != 0), "the float32 run computed in float32, not from the float64 cache"


def test_allow_list_is_the_committed_measurement():
    """FLOAT32_CHANGE copies benchmarks/results/precision.json, for the specs shipped today."""
    measured = json.loads((ROOT / PRECISION_RESULT).read_text())["tasks"]
    assert measured.keys() == FLOAT32_CHANGE.keys()
    for name, entry in measured.items():
        assert FLOAT32_CHANGE[name].spec_hash == entry["spec_hash"] == find_spec(name).spec_hash, name
        assert FLOAT32_CHANGE[name].max_change == pytest.approx(entry["max_abs_difference"], abs=5e-4), name
        assert (FLOAT32_CHANGE[name].max_change <= PEARSON_BOUND) == entry["within_bound"], name

