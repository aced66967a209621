"""Alice's choices per slot and Bob's photon clicks, without Eve (the fast path).

One uniform per slot (drawn in bulk from the Generator) decides intensity class,
basis and bit and, with what is left of its precision after rescaling (>= 40 bits),
whether any detector clicks: for a coherent state the photon numbers reaching the
four detectors are independent Poisson variables with means lam[class, state, det],
so a slot clicks with
p_any = 1 - exp(-sum lam).  Which detectors clicked (one of 15 patterns) is drawn
only for clicking slots, from the pattern distribution given at least one click,
using the same uniform rescaled once more (u / p_any, branch-free comparison with
the pattern CDF); only the Gaussian jitter of each click takes a fresh draw.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from qkdctl.core.errors import QkdInputError

_PATTERN_SIZE = np.array([bin(p).count("1") for p in range(16)], dtype=np.int64)
_PATTERN_DETS = np.array([[j for j in range(4) if p >> j & 1] + [0] * (4 - bin(p).count("1")) for p in range(16)],
                         dtype=np.int64)
"""Click pattern p (bit j = detector j clicked): its number of clicks and their detectors."""

SUBBLOCK_SLOTS = 1 << 16
"""Slots per kernel call: the per-slot uniforms are drawn in bulk (numpy) this many at a time."""


@njit(cache=True)
def _draw_choices(u, cut, lo, inv):
    """Split one uniform into (class, basis, bit, leftover uniform) by conditional rescaling.

    cut = (p0, p0 + p1, p_z, p_bit_one); lo / inv: per outcome the lower edge of its
    interval and the inverse width, indexed [class 0..2, basis 3..4, bit 5..6].
    Branch-free: outcome = number of thresholds passed.
    """
    c = np.int64(u >= cut[0]) + np.int64(u >= cut[1])
    u = (u - lo[c]) * inv[c]
    b = np.int64(u >= cut[2])
    u = (u - lo[3 + b]) * inv[3 + b]
    x = np.int64(u < cut[3])
    u = (u - lo[6 - x]) * inv[6 - x]
    return c, b, x, u


def choice_tables(p_intensity: tuple[float, float, float], p_z: float, p_bit_one: float):
    """(cut, lo, inv) for _draw_choices; zero-width outcomes get inv = 0 (never drawn)."""
    p0, p1, _ = (float(p) for p in p_intensity)
    cut = np.array([p0, p0 + p1, p_z, p_bit_one], dtype=np.float64)
    edges = [(0.0, p0), (p0, p0 + p1), (p0 + p1, 1.0), (0.0, p_z), (p_z, 1.0),
             (0.0, p_bit_one), (p_bit_one, 1.0)]
    lo = np.array([a for a, _ in edges], dtype=np.float64)
    inv = np.array([1.0 / (b - a) if b > a else 0.0 for a, b in edges], dtype=np.float64)
    return cut, lo, inv


@njit(cache=True)
def _slots_kernel(
    rng, uniforms, slot0, cut, lo, inv, p_any, inv_p_any, pattern_cdf, period_ps, delay_ps, jitter_ps,
    basis, bit, intensity, click_t, click_det, click_slot, leftover,
):
    # pass 1, branch-free: Alice's choices; compact the clicking slots and their leftover uniform
    n = uniforms.size
    m = 0
    for i in range(n):
        c, b, x, u = _draw_choices(uniforms[i], cut, lo, inv)
        basis[i] = b
        bit[i] = x
        intensity[i] = c
        s = 2 * b + x
        click_slot[m] = i
        leftover[m] = u * inv_p_any[c, s]
        m += u < p_any[c, s]
    # pass 2, clicking slots only: click pattern, then one jittered tag per clicking detector
    nc = 0
    for q in range(m):
        i = click_slot[q]
        c = intensity[i]
        s = 2 * basis[i] + bit[i]
        v = leftover[q]
        pattern = 1
        for k in range(14):
            pattern += v >= pattern_cdf[c, s, k]
        t_slot = (slot0 + i) * period_ps + delay_ps
        for k in range(_PATTERN_SIZE[pattern]):
            j = _PATTERN_DETS[pattern, k]
            click_t[nc] = np.int64(np.rint(t_slot + jitter_ps[j] * rng.standard_normal()))
            click_det[nc] = j
            nc += 1
    return nc


def click_tables(lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """From lam[class, state, det] (mean detected photons): p_any and pattern_cdf.

    p_any[c, s] = 1 - exp(-sum_j lam): probability of at least one click.  A click
    pattern is a bit mask over the 4 detectors (bit j = det j clicked); pattern_cdf[c, s, k]
    is P(pattern <= k + 1 | at least one click) for k = 0..13 (pattern 15 takes the rest).
    """
    p_click = -np.expm1(-lam)
    p_any = -np.expm1(-lam.sum(axis=-1))
    patterns = np.arange(1, 16)
    bits = ((patterns[:, None] >> np.arange(4)) & 1).astype(bool)  # (15, 4)
    prob = np.prod(np.where(bits, p_click[:, :, None, :], 1.0 - p_click[:, :, None, :]), axis=-1)
    safe = np.where(p_any > 0, p_any, 1.0)[..., None]
    cond = np.where(p_any[..., None] > 0, prob / safe, 0.0)
    cdf = np.cumsum(cond, axis=-1)[..., :14]
    return np.ascontiguousarray(p_any), np.ascontiguousarray(cdf)


def simulate_slots(
    rng: np.random.Generator,
    slot0: int,
    n_slots: int,
    p_intensity: tuple[float, float, float],
    p_z: float,
    p_bit_one: float,
    lam: np.ndarray,
    period_ps: float,
    delay_ps: float,
    jitter_ps: np.ndarray,
    out: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Alice's (basis, bit, intensity) for n_slots slots and the clicks they cause.

    lam[class, state, det]: mean number of photons detected by det (after all
    losses and efficiencies) for a pulse of that class prepared in state 2*basis+bit.
    A click of det j in slot i is at round(i*period_ps + delay_ps + jitter_ps[j]*N(0,1)).
    Returns basis, bit, intensity (uint8, n_slots; written into `out` if given),
    click_t_ps (int64, in slot order, not sorted across jitter), click_det (uint8 0..3).
    """
    lam = np.ascontiguousarray(lam, dtype=np.float64)
    if lam.shape != (3, 4, 4) or not np.all(np.isfinite(lam)) or np.any(lam < 0):
        raise QkdInputError(f"lam must be a finite non-negative (3, 4, 4) array, got shape {lam.shape}")
    if n_slots < 0:
        raise QkdInputError(f"n_slots must be >= 0, got {n_slots}")
    if not period_ps > 0:
        raise QkdInputError(f"period_ps must be > 0, got {period_ps}")
    jitter_ps = np.ascontiguousarray(jitter_ps, dtype=np.float64)
    if jitter_ps.shape != (4,) or np.any(jitter_ps < 0):
        raise QkdInputError("jitter_ps must be 4 values >= 0")
    p_any, pattern_cdf = click_tables(lam)
    inv_p_any = np.divide(1.0, p_any, out=np.zeros_like(p_any), where=p_any > 0)
    cut, lo, inv = choice_tables(p_intensity, p_z, p_bit_one)
    if out is None:
        out = tuple(np.empty(n_slots, dtype=np.uint8) for _ in range(3))
    basis, bit, intensity = out
    if any(a.shape != (n_slots,) or a.dtype != np.uint8 or not a.flags.c_contiguous for a in out):
        raise QkdInputError(f"out must be three contiguous uint8 arrays of {n_slots} slots")
    m = min(n_slots, SUBBLOCK_SLOTS)
    buf = np.empty(m, dtype=np.float64)
    room_slot = np.empty(m + 1, dtype=np.int64)
    room_left = np.empty(m + 1, dtype=np.float64)
    # output sized for the expected clicks (+ margin); grown when a sub-block might not fit
    clicks_per_slot = float(np.asarray(p_intensity, dtype=np.float64) @ (-np.expm1(-lam)).sum(axis=2).mean(axis=1))
    cap = int(1.2 * clicks_per_slot * n_slots) + 4 * m + 1024
    click_t = np.empty(cap, dtype=np.int64)
    click_det = np.empty(cap, dtype=np.uint8)
    nc = 0
    for a in range(0, n_slots, SUBBLOCK_SLOTS):
        b = min(n_slots, a + SUBBLOCK_SLOTS)
        if click_t.size - nc < 4 * (b - a):
            click_t = np.concatenate((click_t[:nc], np.empty(click_t.size + 4 * m, dtype=np.int64)))
            click_det = np.concatenate((click_det[:nc], np.empty(click_det.size + 4 * m, dtype=np.uint8)))
        u = buf[: b - a]
        rng.random(out=u)
        nc += _slots_kernel(
            rng, u, int(slot0) + a, cut, lo, inv, p_any, inv_p_any, pattern_cdf,
            float(period_ps), float(delay_ps), jitter_ps, basis[a:b], bit[a:b], intensity[a:b],
            click_t[nc:], click_det[nc:], room_slot, room_left,
        )
    return basis, bit, intensity, click_t[:nc], click_det[:nc]
