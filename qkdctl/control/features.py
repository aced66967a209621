"""Block telemetry -> the control policy's input vector (same for every policy).

Read from the newest BlockReports only (what the engine records):
  0 qber_z, 1 qber_x          (x10; 0.5 when the block gave none)
  2 qber_x excess per block second: max(qber_x - QBER_FLOOR, 0) / duration_s, at most 2
    (drift indicator: ~ sigma^2 / 4 for a polarization random walk of sigma rad/sqrt(s))
  3 change of qber_x from the block before (x10, drift indicator)
  4 log10 detections per second / 7
  5 last method was LDPC (0/1)
  6 last reconciliation efficiency f / 5 (clipped to 1..5; 0 if none)
  7 last round trips / 100
  8 classical-channel round trip: log10(rtt_s) + 5, clipped to 0..4; rtt_s is the measured
    telemetry["channel_rtt_s"] when the block has it, else reconcile seconds per round trip
    of an interactive method (>= MIN_TRIPS round trips: compute per trip is then small),
    else 1e-5 s (unknown: the in-process channel)
  9 last block seconds / 0.1
 10 last gate width / 1000 ps
 11 last block aborted (0/1)
The first block of a run (no history) gives zeros.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from qkdctl.blockreport import BlockReport

N_FEATURES = 12
QBER_FLOOR = 0.003  # optical + noise QBER of a well-aligned simulated bench (docs/control.md)
MIN_TRIPS = 10  # round trips from which reconcile time per trip estimates the channel RTT


def channel_rtt_s(rep: BlockReport) -> float:
    """The block's classical-channel round trip (s): measured, estimated from an interactive
    reconciliation, or 1e-5 s when neither is available."""
    measured = rep.telemetry.get("channel_rtt_s") if isinstance(rep.telemetry, dict) else None
    if measured is not None and math.isfinite(measured) and measured >= 0:
        return float(measured)
    rec_s = float(rep.stage_seconds.get("reconcile", 0.0))
    if rep.round_trips >= MIN_TRIPS and rec_s > 0:
        return rec_s / rep.round_trips
    return 1e-5


def _finite(x: float, default: float) -> float:
    return float(x) if x is not None and math.isfinite(x) else default


def block_features(history: Sequence[BlockReport]) -> np.ndarray:
    """Feature vector (N_FEATURES float64) of the newest block in `history` (newest last)."""
    out = np.zeros(N_FEATURES)
    if not history:
        return out
    rep = history[-1]
    q_z = _finite(rep.qber_z, 0.5)
    q_x = _finite(rep.qber_x, 0.5)
    duration_s = rep.duration_s if rep.duration_s > 0 else float(rep.params.get("block.seconds", 0.05))
    prev_q_x = _finite(history[-2].qber_x, 0.5) if len(history) > 1 else q_x
    rtrips = max(int(rep.round_trips), 0)
    rtt_s = channel_rtt_s(rep)
    out[0] = 10.0 * q_z
    out[1] = 10.0 * q_x
    out[2] = min(max(q_x - QBER_FLOOR, 0.0) / duration_s, 2.0) if q_x < 0.5 else 2.0
    out[3] = 10.0 * (q_x - prev_q_x)
    out[4] = math.log10(max(rep.detections, 1) / duration_s) / 7.0
    out[5] = 1.0 if rep.method.startswith("ldpc") else 0.0
    f = _finite(rep.ec_efficiency, 0.0)
    out[6] = min(max(f, 1.0), 5.0) / 5.0 if f > 0 else 0.0
    out[7] = rtrips / 100.0
    out[8] = min(max(math.log10(max(rtt_s, 1e-9)) + 5.0, 0.0), 4.0)
    out[9] = duration_s / 0.1
    out[10] = float(rep.params.get("gate.width_ps", 0.0)) / 1000.0
    out[11] = 0.0 if rep.status == "ok" else 1.0
    return out


def wall_seconds(rep: BlockReport) -> float:
    """Wall time (s) a block cost: acquisition (duration_s) plus every processing stage
    (the 'acquire' stage is the wait for the instrument and is counted by duration_s)."""
    return float(rep.duration_s) + math.fsum(v for k, v in rep.stage_seconds.items() if k != "acquire")


def reward(rep: BlockReport) -> float:
    """Secret bits per second of wall time of one block (0 for an aborted block)."""
    wall = wall_seconds(rep)
    if rep.status != "ok" or wall <= 0:
        return 0.0
    return rep.key_bits / wall
