"""Helpers for simulator tests: a fast test config and a plain slot assignment of tags."""

import numpy as np

from firmware_sim.bench import ROLES, SimBench, SimBlock
from firmware_sim.config import SimConfig


def quiet_config(**overrides) -> SimConfig:
    """A 10 km, 1 GHz bench without dead time, afterpulsing or drift (simple expectations)."""
    data = {
        "fiber": {"length_km": 10.0},
        "detectors": [{"efficiency": 0.5, "dark_count_hz": 1000.0, "dead_time_ps": 0,
                       "afterpulse_prob": 0.0, "jitter_ps": 20.0}] * 4,
    }
    for key, val in overrides.items():
        if isinstance(val, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **val}
        else:
            data[key] = val
    return SimConfig.build(**data)


def detections(bench: SimBench, block: SimBlock) -> tuple[np.ndarray, np.ndarray]:
    """(slot index relative to block.alice, detector 0..3) of every detector tag.

    Assumes no delay drift: slot = round((t - fiber delay - tagger delay) / period).
    """
    period = 1e12 / bench.config.source.pulse_rate_hz
    delay0 = block.truth["fiber_delay_ps"]
    chans = bench.tagger_channels()
    slots, dets = [], []
    for j, role in enumerate(ROLES[1:]):
        num = chans[role]
        t = block.tags.t_ps[block.tags.channel == num]
        s = np.rint((t - delay0 - bench.tagger_delay_ps(num)) / period).astype(np.int64)
        slots.append(s - block.alice.first_slot)
        dets.append(np.full(s.size, j))
    slot = np.concatenate(slots)
    det = np.concatenate(dets)
    keep = (slot >= 0) & (slot < len(block.alice))
    return slot[keep], det[keep]


def qber(bench: SimBench, block: SimBlock) -> dict:
    """Gains per intensity (slots with any click) and QBER per basis (single clicks, sifted)."""
    slot, det = detections(bench, block)
    n_clicks = np.bincount(slot, minlength=len(block.alice))
    a = block.alice
    out = {}
    for k, name in enumerate(("signal", "decoy", "vacuum")):
        sent = int(np.sum(a.intensity == k))
        out[f"gain_{name}"] = float(np.sum((n_clicks > 0) & (a.intensity == k))) / max(sent, 1)
    single = n_clicks[slot] == 1
    slot, det = slot[single], det[single]
    sifted = a.basis[slot] == det // 2
    err = a.bit[slot] != det % 2
    for b, name in ((0, "Z"), (1, "X")):
        m = sifted & (a.basis[slot] == b)
        out[f"qber_{name}"] = float(err[m].mean()) if m.any() else float("nan")
        out[f"n_{name}"] = int(m.sum())
    return out
