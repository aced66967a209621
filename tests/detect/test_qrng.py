import math

import numpy as np
import pytest

from qkdctl.core.errors import QkdInputError, SecurityAbort
from qkdctl.detect.qrng import (
    DetectorQrng,
    HealthTests,
    OsRandomSource,
    apt_cutoff,
    detector_raw_bits,
    mcv_min_entropy,
    rct_cutoff,
)


def test_cutoffs_follow_sp800_90b():
    # 4.4.1: H = 1, alpha = 2^-20 -> C = 21; 4.4.2 binary W = 1024, H = 1 -> C = 589 (standard's table)
    assert rct_cutoff(1.0) == 21
    assert apt_cutoff(1.0) == 589
    assert rct_cutoff(0.5) == 41


def test_health_tests_on_hand_written_streams():
    ht = HealthTests(h_claim=1.0)
    assert ht.check(np.tile([0, 1], 5000)) == -1
    ht = HealthTests(h_claim=1.0)
    stuck = np.r_[np.tile([1, 0], 10), np.ones(30, dtype=int)]
    assert ht.check(stuck) == 20 + 21 - 1  # the 21st 1 in a row (the tiled part ends in 0)
    ht = HealthTests(h_claim=1.0)
    assert ht.check(np.ones(10, dtype=int)) == -1
    assert ht.check(np.ones(11, dtype=int)) == 10  # state carries over batches


def test_adaptive_proportion_catches_a_bias_the_repetition_test_misses():
    rng = np.random.default_rng(5)
    biased = (rng.random(200_000) < 0.65).astype(np.uint8)
    assert HealthTests(h_claim=0.9).check(biased) >= 0
    fair = rng.integers(0, 2, 200_000)
    assert HealthTests(h_claim=0.9).check(fair) == -1


def test_mcv_estimate():
    x = np.r_[np.zeros(750, dtype=int), np.ones(250, dtype=int)]
    p_u = 0.75 + 2.576 * math.sqrt(0.75 * 0.25 / 999)
    assert mcv_min_entropy(x) == pytest.approx(-math.log2(p_u))
    with pytest.raises(QkdInputError, match="0..1"):
        mcv_min_entropy(np.array([0, 2, 1]))


def _raw(p_one, seed):
    rng = np.random.default_rng(seed)
    return lambda n: (rng.random(n) < p_one).astype(np.uint8)


def test_qrng_extracts_fewer_bits_than_raw_and_uniform_looking():
    q = DetectorQrng(_raw(0.5, 1), h_claim=0.9, batch=1 << 14)
    out = q.bits(40_000)
    assert out.size == 40_000 and set(np.unique(out)) <= {0, 1}
    assert abs(out.mean() - 0.5) < 0.02
    assert 0.8 < q.last_min_entropy <= 0.9


def test_stuck_source_stops_for_good():
    q = DetectorQrng(lambda n: np.ones(n, dtype=np.uint8), h_claim=0.9, batch=2048)
    with pytest.raises(SecurityAbort, match="health test"):
        q.bits(100)
    with pytest.raises(SecurityAbort, match="stopped"):
        q.bits(1)


def test_biased_source_is_stopped():
    q = DetectorQrng(_raw(0.7, 2), h_claim=0.9, batch=1 << 14)
    with pytest.raises(SecurityAbort):
        q.bits(100_000)


def test_os_source_and_detector_bits():
    assert OsRandomSource().bits(13).size == 13
    np.testing.assert_array_equal(detector_raw_bits(np.array([0, 1, 2, 3])), [0, 1, 0, 1])
    with pytest.raises(QkdInputError, match="roles"):
        detector_raw_bits(np.array([4]))
