"""Slow, obviously correct references for the Cascade kernels."""

from __future__ import annotations

import numpy as np

M64 = (1 << 64) - 1


def _splitmix64(seed: int):
    state = seed & M64
    while True:
        state = (state + 0x9E3779B97F4A7C15) & M64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        yield z ^ (z >> 31)


def permutation(seed: int, n: int) -> list[int]:
    """Fisher-Yates from the top; draws are 32-bit halves of splitmix64 outputs (high half
    first), bounded by multiply-shift: j = (r * (i + 1)) >> 32."""
    draws = (half for z in _splitmix64(seed) for half in (z >> 32, z & 0xFFFFFFFF))
    perm = list(range(n))
    for i in range(n - 1, 0, -1):
        j = (next(draws) * (i + 1)) >> 32
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def pack(bits_in_order: list[int]) -> list[int]:
    """Pack bits into 64-bit ints, bit i at word i // 64, position i % 64."""
    words = [0] * ((len(bits_in_order) + 63) // 64)
    for i, bit in enumerate(bits_in_order):
        words[i // 64] |= int(bit) << (i % 64)
    return words


def range_parity(bits_in_order, start: int, end: int) -> int:
    """Parity of bits_in_order[start:end]."""
    return int(sum(int(b) for b in bits_in_order[start:end]) % 2)


def node_range(block_start: int, block_end: int, node: int) -> tuple[int, int]:
    """Range of heap node `node` (root 1) of a block, left child taking ceil(len/2)."""
    path = bin(node)[3:]
    s, e = block_start, block_end
    for step in path:
        m = s + (e - s + 1) // 2
        s, e = (s, m) if step == "0" else (m, e)
    return s, e


def check_error_tree(alice_bits, bob_bits, perm, k: int, tree_slice, tsize: int) -> None:
    """Assert every known node of one pass's block trees holds the true error parity."""
    n = len(perm)
    err = [int(alice_bits[perm[i]]) ^ int(bob_bits[perm[i]]) for i in range(n)]
    for bl in range(-(-n // k)):
        s0, e0 = bl * k, min(n, (bl + 1) * k)
        for h in range(1, tsize):
            v = int(tree_slice[bl * tsize + h])
            if v < 0:
                continue
            s, e = node_range(s0, e0, h)
            assert e > s, f"known node {h} of block {bl} is empty"
            assert v == range_parity(err, s, e), f"node {h} of block {bl}: stored {v}"


def errors(alice_bits, bob_bits) -> np.ndarray:
    """Indices where the keys differ."""
    return np.flatnonzero(np.asarray(alice_bits) != np.asarray(bob_bits))


def half_split(seed: int, n: int) -> tuple[list[int], int]:
    """Bit i % 64 of the (i // 64)-th splitmix64 output puts bit i in subset S; the larger of
    S and its complement comes first (ties: S), each ascending.  k = its size, capped at n-1."""
    gen = _splitmix64(seed)
    in_s = []
    for w in range(-(-n // 64)):
        z = next(gen)
        in_s += [(z >> t) & 1 for t in range(64)]
    in_s = in_s[:n]
    s_set = [i for i in range(n) if in_s[i]]
    rest = [i for i in range(n) if not in_s[i]]
    first, second = (s_set, rest) if 2 * len(s_set) >= n else (rest, s_set)
    return first + second, min(len(first), n - 1)
