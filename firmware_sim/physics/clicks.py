"""Alice's choices per slot and Bob's photon clicks, without Eve (the fast path).

Alice's class, basis and bit take 32 random bits per slot (physics/alice.py: exact
integer alias table, probabilities quantized to 2^-32), drawn in bulk as 64-bit
words from the Generator's bit generator.  For a coherent state the photon numbers
reaching the four detectors are independent Poisson variables with means
lam[class, state, det], so a slot clicks with p_any = 1 - exp(-sum lam).  Clicks are
found by thinning: candidate slots form a Bernoulli(p_bound) process with p_bound >=
max p_any, so the click work is per candidate, not per slot.  Below SPARSE_P,
p_bound = max p_any and the gaps between candidates are geometric (one uniform and
one log per candidate); above it each slot takes CANDIDATE_BITS random bits (drawn
in bulk, four slots per 64-bit word) and is a candidate when they are below
L = ceil(max p_any * 2^16), so p_bound = L / 2^16 exactly (a branch-free scan,
~0.6 ns per slot, where a geometric gap costs ~20 ns per candidate; measured
crossover ~0.06).  The candidate loop is written out in one kernel: handing the
Generator to a helper njit function per candidate cost ~40 ns per call.  A candidate in state (class, s)
clicks when w = u * p_bound < p_any[class, s] (u a fresh uniform, so P = p_any
exactly); then w / p_any is again uniform and picks the click pattern (which of the
15 non-empty detector subsets) from its distribution given a click.  Each click
takes one normal draw for its Gaussian jitter.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from firmware_sim.physics.alice import alice_choices, choice_table, words_needed
from qkdctl.core.errors import QkdInputError
from qkdctl.core.randomness import RandomSource

_PATTERN_SIZE = np.array([bin(p).count("1") for p in range(16)], dtype=np.int64)
_PATTERN_DETS = np.array([[j for j in range(4) if p >> j & 1] + [0] * (4 - bin(p).count("1")) for p in range(16)],
                         dtype=np.int64)
"""Click pattern p (bit j = detector j clicked): its number of clicks and their detectors."""

SUBBLOCK_SLOTS = 1 << 16
"""Slots per kernel call: Alice's random words are drawn in bulk this many slots at a time."""
SPARSE_P = 0.05
"""Below this largest click probability candidates are found by geometric gaps, above by a bit scan."""
CANDIDATE_BITS = 16
"""Random bits per slot of the bit scan; p_bound is a multiple of 2**-CANDIDATE_BITS."""
_GAP_CAP = float(1 << 62)


@njit(cache=True)
def _clicks_kernel(
    rng, quarters, level, start, log_q, p_bound, slot_a, basis, bit, intensity, p_any, inv_p_any, pattern_cdf,
    period_ps, delay_ps, jitter_ps, click_t, click_det, cand,
):
    """Candidates of the sub-block, then their clicks; returns (clicks, next candidate - n).

    level > 0: slots whose 16 random bits (quarters) are below level (branch-free scan);
    else geometric gaps from slot index `start` on (log_q = log(1 - p_bound)).
    """
    n = basis.size
    m = 0
    i = start
    if level > 0:
        for i in range(n):
            cand[m] = i
            m += quarters[i] < level
        i = n
    else:
        while i < n:
            cand[m] = i
            m += 1
            g = np.log1p(-rng.random()) / log_q
            i += 1 + (np.int64(g) if g < _GAP_CAP else np.int64(_GAP_CAP))
    nc = 0
    for q in range(m):
        k = cand[q]
        c = intensity[k]
        s = 2 * basis[k] + bit[k]
        w = rng.random() * p_bound
        if w < p_any[c, s]:
            v = w * inv_p_any[c, s]
            pattern = 1
            for r in range(14):
                pattern += v >= pattern_cdf[c, s, r]
            t_slot = (slot_a + k) * period_ps + delay_ps
            for r in range(_PATTERN_SIZE[pattern]):
                j = _PATTERN_DETS[pattern, r]
                click_t[nc] = np.int64(np.rint(t_slot + jitter_ps[j] * rng.standard_normal()))
                click_det[nc] = j
                nc += 1
    return nc, i - n


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


