"""Labeled scenarios of bench operation for training and scoring detectors.

A scenario is data: a name, a label ("normal", "benign" or "attack") and the
simulator settings it changes.  Every block of a scenario is drawn on a fresh
simulated bench whose operating conditions vary the way a lab's do (loss change,
detector ageing, residual polarization misalignment after drift compensation),
so a detector learns "normal" as a range, not a point.

qkdctl does not import the simulator: `generate` receives a `make_bench(config,
seed)` factory (tests and benchmarks pass `SimBench(SimConfig.build(**config),
seed)`).  A bench must offer `acquire(duration_s)` (returning an object with
`.tags` and `.alice`), `mu()` and `set_paddle_deg(paddle, deg)`.

Blocks are turned into BlockReports by `observe`, the pipeline's path up to
parameter estimation (gate, sift, estimate, telemetry, decoy bounds) without
reconciliation: the Z-basis error count that reconciliation would reveal is
counted directly.  Seeds are recorded in each report's `params`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from qkdctl.blockreport import BlockReport
from qkdctl.core.constants import BASIS_X, BASIS_Z, DEFAULT_CHANNELS
from qkdctl.core.errors import QkdInputError
from qkdctl.core.estimate import estimate
from qkdctl.core.keyrate import DecoySettings, DecoyStats, key_length
from qkdctl.core.polstats import click_matrix
from qkdctl.core.sift import sift
from qkdctl.core.tags import GateConfig, gate, recover_clock
from qkdctl.core.telemetry import block_telemetry
from qkdctl.pipeline import TELEMETRY_WINDOWS, BlockSettings, align_record

LABELS = ("normal", "benign", "attack")
BLOCK_SECONDS = 2e-3  # bench time per scenario block (~5e4 detections on the base bench)
SYNC_DIVIDER = 1000
GATE_WIDTH_PS = 300.0
P_INTENSITY = (0.7, 0.2, 0.1)

BASE_CONFIG: dict = {
    "fiber": {"length_km": 20.0, "drift_rad_per_sqrt_s": 0.05},
    "source": {"sync_divider": SYNC_DIVIDER, "p_intensity": list(P_INTENSITY)},
    "detectors": [{"efficiency": 0.25, "dark_count_hz": 500.0, "afterpulse_prob": 0.02,
                   "jitter_ps": 30.0}] * 4,
}
"""The scenario bench: 20 km, 1 GHz, four 25 % InGaAs-like detectors."""


@dataclass(frozen=True)
class Scenario:
    """One labeled operating condition.

    overrides: simulator config entries replaced on top of BASE_CONFIG (nested
    dicts merge; a "detectors" entry is applied to all four detectors).
    misalignment_deg: (low, high) range of the residual paddle error drawn per block.
    """

    name: str
    label: str
    overrides: dict = field(default_factory=dict)
    misalignment_deg: tuple[float, float] = (0.0, 3.0)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("normal", "normal"),
    Scenario("benign_polarization_jump", "benign", misalignment_deg=(6.0, 10.0)),
    Scenario("benign_connector_loss", "benign", {"fiber": {"extra_loss_db": 3.0}}),
    Scenario("ir_5", "attack", {"eve": {"intercept_resend_fraction": 0.05}}),
    Scenario("ir_10", "attack", {"eve": {"intercept_resend_fraction": 0.10}}),
    Scenario("ir_25", "attack", {"eve": {"intercept_resend_fraction": 0.25}}),
    Scenario("ir_100", "attack", {"eve": {"intercept_resend_fraction": 1.0}}),
    Scenario("pns", "attack", {"eve": {"pns_fraction": 1.0}}),
    # blinding fraction chosen so that the click rate matches the honest link
    Scenario("blinding", "attack", {"eve": {"blinding_fraction": 0.16}}),
    Scenario("time_shift", "attack", {"eve": {"time_shift_fraction": 0.5, "time_shift_ps": 40.0}}),
)
BY_NAME = {s.name: s for s in SCENARIOS}


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, val in over.items():
        if isinstance(val, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], val)
        else:
            out[key] = val
    return out


def block_config(scenario: Scenario, rng: np.random.Generator) -> tuple[dict, float]:
    """(simulator config, residual misalignment in degrees) of one block of `scenario`.

    Normal variation: fiber 18..22 km (loss change), 0..1 dB extra loss, detector
    efficiency 0.20..0.25 and dark counts 200..2000 Hz (ageing), residual paddle
    error drawn from scenario.misalignment_deg.
    """
    cfg = _merge(BASE_CONFIG, {
        "fiber": {"length_km": float(rng.uniform(18.0, 22.0)),
                  "extra_loss_db": float(rng.uniform(0.0, 1.0))},
        "detectors": [{**BASE_CONFIG["detectors"][0],
                       "efficiency": float(rng.uniform(0.20, 0.25)),
                       "dark_count_hz": float(rng.uniform(200.0, 2000.0))}] * 4,
    })
    over = dict(scenario.overrides)
    if "fiber" in over and "extra_loss_db" in over["fiber"]:
        over = _merge(over, {"fiber": {"extra_loss_db": cfg["fiber"]["extra_loss_db"]
                                       + over["fiber"]["extra_loss_db"]}})
    lo, hi = scenario.misalignment_deg
    return _merge(cfg, over), float(rng.uniform(lo, hi))


def settings_for(mu: tuple[float, float, float], qber_abort: float = 0.11) -> BlockSettings:
    """Pipeline settings of the scenario bench (default channels, gate at the slot clock).

    method is "none": `observe` stops before reconciliation.
    """
    return BlockSettings(
        sync_channel=DEFAULT_CHANNELS["sync"], sync_divider=SYNC_DIVIDER,
        nominal_sync_period_ps=1e3 * SYNC_DIVIDER,
        gate=GateConfig.from_channels(DEFAULT_CHANNELS, offset_ps=0.0, width_ps=GATE_WIDTH_PS),
        mu=mu, p_mu=P_INTENSITY, eps_sec=1e-10, eps_cor=1e-15, qber_abort=qber_abort,
        method="none",
    )


def observe(block_id: int, tags, alice, settings: BlockSettings, rng: np.random.Generator) -> BlockReport:
    """BlockReport of one acquisition up to parameter estimation (see module docstring)."""
    rep = BlockReport(block_id=block_id, n_tags=len(tags))
    clock = recover_clock(tags, settings.sync_channel, settings.sync_divider, settings.nominal_sync_period_ps)
    gated = gate(tags, clock, settings.gate)
    alice, _ = align_record(alice, tags, clock, gated.slot, settings.mu)
    rep.gate_rejected_fraction = gated.stats.fraction_rejected
    rep.telemetry = block_telemetry(gated, alice.intensity, alice.first_slot, TELEMETRY_WINDOWS)
    sifted = sift(gated, alice, rng)
    c = sifted.counts
    rep.detections = int(c.clicked)
    rep.sifted_bits_z, rep.sifted_bits_x = len(sifted.z), len(sifted.x)
    rep.counts = {"single": c.single, "double_same": c.double_same, "double_cross": c.double_cross,
                  "multi": c.multi, "kept_per_detector": gated.stats.kept_per_role.tolist(),
                  "click_matrix": click_matrix(gated, alice).tolist(),
                  "overflow": bool(tags.overflow), "missed_events": int(tags.missed_events)}
    est = estimate(sifted, rng, disclose_x=True)
    rep.qber_x = float(est.qber_basis[BASIS_X])
    z = sifted.z
    wrong = z.alice_bit != z.bob_bit
    rep.qber_z = float(wrong.mean()) if wrong.size else float("nan")
    rep.qber_by_intensity = {"x": est.qber[BASIS_X].tolist(), "z": [
        float(wrong[z.intensity == k].mean()) if np.any(z.intensity == k) else float("nan") for k in range(3)]}
    rep.gains_by_intensity = {"z": est.gain[BASIS_Z].tolist(), "x": est.gain[BASIS_X].tolist()}
    if wrong.size and rep.sifted_bits_x:
        stats = DecoyStats(n_key=tuple(np.bincount(z.intensity, minlength=3)),
                           m_key=tuple(np.bincount(z.intensity[wrong], minlength=3)),
                           n_test=tuple(est.sampled[BASIS_X]), m_test=tuple(est.errors[BASIS_X]),
                           leak_ec_bits=int(1.16 * wrong.size * _h2(rep.qber_z)))
        rep.keyrate_terms = key_length(stats, DecoySettings(settings.mu, settings.p_mu, settings.eps_sec,
                                                            settings.eps_cor)).as_dict()
    return rep


def _h2(q: float) -> float:
    return 0.0 if q <= 0 or q >= 1 else float(-q * np.log2(q) - (1 - q) * np.log2(1 - q))


def generate(scenario: Scenario | str, n_blocks: int, make_bench: Callable[[dict, int], object],
             seed: int, block_seconds: float = BLOCK_SECONDS, first_block: int = 0) -> list[BlockReport]:
    """Blocks first_block .. first_block + n_blocks - 1 of `scenario`, each from a fresh bench.

    Block i depends only on (seed, i), so a long series can be generated in chunks
    (e.g. on several processes) and comes out identical.  report.params holds the
    block's seed, scenario name, label and misalignment.
    """
    if isinstance(scenario, str):
        if scenario not in BY_NAME:
            raise QkdInputError(f"unknown scenario {scenario!r}; known: {', '.join(BY_NAME)}")
        scenario = BY_NAME[scenario]
    if int(n_blocks) < 1:
        raise QkdInputError(f"n_blocks must be >= 1, got {n_blocks}")
    if int(first_block) < 0:
        raise QkdInputError(f"first_block must be >= 0, got {first_block}")
    reports = []
    first = int(first_block)
    for i in range(first, first + int(n_blocks)):
        rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(i,)))
        cfg, mis_deg = block_config(scenario, rng)
        bench_seed = int(rng.integers(0, 2**31))
        bench = make_bench(cfg, bench_seed)
        bench.set_paddle_deg(1, mis_deg)
        blk = bench.acquire(block_seconds)
        mu = tuple(float(m) for m in bench.mu())
        rep = observe(i, blk.tags, blk.alice, settings_for(mu), rng)
        rep.params = {"scenario": scenario.name, "label": scenario.label, "bench_seed": bench_seed,
                      "misalignment_deg": mis_deg, "mu": list(mu)}
        reports.append(rep)
    return reports
