"""Slow, obviously correct reference of the Wegman-Carter polynomial hash over GF(2^64)."""

from __future__ import annotations

POLY = (1 << 64) | 0x1B  # x^64 + x^4 + x^3 + x + 1


def gf64_mul(a: int, b: int) -> int:
    """Carry-less product of a and b reduced modulo POLY."""
    prod = 0
    for i in range(64):
        if (b >> i) & 1:
            prod ^= a << i
    for bit in range(127, 63, -1):
        if (prod >> bit) & 1:
            prod ^= POLY << (bit - 64)
    return prod


def poly_hash64(data: bytes, s: int) -> int:
    """Horner over the zero-padded little-endian 64-bit words of data, then its length."""
    padded = data + b"\x00" * (-len(data) % 8)
    h = 0
    for i in range(0, len(padded), 8):
        h = gf64_mul(h ^ int.from_bytes(padded[i:i + 8], "little"), s)
    return gf64_mul(h ^ len(data), s)