def _first_gap(rng: np.random.Generator, log_q: float) -> int:
    """Slots before the first candidate: Geometric(p_bound), log_q = log(1 - p_bound) < 0."""
    return int(min(math.log1p(-rng.random()) / log_q, _GAP_CAP))


def candidate_level(p_any: np.ndarray) -> int:
    """Bit-scan threshold L (p_bound = L / 2**16) for the largest click probability, or 0 below SPARSE_P."""
    p_max = float(p_any.max())
    return 0 if p_max < SPARSE_P else math.ceil(p_max * (1 << CANDIDATE_BITS))


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
    choices: RandomSource | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Alice's (basis, bit, intensity) for n_slots slots and the clicks they cause.

    lam[class, state, det]: mean number of photons detected by det (after all
    losses and efficiencies) for a pulse of that class prepared in state 2*basis+bit.
    A click of det j in slot i is at round(i*period_ps + delay_ps + jitter_ps[j]*N(0,1)).
    Returns basis, bit, intensity (uint8, n_slots; written into `out` if given),
    click_t_ps (int64, in slot order, not sorted across jitter), click_det (uint8 0..3).
    Draws per sub-block of SUBBLOCK_SLOTS: Alice's words, (bit scan) the candidate words,
    then per candidate one uniform and one normal per click.
    choices: source of Alice's words (qkdctl.core.randomness; e.g. a health-tested QRNG,
    whose SecurityAbort passes through); None = rng's bit generator.
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
    table = choice_table(p_intensity, p_z, p_bit_one)
    p_any, pattern_cdf = click_tables(lam)
    inv_p_any = np.divide(1.0, p_any, out=np.zeros_like(p_any), where=p_any > 0)
    level = candidate_level(p_any)
    p_bound = level / (1 << CANDIDATE_BITS) if level else float(p_any.max())
    log_q = math.log1p(-p_bound) if not level and p_bound > 0 else 0.0
    if out is None:
        out = tuple(np.empty(n_slots, dtype=np.uint8) for _ in range(3))
    basis, bit, intensity = out
    if any(a.shape != (n_slots,) or a.dtype != np.uint8 or not a.flags.c_contiguous for a in out):
        raise QkdInputError(f"out must be three contiguous uint8 arrays of {n_slots} slots")
    # output sized for the expected clicks (+ margin); grown when a sub-block might not fit
    clicks_per_slot = float(np.asarray(p_intensity, dtype=np.float64) @ (-np.expm1(-lam)).sum(axis=2).mean(axis=1))
    m = min(n_slots, SUBBLOCK_SLOTS)
    cap = int(1.2 * clicks_per_slot * n_slots) + 4 * m + 1024
    click_t = np.empty(cap, dtype=np.int64)
    click_det = np.empty(cap, dtype=np.uint8)
    cand = np.empty(m, dtype=np.int64)
    no_bits = np.empty(0, dtype=np.uint16)
    nc = 0
    nxt = int(_first_gap(rng, log_q)) if log_q < 0 else n_slots  # next candidate (geometric gaps)
    for a in range(0, n_slots, SUBBLOCK_SLOTS):
        b = min(n_slots, a + SUBBLOCK_SLOTS)
        k = words_needed(b - a)
        words = rng.bit_generator.random_raw(k) if choices is None else choices.words(k)
        alice_choices(words, table, basis[a:b], bit[a:b], intensity[a:b])
        if not level and nxt >= b - a:
            nxt -= b - a
            continue
        if click_t.size - nc < 4 * (b - a):
            click_t = np.concatenate((click_t[:nc], np.empty(click_t.size + 4 * m, dtype=np.int64)))
            click_det = np.concatenate((click_det[:nc], np.empty(click_det.size + 4 * m, dtype=np.uint8)))
        quarters = rng.bit_generator.random_raw(-(-(b - a) // 4)).view(np.uint16) if level else no_bits
        k, nxt = _clicks_kernel(
            rng, quarters, level, nxt, log_q, p_bound, int(slot0) + a, basis[a:b], bit[a:b], intensity[a:b],
            p_any, inv_p_any, pattern_cdf, float(period_ps), float(delay_ps), jitter_ps,
            click_t[nc:], click_det[nc:], cand,
        )
        nc += k
    return basis, bit, intensity, click_t[:nc], click_det[:nc]
