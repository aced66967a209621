"""Adaptive control on the simulated bench: SimBench + the real pipeline as an environment.

`SimBenchEnv.step(action)`: the polarization is realigned at the block start (the
controller set to the inverse of the true fiber rotation, as the oracle of
benchmarks/tune_sim.py: adaptive control is judged on what it changes, not on the
polarization tuner), one block of `action.block_seconds` is acquired from
firmware_sim.bench.SimBench (25 km, 1 GHz, the sim_bench.toml source and
detectors, the trace's polarization drift rate, Alice's P(Z) of the action; Bob's
splitter stays at p_bob_z), then processed by
qkdctl.pipeline.process_block with the action's gate width and reconciliation
method.  The in-process classical channel has no latency: the trace's RTT times
the block's round trips is added to its reconcile stage (a WAN channel would add
that wait, and reports it as telemetry["channel_rtt_s"]).  Processing times are measured, so they carry this machine's load.

`calibrate` measures the surrogate's figures (qkdctl.control.surrogate) on blocks
of this environment.
"""

from __future__ import annotations

import time

import numpy as np

from firmware_sim.bench import SimBench
from firmware_sim.config import SimConfig
from qkdctl.blockreport import BlockReport
from qkdctl.control.actions import Action
from qkdctl.control.surrogate import DriftTrace
from qkdctl.core.constants import DEFAULT_CHANNELS
from qkdctl.core.errors import ProtocolError
from qkdctl.core.tags import GateConfig
from qkdctl.pipeline import BlockSettings, process_block

SIM = {
    "source": {"pulse_rate_hz": 1e9, "sync_divider": 1000, "p_z": 0.7, "p_intensity": (0.2, 0.5, 0.3),
               "attenuation_db": (3.0103, 7.4473, 36.9897, 45.0), "output_enabled": (True, True, True, False)},
    "fiber": {"length_km": 25.0, "initial_rotation": "identity"},
    "p_bob_z": 0.7,
    "bob_loss_db": 1.0,
}
"""The bench of lab_configs/sim_bench.toml (mu = 0.5, 0.18, 2e-4; p_Z = 0.7; 25 km; 1 dB at Bob)."""


class SimBenchEnv:
    """One episode on a SimBench under `trace` (drift rate per block, RTT per block); seed: bench seed.

    The fiber's drift rate is the SimConfig's; SimBench cannot change it mid-run, so
    each block's rate is applied by a bench built per distinct rate, sharing nothing
    but the seed (a new fiber realization per drift phase).
    """

    def __init__(self, trace: DriftTrace, seed: int) -> None:
        self.trace = trace
        self.seed = int(seed)
        self.t = 0
        self._benches: dict[float, SimBench] = {}
        self.rng = np.random.default_rng(seed)
        self.sim_seconds = 0.0
        self.protocol_failures = 0

    @property
    def done(self) -> bool:
        """True when every block of the trace has been run."""
        return self.t >= len(self.trace)

    def _bench(self, drift: float) -> SimBench:
        if drift not in self._benches:
            cfg = SimConfig.build(**{**SIM, "fiber": {**SIM["fiber"], "drift_rad_per_sqrt_s": drift}})
            self._benches[drift] = SimBench(cfg, self.seed)
        return self._benches[drift]

    def settings(self, bench: SimBench, action: Action) -> BlockSettings:
        """Pipeline settings of a block under `action` (gate centred on the clock edge)."""
        src = bench.config.source
        return BlockSettings(
            sync_channel=DEFAULT_CHANNELS["sync"], sync_divider=src.sync_divider,
            nominal_sync_period_ps=1e12 / src.pulse_rate_hz * src.sync_divider,
            gate=GateConfig.from_channels(DEFAULT_CHANNELS, offset_ps=0.0, width_ps=float(action.gate_width_ps)),
            mu=tuple(float(m) for m in bench.mu()), p_mu=src.p_intensity, eps_sec=1e-10, eps_cor=1e-15,
            qber_abort=0.11, method=action.method)

    def step(self, action: Action) -> BlockReport:
        """Realign, acquire, process one block; its report (features.reward gives the reward)."""
        drift = float(self.trace.drift_rad_per_sqrt_s[self.t])
        rtt_s = float(self.trace.rtt_s[self.t])
        bench = self._bench(drift)
        align(bench)
        bench.set_choice_probabilities(float(action.alice_p_z), bench.config.source.p_intensity)
        t0 = time.perf_counter()
        blk = bench.acquire(float(action.block_seconds))
        t1 = time.perf_counter()
        self.sim_seconds += t1 - t0
        try:
            rep = process_block(self.t, blk.tags, blk.alice, self.settings(bench, action), self.rng).report
        except ProtocolError as exc:
            # the reconciliation protocol broke down (seen with ldpc-blind: docs/control.md):
            # the block makes no key, like any failed reconciliation, and is counted
            self.protocol_failures += 1
            rep = BlockReport(block_id=self.t, status="aborted", method=action.method,
                              abort_reason=f"reconciliation protocol failed: {exc}",
                              stage_seconds={"reconcile": time.perf_counter() - t1})
        rep.duration_s = float(action.block_seconds)
        rep.params = {**action.params()}
        rep.stage_seconds["reconcile"] = rep.stage_seconds.get("reconcile", 0.0) + rep.round_trips * rtt_s
        rep.qber_true_z = float(blk.truth["e_z"])
        rep.telemetry["channel_rtt_s"] = rtt_s  # what a ping of the classical channel would report
        self.t += 1
        return rep


