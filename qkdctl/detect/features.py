"""The one feature extractor every detector uses: BlockReport -> fixed-length vector.

Features (FEATURE_NAMES, in order; ratios are dimensionless, times in ps):
- qber_x, qber_z: error rates (X fully disclosed; Z as reconciliation counts it,
  nan -> qber_x);
- qber_min: min(qber_x, qber_z): intercept-resend raises both bases alike, a
  polarization misalignment mostly one;
- gain_ratio_decoy, gain_ratio_vacuum: decoy / signal and vacuum / signal gain
  (both bases together): photon-number splitting changes the first, blinding
  empties the second;
- log10_click_prob: log10 of the clicks per slot, all detectors;
- detector_imbalance: max / min click probability per detector - 1;
- double_click_fraction, offgate_fraction: clicked slots with >= 2 clicks; detector
  tags outside the gate (dark counts, afterpulses) — blinding removes both;
- dt_std_ps, dt_shift_ps, dt_abs_skew: arrival-time width (mean over detectors),
  shift of the mean arrival time from the reference (median of the history's, or
  0 without history), mean |skewness| — time-shift attacks move these;
- window_dt_std_max_ps: widest per-window arrival-time width (faster than a block);
- window_click_cv: coefficient of variation of the click count over windows;
- missed_fraction: tagger missed events / tags.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from qkdctl.blockreport import BlockReport
from qkdctl.core.errors import QkdInputError

FEATURE_NAMES: tuple[str, ...] = (
    "qber_x", "qber_z", "qber_min", "gain_ratio_decoy", "gain_ratio_vacuum", "log10_click_prob",
    "detector_imbalance", "double_click_fraction", "offgate_fraction", "dt_std_ps", "dt_shift_ps",
    "dt_abs_skew", "window_dt_std_max_ps", "window_click_cv", "missed_fraction",
)
N_FEATURES = len(FEATURE_NAMES)
REFERENCE_BLOCKS = 20  # history blocks whose median arrival time is the timing reference


def _nanmean(values) -> float:
    a = np.asarray(values, dtype=np.float64)
    return float(np.mean(a[np.isfinite(a)])) if np.any(np.isfinite(a)) else float("nan")


def _gains(report: BlockReport) -> np.ndarray:
    g = report.gains_by_intensity
    rows = [np.asarray(g[b], dtype=np.float64) for b in ("z", "x") if b in g]
    if not rows:
        return np.full(3, np.nan)
    return np.nanmean(np.vstack(rows), axis=0)


def arrival_mean_ps(report: BlockReport) -> float:
    """Mean arrival time from the gate centre over the detectors (ps; nan without telemetry)."""
    return _nanmean(report.telemetry.get("dt_mean_ps", [np.nan]))


def extract(report: BlockReport, history: Sequence[BlockReport] = ()) -> np.ndarray:
    """Feature vector (float64[N_FEATURES]) of one block; history gives the timing reference.

    Raises QkdInputError when the report has no telemetry (it did not pass gating).
    """
    tm = report.telemetry
    if not tm:
        raise QkdInputError(f"block {report.block_id}: report has no telemetry (not gated)")
    qx = float(report.qber_x)
    qz = float(report.qber_z) if np.isfinite(report.qber_z) else qx
    g = _gains(report)
    ratio_d = g[1] / g[0] if g[0] > 0 else np.nan
    ratio_v = g[2] / g[0] if g[0] > 0 else np.nan
    p = np.asarray(tm["click_prob_per_detector"], dtype=np.float64)
    total_p = float(p.sum())
    imbalance = float(p.max() / p.min() - 1.0) if p.min() > 0 else 1.0
    refs = [arrival_mean_ps(h) for h in list(history)[-REFERENCE_BLOCKS:] if h.telemetry]
    refs = [r for r in refs if np.isfinite(r)]
    ref = float(np.median(refs)) if refs else 0.0
    shift = abs(arrival_mean_ps(report) - ref)
    win = tm["windows"]
    w_clicks = np.asarray(win["clicks"], dtype=np.float64).sum(axis=1)
    cv = float(w_clicks.std() / w_clicks.mean()) if w_clicks.mean() > 0 else 0.0
    w_std = np.asarray(win["dt_std_ps"], dtype=np.float64)
    n_tags = max(int(report.n_tags), 1)
    vec = np.array([
        qx, qz, min(qx, qz), ratio_d, ratio_v,
        np.log10(total_p) if total_p > 0 else -12.0,
        imbalance, tm["double_click_fraction"], tm["offgate_fraction"],
        _nanmean(tm["dt_std_ps"]), shift, _nanmean(np.abs(tm["dt_skew"])),
        float(np.nanmax(w_std)) if np.any(np.isfinite(w_std)) else np.nan, cv,
        report.counts.get("missed_events", 0) / n_tags,
    ], dtype=np.float64)
    return np.nan_to_num(vec, nan=0.0, posinf=0.0, neginf=0.0)


def extract_many(reports: Sequence[BlockReport]) -> np.ndarray:
    """float64[n, N_FEATURES] of independent blocks (no history: shift from 0)."""
    return np.vstack([extract(r) for r in reports]) if reports else np.empty((0, N_FEATURES))
