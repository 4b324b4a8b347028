"""The store of work units: durable atomic writes, resume, and recovery from unreadable files."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from gold_helpers import in_cache, small_context
from tdabench.errors import CacheMismatchError
from tdabench.storage import (CorruptFileError, UnitStore, atomic_save_tensors, atomic_write_bytes, load_tensors,
                              run_units)
from tdabench.task.spec import OptimizerSpec
from tdabench.truths.further import GoldConfig, gold_entry, run_gold_standard


@pytest.fixture(scope="module")
def mlp_ctx(tmp_path_factory):
    return small_context(tmp_path_factory.mktemp("cache"))


def test_writes_are_fsynced_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    """Each write: fsync of the temporary file, then os.replace, then fsync of the folder."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: events.append("fsync") or real_fsync(fd))
    monkeypatch.setattr(os, "replace", lambda a, b: events.append("replace") or real_replace(a, b))
    atomic_save_tensors(tmp_path / "t.safetensors", {"x": torch.arange(3.0)})
    atomic_write_bytes(tmp_path / "b.bin", b"data")
    assert events == ["fsync", "replace", "fsync"] * 2
    assert torch.equal(load_tensors(tmp_path / "t.safetensors")["x"], torch.arange(3.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.bin", "t.safetensors"]


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage"])
def test_unreadable_tensor_file_is_a_clear_error(tmp_path, damage):
    path = tmp_path / "t.safetensors"
    atomic_save_tensors(path, {"x": torch.zeros(100)})
    data = path.read_bytes()
    path.write_bytes({"empty": b"", "truncated": data[: len(data) // 2], "garbage": b"\x07" * 64}[damage])
    with pytest.raises(CorruptFileError, match="cannot read .*t.safetensors"):
        load_tensors(path)


def test_unit_lacking_a_tensor_is_recomputed(tmp_path, capsys):
    store = UnitStore(tmp_path / "entry", {"a": 1}, keys=("x",))
    run_units(store, ["u"], lambda u: {"y": torch.ones(1)})  # written without "x"
    done, _ = run_units(store, ["u"], lambda u: {"x": torch.ones(2)})
    assert torch.equal(done["u"]["x"], torch.ones(2))
    assert "lacks the tensors x" in capsys.readouterr().err


def test_unreadable_settings_file_is_refused(tmp_path):
    store = UnitStore(tmp_path / "entry", {"a": 1}).open()
    (store.entry / "settings.json").write_text("{ not json")
    with pytest.raises(CacheMismatchError, match="unreadable settings.json"):
        store.open()


def test_truncated_gold_seed_is_moved_aside_and_recomputed(tmp_path, mlp_ctx, capsys):
    """A seed file cut short (a crash while it was copied, a full disk) is never trusted: it is moved
    aside, recomputed, and the gold standard equals an undamaged run's."""
    cfg = GoldConfig(OptimizerSpec(lr=0.05, batch_size=8), train_idx=(0, 5), test_idx=(0, 1), horizons=(1, 2), seeds=2,
                     n_train=len(mlp_ctx.train))
    first = run_gold_standard(in_cache(mlp_ctx, tmp_path), cfg, progress=False)
    seed_file = gold_entry(in_cache(mlp_ctx, tmp_path), cfg) / "seed_0001.safetensors"
    seed_file.write_bytes(seed_file.read_bytes()[:40])
    computed = []
    again = run_gold_standard(in_cache(mlp_ctx, tmp_path), cfg, progress=False, after_seed=computed.append)
    assert computed == [1]
    np.testing.assert_array_equal(again.per_seed, first.per_seed)
    assert seed_file.with_name("seed_0001.safetensors.corrupt").exists()
    assert "seed_0001.safetensors" in capsys.readouterr().err


def test_corrupt_final_model_is_trained_again(tmp_path, capsys):
    first = small_context(tmp_path, **{"training.checkpoint_epochs": [1, 3]})
    entry = next((tmp_path / "final_models").iterdir())
    (entry / "model.safetensors").write_bytes(b"")
    (entry / "checkpoint_0001.safetensors").write_bytes(b"\x00" * 10)
    again = small_context(tmp_path, **{"training.checkpoint_epochs": [1, 3]})
    for name, value in first.params.items():
        assert torch.equal(value, again.params[name])
    assert [c.epoch for c in again.checkpoints] == [1, 3]
    for a, b in zip(first.checkpoints, again.checkpoints):
        assert all(torch.equal(a.params[k], b.params[k]) for k in a.params)
    assert "model.safetensors" in capsys.readouterr().err
    assert json.loads((entry / "settings.json").read_text())["spec_hash"] == first.spec.spec_hash


def test_final_model_cached_by_an_older_version_is_reused_and_other_settings_refused(tmp_path):
    """A settings.json written before a spec field was added (here data.label_noise, at its default)
    names the same task: it is reused, not refused; a real difference is still refused."""
    first = small_context(tmp_path)
    entry = next((tmp_path / "final_models").iterdir())
    stored = json.loads((entry / "settings.json").read_text())
    for name in ("label_noise", "label_noise_seed"):
        del stored["spec"]["data"][name]  # as an older tdabench wrote it
    (entry / "settings.json").write_text(json.dumps(stored))
    model_written = (entry / "model.safetensors").stat().st_mtime_ns
    again = small_context(tmp_path)
    assert (entry / "model.safetensors").stat().st_mtime_ns == model_written, "must not be trained again"
    assert all(torch.equal(value, again.params[name]) for name, value in first.params.items())
    stored["spec"]["data"]["label_noise"] = 0.2  # a setting that differs
    (entry / "settings.json").write_text(json.dumps(stored))
    with pytest.raises(CacheMismatchError, match="differing: spec"):
        small_context(tmp_path)
