"""The cache key of the frozen MiniLM features: stable when spec fields are added, new when data change."""

import dataclasses
from pathlib import Path

from tdabench.task.catalog import find_spec
from tdabench.task.frozen import _entry, _settings
from tdabench.task.spec import _ADDED_FIELDS


def test_added_data_fields_at_their_defaults_leave_the_features_key_alone():
    spec = find_spec("rt-minilm")
    data = _settings(spec)["data"]
    defaults = {f.name: f.default for f in dataclasses.fields(spec.data)}
    for name in _ADDED_FIELDS["data"]:
        if getattr(spec.data, name) == defaults[name]:
            assert name not in data, name
    assert data["tokenizer"] == "minilm"  # differs from its default, so it stays


def test_a_changed_data_field_changes_the_features_key():
    spec = find_spec("rt-minilm")
    noisy = dataclasses.replace(spec, data=dataclasses.replace(spec.data, label_noise=0.1))
    assert _entry(spec, Path("/c")) != _entry(noisy, Path("/c"))
    assert _entry(spec, Path("/c")) == _entry(find_spec("rt-minilm"), Path("/c"))
