"""Polynomial-hash verification: reference agreement, tag length, collision statistics."""

import math

import numpy as np
import pytest

from qkdctl.core import verify
from qkdctl.core.errors import QkdInputError
from tests.naive.verify import field_mul, is_irreducible, poly_hash


@pytest.mark.parametrize("field_bits", sorted(verify.FIELD_POLYS))
def test_field_polynomials_are_irreducible(field_bits):
    assert is_irreducible(field_bits, verify.FIELD_POLYS[field_bits])


def test_irreducibility_check_can_fail():
    assert not is_irreducible(8, 0x01)  # X^8 + 1 = (X + 1)^8


def test_hand_written_hash():
    # GF(2^8), key bits 1,0,...: one block K_0 = 1, so h = s; two blocks: h = K_0 s^2 + K_1 s
    low = verify.FIELD_POLYS[8]
    s = np.uint64(0x53)
    one_block = np.zeros(8, dtype=np.uint8)
    one_block[0] = 1
    assert verify._poly_hash_kernel(verify.pack_bits(one_block), 1, s, 8, np.uint64(low)) == 0x53
    two = np.zeros(16, dtype=np.uint8)
    two[0] = 1
    two[9] = 1  # K_1 = X
    expected = field_mul(0x53, 0x53, 8, low) ^ field_mul(0x02, 0x53, 8, low)
    assert verify._poly_hash_kernel(verify.pack_bits(two), 2, s, 8, np.uint64(low)) == expected
    assert field_mul(0x53, 0xCA, 8, low) == 0x01  # AES field inverse pair


@pytest.mark.parametrize("field_bits", sorted(verify.FIELD_POLYS))
def test_kernel_matches_reference(rng, field_bits):
    low = verify.FIELD_POLYS[field_bits]
    for n in (1, field_bits - 1, field_bits, 3 * field_bits + 5, 700):
        bits = rng.integers(0, 2, n, dtype=np.uint8)
        s = int(rng.integers(0, 2**field_bits, dtype=np.uint64))
        n_blocks = -(-n // field_bits)
        got = verify._poly_hash_kernel(
            verify.pack_bits(bits), n_blocks, np.uint64(s), field_bits, np.uint64(low)
        )
        assert int(got) == poly_hash(bits, s, field_bits, low)


def test_plan_meets_eps_and_picks_short_tags():
    for n in (10, 1000, 10**6, 10**8):
        for eps in (1e-3, 1e-10, 1e-15, 1e-30):
            plan = verify.hash_plan(n, eps)
            d = math.ceil(n / plan.field_bits)
            assert (d / 2**plan.field_bits) ** plan.repetitions <= eps
            assert verify.tag_length_bits(n, eps) == plan.tag_bits
            assert plan.tag_bits >= math.log2(1 / eps)
    assert verify.hash_plan(10**6, 1e-15) == verify.HashPlan(64, 1)
    assert verify.hash_plan(64, 1 / 32) == verify.HashPlan(8, 1)


def test_equal_keys_equal_tags_and_single_flip_always_detected(rng):
    n, eps = 100_000, 1e-12
    key = rng.integers(0, 2, n, dtype=np.uint8)
    for _ in range(50):
        seed = verify.draw_seed(n, eps, rng)
        tag_a, tag_bits = verify.verification_tag(key, seed, eps)
        tag_b, _ = verify.verification_tag(key.copy(), seed, eps)
        assert verify.keys_match(tag_a, tag_b)
        flipped = key.copy()
        flipped[int(rng.integers(n))] ^= 1
        tag_c, _ = verify.verification_tag(flipped, seed, eps)
        # a single-block difference D * s^j vanishes only at s = 0
        assert verify.keys_match(tag_a, tag_c) == bool(np.all(seed == 0))
    assert tag_bits == 64


def test_collision_rate_consistent_with_bound(rng):
    # 64-bit keys, 8-bit field, 8 blocks: bound d / 2^b = 1/32 per seed
    n, eps, trials = 64, 1 / 32, 20_000
    assert verify.hash_plan(n, eps) == verify.HashPlan(8, 1)
    collisions = 0
    for _ in range(trials):
        a = rng.integers(0, 2, n, dtype=np.uint8)
        b = a.copy()
        b[rng.integers(0, n, 3)] ^= 1
        if not np.any(a != b):
            continue
        seed = verify.draw_seed(n, eps, rng)
        collisions += verify.keys_match(
            verify.verification_tag(a, seed, eps)[0], verify.verification_tag(b, seed, eps)[0]
        )
    bound = trials / 32
    assert collisions <= bound + 4 * math.sqrt(bound)
    # different keys do collide sometimes in an 8-bit field (about 1/256 of seeds)
    assert collisions >= 20


def test_bad_input_names_the_problem():
    with pytest.raises(QkdInputError, match="eps_cor must be in"):
        verify.tag_length_bits(100, 0.0)
    with pytest.raises(QkdInputError, match="at least 1 bit"):
        verify.tag_length_bits(0, 1e-9)
    with pytest.raises(QkdInputError, match="seed must be 1 integer field element"):
        verify.verification_tag(np.ones(100, np.uint8), np.zeros(2, np.uint64), 1e-9)
    with pytest.raises(QkdInputError, match="values other than 0 and 1"):
        verify.verification_tag(np.full(100, 3), np.zeros(1, np.uint64), 1e-9)
    with pytest.raises(QkdInputError, match="seed elements must be < 2\\^8"):
        verify.verification_tag(np.ones(64, np.uint8), np.array([256], np.uint64), 1 / 32)
    with pytest.raises(QkdInputError, match="different shapes"):
        verify.keys_match(np.zeros(1, np.uint64), np.zeros(2, np.uint64))
