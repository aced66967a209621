"""Bit-packed polynomials over GF(2): packing, bit-range moves, multiplication.

A polynomial A(x) = sum_i a_i x^i with a_i in {0, 1} is stored as uint64 words,
least significant bit first: a_i is bit (i % 64) of word i // 64.  Addition is
XOR.  Multiplication is schoolbook on 64 x 64-bit carry-less word products
(PCLMULQDQ, or a shift-and-XOR fallback) for short operands and Karatsuba
above that; every step is exact (no floating point, no carries).
"""

from __future__ import annotations

import llvmlite.binding as llvm_binding
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from qkdctl.core.errors import QkdInputError

U64_1 = np.uint64(1)
U64_64 = np.uint64(64)
# Operands of at most this many words are multiplied word by word (schoolbook).
SCHOOLBOOK_MAX_WORDS = 16
# PCLMULQDQ (carry-less multiply) is used when the host CPU has it; numba's cache
# is keyed by CPU features, so a machine without it compiles the fallback.
HAVE_PCLMUL = "+pclmul" in llvm_binding.get_host_cpu_features().flatten().split(",")


def words_for_bits(n_bits: int) -> int:
    """Number of uint64 words that hold n_bits bits."""
    return (int(n_bits) + 63) // 64


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """Pack a 0/1 uint8 array (bit i = coefficient of x^i) into uint64 words, LSB first."""
    b = np.asarray(bits)
    if b.ndim != 1:
        raise QkdInputError(f"pack_bits: bits must be a 1-D array, got shape {b.shape}")
    n_words = words_for_bits(b.size)
    packed = np.packbits(b.astype(np.uint8, copy=False), bitorder="little")
    buf = np.zeros(n_words * 8, dtype=np.uint8)
    buf[: packed.size] = packed
    return buf.view("<u8").astype(np.uint64, copy=False)


def unpack_bits(words: np.ndarray, n_bits: int) -> np.ndarray:
    """Unpack the first n_bits bits of uint64 words (LSB first) into a 0/1 uint8 array."""
    w = np.ascontiguousarray(words, dtype=np.uint64)
    if n_bits > 64 * w.size:
        raise QkdInputError(f"unpack_bits: {n_bits} bits requested from {w.size} words")
    as_bytes = w.astype("<u8", copy=False).view(np.uint8)
    return np.unpackbits(as_bytes, count=int(n_bits), bitorder="little")


@njit(cache=True)
def _extract_bits_kernel(src, src_bits, start, n_bits, dst):
    """dst[0:n_bits] = src[start:start+n_bits] (bits >= src_bits read as 0); rest of dst 0."""
    n_dst = dst.shape[0]
    ws = start // 64
    bs = np.uint64(start % 64)
    inv = U64_64 - bs
    n_src = src.shape[0]
    for i in range(n_dst):
        k = ws + i
        v = np.uint64(0)
        if k < n_src:
            v = src[k] >> bs
            if bs != 0 and k + 1 < n_src:
                v |= src[k + 1] << inv
        dst[i] = v
    # clear bits beyond the requested range and beyond the source length
    keep = min(n_bits, src_bits - start)
    if keep < 0:
        keep = 0
    full = keep // 64
    rem = keep % 64
    if full < n_dst:
        if rem:
            dst[full] &= (U64_1 << np.uint64(rem)) - U64_1
        else:
            dst[full] = 0
        for i in range(full + 1, n_dst):
            dst[i] = 0


@njit(cache=True)
def _xor_shifted_kernel(dst, src, shift):
    """dst ^= src * x^shift (bits that fall beyond dst are dropped)."""
    n_dst = dst.shape[0]
    n_src = src.shape[0]
    ws = shift // 64
    bs = np.uint64(shift % 64)
    inv = U64_64 - bs
    if bs == 0:
        for i in range(n_src):
            k = i + ws
            if k >= n_dst:
                break
            dst[k] ^= src[i]
        return
    for i in range(n_src):
        k = i + ws
        if k >= n_dst:
            break
        dst[k] ^= src[i] << bs
        if k + 1 < n_dst:
            dst[k + 1] ^= src[i] >> inv


def _clmul_soft(a, b):
    """Carry-less 64 x 64 -> 128-bit product by shift and XOR (portable fallback)."""
    lo = np.uint64(0)
    hi = np.uint64(0)
    for i in range(64):
        if (b >> np.uint64(i)) & U64_1:
            lo ^= a << np.uint64(i)
            if i:
                hi ^= a >> np.uint64(64 - i)
    return lo, hi


_clmul_soft_jit = njit(cache=True)(_clmul_soft)


