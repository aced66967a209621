"""Verification of reconciled keys by polynomial hashing over GF(2^b).

The n-bit key is cut into d = ceil(n / b) blocks K_0 .. K_{d-1} of b bits (bit t
of a block is the coefficient of X^t, the last block zero-padded) and hashed with
a field element s by Horner's rule:

    h_s(K) = K_0 s^d + K_1 s^{d-1} + ... + K_{d-1} s      in GF(2^b).

For two different keys of the same length, h_s(K) = h_s(K') means s is a root of
a nonzero polynomial of degree <= d, so over a uniform s the collision
probability is at most d / 2^b.  With r independent seeds the tag is r field
elements and the probability is at most (d / 2^b)^r; the plan picks b in
{8, 16, 32, 64} and r giving the shortest tag with (d / 2^b)^r <= eps_cor.

The seeds are public: one party draws them and sends them.  The tag bits are
published too and count as leakage (subtract tag_bits from the key length).
"""

from __future__ import annotations

import hmac
import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from qkdctl.core.errors import QkdInputError
from qkdctl.core.gf2 import pack_bits

# Low parts of irreducible polynomials X^b + low (checked by Rabin's test in tests).
FIELD_POLYS = {8: 0x1B, 16: 0x100B, 32: 0x400007, 64: 0x1B}


@dataclass(frozen=True)
class HashPlan:
    """Field size b (bits) and number of independent repetitions r."""

    field_bits: int
    repetitions: int

    @property
    def tag_bits(self) -> int:
        """Published tag length r * b (bits of leakage)."""
        return self.field_bits * self.repetitions


def hash_plan(n_bits: int, eps_cor: float) -> HashPlan:
    """Shortest-tag plan with collision probability <= eps_cor for n_bits-bit keys."""
    if int(n_bits) < 1:
        raise QkdInputError(f"verification: key must have at least 1 bit, got {n_bits}")
    if not 0.0 < float(eps_cor) < 1.0:
        raise QkdInputError(f"verification: eps_cor must be in (0, 1), got {eps_cor}")
    best = None
    for b in sorted(FIELD_POLYS):
        d = -(-int(n_bits) // b)
        log2_p = math.log2(d) - b
        if log2_p >= 0.0:
            continue
        reps = max(1, math.ceil(math.log2(eps_cor) / log2_p - 1e-12))
        plan = HashPlan(b, reps)
        if best is None or (plan.tag_bits, plan.repetitions) < (best.tag_bits, best.repetitions):
            best = plan
    return best


def tag_length_bits(n_bits: int, eps_cor: float) -> int:
    """Tag length (bits, all of it leakage) for n_bits-bit keys and failure eps_cor."""
    return hash_plan(n_bits, eps_cor).tag_bits


def draw_seed(n_bits: int, eps_cor: float, rng: np.random.Generator) -> np.ndarray:
    """Uniform public hash seeds (uint64, one field element per repetition)."""
    plan = hash_plan(n_bits, eps_cor)
    return rng.integers(0, 2**plan.field_bits, size=plan.repetitions, dtype=np.uint64)


@njit(cache=True)
def _mul_field_kernel(a, b, field_bits, low_poly):
    """a * b in GF(2^field_bits) modulo X^field_bits + low_poly (shift and add)."""
    top_bit = np.uint64(field_bits - 1)
    mask = ~np.uint64(0) >> np.uint64(64 - field_bits)
    r = np.uint64(0)
    for i in range(field_bits - 1, -1, -1):
        carry = (r >> top_bit) & np.uint64(1)
        r = (r << np.uint64(1)) & mask
        if carry:
            r ^= low_poly
        if (b >> np.uint64(i)) & np.uint64(1):
            r ^= a
    return r


@njit(cache=True)
def _poly_hash_kernel(words, n_blocks, s, field_bits, low_poly):
    """Horner evaluation of the block polynomial at s, multiplying via byte tables."""
    n_bytes = field_bits // 8
    # table[j, u] = (u X^{8j}) * s
    table = np.zeros((n_bytes, 256), dtype=np.uint64)
    for j in range(n_bytes):
        for t in range(8):
            xt = np.uint64(1) << np.uint64(8 * j + t)
            table[j, 1 << t] = _mul_field_kernel(xt, s, field_bits, low_poly)
        for u in range(3, 256):
            low = u & (-u)
            if low != u:
                table[j, u] = table[j, low] ^ table[j, u - low]
    mask = ~np.uint64(0) >> np.uint64(64 - field_bits)
    per_word = 64 // field_bits
    h = np.uint64(0)
    for i in range(n_blocks):
        block = (words[i // per_word] >> np.uint64((i % per_word) * field_bits)) & mask
        h ^= block
        acc = np.uint64(0)
        for j in range(n_bytes):
            acc ^= table[j, (h >> np.uint64(8 * j)) & np.uint64(255)]
        h = acc
    return h


def verification_tag(
    bits: np.ndarray, seed: np.ndarray, eps_cor: float
) -> tuple[np.ndarray, int]:
    """Tag of a reconciled key (0/1 uint8 array) under public seeds; returns (tag, tag_bits).

    tag is a uint64 array of r field elements; tag_bits = r * b is published and
    counts as leakage.  Both parties must use the same seed, key length and eps_cor.
    """
    b = np.asarray(bits)
    if b.ndim != 1:
        raise QkdInputError(f"verification: bits must be a 1-D array, got shape {b.shape}")
    if b.dtype != np.bool_ and not np.issubdtype(b.dtype, np.integer):
        raise QkdInputError(f"verification: bits must hold 0/1 integers, got dtype {b.dtype}")
    if b.size and (b.min() < 0 or b.max() > 1):
        raise QkdInputError("verification: bits hold values other than 0 and 1")
    plan = hash_plan(b.size, eps_cor)
    s = np.asarray(seed)
    if s.ndim != 1 or s.size != plan.repetitions or not np.issubdtype(s.dtype, np.integer):
        raise QkdInputError(
            f"verification: seed must be {plan.repetitions} integer field element(s) for "
            f"{b.size} bits at eps_cor={eps_cor}, got shape {s.shape} dtype {s.dtype}"
        )
    s = s.astype(np.uint64)
    if plan.field_bits < 64 and np.any(s >> np.uint64(plan.field_bits)):
        raise QkdInputError(f"verification: seed elements must be < 2^{plan.field_bits}")
    words = pack_bits(b)
    n_blocks = -(-b.size // plan.field_bits)
    low = np.uint64(FIELD_POLYS[plan.field_bits])
    tag = np.array(
        [_poly_hash_kernel(words, n_blocks, s[r], plan.field_bits, low) for r in range(s.size)],
        dtype=np.uint64,
    )
    return tag, plan.tag_bits


def keys_match(tag_a: np.ndarray, tag_b: np.ndarray) -> bool:
    """True when two tags are equal (constant-time comparison of their bytes)."""
    a = np.ascontiguousarray(tag_a, dtype=np.uint64)
    b = np.ascontiguousarray(tag_b, dtype=np.uint64)
    if a.shape != b.shape:
        raise QkdInputError(f"verification: tags of different shapes {a.shape} and {b.shape}")
    return hmac.compare_digest(a.tobytes(), b.tobytes())
