"""The planted shortcut of an image task's training split (tdabench/task/shortcut.py, task/data.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from tdabench.errors import TdabenchError
from tdabench.task import find_spec, parse_spec
from tdabench.task.context import load_task_data
from tdabench.task.shortcut import corner_mask, plant_shortcut, shortcut_indices
from tdabench.task.spec import canonical_settings

from gold_helpers import spec_dict


def test_the_corner_mask_is_the_bottom_right_square_of_every_channel():
    assert list(np.flatnonzero(corner_mask(64, None, 2))) == [6 * 8 + 6, 6 * 8 + 7, 7 * 8 + 6, 7 * 8 + 7]
    assert list(np.flatnonzero(corner_mask(2 * 16, (2, 4, 4), 1))) == [15, 31]
    with pytest.raises(ValueError, match="square"):
        corner_mask(30, None, 2)
    with pytest.raises(ValueError, match="does not fit"):
        corner_mask(16, (1, 4, 4), 5)


def test_the_patched_images_are_a_seeded_share_of_one_class():
    y = np.array([0, 1, 2] * 20)  # 20 images of each class
    got = shortcut_indices(y, 1, 0.3, seed=5)
    assert len(got) == 6 and np.all(y[got] == 1) and len(set(got)) == 6
    np.testing.assert_array_equal(got, shortcut_indices(y, 1, 0.3, seed=5))
    assert not np.array_equal(got, shortcut_indices(y, 1, 0.3, seed=6))
    assert len(shortcut_indices(y, 2, 1.0, seed=0)) == 20


def test_planting_changes_only_the_patch_of_the_planted_rows():
    x = np.arange(3 * 16, dtype=float).reshape(3, 1, 4, 4)
    mask = corner_mask(16, (1, 4, 4), 2)
    out = plant_shortcut(x, np.array([1]), mask, 99.0)
    assert out.shape == x.shape
    changed = (out != x).reshape(3, 16)
    assert changed[1].tolist() == mask.tolist() and not changed[[0, 2]].any()
    assert np.all(out.reshape(3, 16)[1, mask] == 99.0)


def test_a_shortcut_spec_has_its_own_hash_and_the_defaults_change_none():
    plain = parse_spec(spec_dict("breast-cancer-mlp"))
    defaults = parse_spec(spec_dict(**{"data.shortcut_fraction": 0.0, "data.shortcut_size": 2}))
    planted = parse_spec(spec_dict(**{"data.shortcut_fraction": 0.3}))
    assert defaults.spec_hash == plain.spec_hash == find_spec("breast-cancer-mlp").spec_hash
    assert "shortcut_fraction" not in canonical_settings(plain.settings_dict())["data"]  # caches stay valid
    assert canonical_settings(planted.settings_dict())["data"]["shortcut_fraction"] == 0.3
    assert planted.spec_hash != plain.spec_hash


def test_the_digits_training_split_carries_the_patch_and_the_test_split_does_not():
    spec = find_spec("digits-mlp@small")
    planted_spec = dataclasses.replace(spec, data=dataclasses.replace(spec.data, shortcut_fraction=0.3,
                                                                      shortcut_class=3))
    clean, data = load_task_data(spec), load_task_data(planted_spec)
    planted = np.array(data.shortcut)
    n_class = int((clean.train.y == 3).sum())
    assert len(planted) == round(0.3 * n_class) and torch.all(data.train.y[planted] == 3)
    mask = torch.as_tensor(corner_mask(64, None, 2))
    x, x0 = data.train.x, clean.train.x
    patch = x[planted][:, mask]
    assert torch.all(patch == patch[0]) and torch.all(patch[0] > x[:, mask].median())  # one bright value
    assert torch.equal(x[:, ~mask], x0[:, ~mask])  # outside the patch: as without it
    assert torch.equal(data.test.x[:, ~mask], clean.test.x[:, ~mask]) and torch.equal(data.test.y, clean.test.y)
    assert clean.shortcut == ()


def test_a_shortcut_on_tabular_data_is_refused():
    spec = parse_spec(spec_dict("breast-cancer-mlp", **{"data.shortcut_fraction": 0.3}))
    with pytest.raises(TdabenchError, match="square image"):
        load_task_data(spec)
