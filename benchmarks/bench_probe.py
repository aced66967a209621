"""Processing cost of a tuner probe (`qkdctl.probe.probe_report`) against a key block.

A probe is processed up to QBER estimation only (gate, align, sift, estimate with
both bases disclosed); a key block goes on through reconciliation, verification,
the finite-key length and privacy amplification (`qkdctl.pipeline.process_block`,
the baseline, timed in the same run on the same tags).  Blocks come from the
analytic link model of lab_configs/sim_bench.toml at 25 km, 1 GHz (the tags
`ModelHardware` would give), generated before any timing.  Figure: pulses per
second of processing.  The probe's bench time (its acquisition) is not included:
it is the probe's duration, capped by [tuner].max_probe_s.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qkdctl.config import load_config
from qkdctl.core.constants import DEFAULT_CHANNELS
from qkdctl.core.linkmodel import generate_block
from qkdctl.core.tags import GateConfig
from qkdctl.pipeline import BlockSettings, process_block
from qkdctl.probe import probe_report

from benchmarks.common import best_seconds, result

CONFIG = Path(__file__).resolve().parents[1] / "lab_configs" / "sim_bench.toml"
PULSE_RATE_HZ = 1e9
SYNC_DIVIDER = 100
DURATIONS_S = {"quick": [0.01], "full": [0.002, 0.01, 0.05]}  # probe/block lengths (bench seconds)


def _settings(model) -> BlockSettings:
    return BlockSettings(
        sync_channel=0, sync_divider=SYNC_DIVIDER, nominal_sync_period_ps=None,
        gate=GateConfig.from_channels(DEFAULT_CHANNELS, offset_ps=300.0, width_ps=400.0),
        mu=model.intensities, p_mu=model.intensity_probs, eps_sec=1e-10, eps_cor=1e-15,
        qber_abort=0.11, method="auto",
    )


def run(quick: bool) -> list[dict]:
    """Probe vs full-block processing time on the same link-model tags, per block length."""
    model = load_config(str(CONFIG)).link_model()
    settings = _settings(model)
    out = []
    for duration_s in DURATIONS_S["quick" if quick else "full"]:
        n = int(duration_s * PULSE_RATE_HZ)
        alice, tags = generate_block(model, n, np.random.default_rng(1), pulse_period_ps=1e12 / PULSE_RATE_HZ,
                                     sync_divider=SYNC_DIVIDER)
        rep = probe_report(0, tags, alice, settings, np.random.default_rng(2))
        block = process_block(0, tags, alice, settings, np.random.default_rng(2)).report
        probe_s = best_seconds(lambda: probe_report(0, tags, alice, settings, np.random.default_rng(2)))
        full_s = best_seconds(lambda: process_block(0, tags, alice, settings, np.random.default_rng(2)))
        out.append(result(f"probe {duration_s * 1e3:g} ms", n, probe_s, "pulse/s", "process_block (key block)",
                          full_s, duration_s=duration_s, detections=rep.detections, qber_z=rep.qber_z,
                          qber_x=rep.qber_x, probe_ms=probe_s * 1e3, block_ms=full_s * 1e3,
                          block_status=block.status, block_key_bits=block.key_bits))
    return out
