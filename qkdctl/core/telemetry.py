"""Detector telemetry of one block: rates, double clicks and arrival times per detector.

Side-channel attacks that leave the QBER alone show up here: detector blinding
removes dark counts and afterpulses (fewer tags outside the gate, no double
clicks), a time-shift attack widens or moves the arrival-time histogram inside
the gate, a detector swap or efficiency mismatch moves the per-detector click
probabilities.  Figures are given for the whole block and for `n_windows` equal
windows of pulse slots (detection faster than a block).

Arrival times are the gated `dt_ps` (time from the gate centre, ps); the shift
from a reference is left to the consumer (it needs history).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from qkdctl.core.constants import N_DETECTORS, VACUUM
from qkdctl.core.errors import QkdInputError
from qkdctl.core.tags import Gated

N_MOMENTS = 4  # count, sum dt, sum dt^2, sum dt^3


@njit(cache=True)
def _telemetry_kernel(slot, role, dt, intensity, first_slot, n_windows, moments, clicked, doubles, vac_clicks):
    n_slots = intensity.size
    prev = np.int64(-1)  # slot of the current run (kept slots are >= 0)
    run = 0
    run_w = 0
    w = 0
    w_lo = 0  # window w holds slots [w_lo, w_hi): a division only when a slot leaves it
    w_hi = 0
    for i in range(slot.size):
        s = slot[i] - first_slot
        if s < 0 or s >= n_slots:
            continue
        if s < w_lo or s >= w_hi:
            w = s * n_windows // n_slots
            w_lo = -(-w * n_slots // n_windows)
            w_hi = -(-(w + 1) * n_slots // n_windows)
        r = role[i]
        d = np.float64(dt[i])
        moments[w, r, 0] += 1.0
        moments[w, r, 1] += d
        moments[w, r, 2] += d * d
        moments[w, r, 3] += d * d * d
        if intensity[s] == VACUUM:
            vac_clicks[r] += 1
        if s == prev:
            run += 1
        else:
            if run >= 2:
                doubles[run_w] += 1
            clicked[w] += 1
            run = 1
            run_w = w
            prev = s
    if run >= 2:
        doubles[run_w] += 1


def _shape(m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, std, skewness) of dt from raw moments [..., 4]; nan where fewer than 2 clicks."""
    n = m[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = m[..., 1] / n
        var = np.maximum(m[..., 2] / n - mean**2, 0.0)
        third = m[..., 3] / n - 3 * mean * m[..., 2] / n + 2 * mean**3
        std = np.sqrt(var)
        skew = np.where(var > 0, third / np.where(var > 0, var, 1.0) ** 1.5, 0.0)
    few = n < 2
    return (np.where(n > 0, mean, np.nan), np.where(few, np.nan, std), np.where(few, np.nan, skew))


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.full(np.broadcast(num, den).shape, np.nan), where=den > 0)


def block_telemetry(gated: Gated, intensity: np.ndarray, first_slot: int, n_windows: int = 8,
                    n_vacuum: int | None = None) -> dict:
    """Telemetry of a gated block (JSON-ready dict of floats and lists).

    gated: the block's kept detections; intensity: Alice's uint8 class per slot,
    element 0 being slot `first_slot` (slots outside it are skipped); n_windows:
    number of equal slot windows (>= 1, <= number of slots); n_vacuum: number of
    vacuum slots when the caller has counted them (e.g. `sift.pulses_sent`),
    None counts them here.

    Keys (per detector lists are H, V, D, A): n_slots, window_slots;
    clicks_per_detector; click_prob_per_detector (clicks per slot);
    dt_mean_ps, dt_std_ps, dt_skew (arrival time from the gate centre);
    double_click_fraction (clicked slots with >= 2 clicks / clicked slots);
    offgate_fraction (detector tags outside the gate: dark counts, afterpulses);
    vacuum_click_prob (clicks per vacuum slot, per detector); windows: the same
    per-window figures (clicks, click_prob, dt_mean_ps, dt_std_ps,
    double_click_fraction) as lists over windows.
    """
    intensity = np.ascontiguousarray(intensity, dtype=np.uint8)
    if intensity.ndim != 1 or intensity.size == 0:
        raise QkdInputError("telemetry: intensity must be a non-empty 1-D array")
    n_windows = int(n_windows)
    if not 1 <= n_windows <= intensity.size:
        raise QkdInputError(f"telemetry: n_windows must be in 1..{intensity.size} (slots), got {n_windows}")
    slot = np.ascontiguousarray(gated.slot, dtype=np.int64)
    role = np.ascontiguousarray(gated.role, dtype=np.uint8)
    dt = np.ascontiguousarray(gated.dt_ps, dtype=np.float32)
    if not slot.shape == role.shape == dt.shape:
        raise QkdInputError("telemetry: gated slot, role and dt_ps arrays differ in shape")
    if role.size and int(role.max()) >= N_DETECTORS:
        raise QkdInputError(f"telemetry: detector role {int(role.max())} out of range 0..3")
    moments = np.zeros((n_windows, N_DETECTORS, N_MOMENTS))
    clicked = np.zeros(n_windows, dtype=np.int64)
    doubles = np.zeros(n_windows, dtype=np.int64)
    vac_clicks = np.zeros(N_DETECTORS, dtype=np.int64)
    _telemetry_kernel(slot, role, dt, intensity, np.int64(first_slot), np.int64(n_windows),
                      moments, clicked, doubles, vac_clicks)
    n_slots = intensity.size
    # window w holds the slots s with s * n_windows // n_slots == w: from ceil(w n / W)
    starts = -(-np.arange(n_windows + 1, dtype=np.int64) * n_slots // n_windows)
    win_slots = np.diff(starts)
    total = moments.sum(axis=0)
    mean, std, skew = _shape(total)
    w_mean, w_std, _ = _shape(moments)
    if n_vacuum is None:
        n_vac = int(np.count_nonzero(intensity == VACUUM))
    elif 0 <= int(n_vacuum) <= n_slots:
        n_vac = int(n_vacuum)
    else:
        raise QkdInputError(f"telemetry: n_vacuum must be in 0..{n_slots} (slots), got {n_vacuum}")
    st = gated.stats
    return {
        "n_slots": int(n_slots),
        "n_windows": n_windows,
        "clicks_per_detector": total[:, 0].astype(np.int64).tolist(),
        "click_prob_per_detector": (total[:, 0] / n_slots).tolist(),
        "dt_mean_ps": mean.tolist(),
        "dt_std_ps": std.tolist(),
        "dt_skew": skew.tolist(),
        "double_click_fraction": float(_ratio(doubles.sum(), clicked.sum())),
        "offgate_fraction": float(_ratio(st.n_rejected, st.n_detector_tags)),
        "vacuum_click_prob": (_ratio(vac_clicks, n_vac) if n_vac else np.full(N_DETECTORS, np.nan)).tolist(),
        "windows": {
            "slots": win_slots.tolist(),
            "clicks": moments[:, :, 0].astype(np.int64).tolist(),
            "click_prob": (moments[:, :, 0] / win_slots[:, None]).tolist(),
            "dt_mean_ps": w_mean.tolist(),
            "dt_std_ps": w_std.tolist(),
            "double_click_fraction": _ratio(doubles, clicked).tolist(),
        },
    }
