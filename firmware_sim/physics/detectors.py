"""Bob's single-photon detectors: dark counts, dead time and afterpulsing, in time order.

A detector that fired at t is dead until t + dead_time_ps (clicks in between are
lost).  Each click leaves, with probability afterpulse_prob, an afterpulse at
t + dead_time_ps + Exp(afterpulse_delay_ps): trapped carriers released after the
hold-off, so the afterpulse probability per counted click is exactly
afterpulse_prob (an afterpulse can itself afterpulse).  Those Bernoulli trials are
drawn per afterpulse, not per click: per detector, the number of counted clicks
before the next one that afterpulses is Geometric(afterpulse_prob) (one uniform and
a log), drawn afresh at the detector's first click of each block (memoryless).  Afterpulses not yet due at
the end of a block stay pending into the next block.  Output room is
2 x input + 64 events; afterpulses beyond it (only when afterpulse_prob is close to 1)
are dropped and counted as lost.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from qkdctl.core.errors import QkdInputError

PENDING_CAPACITY = 256
"""Max pending afterpulses per detector (extra ones are counted as lost)."""
_GAP_CAP = float(1 << 62)


@njit(cache=True)
def is_sorted(t):
    """True when t is non-decreasing (a branch-free count of descents: vectorized, no early exit)."""
    descents = 0
    for i in range(1, t.size):
        descents += t[i] < t[i - 1]
    return descents == 0


@njit(cache=True)
def sort_nearly_sorted(t, det):
    """Insertion sort of (t, det) by t in place: O(n) when items are only locally out of order."""
    for i in range(1, t.size):
        ti = t[i]
        if ti >= t[i - 1]:
            continue
        di = det[i]
        k = i
        while k > 0 and t[k - 1] > ti:
            t[k] = t[k - 1]
            det[k] = det[k - 1]
            k -= 1
        t[k] = ti
        det[k] = di


@njit(cache=True)
def _next_afterpulse(pend, n_pend, big):
    """(time, detector) of the earliest pending afterpulse (lowest detector on ties); (big, 0) if none."""
    t = big
    det = 0
    for k in range(4):
        if n_pend[k] > 0 and pend[k, n_pend[k] - 1] < t:
            t = pend[k, n_pend[k] - 1]
            det = k
    return t, det


@njit(cache=True)
def _dead_time_kernel(rng, t1, d1, t2, d2, dead_ps, ap_prob, ap_mean_ps, last_click, pend, n_pend, t_end):
    """Merge two sorted candidate streams with the pending afterpulses, in global time order."""
    cap = 2 * (t1.size + t2.size) + 64
    out_t = np.empty(cap, dtype=np.int64)
    out_det = np.empty(cap, dtype=np.uint8)
    out_ap = np.empty(cap, dtype=np.bool_)
    big = np.iinfo(np.int64).max
    no = 0
    lost = 0
    i1 = 0
    i2 = 0
    ap_next, ap_det = _next_afterpulse(pend, n_pend, big)  # the earliest pending afterpulse (big: none)
    countdown = np.full(4, -1, dtype=np.int64)  # counted clicks before the next afterpulsing one; -1: draw
    log_q = np.log1p(-ap_prob)
    while True:
        # earliest of: next of stream 1, next of stream 2, earliest afterpulse due before t_end
        te = big
        j = 0
        src = -1
        if i1 < t1.size:
            te = t1[i1]
            j = d1[i1]
            src = 1
        if i2 < t2.size and t2[i2] < te:
            te = t2[i2]
            j = d2[i2]
            src = 2
        if ap_next < te and ap_next < t_end:
            te = ap_next
            j = ap_det
            src = 0
        if src < 0:
            break
        if src == 0:
            n_pend[j] -= 1
            ap_next, ap_det = _next_afterpulse(pend, n_pend, big)
        elif src == 1:
            i1 += 1
        else:
            i2 += 1
        if te - last_click[j] < dead_ps[j]:
            continue
        if no >= cap:
            lost += 1
            continue
        out_t[no] = te
        out_det[no] = j
        out_ap[no] = src == 0
        no += 1
        last_click[j] = te
        if ap_prob[j] <= 0.0:
            continue
        if countdown[j] < 0:
            g = np.log1p(-rng.random()) / log_q[j]
            countdown[j] = np.int64(g) if g < _GAP_CAP else np.int64(_GAP_CAP)
        countdown[j] -= 1
        if countdown[j] == -1:
            ta = te + dead_ps[j] + np.int64(rng.exponential() * ap_mean_ps[j])
            k = n_pend[j]
            if k >= pend.shape[1] or no + n_pend[j] >= cap:
                lost += 1
                continue
            # pend[j, :k] sorted descending: the next due afterpulse is at the end
            while k > 0 and pend[j, k - 1] < ta:
                pend[j, k] = pend[j, k - 1]
                k -= 1
            pend[j, k] = ta
            n_pend[j] += 1
            if ta < ap_next:  # strictly earlier, as _next_afterpulse picks the lowest detector on ties
                ap_next = ta
                ap_det = j
            elif ta == ap_next and j < ap_det:
                ap_det = j
    return out_t[:no], out_det[:no], out_ap[:no], lost


class DetectorState:
    """Memory of the four detectors across blocks: last click (ps) and pending afterpulses."""

    def __init__(self) -> None:
        self.last_click_ps = np.full(4, np.iinfo(np.int64).min // 2, dtype=np.int64)
        self.pending_ps = np.zeros((4, PENDING_CAPACITY), dtype=np.int64)
        self.n_pending = np.zeros(4, dtype=np.int64)


def dark_counts(
    rng: np.random.Generator, dark_count_hz: np.ndarray, t0_ps: int, t1_ps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Poissonian dark counts of each detector, uniform in [t0_ps, t1_ps): (t_ps, det) sorted."""
    span = max(0, int(t1_ps) - int(t0_ps))
    counts = rng.poisson(np.asarray(dark_count_hz, dtype=np.float64) * span * 1e-12)
    t = (t0_ps + rng.random(int(counts.sum())) * span).astype(np.int64)
    det = np.repeat(np.arange(4, dtype=np.uint8), counts)
    order = np.argsort(t, kind="stable")
    return t[order], det[order]


