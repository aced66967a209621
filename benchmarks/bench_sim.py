"""Simulator throughput: detector tags and pulse slots per second of SimBench.acquire vs an unfused numpy link.

The baseline `numpy_link` generates the same kind of block with whole-array numpy
steps (Alice's choices, one uniform per slot and detector for the clicks, jitter,
dark counts, one global sort, sync merge; in chunks of BASELINE_CHUNK_SLOTS to bound
its memory) but without detector dead time, afterpulsing or the tagger's limits, so
it does strictly less work than the simulator.
Configurations (sweep below): "backtoback" (100 MHz, 0 km, mu 1.2, SNSPDs: ~0.7 tags
per slot, a calibration-style bench that stresses the tag pipeline), "2km" (100 MHz
SNSPD link, mu 0.5: ~0.25 tags per slot), and the link of `qkdctl bench pipeline`
(1 GHz, p_Z 0.7, mu signal/decoy/vacuum 0.5/0.18/0.0002) at 10 and 25 km.
Each result carries wall and CPU figures of the best of several runs, for the simulator
and the baseline alike (the build machine is shared: CPU time is the steadier figure),
and whether the issue's goal (GOAL_TAGS_PER_CPU_S) is met.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.bench_pipeline import SIM as PIPELINE_LINK
from benchmarks.common import result
from firmware_sim.bench import SimBench
from firmware_sim.config import SimConfig
from firmware_sim.physics.fiber import nominal_delay_ps, transmission
from firmware_sim.physics.polarization import detector_probabilities

BACK_TO_BACK = {
    "source": {"pulse_rate_hz": 1.0e8, "p_intensity": (0.8, 0.15, 0.05), "mu_max": 1.5,
               "attenuation_db": (1.0, 10.0, 45.0, 45.0)},
    "fiber": {"length_km": 0.0},
    "bob_loss_db": 0.3,
    "detectors": [{"efficiency": 0.9, "dark_count_hz": 300.0, "dead_time_ps": 5_000,
                   "afterpulse_prob": 0.005, "jitter_ps": 15.0}] * 4,
    "tagger": {"max_rate_tags_per_s": 1e9, "dead_time_ps": 1000},
}
STRESS = {
    "source": {"pulse_rate_hz": 1.0e8, "p_intensity": (0.8, 0.15, 0.05)},
    "fiber": {"length_km": 2.0},
    "bob_loss_db": 0.5,
    "detectors": [{"efficiency": 0.85, "dark_count_hz": 300.0, "dead_time_ps": 20_000,
                   "afterpulse_prob": 0.005, "jitter_ps": 15.0}] * 4,
    "tagger": {"max_rate_tags_per_s": 1e9},
}
#: (name, config, block seconds of bench time); quick runs each block 5x shorter.
SWEEP = [
    ("backtoback", BACK_TO_BACK, 0.1),
    ("2km", STRESS, 0.1),
    ("10km", {**PIPELINE_LINK, "fiber": {"length_km": 10.0}}, 0.02),
    ("25km", {**PIPELINE_LINK, "fiber": {"length_km": 25.0}}, 0.02),
]
BASELINE_CHUNK_SLOTS = 1 << 21


def _numpy_chunk(cfg: SimConfig, mu: np.ndarray, slot0: int, n_slots: int, rng: np.random.Generator):
    src = cfg.source
    period_ps = 1e12 / src.pulse_rate_hz
    u = rng.random(n_slots)
    edges = np.cumsum(src.p_intensity)[:-1]
    intensity = np.searchsorted(edges, u, side="right").astype(np.uint8)
    basis = (rng.random(n_slots) >= src.p_z).astype(np.uint8)
    bit = (rng.random(n_slots) < src.p_bit_one).astype(np.uint8)
    state = 2 * basis + bit
    t_link = transmission(cfg.fiber) * 10 ** (-cfg.bob_loss_db / 10)
    p_det = detector_probabilities(np.eye(2), cfg.p_bob_z)
    eff = np.array([d.efficiency for d in cfg.detectors])
    lam = mu[intensity][:, None] * t_link * p_det[state] * eff
    clicked = rng.random((n_slots, 4)) < -np.expm1(-lam)
    slot, det = np.nonzero(clicked)
    jitter = np.array([d.jitter_ps for d in cfg.detectors])
    delay = nominal_delay_ps(cfg.fiber)
    t = np.rint((slot0 + slot) * period_ps + delay + rng.standard_normal(slot.size) * jitter[det]).astype(np.int64)
    return t, det, basis, bit, intensity


def numpy_link(cfg: SimConfig, mu: np.ndarray, n_slots: int, rng: np.random.Generator):
    """Baseline: the link's tags (t_ps, channel) and Alice's arrays, step by step in numpy."""
    src = cfg.source
    period_ps = 1e12 / src.pulse_rate_hz
    chunks = [_numpy_chunk(cfg, mu, a, min(BASELINE_CHUNK_SLOTS, n_slots - a), rng)
              for a in range(0, n_slots, BASELINE_CHUNK_SLOTS)]
    t, det, basis, bit, intensity = (np.concatenate(parts) for parts in zip(*chunks))
    delay = nominal_delay_ps(cfg.fiber)
    span = n_slots * period_ps
    n_dark = rng.poisson(np.array([d.dark_count_hz for d in cfg.detectors]) * span * 1e-12)
    t_dark = (delay + rng.random(n_dark.sum()) * span).astype(np.int64)
    d_dark = np.repeat(np.arange(4), n_dark)
    sync = np.rint(np.arange(0, n_slots, src.sync_divider) * period_ps + delay).astype(np.int64)
    t_all = np.concatenate((t, t_dark, sync))
    ch_all = np.concatenate((det + 1, d_dark + 1, np.zeros(sync.size, dtype=np.int64))).astype(np.int32)
    order = np.argsort(t_all, kind="stable")
    return t_all[order], ch_all[order], basis, bit, intensity


GOAL_TAGS_PER_CPU_S = 20e6
"""Issue 4: the simulator produces >= 20 M detector tags per second on one core."""


def _best(fn, repeats: int) -> tuple[float, float, object]:
    """(best wall s, best CPU s, last return value) of `repeats` calls of fn (CPU: process_time)."""
    wall = cpu = float("inf")
    out = None
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        cpu = min(cpu, time.process_time() - c0)
        wall = min(wall, time.perf_counter() - w0)
    return wall, cpu, out


def _measure(name: str, cfg: SimConfig, duration_s: float, repeats: int) -> dict:
    bench = SimBench(cfg, seed=1)
    bench.acquire(duration_s / 10)  # compile / warm up
    sim_s, cpu_s, block = _best(lambda: bench.acquire(duration_s), repeats)
    n_tags = int(np.sum(block.tags.channel != bench.tagger_channels()["sync"]))
    n_slots = block.truth["n_slots"]
    mu = bench.mu()
    rng = np.random.default_rng(2)
    numpy_link(cfg, mu, n_slots, rng)  # warm up
    base_s, base_cpu_s, _ = _best(lambda: numpy_link(cfg, mu, n_slots, rng), repeats)
    return result(
        f"sim_{name}", n_tags, sim_s, "detector tags/s", "numpy_link", base_s,
        n_slots=n_slots, slots_per_s=n_slots / sim_s, gain_per_slot=n_tags / n_slots,
        cpu_seconds=cpu_s, slots_per_cpu_s=n_slots / cpu_s, tags_per_cpu_s=n_tags / cpu_s,
        ns_per_slot_cpu=cpu_s / n_slots * 1e9, baseline_cpu_seconds=base_cpu_s,
        baseline_tags_per_cpu_s=n_tags / base_cpu_s, speedup_cpu=base_cpu_s / cpu_s,
        goal_tags_per_cpu_s=GOAL_TAGS_PER_CPU_S, goal_met=n_tags / cpu_s >= GOAL_TAGS_PER_CPU_S,
        duration_s=duration_s, pulse_rate_hz=cfg.source.pulse_rate_hz, repeats=repeats,
    )


def run(quick: bool) -> list[dict]:
    """Throughput of the sweep's configurations (quick: 5x shorter blocks, 3 repeats instead of 7)."""
    scale, repeats = (0.2, 3) if quick else (1.0, 7)
    return [_measure(name, SimConfig.build(**data), seconds * scale, repeats) for name, data, seconds in SWEEP]
