"""Privacy amplification by Toeplitz hashing, exact over GF(2).

Convention: an n-bit key k is hashed to l bits with an (n + l - 1)-bit seed s by
the l x n Toeplitz matrix T[i, j] = s[i - j + n - 1]:  y[i] = XOR_j T[i, j] k[j].

With S(x) = sum_m s[m] x^m and K(x) = sum_j k[j] x^j, y[i] is the coefficient of
x^{n-1+i} in S(x) K(x) over GF(2) (a "middle product").  That product is computed
modulo x^P - 1 for a period P >= n + l - 1: the wrapped terms have degree
>= P > n + l - 2 before wrapping, so they land below degree n - 1 and never touch
the slice.  Small sizes use Karatsuba over carry-less word products, large ones
Schönhage's ternary FFT (qkdctl.core.gf2_fft); both are exact integer/bit
arithmetic, so the result is exact at every size.
"""

from __future__ import annotations

import numpy as np

from qkdctl.core.errors import QkdInputError
from qkdctl.core.gf2 import (
    _extract_bits_kernel,
    pack_bits,
    poly_mul,
    unpack_bits,
    words_for_bits,
)
from qkdctl.core.gf2_fft import cyclic_mul, plan_cyclic

# Below this seed length (bits) one Karatsuba product beats the ternary FFT.
FFT_MIN_SEED_BITS = 1 << 16
METHODS = ("auto", "karatsuba", "fft")


def _check_bits(name: str, bits: np.ndarray) -> np.ndarray:
    b = np.asarray(bits)
    if b.ndim != 1:
        raise QkdInputError(f"toeplitz_hash: {name} must be a 1-D bit array, got shape {b.shape}")
    if b.dtype != np.bool_ and not np.issubdtype(b.dtype, np.integer):
        raise QkdInputError(f"toeplitz_hash: {name} must hold 0/1 integers, got dtype {b.dtype}")
    if b.size and (b.min() < 0 or b.max() > 1):
        raise QkdInputError(f"toeplitz_hash: {name} holds values other than 0 and 1")
    return b.astype(np.uint8, copy=False)


def _check_sizes(n_bits: int, seed_bits: int, out_len: int) -> None:
    if n_bits < 1:
        raise QkdInputError("toeplitz_hash: the key is empty")
    if out_len < 1 or out_len > n_bits:
        raise QkdInputError(
            f"toeplitz_hash: out_len must be in 1..{n_bits} (key length), got {out_len}"
        )
    if seed_bits != n_bits + out_len - 1:
        raise QkdInputError(
            f"toeplitz_hash: seed must have n + out_len - 1 = {n_bits + out_len - 1} bits, "
            f"got {seed_bits}"
        )


def toeplitz_hash_packed(
    key_words: np.ndarray,
    n_bits: int,
    seed_words: np.ndarray,
    out_len: int,
    method: str = "auto",
) -> np.ndarray:
    """Toeplitz hash of a packed n_bits-bit key to out_len bits (uint64 words, LSB first).

    seed_words holds n_bits + out_len - 1 seed bits; bits of either array beyond
    its length are ignored.  T[i, j] = seed[i - j + n - 1].  method: "auto",
    "karatsuba" (one full product) or "fft" (ternary FFT); all give the same bits.
    Returns words_for_bits(out_len) words with the bits past out_len cleared.
    """
    if method not in METHODS:
        raise QkdInputError(f"toeplitz_hash: unknown method {method!r}; use one of {METHODS}")
    n_bits = int(n_bits)
    out_len = int(out_len)
    seed_bits = n_bits + out_len - 1
    key = np.ascontiguousarray(key_words, dtype=np.uint64)
    seed = np.ascontiguousarray(seed_words, dtype=np.uint64)
    if key.ndim != 1 or key.size != words_for_bits(n_bits):
        raise QkdInputError(
            f"toeplitz_hash: key_words must hold {words_for_bits(n_bits)} words for "
            f"{n_bits} bits, got shape {key.shape}"
        )
    if seed.ndim != 1 or seed.size != words_for_bits(seed_bits):
        raise QkdInputError(
            f"toeplitz_hash: seed_words must hold {words_for_bits(seed_bits)} words for "
            f"{seed_bits} bits, got shape {seed.shape}"
        )
    _check_sizes(n_bits, seed_bits, out_len)
    if method == "karatsuba" or (method == "auto" and seed_bits < FFT_MIN_SEED_BITS):
        product = poly_mul(seed, seed_bits, key, n_bits)
        product_bits = seed_bits + n_bits - 1
    else:
        plan = plan_cyclic(seed_bits)
        product = cyclic_mul(seed, seed_bits, key, n_bits, plan)
        product_bits = plan.period_bits
    out = np.empty(words_for_bits(out_len), dtype=np.uint64)
    _extract_bits_kernel(product, product_bits, n_bits - 1, out_len, out)
    return out


def toeplitz_hash(
    key_bits: np.ndarray, seed_bits: np.ndarray, out_len: int, method: str = "auto"
) -> np.ndarray:
    """Hash an n-bit key (0/1 array) to out_len bits with an (n + out_len - 1)-bit seed.

    y[i] = XOR_j seed[i - j + n - 1] * key[j] for 0 <= i < out_len (exact over GF(2)).
    The seed is public (chosen by one party, sent to the other); it must be uniformly
    random for the leftover-hash lemma to apply.  Returns a uint8 0/1 array.
    """
    key = _check_bits("key_bits", key_bits)
    seed = _check_bits("seed_bits", seed_bits)
    _check_sizes(key.size, seed.size, int(out_len))
    words = toeplitz_hash_packed(pack_bits(key), key.size, pack_bits(seed), out_len, method)
    return unpack_bits(words, int(out_len))
