import math

import numpy as np
import pytest

from qkdctl.core.errors import QkdInputError, SecurityAbort
from qkdctl.core.randomness import (
    DetectorQrng,
    GeneratorSource,
    HealthTests,
    OsRandomSource,
    RandomSource,
    apt_cutoff,
    mcv_min_entropy,
    rct_cutoff,
)
from tests.naive.randomness import first_health_failure


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
    assert first_health_failure(stuck, 21, 589, 1024) == 40
    ht = HealthTests(h_claim=1.0)
    assert ht.check(np.ones(10, dtype=int)) == -1
    assert ht.check(np.ones(11, dtype=int)) == 10  # state carries over batches


@pytest.mark.parametrize("p_one, seed", [(0.5, 1), (0.58, 2), (0.62, 3), (0.7, 4), (0.9, 5)])
def test_health_kernel_matches_the_naive_reference(p_one, seed):
    rng = np.random.default_rng(seed)
    x = (rng.random(6000) < p_one).astype(np.uint8)
    for h in (1.0, 0.9, 0.5):
        ht = HealthTests(h_claim=h, window=512)
        want = first_health_failure(x, ht.rct_c, ht.apt_c, 512)
        got = ht.check(x[:2500])
        if got < 0:  # state carries into the second batch
            got = ht.check(x[2500:])
            got = got + 2500 if got >= 0 else -1
        assert got == want


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
    q = DetectorQrng(_raw(0.5, 1), h_claim=0.9, batch=1 << 14, seed_source=GeneratorSource(np.random.default_rng(0)))
    out = q.bits(40_000)
    assert out.size == 40_000 and set(np.unique(out)) <= {0, 1}
    assert abs(out.mean() - 0.5) < 0.02
    assert 0.8 < q.last_min_entropy <= 0.9
    w = q.words(1000)
    assert w.dtype == np.uint64 and w.size == 1000
    assert abs(np.unpackbits(w.view(np.uint8)).mean() - 0.5) < 0.01


def test_stuck_source_stops_for_good():
    q = DetectorQrng(lambda n: np.ones(n, dtype=np.uint8), h_claim=0.9, batch=2048)
    with pytest.raises(SecurityAbort, match="health test"):
        q.bits(100)
    with pytest.raises(SecurityAbort, match="stopped"):
        q.words(1)


def test_biased_source_is_stopped():
    q = DetectorQrng(_raw(0.7, 2), h_claim=0.9, batch=1 << 14)
    with pytest.raises(SecurityAbort):
        q.bits(100_000)


def test_generator_source_words_are_the_generators_raw_stream():
    a, b = np.random.default_rng(9), np.random.default_rng(9)
    np.testing.assert_array_equal(GeneratorSource(a).words(5), b.bit_generator.random_raw(5))
    assert GeneratorSource(a).bits(7).size == 7
    with pytest.raises(QkdInputError, match="Generator"):
        GeneratorSource(9)


def test_words_pack_bits_lsb_first():
    class FirstBitOfEveryWord(RandomSource):
        def bits(self, n):
            out = np.zeros(n, dtype=np.uint8)
            out[::64] = 1
            out[65] = 1  # bit 1 of word 1
            return out

    np.testing.assert_array_equal(FirstBitOfEveryWord().words(3), [1, 3, 1])


def test_os_source():
    src = OsRandomSource()
    assert src.bits(13).size == 13 and src.words(4).dtype == np.uint64
    with pytest.raises(QkdInputError, match="integer >= 0"):
        src.bits(-1)
