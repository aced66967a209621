"""A tuner loop on the simulated bench (firmware_sim.SimBench), for tests and `bench tune`.

Per block: acquire from SimBench -> recover clock, gate, click matrix (qkdctl.core,
the pipeline's own functions) -> a BlockReport with the click matrix, the optical
QBERs and the controller settings in force -> tuner.propose -> apply the proposal
to the simulated controller (paddle angles or EPC voltages).  No reconciliation or
amplification is run: the secret key of a block is the finite-key length (Lim et
al., qkdctl.core.keyrate) of a block of `n_key` key-basis detections of the link
model with the block's true optical errors (truth["e_z"], truth["e_x"]), so tuners
are compared on exactly what they change.  The oracle sets the controller to the
exact inverse of truth["fiber_rotation"] before every block.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Mapping

import numpy as np

from drivers.polarization.calibration import Calibration, PaddleCalibration, SqueezerCalibration
from firmware_sim.bench import SimBench
from firmware_sim.config import SimConfig
from firmware_sim.physics.fiber import nominal_delay_ps
from qkdctl.blockreport import BlockReport
from qkdctl.core.keyrate import DecoySettings, key_length
from qkdctl.core.linkmodel import LinkModel
from qkdctl.core.polstats import click_matrix
from qkdctl.core.records import AliceRecord
from qkdctl.core.tags import GateConfig, gate, recover_clock
from qkdctl.tune.base import Tuner
from qkdctl.tune.polarization import optical_qber

DRIFTS: dict[str, dict] = {
    # slow random walk (lab spool / buried fiber, sped up so blocks see it)
    "default": {"drift_rad_per_sqrt_s": 0.1, "jump_rate_hz": 0.0},
    # fast rotation plus sudden jumps (aerial fiber, someone touching a patch cord)
    "hard": {"drift_rad_per_sqrt_s": 1.0, "jump_rate_hz": 2.0, "jump_size_rad": 1.0},
}


GATE_DUTY = 0.5
"""Gate width as a fraction of the pulse period (measure() and the key model)."""


def sim_config(drift: str, controller: str = "mpc320", initial_rotation: str = "random") -> SimConfig:
    """A 50 km, 1 GHz bench with the named drift and initial fiber rotation ("random" | "identity")."""
    if drift not in DRIFTS:
        raise KeyError(f"unknown drift {drift!r}; known: {sorted(DRIFTS)}")
    return SimConfig.build(
        fiber={"initial_rotation": initial_rotation, **DRIFTS[drift]},
        controller={"model": controller},
    )


def calibration_for(config: SimConfig) -> Calibration:
    """The drivers' calibration of the configured controller (what a lab would have)."""
    if config.controller.model == "epc":
        return SqueezerCalibration(v_pi_mv=(config.controller.epc_v_pi_mv,) * 4)
    return PaddleCalibration()


def apply_settings(bench: SimBench, params: Mapping[str, float]) -> None:
    """Set the simulated controller from pol.k parameters (clipped to the instrument's range)."""
    epc = bench.config.controller.model == "epc"
    for key, value in params.items():
        if not key.startswith("pol."):
            continue
        k = int(key.split(".")[1])
        if epc:
            bench.set_epc_voltage_mv(k, float(np.clip(value, -5000.0, 5000.0)))
        else:
            bench.set_paddle_deg(k, float(np.clip(value, 0.0, 170.0)))


def bench_params(bench: SimBench) -> dict[str, float]:
    """pol.k parameters in force on the simulated controller."""
    if bench.config.controller.model == "epc":
        return {f"pol.{k}": bench.epc_voltage_mv(k) for k in range(1, 5)}
    return {f"pol.{k}": bench.paddle_deg(k) for k in range(1, 4)}


def measure(bench: SimBench, duration_s: float, block_id: int = 0) -> tuple[BlockReport, dict]:
    """Acquire one block and return (report with click matrix and optical QBERs, truth)."""
    params = bench_params(bench)
    blk = bench.acquire(duration_s)
    ch = bench.tagger_channels()
    clock = recover_clock(blk.tags, ch["sync"], bench.config.source.sync_divider)
    cfg = GateConfig(roles={ch[r]: j for j, r in enumerate("HVDA")}, offset_ps=0.0,
                     width_ps=GATE_DUTY * clock.period_ps, ignore_channels=(ch["sync"],))
    # slot 0 of the gating is the first sync seen; Alice's slot first_slot has its sync at
    # first_slot * period + the nominal sync delay (independent of the tagger's window)
    slot0_ps = blk.alice.first_slot * clock.period_ps + nominal_delay_ps(bench.config.fiber)
    shift = int(round((clock.phase_ps - slot0_ps) / clock.period_ps))
    alice = AliceRecord(blk.alice.basis, blk.alice.bit, blk.alice.intensity, first_slot=-shift)
    cm = click_matrix(gate(blk.tags, clock, cfg), alice)
    e_z, e_x = optical_qber(cm)
    rep = BlockReport(block_id=block_id, duration_s=duration_s, qber_z=e_z, qber_x=e_x,
                      counts={"click_matrix": cm.tolist()}, params=params)
    return rep, blk.truth


