"""Alice's choices per slot and Bob's photon clicks, without Eve (the fast path).

One uniform draw per slot decides intensity class, basis and bit and, with what
is left of its precision after rescaling, whether any detector clicks: for a
coherent state the photon numbers reaching the four detectors are independent
Poisson variables with means lam[class, state, det], so a slot clicks with
p_any = 1 - exp(-sum lam).  Which detectors clicked is drawn only for clicking
slots, from the conditional probabilities given at least one click.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from qkdctl.core.errors import QkdInputError


@njit(cache=True)
def _grow_i64(a):
    out = np.empty(max(16, 2 * a.size), dtype=np.int64)
    out[: a.size] = a
    return out


@njit(cache=True)
def _grow_u8(a):
    out = np.empty(max(16, 2 * a.size), dtype=np.uint8)
    out[: a.size] = a
    return out


@njit(cache=True)
def _draw_choices(u, p_int0, p_int01, p_z, p_one):
    """Split one uniform into (class, basis, bit, leftover uniform) by conditional rescaling."""
    if u < p_int0:
        c = 0
        u = u / p_int0
    elif u < p_int01:
        c = 1
        u = (u - p_int0) / (p_int01 - p_int0)
    else:
        c = 2
        u = (u - p_int01) / (1.0 - p_int01)
    if u < p_z:
        b = 0
        u = u / p_z
    else:
        b = 1
        u = (u - p_z) / (1.0 - p_z)
    if u < p_one:
        x = 1
        u = u / p_one
    else:
        x = 0
        u = (u - p_one) / (1.0 - p_one)
    return c, b, x, u


@njit(cache=True)
def _slots_kernel(
    rng, slot0, n, p_int0, p_int01, p_z, p_one, p_any, p_first, p_next, basis, bit, intensity
):
    cap = 1024 + n // 8
    click_slot = np.empty(cap, dtype=np.int64)
    click_det = np.empty(cap, dtype=np.uint8)
    nc = 0
    for i in range(n):
        c, b, x, u = _draw_choices(rng.random(), p_int0, p_int01, p_z, p_one)
        basis[i] = b
        bit[i] = x
        intensity[i] = c
        s = 2 * b + x
        if u < p_any[c, s]:
            if nc + 4 > click_slot.size:
                click_slot = _grow_i64(click_slot)
                click_det = _grow_u8(click_det)
            first = True
            for j in range(4):
                p = p_first[c, s, j] if first else p_next[c, s, j]
                if p > 0.0 and rng.random() < p:
                    click_slot[nc] = slot0 + i
                    click_det[nc] = j
                    nc += 1
                    first = False
    return click_slot[:nc], click_det[:nc]


def click_tables(lam: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From lam[class, state, det] (mean detected photons): p_any, p_first, p_next.

    p_any[c, s]: probability of at least one click.  p_first[c, s, j]: probability
    that det j clicks given none of 0..j-1 clicked and at least one of j..3 did.
    p_next[c, s, j] = 1 - exp(-lam): unconditional click probability of det j.
    """
    p_next = -np.expm1(-lam)
    tail = np.cumsum(lam[..., ::-1], axis=-1)[..., ::-1]  # sum_{i>=j} lam_i
    p_tail = -np.expm1(-tail)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_first = np.where(p_tail > 0, p_next / np.where(p_tail > 0, p_tail, 1.0), 0.0)
    return np.ascontiguousarray(p_tail[..., 0]), np.ascontiguousarray(p_first), np.ascontiguousarray(p_next)


def simulate_slots(
    rng: np.random.Generator,
    slot0: int,
    n_slots: int,
    p_intensity: tuple[float, float, float],
    p_z: float,
    p_bit_one: float,
    lam: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Alice's (basis, bit, intensity) for n_slots slots and the clicks they cause.

    lam[class, state, det]: mean number of photons detected by det (after all
    losses and efficiencies) for a pulse of that class prepared in state 2*basis+bit.
    Returns basis, bit, intensity (uint8, n_slots) and click_slot (int64, absolute
    slot index, non-decreasing), click_det (uint8 detector index 0..3).
    """
    lam = np.ascontiguousarray(lam, dtype=np.float64)
    if lam.shape != (3, 4, 4) or not np.all(np.isfinite(lam)) or np.any(lam < 0):
        raise QkdInputError(f"lam must be a finite non-negative (3, 4, 4) array, got shape {lam.shape}")
    if n_slots < 0:
        raise QkdInputError(f"n_slots must be >= 0, got {n_slots}")
    p_any, p_first, p_next = click_tables(lam)
    basis = np.empty(n_slots, dtype=np.uint8)
    bit = np.empty(n_slots, dtype=np.uint8)
    intensity = np.empty(n_slots, dtype=np.uint8)
    p0 = float(p_intensity[0])
    p01 = float(p_intensity[0] + p_intensity[1])
    click_slot, click_det = _slots_kernel(
        rng, int(slot0), int(n_slots), p0, p01, float(p_z), float(p_bit_one),
        p_any, p_first, p_next, basis, bit, intensity,
    )
    return basis, bit, intensity, click_slot, click_det