def _check_stream(t_ps: np.ndarray, det: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    t_ps = np.ascontiguousarray(t_ps, dtype=np.int64)
    det = np.ascontiguousarray(det, dtype=np.uint8)
    if t_ps.shape != det.shape or t_ps.ndim != 1:
        raise QkdInputError(f"{what}: t_ps ({t_ps.size}) and det ({det.size}) must be 1-D of equal length")
    if not is_sorted(t_ps):
        raise QkdInputError(f"{what} must be sorted by t_ps")
    if det.size and det.max() > 3:
        raise QkdInputError(f"{what}: detector index {int(det.max())} out of range 0..3")
    return t_ps, det


def apply_dead_time(
    rng: np.random.Generator,
    clicks: tuple[np.ndarray, np.ndarray],
    darks: tuple[np.ndarray, np.ndarray],
    dead_time_ps: np.ndarray,
    afterpulse_prob: np.ndarray,
    afterpulse_delay_ps: np.ndarray,
    state: DetectorState,
    t_end_ps: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Turn candidate clicks and dark counts (each (t_ps, det), sorted) into counted clicks.

    Returns (t_ps sorted, det, is_afterpulse, n_afterpulses_lost).  Afterpulses due at
    or after t_end_ps stay pending in `state`.
    """
    t1, d1 = _check_stream(*clicks, "clicks")
    t2, d2 = _check_stream(*darks, "dark counts")
    return _dead_time_kernel(
        rng, t1, d1, t2, d2,
        np.ascontiguousarray(dead_time_ps, dtype=np.int64),
        np.ascontiguousarray(afterpulse_prob, dtype=np.float64),
        np.ascontiguousarray(afterpulse_delay_ps, dtype=np.float64),
        state.last_click_ps, state.pending_ps, state.n_pending, int(t_end_ps),
    )
