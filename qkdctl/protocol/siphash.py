"""SipHash-2-4 (Aumasson & Bernstein, "SipHash: a fast short-input PRF", INDOCRYPT 2012)
in numba: a keyed 64-bit PRF, used as the MAC of the compiled in-process Cascade session
(`qkdctl.protocol.cascade_session`).

Key: 128 bits as two little-endian 64-bit words (k0, k1).  The message is read as
little-endian 64-bit words; the last word holds the remaining bytes and, in its top byte,
the message length mod 256.  Two SipRounds per message word, four at finalization.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from qkdctl.core.errors import QkdInputError

_C0 = np.uint64(0x736F6D6570736575)  # "somepseu"
_C1 = np.uint64(0x646F72616E646F6D)  # "dorandom"
_C2 = np.uint64(0x6C7967656E657261)  # "lygenera"
_C3 = np.uint64(0x7465646279746573)  # "tedbytes"
_FF = np.uint64(0xFF)


@njit(cache=True, inline="always")
def _rotl(x, b):
    return (x << np.uint64(b)) | (x >> np.uint64(64 - b))


@njit(cache=True, inline="always")
def _sipround(v0, v1, v2, v3):
    v0 += v1
    v1 = _rotl(v1, 13)
    v1 ^= v0
    v0 = _rotl(v0, 32)
    v2 += v3
    v3 = _rotl(v3, 16)
    v3 ^= v2
    v0 += v3
    v3 = _rotl(v3, 21)
    v3 ^= v0
    v2 += v1
    v1 = _rotl(v1, 17)
    v1 ^= v2
    v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


@njit(cache=True)
def _siphash24_kernel(k0, k1, data, start, length):
    """SipHash-2-4 of data[start:start + length] (uint8) under key (k0, k1)."""
    v0 = k0 ^ _C0
    v1 = k1 ^ _C1
    v2 = k0 ^ _C2
    v3 = k1 ^ _C3
    full = length // 8
    for w in range(full):
        o = start + 8 * w
        m = np.uint64(0)
        for t in range(8):
            m |= np.uint64(data[o + t]) << np.uint64(8 * t)
        v3 ^= m
        v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
        v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
        v0 ^= m
    b = (np.uint64(length) & _FF) << np.uint64(56)
    o = start + 8 * full
    for t in range(length - 8 * full):
        b |= np.uint64(data[o + t]) << np.uint64(8 * t)
    v3 ^= b
    v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    v0 ^= b
    v2 ^= _FF
    for _ in range(4):
        v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3


def siphash24(key: bytes, data: bytes) -> int:
    """SipHash-2-4 of `data` under a 16-byte `key` (64-bit tag as an int)."""
    if not isinstance(key, (bytes, bytearray)) or len(key) != 16:
        raise QkdInputError("SipHash-2-4 needs a 16-byte key")
    k0 = np.uint64(int.from_bytes(key[:8], "little"))
    k1 = np.uint64(int.from_bytes(key[8:], "little"))
    arr = np.frombuffer(bytes(data), dtype=np.uint8)
    return int(_siphash24_kernel(k0, k1, arr, 0, arr.size))