@intrinsic
def _clmul(typingctx, a, b):
    """Carry-less 64 x 64 -> 128-bit product (lo, hi): PCLMULQDQ when the CPU has it."""
    sig = types.UniTuple(types.uint64, 2)(types.uint64, types.uint64)

    def codegen(context, builder, signature, args):
        if not HAVE_PCLMUL:
            return context.compile_internal(builder, _clmul_soft, signature, args)
        i64 = ir.IntType(64)
        vec = ir.VectorType(i64, 2)
        lane0 = ir.Constant(ir.IntType(32), 0)
        lane1 = ir.Constant(ir.IntType(32), 1)
        va = builder.insert_element(ir.Constant(vec, None), args[0], lane0)
        vb = builder.insert_element(ir.Constant(vec, None), args[1], lane0)
        fnty = ir.FunctionType(vec, [vec, vec, ir.IntType(8)])
        fn = builder.module.declare_intrinsic("llvm.x86.pclmulqdq", fnty=fnty)
        r = builder.call(fn, [va, vb, ir.Constant(ir.IntType(8), 0)])
        lo = builder.extract_element(r, lane0)
        hi = builder.extract_element(r, lane1)
        return context.make_tuple(builder, signature.return_type, [lo, hi])

    return sig, codegen


@njit(cache=True)
def _schoolbook_kernel(a, b, out):
    """out[0:na+nb] = a * b, one carry-less word product per pair of words."""
    na = a.shape[0]
    nb = b.shape[0]
    for t in range(na + nb):
        out[t] = 0
    for i in range(na):
        ai = a[i]
        if ai == 0:
            continue
        for j in range(nb):
            lo, hi = _clmul(ai, b[j])
            out[i + j] ^= lo
            out[i + j + 1] ^= hi


@njit(cache=True)
def _karatsuba_kernel(a, b, out, scratch):
    """out[0:2n] = a * b for equal-length a, b (n words); scratch holds >= 8n + 256 words."""
    n = a.shape[0]
    if n <= SCHOOLBOOK_MAX_WORDS:
        _schoolbook_kernel(a, b, out[: 2 * n])
        return
    h = (n + 1) // 2
    g = n - h
    a0 = a[:h]
    a1 = a[h:]
    b0 = b[:h]
    b1 = b[h:]
    sa = scratch[:h]
    sb = scratch[h : 2 * h]
    mid = scratch[2 * h : 4 * h]
    rest = scratch[4 * h :]
    for i in range(h):
        sa[i] = a0[i]
        sb[i] = b0[i]
    for i in range(g):
        sa[i] ^= a1[i]
        sb[i] ^= b1[i]
    _karatsuba_kernel(sa, sb, mid, rest)
    # low and high products go straight to out; the high one is padded to h words
    _karatsuba_kernel(a0, b0, out[: 2 * h], rest)
    hi = out[2 * h :]
    if g == h:
        _karatsuba_kernel(a1, b1, hi, rest)
    else:
        pa = rest[:h]
        pb = rest[h : 2 * h]
        for i in range(h):
            pa[i] = 0
            pb[i] = 0
        for i in range(g):
            pa[i] = a1[i]
            pb[i] = b1[i]
        prod = rest[2 * h : 4 * h]
        _karatsuba_kernel(pa, pb, prod, rest[4 * h :])
        for i in range(2 * g):
            hi[i] = prod[i]
    for i in range(2 * h):
        mid[i] ^= out[i]
    for i in range(2 * g):
        mid[i] ^= hi[i]
    for i in range(2 * h):
        if h + i < 2 * n:
            out[h + i] ^= mid[i]


@njit(cache=True)
def _mul_words_kernel(a, b, out):
    """out = a * b for equal-length word arrays (out has 2n words)."""
    n = a.shape[0]
    scratch = np.empty(8 * n + 256, dtype=np.uint64)
    _karatsuba_kernel(a, b, out, scratch)


def poly_mul(a_words: np.ndarray, a_bits: int, b_words: np.ndarray, b_bits: int) -> np.ndarray:
    """Exact product over GF(2) of two packed polynomials (Karatsuba over carry-less word products).

    a_bits / b_bits are the coefficient counts (degree + 1); bits of the words
    beyond them are ignored.  Returns words_for_bits(a_bits + b_bits - 1) words.
    """
    if a_bits < 1 or b_bits < 1:
        raise QkdInputError(f"poly_mul: need at least one coefficient, got {a_bits} and {b_bits}")
    n = max(words_for_bits(a_bits), words_for_bits(b_bits))
    a = np.zeros(n, dtype=np.uint64)
    b = np.zeros(n, dtype=np.uint64)
    _extract_bits_kernel(np.ascontiguousarray(a_words, dtype=np.uint64), a_bits, 0, a_bits, a)
    _extract_bits_kernel(np.ascontiguousarray(b_words, dtype=np.uint64), b_bits, 0, b_bits, b)
    out = np.empty(2 * n, dtype=np.uint64)
    _mul_words_kernel(a, b, out)
    return out[: words_for_bits(a_bits + b_bits - 1)].copy()
