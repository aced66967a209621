"""Alice's per-slot choices (intensity class, basis, bit) from 32 random bits per slot.

The 12 joint outcomes o = 4 * class + 2 * basis + bit have the probabilities
p_intensity[class] * P(basis) * P(bit) (basis 0 = Z with p_z, bit 1 with p_bit_one).
Each is rounded to an integer weight w_o of 2^32 (largest remainder, the weights sum
to exactly 2^32), so the simulated probabilities are exactly w_o / 2^32: within
2^-32 of the configured products (the quantization).  A 32-bit number u maps to
o = number of cumulative weights C_k = w_0 + ... + w_{k-1} (k = 1..11) with u >= C_k:
eleven branch-free compares, no table lookup, so the loop vectorizes (AVX-512 here).

Where the 32 bits come from:
- "prng" (the default): a counter-based generator.  Slot i (absolute index) takes the
  64-bit output h_i = mix64(key + i * GAMMA) of SplitMix64 (Steele, Lea & Flood,
  OOPSLA 2014: the finaliser of Java's SplittableRandom, a variant of MurmurHash3's
  fmix64 that passes BigCrush on a counter), key from the bench seed.  The low 32 bits
  are Alice's u, the high 32 bits Bob's click-candidate draw (physics/clicks.py).  A
  slot's choice depends only on (key, i), never on how a block is chunked.  One
  64-bit hash per slot instead of two slots per output: the multiplies cost ~0.13 ns
  per slot, and the candidate test needs the other 32 bits anyway.
- a RandomSource (QRNG, OS): u is half i % 2 (low half first) of 64-bit word i // 2 of
  the source's words; the click draws still come from the counter hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numba import njit

from qkdctl.core.errors import QkdInputError

CHOICE_BITS = 32
"""Random bits per slot; the joint probabilities are multiples of 2**-CHOICE_BITS."""
N_OUTCOMES = 12
GAMMA = np.uint64(0x9E3779B97F4A7C15)
"""SplitMix64's counter increment (odd; 2**64 / golden ratio)."""
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_U32 = np.uint64(32)
_UNIT = 1 << CHOICE_BITS


def words_needed(n_slots: int) -> int:
    """64-bit words of a RandomSource that n_slots slots consume."""
    return (int(n_slots) + 1) // 2


def counter_key(seed: int) -> int:
    """The counter generator's 64-bit key for a bench seed (SeedSequence child 4 of seed)."""
    return int(np.random.SeedSequence(int(seed), spawn_key=(4,)).generate_state(1, np.uint64)[0])


@njit(cache=True, inline="always")
def mix64(z):
    """SplitMix64's output function of a uint64 state."""
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def choice_weights(p_intensity: tuple[float, float, float], p_z: float, p_bit_one: float) -> np.ndarray:
    """Integer weights (int64, 12, sum 2**32) of the outcomes o = 4*class + 2*basis + bit."""
    p_int = np.asarray(p_intensity, dtype=np.float64)
    if p_int.shape != (3,) or not np.all(np.isfinite(p_int)) or np.any(p_int < 0) or abs(p_int.sum() - 1) > 1e-9:
        raise QkdInputError(f"p_intensity must be 3 probabilities summing to 1, got {tuple(p_intensity)}")
    for name, p in (("p_z", p_z), ("p_bit_one", p_bit_one)):
        if not 0.0 <= float(p) <= 1.0:
            raise QkdInputError(f"{name} must be in [0, 1], got {p}")
    p_basis = np.array([p_z, 1.0 - p_z])
    p_bit = np.array([1.0 - p_bit_one, p_bit_one])
    joint = (p_int[:, None, None] * p_basis[None, :, None] * p_bit[None, None, :]).ravel()
    scaled = joint / joint.sum() * 2.0**CHOICE_BITS
    weights = np.floor(scaled).astype(np.int64)
    short = (1 << CHOICE_BITS) - int(weights.sum())
    weights[np.argsort(-(scaled - weights), kind="stable")[:short]] += 1
    return weights


@dataclass(frozen=True)
class ChoiceThresholds:
    """Alice's outcome as o = base + #{k : u > above[k]} (11 compares of uint32).

    above[k] = C_{k+1} - 1 for a cumulative weight C >= 1; a C of 0 (u >= 0 always
    holds) moves into `base` and a C of 2**32 (never reached) both become the
    never-true 2**32 - 1, so all thresholds fit uint32.
    """

    above: np.ndarray
    """uint32 (11,)."""
    base: int

    @classmethod
    def from_weights(cls, weights: np.ndarray) -> ChoiceThresholds:
        """Thresholds of integer weights (12, >= 0, summing to 2**32)."""
        w = np.asarray(weights, dtype=np.int64)
        if w.shape != (N_OUTCOMES,) or np.any(w < 0) or int(w.sum()) != _UNIT:
            raise QkdInputError("choice weights must be 12 integers >= 0 summing to 2**32")
        cum = np.cumsum(w)[:-1]
        above = np.where(cum == 0, _UNIT - 1, np.minimum(cum, _UNIT) - 1)
        return cls(above.astype(np.uint32), int(np.sum(cum == 0)))


