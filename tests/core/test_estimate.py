"""QBER and gain estimation from disclosed samples."""

import numpy as np
import pytest

from qkdctl.core.errors import QkdInputError
from qkdctl.core.estimate import estimate
from qkdctl.core.sift import SiftCounts, SiftedKey, SiftResult


def _key(alice, bob, intensity):
    n = len(alice)
    return SiftedKey(np.arange(n, dtype=np.int64), np.asarray(alice, np.uint8),
                     np.asarray(bob, np.uint8), np.asarray(intensity, np.uint8))


def _result(z, x, detections=((10, 5, 1), (8, 4, 0)), pulses=((100, 50, 20), (100, 50, 0))):
    return SiftResult(z=z, x=x, counts=SiftCounts(0, 0, 0, 0, 0, 0),
                      detections=np.array(detections), pulses_sent=np.array(pulses))


def test_hand_case_disclose_x():
    z = _key([0, 1, 1, 0], [0, 1, 0, 0], [0, 0, 1, 2])
    x = _key([1, 1, 0, 0, 1], [1, 0, 0, 1, 1], [0, 0, 1, 1, 2])
    est = estimate(_result(z, x), np.random.default_rng(0), disclose_x=True)
    assert est.sampled.tolist() == [[0, 0, 0], [2, 2, 1]]
    assert est.errors.tolist() == [[0, 0, 0], [1, 1, 0]]
    np.testing.assert_allclose(est.qber[1], [0.5, 0.5, 0.0])
    assert np.isnan(est.qber[0]).all() and np.isnan(est.qber_basis[0])
    assert est.qber_basis[1] == pytest.approx(2 / 5)
    assert est.key_index[0].tolist() == [0, 1, 2, 3] and est.key_index[1].size == 0
    assert est.disclosed_index[1].tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(est.gain[0], [0.1, 0.1, 0.05])
    assert np.isnan(est.gain[1, 2])
    np.testing.assert_allclose(est.gain_intensity, [18 / 200, 9 / 100, 1 / 20])


def test_sample_fraction_partitions_and_estimates(rng):
    n = 200_000
    alice = rng.integers(0, 2, n)
    intensity = rng.integers(0, 3, n)
    flip = rng.random(n) < np.array([0.02, 0.05, 0.3])[intensity]
    z = _key(alice, alice ^ flip, intensity)
    x = _key(alice[:1000], alice[:1000], intensity[:1000])
    est = estimate(_result(z, x), rng, sample_fraction=0.1)
    for b, size in ((0, n), (1, 1000)):
        joined = np.concatenate([est.key_index[b], est.disclosed_index[b]])
        assert np.sort(joined).tolist() == list(range(size))
        assert est.disclosed_index[b].size == round(0.1 * size)
    np.testing.assert_allclose(est.qber[0], [0.02, 0.05, 0.3], atol=0.01)
    assert est.errors[1].sum() == 0
    # the sample is random: another generator discloses other positions
    other = estimate(_result(z, x), np.random.default_rng(1), sample_fraction=0.1)
    assert not np.array_equal(other.disclosed_index[0], est.disclosed_index[0])


def test_sample_count_and_reproducible():
    z = _key([0] * 50, [1] * 50, [0] * 50)
    x = _key([0] * 5, [0] * 5, [1] * 5)
    a = estimate(_result(z, x), np.random.default_rng(3), sample_count=10)
    b = estimate(_result(z, x), np.random.default_rng(3), sample_count=10)
    assert a.sampled.tolist() == [[10, 0, 0], [0, 5, 0]]
    assert a.errors.tolist() == [[10, 0, 0], [0, 0, 0]]
    assert a.disclosed_index[0].tolist() == b.disclosed_index[0].tolist()


def test_bad_arguments(rng):
    res = _result(_key([0], [0], [0]), _key([0], [0], [0]))
    with pytest.raises(QkdInputError, match="not both"):
        estimate(res, rng, sample_fraction=0.1, sample_count=3)
    with pytest.raises(QkdInputError, match="sample_fraction"):
        estimate(res, rng, sample_fraction=1.5)
    with pytest.raises(QkdInputError, match="sample_count"):
        estimate(res, rng, sample_count=-1)
    with pytest.raises(QkdInputError, match="Generator"):
        estimate(res, None, sample_count=1)
