"""Slow, obviously correct references for Toeplitz hashing and GF(2) polynomials.

Convention (same as qkdctl.core.amplify): for an n-bit key and an l-bit output
the l x n Toeplitz matrix is T[i, j] = seed[i - j + n - 1], seed of n + l - 1 bits.
"""

from __future__ import annotations

import numpy as np


def toeplitz_matrix(seed_bits: np.ndarray, n: int, out_len: int) -> np.ndarray:
    """Dense l x n matrix T[i, j] = seed[i - j + n - 1]."""
    i = np.arange(out_len)[:, None]
    j = np.arange(n)[None, :]
    return np.asarray(seed_bits, dtype=np.int64)[i - j + n - 1]


def toeplitz_hash_dense(key_bits: np.ndarray, seed_bits: np.ndarray, out_len: int) -> np.ndarray:
    """T @ key mod 2 with the dense matrix."""
    n = len(key_bits)
    t = toeplitz_matrix(seed_bits, n, out_len)
    return ((t @ np.asarray(key_bits, dtype=np.int64)) % 2).astype(np.uint8)


def toeplitz_hash_popcount(key_bits: np.ndarray, seed_bits: np.ndarray, out_len: int) -> np.ndarray:
    """Row by row: y[i] = parity(popcount(seed[i:i+n] AND reversed key)), with numpy packing.

    A different algorithm from the polynomial product (one AND/popcount pass per
    output bit), usable at n ~ 1e6 with small out_len.
    """
    n = len(key_bits)
    rev_key = np.packbits(np.asarray(key_bits, dtype=np.uint8)[::-1])
    seed = np.asarray(seed_bits, dtype=np.uint8)
    out = np.empty(out_len, dtype=np.uint8)
    for i in range(out_len):
        window = np.packbits(seed[i : i + n])
        out[i] = int(np.bitwise_count(window & rev_key).sum()) & 1
    return out


def poly_to_int(bits: np.ndarray) -> int:
    """Coefficient array (bit i = x^i) to a Python int."""
    b = np.asarray(bits, dtype=np.uint8)
    return int.from_bytes(np.packbits(b, bitorder="little").tobytes(), "little")


def int_to_bits(value: int, n_bits: int) -> np.ndarray:
    """Python int to its first n_bits coefficients."""
    raw = value.to_bytes((n_bits + 7) // 8 + 1, "little")
    return np.unpackbits(np.frombuffer(raw, dtype=np.uint8), count=n_bits, bitorder="little")


def clmul_int(a: int, b: int) -> int:
    """Carry-less product of two Python ints (shift and XOR per set bit of b)."""
    out = 0
    shift = 0
    while b:
        if b & 1:
            out ^= a << shift
        b >>= 1
        shift += 1
    return out


def poly_mod_int(a: int, modulus: int) -> int:
    """a mod modulus over GF(2)[x] (both as Python ints)."""
    deg = modulus.bit_length() - 1
    while a.bit_length() - 1 >= deg:
        a ^= modulus << (a.bit_length() - 1 - deg)
    return a