def align(bench: SimBench) -> None:
    """Set the MPC320 paddles to the inverse of the bench's current fiber rotation."""
    from drivers.polarization.calibration import PaddleCalibration

    target = np.conj(bench.fiber_unitary()).T
    start = [bench.paddle_deg(k) for k in (1, 2, 3)]
    sol = PaddleCalibration().settings_for(target, start=start)
    for k, deg in enumerate(sol.settings, 1):
        bench.set_paddle_deg(k, float(np.clip(deg, 0.0, 170.0)))


def warm_up(space) -> None:
    """Process one untimed block per (block length, method) of `space`, so that numba's
    compiled kernels and the LDPC codes are loaded before anything is timed."""
    n = len(space.block_seconds) * len(space.methods)
    env = SimBenchEnv(DriftTrace(np.zeros(n), np.zeros(n)), 0)
    for t in space.block_seconds:
        for m in space.methods:
            env.step(Action(t, m, space.gate_widths_ps[0], space.alice_p_z[0]))


def calibrate(seed: int = 3, block_s: float = 0.02, n_blocks: int = 2) -> dict:
    """Surrogate figures measured on SimBench (no drift, no RTT): per gate width and method,
    sifted Z bits per second, QBER_Z, f, round trips, reconcile and other processing seconds."""
    from qkdctl.control.actions import ActionSpace

    space = ActionSpace()
    warm_up(space)
    out = {}
    for w in space.gate_widths_ps:
        for m in space.methods:
            env = SimBenchEnv(DriftTrace(np.zeros(n_blocks), np.zeros(n_blocks)), seed)
            reps = [env.step(Action(block_s, m, w, space.alice_p_z[0])) for _ in range(n_blocks)]
            ok = [r for r in reps if r.status == "ok"]
            out[f"{m}@{w:g}ps"] = {
                "sifted_z_per_s": float(np.mean([r.sifted_bits_z for r in reps])) / block_s,
                "qber_z": float(np.mean([r.qber_z for r in ok])) if ok else None,
                "f": float(np.mean([r.ec_efficiency for r in ok])) if ok else None,
                "round_trips": float(np.mean([r.round_trips for r in ok])) if ok else None,
                "reconcile_s": float(np.mean([r.stage_seconds["reconcile"] for r in reps])),
                "other_s": float(np.mean([sum(v for k, v in r.stage_seconds.items() if k != "reconcile")
                                          for r in reps])),
                "key_bits": float(np.mean([r.key_bits for r in reps])),
            }
    return out


def surrogate_at(action: Action, trace: DriftTrace, seed: int, n_blocks: int) -> list[BlockReport]:
    """Surrogate reports of the same action and trace (for side-by-side validation)."""
    from qkdctl.control.surrogate import SurrogateBench

    sb = SurrogateBench(trace, np.random.default_rng(seed))
    return [sb.step(action) for _ in range(n_blocks)]


if __name__ == "__main__":
    import json

    print(json.dumps(calibrate(), indent=1))
