"""Task specs: every built-in loads; malformed ones name the file, the field and what was expected."""

from __future__ import annotations

import pytest
import yaml

from gold_helpers import spec_dict
from tdabench.errors import SpecError, UnknownNameError
from tdabench.task import available_tasks, find_spec, load_spec

BUILTIN = ["breast-cancer-mlp", "diabetes-mlp", "breast-cancer-logreg"]


def test_builtin_tasks_load_and_hash_stably():
    tasks = available_tasks()
    assert set(BUILTIN) <= set(tasks)
    for name in BUILTIN:
        spec = load_spec(tasks[name])
        assert spec.name == name and spec.version >= 1
        assert spec.spec_hash == find_spec(name).spec_hash
        assert spec.spec_hash.startswith("sha256:") and len(spec.spec_hash) == 71


def test_hash_ignores_description_but_not_settings(tmp_path):
    def hash_of(raw):
        path = tmp_path / "t.yaml"
        path.write_text(yaml.safe_dump(raw))
        return load_spec(path).spec_hash

    base = hash_of(spec_dict())
    assert hash_of(spec_dict(description="other words")) == base
    assert hash_of(spec_dict(**{"training.lr": 0.02})) != base


@pytest.mark.parametrize("overrides,field,expected", [
    ({"model.hidden": "wide"}, "model.hidden", "a list of"),
    ({"training.lr": -1}, "training.lr", "a positive number"),
    ({"training.optimizer": "rmsprop"}, "training.optimizer", "one of 'sgd', 'adam', 'adamw'"),
    ({"gold_standard.horizons": [0, 1]}, "gold_standard.horizons", "positive integers"),
    ({"gold_standard.horizons": [5, 2]}, "gold_standard.horizons", "strictly increasing"),
    ({"gold_standard.further_training.batch_size": 1.5}, "gold_standard.further_training.batch_size", "an integer"),
    ({"data.test_fraction": 2}, "data.test_fraction", "(0, 1)"),
    ({"model.depth": 3}, "model.depth", "no such field"),
    ({"dtype": "float16"}, "dtype", "'float32', 'float64'"),
])
def test_malformed_spec_names_file_field_and_expectation(tmp_path, overrides, field, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec_dict(**overrides)))
    with pytest.raises(SpecError) as err:
        load_spec(path)
    message = str(err.value)
    assert message.startswith(str(path)) and f"field '{field}'" in message and expected in message


def test_missing_required_field_and_bad_yaml(tmp_path):
    raw = spec_dict()
    del raw["model"]
    path = tmp_path / "missing.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SpecError, match="field 'model': expected a value"):
        load_spec(path)
    path.write_text("name: [unclosed")
    with pytest.raises(SpecError, match="valid YAML"):
        load_spec(path)


def test_unknown_task_lists_the_valid_ones():
    with pytest.raises(UnknownNameError) as err:
        find_spec("no-such-task")
    assert all(name in str(err.value) for name in BUILTIN)
