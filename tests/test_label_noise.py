"""Label noise (`data.label_noise`, task/noise.py): a seeded flip of training labels."""

from __future__ import annotations

import numpy as np
import pytest

from tdabench.errors import TdabenchError
from tdabench.task import find_spec, parse_spec
from tdabench.task.context import load_task_data
from tdabench.task.noise import flip_labels

from gold_helpers import spec_dict


def test_flip_labels_changes_exactly_the_drawn_fraction_to_other_classes():
    y = np.arange(200) % 3
    noisy, flipped = flip_labels(y, 3, 0.1, seed=4)
    assert len(flipped) == 20 and len(set(flipped.tolist())) == 20
    changed = np.flatnonzero(noisy != y)
    np.testing.assert_array_equal(changed, flipped)
    assert set(noisy[flipped].tolist()) <= {0, 1, 2}
    again, same = flip_labels(y, 3, 0.1, seed=4)
    np.testing.assert_array_equal(again, noisy)
    assert not np.array_equal(flip_labels(y, 3, 0.1, seed=5)[1], flipped)


def test_no_noise_keeps_every_label_and_the_spec_hash():
    y = np.arange(10) % 2
    noisy, flipped = flip_labels(y, 2, 0.0, seed=0)
    np.testing.assert_array_equal(noisy, y)
    assert flipped.size == 0
    base = parse_spec(spec_dict())
    assert base.spec_hash == find_spec("breast-cancer-mlp").spec_hash
    assert parse_spec(spec_dict(**{"data.label_noise": 0.1})).spec_hash != base.spec_hash
    assert (parse_spec(spec_dict(**{"data.label_noise": 0.1, "data.label_noise_seed": 1})).spec_hash
            != parse_spec(spec_dict(**{"data.label_noise": 0.1})).spec_hash)


def test_noisy_data_flips_only_training_labels_and_records_them():
    clean = load_task_data(parse_spec(spec_dict()))
    noisy = load_task_data(parse_spec(spec_dict(**{"data.label_noise": 0.1})))
    changed = np.flatnonzero((clean.train.y != noisy.train.y).numpy())
    assert changed.tolist() == list(noisy.flipped) and len(changed) == round(0.1 * len(clean.train))
    assert bool((clean.test.y == noisy.test.y).all()) and clean.flipped == ()


def test_label_noise_is_refused_outside_0_1_and_for_regression():
    with pytest.raises(TdabenchError, match="label_noise"):
        parse_spec(spec_dict(**{"data.label_noise": 1.0}))
    with pytest.raises(TdabenchError, match="classification"):
        load_task_data(parse_spec(spec_dict("diabetes-mlp", **{"data.label_noise": 0.1})))
