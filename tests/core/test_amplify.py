"""Toeplitz privacy amplification: dense reference, a second algorithm, bad input."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qkdctl.core.amplify import toeplitz_hash, toeplitz_hash_packed
from qkdctl.core.errors import QkdInputError
from qkdctl.core.gf2 import pack_bits, unpack_bits
from tests.naive.amplify import toeplitz_hash_dense, toeplitz_hash_popcount, toeplitz_matrix


def test_hand_written_case():
    key = np.array([1, 0, 1], dtype=np.uint8)
    seed = np.array([1, 1, 0, 1], dtype=np.uint8)
    # T[i, j] = seed[i - j + 2]: rows [0, 1, 1] and [1, 0, 1]
    assert toeplitz_matrix(seed, 3, 2).tolist() == [[0, 1, 1], [1, 0, 1]]
    for method in ("karatsuba", "fft", "auto"):
        assert toeplitz_hash(key, seed, 2, method=method).tolist() == [1, 0]


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 700), st.floats(0.0, 1.0), st.integers(0, 2**32))
def test_matches_dense_reference(n, ratio, seed):
    rng = np.random.default_rng(seed)
    out_len = max(1, int(ratio * n))
    key = rng.integers(0, 2, n, dtype=np.uint8)
    s = rng.integers(0, 2, n + out_len - 1, dtype=np.uint8)
    ref = toeplitz_hash_dense(key, s, out_len)
    for method in ("karatsuba", "fft"):
        np.testing.assert_array_equal(toeplitz_hash(key, s, out_len, method=method), ref)


def test_large_key_against_popcount_algorithm(rng):
    n, out_len = 1_000_000, 200
    key = rng.integers(0, 2, n, dtype=np.uint8)
    seed = rng.integers(0, 2, n + out_len - 1, dtype=np.uint8)
    ref = toeplitz_hash_popcount(key, seed, out_len)
    np.testing.assert_array_equal(toeplitz_hash(key, seed, out_len), ref)


def test_large_fft_against_karatsuba(rng):
    n, out_len = 300_000, 150_001
    key = rng.integers(0, 2, n, dtype=np.uint8)
    seed = rng.integers(0, 2, n + out_len - 1, dtype=np.uint8)
    np.testing.assert_array_equal(
        toeplitz_hash(key, seed, out_len, method="fft"),
        toeplitz_hash(key, seed, out_len, method="karatsuba"),
    )


def test_linear_in_the_key(rng):
    n, out_len = 5000, 2000
    k1, k2 = rng.integers(0, 2, (2, n), dtype=np.uint8)
    seed = rng.integers(0, 2, n + out_len - 1, dtype=np.uint8)
    np.testing.assert_array_equal(
        toeplitz_hash(k1 ^ k2, seed, out_len),
        toeplitz_hash(k1, seed, out_len) ^ toeplitz_hash(k2, seed, out_len),
    )


def test_packed_variant_matches_and_clears_padding(rng):
    n, out_len = 1000, 70
    key = rng.integers(0, 2, n, dtype=np.uint8)
    seed = rng.integers(0, 2, n + out_len - 1, dtype=np.uint8)
    words = toeplitz_hash_packed(pack_bits(key), n, pack_bits(seed), out_len)
    assert words.size == 2 and int(words[1]) >> 6 == 0
    np.testing.assert_array_equal(unpack_bits(words, out_len), toeplitz_hash(key, seed, out_len))


def test_bad_input_names_the_problem():
    key = np.ones(10, dtype=np.uint8)
    with pytest.raises(QkdInputError, match="seed must have n \\+ out_len - 1 = 14 bits"):
        toeplitz_hash(key, np.ones(13, dtype=np.uint8), 5)
    with pytest.raises(QkdInputError, match="out_len must be in 1..10"):
        toeplitz_hash(key, np.ones(20, dtype=np.uint8), 11)
    with pytest.raises(QkdInputError, match="values other than 0 and 1"):
        toeplitz_hash(np.full(10, 2), np.ones(14, dtype=np.uint8), 5)
    with pytest.raises(QkdInputError, match="key is empty"):
        toeplitz_hash(np.zeros(0, dtype=np.uint8), np.ones(0, dtype=np.uint8), 1)
    with pytest.raises(QkdInputError, match="1-D"):
        toeplitz_hash(np.ones((2, 5)), np.ones(14, dtype=np.uint8), 5)
    with pytest.raises(QkdInputError, match="0/1 integers"):
        toeplitz_hash(np.ones(10) * 0.5, np.ones(14, dtype=np.uint8), 5)
    with pytest.raises(QkdInputError, match="unknown method"):
        toeplitz_hash(key, np.ones(14, dtype=np.uint8), 5, method="float")
    with pytest.raises(QkdInputError, match="key_words must hold 1 words"):
        toeplitz_hash_packed(np.zeros(2, np.uint64), 10, np.zeros(1, np.uint64), 5)
    with pytest.raises(QkdInputError, match="seed_words must hold 1 words"):
        toeplitz_hash_packed(np.zeros(1, np.uint64), 10, np.zeros(3, np.uint64), 5)