def choice_thresholds(p_intensity: tuple[float, float, float], p_z: float, p_bit_one: float) -> ChoiceThresholds:
    """ChoiceThresholds of the quantized probabilities (choice_weights), cached per setting."""
    return _cached(tuple(float(p) for p in p_intensity), float(p_z), float(p_bit_one))


@lru_cache(maxsize=16)
def _cached(p_intensity: tuple[float, float, float], p_z: float, p_bit_one: float) -> ChoiceThresholds:
    return ChoiceThresholds.from_weights(choice_weights(p_intensity, p_z, p_bit_one))


@njit(cache=True, inline="always")
def _write_outcome(i, u, base, d0, d1, d2, d3, d4, d5, d6, d7, d8, d9, d10, basis, bit, intensity):
    # pairwise sums keep the lanes narrow (16 per zmm register)
    o = np.uint8(base + (((u > d0) + (u > d1)) + ((u > d2) + (u > d3)) + ((u > d4) + (u > d5))
                         + ((u > d6) + (u > d7)) + ((u > d8) + (u > d9)) + (u > d10)))
    c = o >> np.uint8(2)
    intensity[i] = c
    basis[i] = (o >> np.uint8(1)) & np.uint8(1)
    bit[i] = o & np.uint8(1)
    return c


@njit(cache=True)
def _choices_kernel(key, slot0, halves, use_words, above, base, levels_m1, basis, bit, intensity, flag):
    """Alice's bytes of slots slot0.. and the candidate flags (high hash half <= levels_m1[class])."""
    d0, d1, d2, d3, d4, d5 = above[0], above[1], above[2], above[3], above[4], above[5]
    d6, d7, d8, d9, d10 = above[6], above[7], above[8], above[9], above[10]
    m0, m1, m2 = levels_m1[0], levels_m1[1], levels_m1[2]
    state = key + np.uint64(slot0) * GAMMA  # the counter's state: stepped by GAMMA, no multiply per slot
    if use_words:
        for i in range(basis.size):
            c = _write_outcome(i, halves[i], base, d0, d1, d2, d3, d4, d5, d6, d7, d8, d9, d10, basis, bit, intensity)
            lm = m0 if c == 0 else (m1 if c == 1 else m2)
            flag[i] = np.uint32(mix64(state) >> _U32) <= lm
            state += GAMMA
    else:
        for i in range(basis.size):
            z = mix64(state)
            state += GAMMA
            c = _write_outcome(i, np.uint32(z), base, d0, d1, d2, d3, d4, d5, d6, d7, d8, d9, d10,
                               basis, bit, intensity)
            lm = m0 if c == 0 else (m1 if c == 1 else m2)
            flag[i] = np.uint32(z >> _U32) <= lm


def alice_choices(
    key: int,
    slot0: int,
    thresholds: ChoiceThresholds,
    basis: np.ndarray,
    bit: np.ndarray,
    intensity: np.ndarray,
    words: np.ndarray | None = None,
    flag: np.ndarray | None = None,
    levels: tuple[int, int, int] = (0, 0, 0),
) -> None:
    """Write Alice's basis, bit and intensity class (uint8 arrays of n slots from absolute slot0).

    words: None = the counter generator of `key`; else >= words_needed(n) uint64 words
    of a RandomSource.  flag (uint8, n, optional): 1 where the slot's high hash half is
    below levels[class] (0..2**32 per intensity class; 0 = never), the click candidates
    of physics/clicks.py.
    """
    n = basis.size
    for a in (basis, bit, intensity) + (() if flag is None else (flag,)):
        if a.shape != (n,) or a.dtype != np.uint8 or not a.flags.c_contiguous:
            raise QkdInputError(f"basis, bit, intensity (and flag) must be contiguous uint8 arrays of {n} slots")
    if words is None:
        halves = np.empty(0, dtype=np.uint32)
    elif words.dtype != np.uint64 or words.ndim != 1 or words.size < words_needed(n) or not words.flags.c_contiguous:
        raise QkdInputError(f"words must be >= {words_needed(n)} contiguous uint64 values for {n} slots")
    else:
        halves = words.view(np.uint32)
    if not 0 <= int(slot0) < 2**63 or not 0 <= int(key) < 2**64:
        raise QkdInputError(f"slot0 {slot0} and key must be non-negative 64-bit integers")
    lv = np.asarray(levels, dtype=np.int64)
    if lv.shape != (3,) or np.any(lv < 0) or np.any(lv > _UNIT):
        raise QkdInputError(f"candidate levels {levels} must be 3 values in 0..2**32")
    if flag is None:
        flag = np.empty(n, dtype=np.uint8)
    _choices_kernel(np.uint64(key), np.int64(slot0), halves, words is not None, thresholds.above,
                    np.uint8(thresholds.base), levels_minus_one(lv), basis, bit, intensity, flag)
    flag &= (lv > 0)[intensity]


def levels_minus_one(levels: np.ndarray) -> np.ndarray:
    """uint32 levels - 1 for the kernel's `<=` compare (a level of 0 gives 0: callers mask those classes)."""
    return (np.maximum(np.asarray(levels, dtype=np.int64), 1) - 1).astype(np.uint32)
