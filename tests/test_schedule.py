"""The shared data order: removal shifts later batches; down-weighting keeps them."""

from __future__ import annotations

import numpy as np

from tdabench.task.schedule import epoch_batches, epoch_permutation


def _batches(perm, removed, size, mode="removal", eps=1.0):
    return list(epoch_batches(perm, np.array(removed), size, mode, eps))


def test_permutation_depends_on_seed_epoch_and_stream():
    a = epoch_permutation(50, 0, 0)
    assert sorted(a) == list(range(50))
    assert not np.array_equal(a, epoch_permutation(50, 1, 0))
    assert not np.array_equal(a, epoch_permutation(50, 0, 1))
    assert not np.array_equal(a, epoch_permutation(50, 0, 0, stream=1))
    np.testing.assert_array_equal(a, epoch_permutation(50, 0, 0))


def test_removal_is_the_same_order_minus_the_instance():
    perm = np.array([4, 2, 0, 3, 1, 5, 6])
    batches = _batches(perm, [-1, 3], 3)
    seen_ref = np.concatenate([b.index[0][b.mask[0] > 0] for b in batches])
    seen_rm = np.concatenate([b.index[1][b.mask[1] > 0] for b in batches])
    np.testing.assert_array_equal(seen_ref, perm)
    np.testing.assert_array_equal(seen_rm, [4, 2, 0, 1, 5, 6])
    np.testing.assert_array_equal(batches[0].index[1], [4, 2, 0])  # before the removed one: unchanged
    np.testing.assert_array_equal(batches[1].index[1], [1, 5, 6])  # after: shifted by one
    assert batches[2].active.tolist() == [True, False]  # the removal copy has no third batch


def test_downweight_keeps_batches_and_scales_one_weight():
    perm = np.array([4, 2, 0, 3, 1])
    batches = _batches(perm, [-1, 3], 2, mode="downweight", eps=0.25)
    for b in batches:
        np.testing.assert_array_equal(b.index[0], b.index[1])
    weights = np.concatenate([b.weight[1] for b in batches])
    np.testing.assert_allclose(weights, [1, 1, 1, 0.75, 1, 0])  # last entry is padding
    np.testing.assert_allclose(np.concatenate([b.mask[1] for b in batches]), [1, 1, 1, 1, 1, 0])
