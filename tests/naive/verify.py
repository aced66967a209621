"""Slow references for polynomial-hash verification (Python ints as GF(2^b) elements)."""

from __future__ import annotations

import numpy as np

from tests.naive.amplify import clmul_int, poly_mod_int


def field_mul(a: int, b: int, field_bits: int, low_poly: int) -> int:
    """a * b in GF(2^b) = GF(2)[X] / (X^b + low_poly)."""
    return poly_mod_int(clmul_int(a, b), (1 << field_bits) | low_poly)


def poly_hash(bits: np.ndarray, s: int, field_bits: int, low_poly: int) -> int:
    """sum_i K_i s^(d - i) with b-bit blocks K_i (bit t of a block = X^t)."""
    b = [int(v) for v in bits]
    b += [0] * (-len(b) % field_bits)
    h = 0
    for i in range(0, len(b), field_bits):
        block = sum(bit << t for t, bit in enumerate(b[i : i + field_bits]))
        h = field_mul(h ^ block, s, field_bits, low_poly)
    return h


def is_irreducible(field_bits: int, low_poly: int) -> bool:
    """Rabin's test for X^b + low_poly, b a power of two: X^(2^b) = X and gcd(X^(2^(b/2)) - X, f) = 1."""
    f = (1 << field_bits) | low_poly

    def x_pow_2k(k: int) -> int:
        r = 2
        for _ in range(k):
            r = poly_mod_int(clmul_int(r, r), f)
        return r

    a, g = f, x_pow_2k(field_bits // 2) ^ 2
    while g:
        a, g = g, poly_mod_int(a, g)
    return x_pow_2k(field_bits) == 2 and a == 1
