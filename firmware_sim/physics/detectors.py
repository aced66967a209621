"""Bob's single-photon detectors: dark counts, dead time and afterpulsing, in time order.

A detector that fired at t is dead until t + dead_time_ps (clicks in between are
lost).  Each click leaves, with probability afterpulse_prob, an afterpulse at
t + dead_time_ps + Exp(afterpulse_delay_ps): trapped carriers released after the
hold-off, so the afterpulse probability per counted click is exactly
afterpulse_prob (an afterpulse can itself afterpulse).  Afterpulses not yet due at
the end of a block stay pending into the next block.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from qkdctl.core.errors import QkdInputError

PENDING_CAPACITY = 256
"""Max pending afterpulses per detector (extra ones are counted as lost)."""


@njit(cache=True)
def _fire(rng, j, t, is_ap, dead_ps, ap_prob, ap_mean_ps, last_click, pend, n_pend, out_t, out_det, out_ap, no):
    """Count a candidate click of det j at t if not dead; maybe schedule an afterpulse.

    Returns (no, lost_afterpulses) where no is the new output length.
    """
    if t - last_click[j] < dead_ps[j]:
        return no, 0
    out_t[no] = t
    out_det[no] = j
    out_ap[no] = is_ap
    no += 1
    last_click[j] = t
    if ap_prob[j] > 0.0 and rng.random() < ap_prob[j]:
        ta = t + dead_ps[j] + np.int64(rng.exponential() * ap_mean_ps[j])
        k = n_pend[j]
        if k >= pend.shape[1]:
            return no, 1
        # pend[j, :k] sorted descending: the next due afterpulse is at the end
        while k > 0 and pend[j, k - 1] < ta:
            pend[j, k] = pend[j, k - 1]
            k -= 1
        pend[j, k] = ta
        n_pend[j] += 1
    return no, 0


@njit(cache=True)
def _dead_time_kernel(rng, t, det, dead_ps, ap_prob, ap_mean_ps, last_click, pend, n_pend, t_end):
    cap = 2 * t.size + 64
    out_t = np.empty(cap, dtype=np.int64)
    out_det = np.empty(cap, dtype=np.uint8)
    out_ap = np.empty(cap, dtype=np.bool_)
    no = 0
    lost = 0
    for e in range(t.size + 1):
        last = e == t.size
        te = t_end - 1 if last else t[e]
        for j in range(4):
            if not last and j != det[e]:
                continue
            while n_pend[j] > 0 and pend[j, n_pend[j] - 1] <= te:
                if no + 1 >= out_t.size:
                    grow = out_t.size * 2
                    out_t = np.concatenate((out_t, np.empty(grow, dtype=np.int64)))
                    out_det = np.concatenate((out_det, np.empty(grow, dtype=np.uint8)))
                    out_ap = np.concatenate((out_ap, np.empty(grow, dtype=np.bool_)))
                n_pend[j] -= 1
                ta = pend[j, n_pend[j]]
                no, lo = _fire(rng, j, ta, True, dead_ps, ap_prob, ap_mean_ps, last_click,
                               pend, n_pend, out_t, out_det, out_ap, no)
                lost += lo
        if last:
            break
        if no + 1 >= out_t.size:
            grow = out_t.size * 2
            out_t = np.concatenate((out_t, np.empty(grow, dtype=np.int64)))
            out_det = np.concatenate((out_det, np.empty(grow, dtype=np.uint8)))
            out_ap = np.concatenate((out_ap, np.empty(grow, dtype=np.bool_)))
        no, lo = _fire(rng, det[e], te, False, dead_ps, ap_prob, ap_mean_ps, last_click,
                       pend, n_pend, out_t, out_det, out_ap, no)
        lost += lo
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
    """Poissonian dark counts of each detector, uniform in [t0_ps, t1_ps): (t_ps, det)."""
    span = max(0, int(t1_ps) - int(t0_ps))
    counts = rng.poisson(np.asarray(dark_count_hz, dtype=np.float64) * span * 1e-12)
    t = (t0_ps + rng.random(int(counts.sum())) * span).astype(np.int64)
    det = np.repeat(np.arange(4, dtype=np.uint8), counts)
    return t, det


def apply_dead_time(
    rng: np.random.Generator,
    t_ps: np.ndarray,
    det: np.ndarray,
    dead_time_ps: np.ndarray,
    afterpulse_prob: np.ndarray,
    afterpulse_delay_ps: np.ndarray,
    state: DetectorState,
    t_end_ps: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Turn candidate clicks (sorted by t_ps) into counted clicks plus afterpulses.

    Returns (t_ps, det, is_afterpulse, n_afterpulses_lost); the output is NOT sorted
    (afterpulses are appended when due).  Afterpulses due at or after t_end_ps stay
    pending in `state`.
    """
    t_ps = np.ascontiguousarray(t_ps, dtype=np.int64)
    det = np.ascontiguousarray(det, dtype=np.uint8)
    if t_ps.shape != det.shape:
        raise QkdInputError(f"t_ps ({t_ps.size}) and det ({det.size}) differ in length")
    if t_ps.size > 1 and np.any(np.diff(t_ps) < 0):
        raise QkdInputError("candidate clicks must be sorted by t_ps")
    if det.size and det.max() > 3:
        raise QkdInputError(f"detector index {int(det.max())} out of range 0..3")
    return _dead_time_kernel(
        rng, t_ps, det,
        np.ascontiguousarray(dead_time_ps, dtype=np.int64),
        np.ascontiguousarray(afterpulse_prob, dtype=np.float64),
        np.ascontiguousarray(afterpulse_delay_ps, dtype=np.float64),
        state.last_click_ps, state.pending_ps, state.n_pending, int(t_end_ps),
    )
