"""Alice's per-slot choices (intensity class, basis, bit) from 32 random bits per slot.

The 12 joint outcomes o = 4 * class + 2 * basis + bit have the probabilities
p_intensity[class] * P(basis) * P(bit) (basis 0 = Z with p_z, bit 1 with p_bit_one).
Each is rounded to an integer weight w_o of 2^32 (largest remainder, the weights sum
to exactly 2^32), so the simulated probabilities are exactly w_o / 2^32: within
2^-32 of the configured products (the quantization).  A Walker/Vose alias table of
16 columns of 2^28 turns one 32-bit number into an outcome with one comparison:
the top 4 bits pick a column, the low 28 bits its own outcome below thr[column],
else the column's alias.  The kernel looks the three bytes up by 2 * column +
(comparison), branch-free (a data-dependent branch here costs ~3 ns per slot in
mispredictions, the lookup ~0.7 ns).  Slot i uses half i % 2 (low half first) of
64-bit word i // 2, so a block of n slots takes (n + 1) // 2 words.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numba import njit

from qkdctl.core.errors import QkdInputError

CHOICE_BITS = 32
"""Random bits per slot; the joint probabilities are multiples of 2**-CHOICE_BITS."""
COLUMN_BITS = 4
COLUMN_SHIFT = CHOICE_BITS - COLUMN_BITS
COLUMN_SIZE = 1 << COLUMN_SHIFT


def words_needed(n_slots: int) -> int:
    """64-bit random words that n_slots slots consume."""
    return (int(n_slots) + 1) // 2


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


def alias_table(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vose alias table (thr, alias), int64 of 16 columns, for integer weights summing to 2**32.

    Column k yields outcome k for low bits < thr[k], else alias[k]; outcome o then has
    probability exactly weights[o] / 2**32.
    """
    n_col = 1 << COLUMN_BITS
    w = np.zeros(n_col, dtype=np.int64)
    w[: len(weights)] = weights
    if w.sum() != 1 << CHOICE_BITS or np.any(w < 0):
        raise QkdInputError("alias weights must be >= 0 and sum to 2**32")
    thr = np.full(n_col, COLUMN_SIZE, dtype=np.int64)
    alias = np.arange(n_col, dtype=np.int64)
    small = [k for k in range(n_col) if w[k] < COLUMN_SIZE]
    large = [k for k in range(n_col) if w[k] >= COLUMN_SIZE]
    while small and large:
        s, g = small.pop(), large.pop()
        thr[s] = w[s]
        alias[s] = g
        w[g] -= COLUMN_SIZE - w[s]
        (small if w[g] < COLUMN_SIZE else large).append(g)
    return thr, alias


@dataclass(frozen=True)
class ChoiceTable:
    """Alias table of Alice's outcomes, with the kernel's lookup of the three bytes."""

    thr: np.ndarray
    """uint32 (16,): below this (low 28 bits) column k yields outcome k."""
    alias: np.ndarray
    """int64 (16,): the column's other outcome."""
    intensity: np.ndarray
    """uint8 (32,), like basis and bit: the byte for index 2 * column + (low bits < thr)."""
    basis: np.ndarray
    bit: np.ndarray

    @classmethod
    def build(cls, p_intensity: tuple[float, float, float], p_z: float, p_bit_one: float) -> ChoiceTable:
        """The table for these probabilities (quantized to 2**-32, see choice_weights)."""
        thr, alias = alias_table(choice_weights(p_intensity, p_z, p_bit_one))
        outcome = np.empty(2 * len(thr), dtype=np.int64)
        outcome[0::2] = alias
        outcome[1::2] = np.arange(len(thr))
        return cls(thr.astype(np.uint32), alias, (outcome >> 2).astype(np.uint8),
                   ((outcome >> 1) & 1).astype(np.uint8), (outcome & 1).astype(np.uint8))


def choice_table(p_intensity: tuple[float, float, float], p_z: float, p_bit_one: float) -> ChoiceTable:
    """ChoiceTable.build, cached: the simulator asks once per physics step for the same table."""
    return _cached_table(tuple(float(p) for p in p_intensity), float(p_z), float(p_bit_one))


@lru_cache(maxsize=16)
def _cached_table(p_intensity: tuple[float, float, float], p_z: float, p_bit_one: float) -> ChoiceTable:
    return ChoiceTable.build(p_intensity, p_z, p_bit_one)


@njit(cache=True)
def _choices_kernel(halves, thr, t_intensity, t_basis, t_bit, basis, bit, intensity):
    for i in range(basis.size):
        v = halves[i]
        col = v >> np.uint32(COLUMN_SHIFT)
        k = 2 * col + np.uint32((v & np.uint32(COLUMN_SIZE - 1)) < thr[col])
        intensity[i] = t_intensity[k]
        basis[i] = t_basis[k]
        bit[i] = t_bit[k]


def alice_choices(
    words: np.ndarray,
    table: ChoiceTable,
    basis: np.ndarray,
    bit: np.ndarray,
    intensity: np.ndarray,
) -> None:
    """Write Alice's basis, bit and intensity class (uint8 arrays of n slots) from random words.

    words: uint64, at least words_needed(n) of them.
    """
    n = basis.size
    if words.dtype != np.uint64 or words.ndim != 1 or words.size < words_needed(n) or not words.flags.c_contiguous:
        raise QkdInputError(f"words must be >= {words_needed(n)} contiguous uint64 values for {n} slots")
    for a in (basis, bit, intensity):
        if a.shape != (n,) or a.dtype != np.uint8 or not a.flags.c_contiguous:
            raise QkdInputError(f"basis, bit, intensity must be contiguous uint8 arrays of {n} slots")
    _choices_kernel(words.view(np.uint32), table.thr, table.intensity, table.basis, table.bit, basis, bit, intensity)