@dataclass
class KeyModel:
    """Secret bits of a block from its optical errors: Lim et al. finite key, n_key detections.

    The link model carries the bench's own noise: dark counts, and afterpulses at the
    detectors' afterpulse probability times the gate's duty cycle (an afterpulse lands
    at a random time; only those inside a gate click in a slot).  n_key = 1e6: at 1e5
    key-basis detections these intensities give no key at the bench's noise floor.
    """

    config: SimConfig
    n_key: float = 1e6
    ec_efficiency: float = 1.16

    def key_bits(self, mu: tuple[float, float, float], e_z: float, e_x: float) -> float:
        src = self.config.source
        det = self.config.detectors[0]
        link = LinkModel(
            fiber_loss_db_per_km=self.config.fiber.loss_db_per_km,
            detector_efficiency=det.efficiency * 10 ** (-self.config.bob_loss_db / 10),
            dark_count_prob=det.dark_count_hz / src.pulse_rate_hz,
            afterpulse_prob=det.afterpulse_prob * GATE_DUTY,
            misalignment=min(max(e_z, 0.0), 0.5), intensities=mu, intensity_probs=src.p_intensity,
            key_basis_prob=src.p_z, distance_km=self.config.fiber.length_km,
        )
        key, _ = link.expected_stats(self.n_key, self.ec_efficiency)
        test, _ = replace(link, misalignment=min(max(e_x, 0.0), 0.5)).expected_stats(
            self.n_key, self.ec_efficiency)
        stats = type(key)(key.n_key, key.m_key, test.n_test, test.m_test, key.leak_ec_bits)
        kl = key_length(stats, DecoySettings(mu, src.p_intensity, 1e-10, 1e-15))
        return max(0.0, float(kl.length_bits))


@dataclass
class LoopResult:
    """Per-run figures of a tuner on the simulated bench."""

    qber: list = field(default_factory=list)        # measured max(e_Z, e_X) per block
    qber_z: list = field(default_factory=list)      # measured e_Z per block (key basis)
    qber_x: list = field(default_factory=list)      # measured e_X per block (test basis)
    key_bits: list = field(default_factory=list)     # finite-key bits per block
    probes: int = 0
    shots: int = 0
    tuner_seconds: float = 0.0

    def summary(self, threshold: float) -> dict:
        q = np.asarray(self.qber)
        return {"mean_qber": float(np.mean(q)), "mean_qber_z": float(np.mean(self.qber_z)),
                "mean_qber_x": float(np.mean(self.qber_x)), "frac_above_threshold": float(np.mean(q > threshold)),
                "key_bits": float(np.sum(self.key_bits)), "probes": self.probes, "shots": self.shots,
                "tuner_seconds": self.tuner_seconds}


def run_loop(bench: SimBench, tuner: Tuner | None, n_blocks: int, block_s: float,
             key_model: KeyModel, oracle: Calibration | None = None, probe_s: float | None = None,
             apply_lag_blocks: int = 0) -> LoopResult:
    """Run n_blocks blocks with `tuner` (or the oracle when `oracle` is a calibration).

    apply_lag_blocks: blocks between a proposal and its effect (the engine's overlap: 1).
    probe_s: duration of a probe measurement (default block_s / 5).
    """
    res = LoopResult()
    history: list[BlockReport] = []
    pending: list[tuple[int, Mapping[str, float]]] = []
    probe_s = block_s / 5 if probe_s is None else probe_s

    def probe(params: Mapping[str, float], duration_s: float) -> BlockReport:
        saved = bench_params(bench)
        apply_settings(bench, params)
        rep, _ = measure(bench, probe_s)
        apply_settings(bench, saved)
        res.probes += 1
        return rep

    for i in range(n_blocks):
        while pending and pending[0][0] <= i:
            apply_settings(bench, pending.pop(0)[1])
        if oracle is not None:
            target = np.conj(bench.fiber_unitary()).T
            apply_settings(bench, {f"pol.{k}": v for k, v in enumerate(
                oracle.settings_for(target, start=list(bench_params(bench).values())).settings, 1)})
        rep, truth = measure(bench, block_s, i)
        res.qber.append(max(rep.qber_z, rep.qber_x))
        res.qber_z.append(rep.qber_z)
        res.qber_x.append(rep.qber_x)
        mu = tuple(float(m) for m in truth["mu"])
        res.key_bits.append(key_model.key_bits(mu, truth["e_z"], truth["e_x"]))
        history.append(rep)
        if tuner is None:
            continue
        t0 = time.perf_counter()
        # like the engine: the tuner sees the parameters last requested, in force or not
        requested = {**bench_params(bench), **{k: v for _, p in pending for k, v in p.items()}}
        prop = tuner.propose(history, requested, probe)
        res.tuner_seconds += time.perf_counter() - t0
        if prop is not None:
            res.shots += int(prop.extra.get("shots", 0))
            pending.append((i + 1 + apply_lag_blocks, dict(prop.params)))
    return res


def retained(result: LoopResult, oracle: LoopResult) -> float:
    """Secret key of `result` relative to the oracle's on the same drift."""
    total = float(np.sum(oracle.key_bits))
    return float(np.sum(result.key_bits)) / total if total > 0 else math.nan
