"""Cyclic products of long GF(2) polynomials by Schönhage's ternary FFT.

Schönhage (Acta Informatica 7, 1977), as described by Brent, Gaudry, Thomé and
Zimmermann, "Faster multiplication in GF(2)[x]" (ANTS 2008), section 2.3:

* R = GF(2)[x] / (x^{2L} + x^L + 1).  Since x^{3L} - 1 = (x^L - 1)(x^{2L} + x^L + 1),
  x has order 3L in R and zeta = x^L satisfies 1 + zeta + zeta^2 = 0, so for
  K = 3^k dividing 3L, omega = x^{3L/K} is a principal K-th root of unity and the
  length-K DFT over R is invertible; 1/K = 1 because K is odd (characteristic 2).
* Multiplying by a power of omega is a rotation of bits.  Elements are kept as
  3L-bit vectors of S = GF(2)[x]/(x^{3L} - 1), where x^e is a cyclic rotation by
  e bits; S maps onto R (reduction folds the top third), so every identity of R
  holds after the final reduction.
* A and B are cut into K pieces of L bits; the DFTs (radix 3, decimation in
  frequency, no reordering) are multiplied pointwise in R by exact Karatsuba /
  carry-less word products, transformed back (inverse butterflies in reverse
  order), reduced to R and overlapped: C = A * B mod (x^{K L} - 1).  Each
  cyclic coefficient polynomial has degree < 2L - 1, so it is its own
  representative in R: the result is exact at every size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from numba import njit, prange

from qkdctl.core.errors import QkdInputError
from qkdctl.core.gf2 import (
    SCHOOLBOOK_MAX_WORDS,
    _extract_bits_kernel,
    _karatsuba_kernel,
    _xor_shifted_kernel,
    words_for_bits,
)

U64_1 = np.uint64(1)
U64_64 = np.uint64(64)
MAX_LOG3_POINTS = 14


@dataclass(frozen=True)
class TernaryPlan:
    """Transform shape: K = 3**log3_points pieces of piece_bits = L bits each."""

    log3_points: int
    piece_bits: int

    @property
    def points(self) -> int:
        """Transform length K."""
        return 3**self.log3_points

    @property
    def period_bits(self) -> int:
        """The product is computed modulo x^period_bits - 1 (period = K * L)."""
        return self.points * self.piece_bits


def _karatsuba_cost(n_words: int) -> float:
    """Rough cost (word products) of a Karatsuba product of two n-word operands."""
    if n_words <= SCHOOLBOOK_MAX_WORDS:
        return float(n_words * n_words)
    h = (n_words + 1) // 2
    return 3.0 * _karatsuba_cost(h) + 4.0 * n_words


def plan_cyclic(min_period_bits: int) -> TernaryPlan:
    """Cheapest transform whose period K * L is at least min_period_bits (cost model)."""
    if min_period_bits < 1:
        raise QkdInputError(f"plan_cyclic: period must be >= 1 bit, got {min_period_bits}")
    best = None
    for k in range(1, MAX_LOG3_POINTS + 1):
        points = 3**k
        unit = 3 ** (k - 1)
        piece = -(-min_period_bits // points)
        piece_bits = -(-piece // unit) * unit
        elem_words = words_for_bits(3 * piece_bits)
        # 3 transforms of k radix-3 stages, ~6 word moves per element word, plus K products
        cost = 3 * k * points * elem_words * 6 * 0.5 + points * _karatsuba_cost(
            words_for_bits(2 * piece_bits)
        )
        if best is None or cost < best[0]:
            best = (cost, TernaryPlan(k, piece_bits))
    return best[1]


@njit(cache=True)
def _xor_rot_kernel(dst, src, e, nbits):
    """dst ^= src * x^e in GF(2)[x]/(x^nbits - 1) (rotation by e bits; src top bits 0)."""
    n = dst.shape[0]
    if e == 0:
        for i in range(n):
            dst[i] ^= src[i]
        return
    # part 1: bit t -> t + e for t < nbits - e
    ws = e // 64
    bs = np.uint64(e % 64)
    top = nbits - 64 * (n - 1)
    top_mask = (U64_1 << np.uint64(top)) - U64_1 if top < 64 else ~np.uint64(0)
    for i in range(n - 1, ws - 1, -1):
        v = src[i - ws] << bs
        if bs != 0 and i - ws - 1 >= 0:
            v |= src[i - ws - 1] >> (U64_64 - bs)
        if i == n - 1:
            v &= top_mask
        dst[i] ^= v
    # part 2: bit t -> t - (nbits - e) for t >= nbits - e
    r = nbits - e
    ws = r // 64
    bs = np.uint64(r % 64)
    for i in range(n - ws):
        v = src[i + ws] >> bs
        if bs != 0 and i + ws + 1 < n:
            v |= src[i + ws + 1] << (U64_64 - bs)
        dst[i] ^= v


@njit(cache=True)
def _fold_to_r_kernel(x, tmp, piece_bits):
    """Reduce a 3L-bit element of S to its canonical 2L-bit representative in R, in place.

    x = x0 + x1 X^L + x2 X^{2L} with X^{2L} = X^L + 1 gives (x0 + x2) + (x1 + x2) X^L.
    tmp is scratch of at least len(x) words.
    """
    n = x.shape[0]
    top = tmp[:n]
    _extract_bits_kernel(x, 3 * piece_bits, 2 * piece_bits, piece_bits, top)
    full = (2 * piece_bits) // 64
    rem = (2 * piece_bits) % 64
    if full < n:
        if rem:
            x[full] &= (U64_1 << np.uint64(rem)) - U64_1
        else:
            x[full] = 0
        for i in range(full + 1, n):
            x[i] = 0
    _xor_shifted_kernel(x, top, 0)
    _xor_shifted_kernel(x, top, piece_bits)


@njit(cache=True, parallel=True)
def _dif_stage_kernel(data, span, piece_bits, inverse, n_chunks):
    """One radix-3 stage over blocks of length 3*span (forward DIF or its inverse)."""
    points = data.shape[0]
    n = data.shape[1]
    nbits = 3 * piece_bits
    big = points // (3 * span)
    n_bf = big * span
    n_chunks = min(n_bf, n_chunks)
    for c in prange(n_chunks):
        t1 = np.empty(n, dtype=np.uint64)
        t2 = np.empty(n, dtype=np.uint64)
        lo = c * n_bf // n_chunks
        hi = (c + 1) * n_bf // n_chunks
        for q in range(lo, hi):
            blk = q // span
            j = q - blk * span
            i0 = blk * 3 * span + j
            a0 = data[i0]
            a1 = data[i0 + span]
            a2 = data[i0 + 2 * span]
            # twiddle omega_M^j with M = 3*span: exponent j * 3L / M = j * L / span
            w = (j * (piece_bits // span)) % nbits
            for i in range(n):
                t1[i] = 0
                t2[i] = 0
            if not inverse:
                # Y1 = w^j (a0 + z a1 + z^2 a2), Y2 = w^2j (a0 + z^2 a1 + z a2), z = x^L
                _xor_rot_kernel(t1, a0, w, nbits)
                _xor_rot_kernel(t1, a1, (w + piece_bits) % nbits, nbits)
                _xor_rot_kernel(t1, a2, (w + 2 * piece_bits) % nbits, nbits)
                w2 = (2 * w) % nbits
                _xor_rot_kernel(t2, a0, w2, nbits)
                _xor_rot_kernel(t2, a1, (w2 + 2 * piece_bits) % nbits, nbits)
                _xor_rot_kernel(t2, a2, (w2 + piece_bits) % nbits, nbits)
                for i in range(n):
                    a0[i] ^= a1[i] ^ a2[i]
            else:
                # b1 = w^-j Y1, b2 = w^-2j Y2; a0 = Y0 + b1 + b2,
                # a1 = Y0 + z^2 b1 + z b2, a2 = Y0 + z b1 + z^2 b2
                f = (nbits - w) % nbits
                f2 = (2 * f) % nbits
                _xor_rot_kernel(t1, a1, (f + 2 * piece_bits) % nbits, nbits)
                _xor_rot_kernel(t1, a2, (f2 + piece_bits) % nbits, nbits)
                _xor_rot_kernel(t2, a1, (f + piece_bits) % nbits, nbits)
                _xor_rot_kernel(t2, a2, (f2 + 2 * piece_bits) % nbits, nbits)
                for i in range(n):
                    t1[i] ^= a0[i]
                    t2[i] ^= a0[i]
                _xor_rot_kernel(a0, a1, f, nbits)
                _xor_rot_kernel(a0, a2, f2, nbits)
            for i in range(n):
                a1[i] = t1[i]
                a2[i] = t2[i]


def _transform(data: np.ndarray, piece_bits: int, inverse: bool) -> None:
    """Whole DFT (forward: spans K/3 .. 1) or its inverse (spans 1 .. K/3) in place."""
    n_chunks = 4 * numba.get_num_threads()
    spans = []
    span = 1
    while 3 * span <= data.shape[0]:
        spans.append(span)
        span *= 3
    for span in spans if inverse else spans[::-1]:
        _dif_stage_kernel(data, span, piece_bits, inverse, n_chunks)


@njit(cache=True)
def _load_pieces_kernel(src, src_bits, piece_bits, data):
    """data[i] = bits [i L, (i+1) L) of src (zero elsewhere)."""
    for i in range(data.shape[0]):
        _extract_bits_kernel(src, src_bits, i * piece_bits, piece_bits, data[i])


@njit(cache=True, parallel=True)
def _pointwise_kernel(fa, fb, piece_bits, n_chunks):
    """fa[i] = fa[i] * fb[i] in R, stored as a 3L-bit element of S."""
    points = fa.shape[0]
    n = fa.shape[1]
    nr = (2 * piece_bits + 63) // 64
    nbits = 3 * piece_bits
    n_chunks = min(points, n_chunks)
    for c in prange(n_chunks):
        tmp = np.empty(2 * n, dtype=np.uint64)
        prod = np.empty(2 * nr, dtype=np.uint64)
        scratch = np.empty(8 * nr + 256, dtype=np.uint64)
        lo = c * points // n_chunks
        hi = (c + 1) * points // n_chunks
        for i in range(lo, hi):
            _fold_to_r_kernel(fa[i], tmp, piece_bits)
            _fold_to_r_kernel(fb[i], tmp, piece_bits)
            _karatsuba_kernel(fa[i, :nr], fb[i, :nr], prod, scratch)
            # product has degree < 4L - 1: keep bits < 3L, add bits >= 3L at 0
            _extract_bits_kernel(prod, 4 * piece_bits, 0, nbits, fa[i])
            _extract_bits_kernel(prod, 4 * piece_bits, nbits, piece_bits, tmp[:n])
            for k in range(n):
                fa[i, k] ^= tmp[k]


@njit(cache=True)
def _assemble_kernel(data, piece_bits, out):
    """out = sum_i data[i] x^{i L} mod (x^{K L} - 1), data already reduced to R."""
    points = data.shape[0]
    period = points * piece_bits
    n_out = out.shape[0]
    ext = np.zeros(n_out + data.shape[1] + 1, dtype=np.uint64)
    for i in range(points):
        _xor_shifted_kernel(ext, data[i], i * piece_bits)
    # the last pieces reach past the period: fold bits >= period back to 0
    wrap = np.empty(data.shape[1] + 1, dtype=np.uint64)
    _extract_bits_kernel(ext, 64 * ext.shape[0], period, 64 * wrap.shape[0], wrap)
    _extract_bits_kernel(ext, period, 0, period, out)
    _xor_shifted_kernel(out, wrap, 0)


@njit(cache=True)
def _reduce_all_kernel(data, piece_bits):
    """Reduce every element of data from S to R in place."""
    tmp = np.empty(2 * data.shape[1], dtype=np.uint64)
    for i in range(data.shape[0]):
        _fold_to_r_kernel(data[i], tmp, piece_bits)


def cyclic_mul(
    a_words: np.ndarray, a_bits: int, b_words: np.ndarray, b_bits: int, plan: TernaryPlan
) -> np.ndarray:
    """A * B mod (x^{plan.period_bits} - 1) over GF(2), exact; packed words out.

    a_bits and b_bits (coefficient counts) must not exceed the period.
    """
    period = plan.period_bits
    if a_bits > period or b_bits > period:
        raise QkdInputError(
            f"cyclic_mul: operands of {a_bits} and {b_bits} bits exceed the period {period}"
        )
    piece_bits = plan.piece_bits
    n_elem = words_for_bits(3 * piece_bits)
    fa = np.empty((plan.points, n_elem), dtype=np.uint64)
    fb = np.empty((plan.points, n_elem), dtype=np.uint64)
    _load_pieces_kernel(np.ascontiguousarray(a_words, dtype=np.uint64), a_bits, piece_bits, fa)
    _load_pieces_kernel(np.ascontiguousarray(b_words, dtype=np.uint64), b_bits, piece_bits, fb)
    _transform(fa, piece_bits, False)
    _transform(fb, piece_bits, False)
    _pointwise_kernel(fa, fb, piece_bits, 4 * numba.get_num_threads())
    del fb
    _transform(fa, piece_bits, True)
    _reduce_all_kernel(fa, piece_bits)
    out = np.empty(words_for_bits(period), dtype=np.uint64)
    _assemble_kernel(fa, piece_bits, out)
    return out
