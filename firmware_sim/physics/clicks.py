"""Alice's choices per slot and Bob's photon clicks, without Eve (the fast path).

Alice's class, basis and bit take 32 random bits per slot (physics/alice.py: exact
integer weights, probabilities quantized to 2^-32), from the counter generator of the
bench key or from a RandomSource's words.  For a coherent state the photon numbers
reaching the four detectors are independent Poisson variables with means
lam[class, state, det], so a slot clicks with p_any = 1 - exp(-sum lam).  Clicks are
found by thinning: a slot of intensity class c is a candidate when the high 32 bits of
its counter hash are below L_c = ceil(max_s p_any[c, s] * 2^32), so candidates form a
Bernoulli(p_bound_c) process with p_bound_c = L_c / 2^32 >= p_any[c, s] (a per-class
bound: decoy and vacuum pulses are rarely candidates); the flags come out of Alice's
vectorized loop (a compare and a select per slot), and the scan finds them 8 slots per
64-bit word (lowest set byte; branch-free compaction when candidates are dense).  A
candidate in state (c, s) clicks when w = u * p_bound_c < p_any[c, s] (u a fresh
uniform, so P = p_any exactly); then w / p_any is again uniform and picks the click pattern (which of the 15
non-empty detector subsets) from its distribution given a click.  Each click takes one
normal draw (ziggurat) for its Gaussian jitter.  Uniforms and normals come from a
SplitMix64 stream seeded by one draw of the Generator per call (physics/gauss.py: inlined,
no call into the BitGenerator per draw), consumed only per candidate, in slot order, so
the output does not depend on how the slots are chunked.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from firmware_sim.physics.alice import _choices_kernel, choice_thresholds, levels_minus_one, words_needed
from firmware_sim.physics.gauss import next_normal, next_uniform
from qkdctl.core.errors import QkdInputError
from qkdctl.core.randomness import RandomSource

_PATTERN_SIZE = np.array([bin(p).count("1") for p in range(16)], dtype=np.int64)
_PATTERN_DETS = np.array([[j for j in range(4) if p >> j & 1] + [0] * (4 - bin(p).count("1")) for p in range(16)],
                         dtype=np.int64)
"""Click pattern p (bit j = detector j clicked): its number of clicks and their detectors."""
PATTERN_ORDER = np.array([1, 2, 4, 8, 3, 5, 6, 9, 10, 12, 7, 11, 13, 14, 15], dtype=np.int64)
"""The 15 click patterns in the order of the pattern cdf: the four single clicks first, so the
common case (one detector, when mu T is small) is settled by 4 compares and a well-predicted
branch instead of 14 compares and a pattern table walk (~4 ns per click)."""

CHUNK_SLOTS = 1 << 14
"""Slots per pass of Alice's vectorized loop inside the kernel (its candidate flags stay in L1)."""
_BYTE_INDEX = np.uint64(0x0001020304050607)
"""2**(8 r) * _BYTE_INDEX has r in its top byte (r = 0..7): the byte index of a word's lowest flag."""
DENSE_P = 0.1
"""Above this largest candidate probability the flags are compacted branch-free, below by
lowest set byte per 64-bit word (a mispredicted loop exit per word costs more than
eight compaction steps when most words hold candidates)."""
CANDIDATE_BITS = 32
"""Random bits per slot of the candidate test; p_bound is a multiple of 2**-CANDIDATE_BITS."""


