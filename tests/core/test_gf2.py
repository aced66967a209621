"""Bit-packed GF(2) polynomial arithmetic against Python-int references."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qkdctl.core import gf2, gf2_fft
from qkdctl.core.errors import QkdInputError
from tests.naive.amplify import clmul_int, int_to_bits, poly_to_int


def _random_bits(rng, n):
    return rng.integers(0, 2, n, dtype=np.uint8)


def test_pack_unpack_roundtrip_and_bit_order():
    bits = np.array([1, 0, 0, 1] + [0] * 60 + [1], dtype=np.uint8)
    words = gf2.pack_bits(bits)
    assert words.dtype == np.uint64
    assert words.tolist() == [0b1001, 1]
    np.testing.assert_array_equal(gf2.unpack_bits(words, bits.size), bits)


def test_clmul_hardware_and_fallback_match_reference(rng):
    @gf2.njit
    def hw(a, b):
        return gf2._clmul(a, b)

    for _ in range(50):
        a, b = (int(v) for v in rng.integers(0, 2**63, 2, dtype=np.uint64) * 2 + 1)
        ref = clmul_int(a, b)
        expected = (ref & (2**64 - 1), ref >> 64)
        assert tuple(int(v) for v in hw(np.uint64(a), np.uint64(b))) == expected
        assert tuple(int(v) for v in gf2._clmul_soft_jit(np.uint64(a), np.uint64(b))) == expected


def test_poly_mul_hand_case():
    # (1 + x)(1 + x) = 1 + x^2 over GF(2); (1 + x + x^2) x^3 = x^3 + x^4 + x^5
    a = gf2.pack_bits(np.array([1, 1], dtype=np.uint8))
    assert gf2.unpack_bits(gf2.poly_mul(a, 2, a, 2), 3).tolist() == [1, 0, 1]
    b = gf2.pack_bits(np.array([1, 1, 1], dtype=np.uint8))
    c = gf2.pack_bits(np.array([0, 0, 0, 1], dtype=np.uint8))
    assert gf2.unpack_bits(gf2.poly_mul(b, 3, c, 4), 6).tolist() == [0, 0, 0, 1, 1, 1]


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3000), st.integers(1, 3000), st.integers(0, 2**32))
def test_poly_mul_matches_int_reference(na, nb, seed):
    rng = np.random.default_rng(seed)
    a, b = _random_bits(rng, na), _random_bits(rng, nb)
    got = gf2.poly_mul(gf2.pack_bits(a), na, gf2.pack_bits(b), nb)
    ref = int_to_bits(clmul_int(poly_to_int(a), poly_to_int(b)), na + nb - 1)
    np.testing.assert_array_equal(gf2.unpack_bits(got, na + nb - 1), ref)


def test_poly_mul_ignores_bits_past_length(rng):
    a = rng.integers(0, 2**63, 3, dtype=np.uint64)
    b = rng.integers(0, 2**63, 2, dtype=np.uint64)
    clean_a = gf2.pack_bits(gf2.unpack_bits(a, 130))
    clean_b = gf2.pack_bits(gf2.unpack_bits(b, 70))
    np.testing.assert_array_equal(
        gf2.poly_mul(a, 130, b, 70), gf2.poly_mul(clean_a, 130, clean_b, 70)
    )


def _wrapped_reference(a, b, period):
    full = gf2.unpack_bits(
        gf2.poly_mul(gf2.pack_bits(a), a.size, gf2.pack_bits(b), b.size), a.size + b.size - 1
    )
    out = np.zeros(period, dtype=np.uint8)
    for start in range(0, full.size, period):
        seg = full[start : start + period]
        out[: seg.size] ^= seg
    return out


@pytest.mark.parametrize(
    "log3_points, piece_bits, na, nb",
    [(1, 1, 3, 2), (1, 4, 10, 9), (2, 3, 27, 20), (2, 6, 30, 54), (3, 9, 243, 100),
     (4, 108, 2000, 3000), (5, 243, 50000, 30000), (6, 486, 354294, 1000)],
)
def test_cyclic_mul_matches_wrapped_product(rng, log3_points, piece_bits, na, nb):
    plan = gf2_fft.TernaryPlan(log3_points, piece_bits)
    a, b = _random_bits(rng, na), _random_bits(rng, nb)
    got = gf2_fft.cyclic_mul(gf2.pack_bits(a), na, gf2.pack_bits(b), nb, plan)
    np.testing.assert_array_equal(
        gf2.unpack_bits(got, plan.period_bits), _wrapped_reference(a, b, plan.period_bits)
    )


def test_cyclic_mul_of_dense_ones_is_exact():
    # all-ones operands give the largest integer coefficients (a float FFT's worst case)
    plan = gf2_fft.plan_cyclic(20000)
    a = np.ones(20000, dtype=np.uint8)
    got = gf2_fft.cyclic_mul(gf2.pack_bits(a), a.size, gf2.pack_bits(a), a.size, plan)
    np.testing.assert_array_equal(
        gf2.unpack_bits(got, plan.period_bits), _wrapped_reference(a, a, plan.period_bits)
    )


def test_plan_covers_the_period_and_rejects_bad_sizes():
    for p in (1, 100, 10**6, 1.5e8):
        plan = gf2_fft.plan_cyclic(int(p))
        assert plan.period_bits >= p
        assert (3 * plan.piece_bits) % plan.points == 0
    with pytest.raises(QkdInputError, match="period must be >= 1"):
        gf2_fft.plan_cyclic(0)
    with pytest.raises(QkdInputError, match="exceed the period"):
        gf2_fft.cyclic_mul(np.zeros(1, np.uint64), 64, np.zeros(1, np.uint64), 1,
                           gf2_fft.TernaryPlan(1, 3))