@njit(cache=True)
def _clicks_kernel(
    stream, key, slot0, start, halves, use_words, above, base, levels_m1, p_bound, basis, bit, intensity,
    step_slots, table, period_ps, delay_ps, jitter_ps, click_t, click_det, nc, flag, cand,
):
    """Alice's choices and the clicks of slots start.. (absolute slot0 + index), chunk by chunk.

    Slot k in state (c, s) of step st = k // step_slots reads row 12 st + 4 c + s of
    `table`: p_any, 1 / p_any, then the 14 pattern cdf values (PATTERN_ORDER).  Stops
    before a chunk whose clicks might not fit (4 per slot); returns (next slot, clicks,
    stream state).  The uniform and normal draws come from the SplitMix64 stream at
    `stream` (physics/gauss.py), in slot order.
    """
    n = basis.size
    chunk = flag.size
    words = flag.view(np.uint64)
    scan = p_bound.max() > 0.0
    dense = p_bound.max() > DENSE_P
    a = start
    while a < n:
        b = min(n, a + chunk)
        if click_t.size - nc < 4 * (b - a):
            break
        _choices_kernel(key, slot0 + a, halves[a:b], use_words, above, base, levels_m1,
                        basis[a:b], bit[a:b], intensity[a:b], flag[:b - a])
        flag[b - a:] = 0
        m = 0
        if dense:  # most words hold candidates: branch-free compaction of every flag
            for r in range(b - a if scan else 0):
                cand[m] = a + r
                m += flag[r]
        else:
            for q in range((b - a + 7) // 8 if scan else 0):
                x = words[q]  # candidate flags are bytes 0/1: one set bit (8 r) per candidate r of the word
                # the first candidate branch-free (most words hold none or one: a branch on it
                # would mispredict about once per candidate), further ones in a rarely taken loop
                low = x & (~x + np.uint64(1))  # 2**(8 r) of the first candidate r (0 if none)
                cand[m] = a + 8 * q + np.int64((low * _BYTE_INDEX) >> np.uint64(56))
                m += x != 0
                x ^= low
                while x != 0:
                    low = x & (~x + np.uint64(1))
                    cand[m] = a + 8 * q + np.int64((low * _BYTE_INDEX) >> np.uint64(56))
                    m += 1
                    x ^= low
        st = a // step_slots
        next_step = (st + 1) * step_slots
        for ci in range(m):
            k = cand[ci]
            while k >= next_step:  # candidates come in slot order: no division per candidate
                st += 1
                next_step += step_slots
            c = intensity[k]
            if p_bound[c] == 0.0:  # a class without light (level 0) has no candidates
                continue
            row = 12 * st + 4 * np.int64(c) + 2 * np.int64(basis[k]) + np.int64(bit[k])
            u, stream = next_uniform(stream)
            w = u * p_bound[c]
            if w < table[row, 0]:
                v = w * table[row, 1]
                t_slot = (slot0 + k) * period_ps + delay_ps[st]
                if v < table[row, 5]:  # one detector clicks (singles come first in PATTERN_ORDER)
                    det = (v >= table[row, 2]) + (v >= table[row, 3]) + (v >= table[row, 4])
                    g, stream = next_normal(stream)
                    click_t[nc] = np.int64(np.rint(t_slot + jitter_ps[det] * g))
                    click_det[nc] = det
                    nc += 1
                    continue
                rank = 4  # a multi-click: its rank in PATTERN_ORDER from the remaining cdf values
                for j in range(6, 16):
                    rank += v >= table[row, j]
                pattern = PATTERN_ORDER[rank]
                for j in range(_PATTERN_SIZE[pattern]):
                    det = _PATTERN_DETS[pattern, j]
                    g, stream = next_normal(stream)
                    click_t[nc] = np.int64(np.rint(t_slot + jitter_ps[det] * g))
                    click_det[nc] = det
                    nc += 1
        a = b
    return a, nc, stream


def click_tables(lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """From lam[..., class, state, det] (mean detected photons): p_any and pattern_cdf.

    p_any[c, s] = 1 - exp(-sum_j lam): probability of at least one click.  A click
    pattern is a bit mask over the 4 detectors (bit j = det j clicked); pattern_cdf[c, s, k]
    is P(pattern in PATTERN_ORDER[:k + 1] | at least one click) for k = 0..13 (the last,
    15 = all four, takes the rest).
    """
    p_click = -np.expm1(-lam)
    p_any = -np.expm1(-lam.sum(axis=-1))
    patterns = PATTERN_ORDER
    bits = ((patterns[:, None] >> np.arange(4)) & 1).astype(bool)  # (15, 4)
    prob = np.prod(np.where(bits, p_click[..., None, :], 1.0 - p_click[..., None, :]), axis=-1)
    safe = np.where(p_any > 0, p_any, 1.0)[..., None]
    cond = np.where(p_any[..., None] > 0, prob / safe, 0.0)
    cdf = np.cumsum(cond, axis=-1)[..., :14]
    return np.ascontiguousarray(p_any), np.ascontiguousarray(cdf)


def candidate_levels(p_any: np.ndarray) -> np.ndarray:
    """Per intensity class the candidate threshold L_c (int64, 3; p_bound_c = L_c / 2**32) of its
    largest click probability over states (and steps): p_any[..., class, state]; 0 without light."""
    p_max = p_any.reshape(-1, 3, 4).max(axis=(0, 2))
    return np.minimum(np.ceil(p_max * float(1 << CANDIDATE_BITS)), float(1 << CANDIDATE_BITS)).astype(np.int64)


def simulate_slots(
    rng: np.random.Generator,
    key: int,
    slot0: int,
    n_slots: int,
    p_intensity: tuple[float, float, float],
    p_z: float,
    p_bit_one: float,
    lam: np.ndarray,
    period_ps: float,
    delay_ps: float | np.ndarray,
    jitter_ps: np.ndarray,
    out: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    choices: RandomSource | None = None,
    step_slots: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Alice's (basis, bit, intensity) for n_slots slots from absolute slot0 and the clicks they cause.

    lam[class, state, det]: mean number of photons detected by det (after all
    losses and efficiencies) for a pulse of that class prepared in state 2*basis+bit;
    or lam[step, class, state, det] for physics steps of step_slots slots each (slot i
    of the call in step i // step_slots: one call for a block whose optics drift);
    delay_ps likewise one value or one per step.
    A click of det j in slot i is at round(i*period_ps + delay_ps + jitter_ps[j]*N(0,1)).
    Returns basis, bit, intensity (uint8, n_slots; written into `out` if given),
    click_t_ps (int64, in slot order, not sorted across jitter), click_det (uint8 0..3).
    key: the counter generator's key (alice.counter_key of the bench seed): candidate
    draws always, Alice's choices too unless `choices` (e.g. a health-tested QRNG, whose
    SecurityAbort passes through) supplies her words.  rng: one 64-bit draw per call, the
    state of the SplitMix64 stream (physics/gauss.py) that gives per candidate one uniform
    and per click one normal (ziggurat), in slot order.
    """
    lam = np.ascontiguousarray(lam, dtype=np.float64)
    if lam.ndim == 3:
        lam = lam[None]
    if lam.shape[1:] != (3, 4, 4) or lam.ndim != 4 or not np.all(np.isfinite(lam)) or np.any(lam < 0):
        raise QkdInputError(f"lam must be a finite non-negative (3, 4, 4) or (steps, 3, 4, 4) array, got {lam.shape}")
    if n_slots < 0:
        raise QkdInputError(f"n_slots must be >= 0, got {n_slots}")
    step_slots = max(int(n_slots), 1) if step_slots is None else int(step_slots)
    if step_slots < 1 or lam.shape[0] * step_slots < n_slots or (lam.shape[0] - 1) * step_slots >= max(n_slots, 1):
        raise QkdInputError(f"{lam.shape[0]} lam steps of {step_slots} slots do not cover {n_slots} slots")
    if not period_ps > 0:
        raise QkdInputError(f"period_ps must be > 0, got {period_ps}")
    if not 0 <= int(slot0) < 2**62 or not 0 <= int(key) < 2**64:
        raise QkdInputError(f"slot0 {slot0} and key {key} must be non-negative 64-bit integers")
    delay_ps = np.ascontiguousarray(np.broadcast_to(np.asarray(delay_ps, dtype=np.float64), lam.shape[:1]))
    jitter_ps = np.ascontiguousarray(jitter_ps, dtype=np.float64)
    if jitter_ps.shape != (4,) or np.any(jitter_ps < 0):
        raise QkdInputError("jitter_ps must be 4 values >= 0")
    th = choice_thresholds(p_intensity, p_z, p_bit_one)
    p_any, pattern_cdf = click_tables(lam)
    inv_p_any = np.divide(1.0, p_any, out=np.zeros_like(p_any), where=p_any > 0)
    table = np.ascontiguousarray(np.concatenate((p_any[..., None], inv_p_any[..., None], pattern_cdf), axis=-1)
                                 .reshape(-1, 16))
    levels = candidate_levels(p_any)
    if out is None:
        out = tuple(np.empty(n_slots, dtype=np.uint8) for _ in range(3))
    basis, bit, intensity = out
    if any(a.shape != (n_slots,) or a.dtype != np.uint8 or not a.flags.c_contiguous for a in out):
        raise QkdInputError(f"out must be three contiguous uint8 arrays of {n_slots} slots")
    halves = np.empty(0, dtype=np.uint32) if choices is None else choices.words(words_needed(n_slots)).view(np.uint32)
    # output sized for the expected clicks (+ margin); grown when a chunk might not fit
    clicks_per_slot = float(np.asarray(p_intensity, dtype=np.float64) @ (-np.expm1(-lam)).sum(axis=3).mean(axis=(0, 2)))
    chunk = min(n_slots, CHUNK_SLOTS)
    cap = int(1.2 * clicks_per_slot * n_slots) + 4 * chunk + 1024
    click_t = np.empty(cap, dtype=np.int64)
    click_det = np.empty(cap, dtype=np.uint8)
    flag = np.empty(-(-chunk // 8) * 8, dtype=np.uint8)
    cand = np.empty(flag.size + 1, dtype=np.int64)  # + 1: the sparse scan writes one past the last candidate
    a = nc = 0
    stream = rng.integers(0, 2**64, dtype=np.uint64)  # seeds the per-candidate draws (gauss.py)
    while True:
        a, nc, stream = _clicks_kernel(
            stream, np.uint64(key), np.int64(slot0), a, halves, choices is not None, th.above, np.uint8(th.base),
            levels_minus_one(levels), levels / 2.0**CANDIDATE_BITS, basis, bit, intensity, step_slots, table,
            float(period_ps), delay_ps, jitter_ps, click_t, click_det, nc, flag, cand,
        )
        if a >= n_slots:
            return basis, bit, intensity, click_t[:nc], click_det[:nc]
        click_t = np.concatenate((click_t[:nc], np.empty(click_t.size, dtype=np.int64)))
        click_det = np.concatenate((click_det[:nc], np.empty(click_det.size, dtype=np.uint8)))
