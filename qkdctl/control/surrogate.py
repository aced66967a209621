"""A fast per-block model of the simulated bench, for training control policies.

SimBench plus the real pipeline costs ~1 s of CPU per block; training needs tens of
thousands of blocks.  The surrogate draws one block's figures in ~0.2 ms from:

- detections: the analytic link model (qkdctl.core.linkmodel) with the bench's
  fiber, source, detectors; the gate of width w keeps the Gaussian-jitter fraction
  erf(w / (2 sqrt(2) jitter_ps)) of the photons and afterpulse noise in proportion
  to w / pulse period;
- optical error: a floor plus the polarization drift inside a block.  The
  polarization tuner realigns at each block start; the fiber's SU(2) random walk
  at sigma rad/sqrt(s) then gives QBER_Z ~ sigma^2 t / 2 after t seconds, so the
  block mean is sigma^2 T / 4 (T = block seconds);
- basis bias: Alice picks Z with the action's P(Z) = p_A, Bob's passive splitter sends
  light to his Z arm with the fixed p_bob_z; per pulse, sifted Z detections are
  p_A * (Bob's Z-arm gain) and sifted X detections (1 - p_A) * (Bob's X-arm gain),
  so the finite key sees both the sifting and the size of the X (test) sample;
- reconciliation: efficiency f and round trips per method; LDPC's rates stop at
  0.9, so its f at low QBER is ~ ldpc_leak_fraction / h(QBER) (blind rate
  adaptation recovers a little: 0.088 instead of 0.1); under fast drift (the
  drift term sigma^2 T / 4 at least ldpc_drift_excess) ldpc-blind fails its
  confirmation with the probability measured on SimBench (the errors of a drifting
  block grow through it, which the blind decoder does not recover);
- processing time: fixed + per detection + per sifted Z bit of the method (+ a
  fixed set-up per LDPC block) (a
  log-normal factor for machine load), plus round trips x the channel RTT; the
  report carries the RTT as measured telemetry (telemetry["channel_rtt_s"], 10 % spread);
- the finite-key length of qkdctl.core.keyrate on the expected decoy statistics.

Defaults are calibrated against SimBench + process_block (benchmarks/control_sim.py,
`calibrate`; figures in docs/control.md).  The exogenous drift of an episode (RTT and
polarization drift rate per block) is a `DriftTrace`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from qkdctl.blockreport import BlockReport
from qkdctl.control.actions import Action
from qkdctl.core.errors import QkdInputError
from qkdctl.core.keyrate import DecoySettings, DecoyStats, binary_entropy, key_length
from qkdctl.core.linkmodel import LinkModel

QBER_ABORT = 0.11


@dataclass(frozen=True)
class SurrogateCalibration:
    """Bench figures of the surrogate (units in names; probabilities per pulse slot)."""

    pulse_rate_hz: float = 1e9
    distance_km: float = 25.0
    fiber_loss_db_per_km: float = 0.2
    detector_efficiency: float = 0.96 * 0.25 * 10 ** (-1.0 / 10)  # SimBench detector, 1 dB Bob loss, x0.96 fitted
    dark_count_prob: float = 1e-7
    afterpulse_prob: float = 0.01
    jitter_ps: float = 30.0
    misalignment_floor: float = 0.0015
    mu: tuple[float, float, float] = (0.5, 0.18, 2e-4)
    p_mu: tuple[float, float, float] = (0.2, 0.5, 0.3)
    p_bob_z: float = 0.7  # Bob's passive Z-arm split ratio (fixed component)
    eps_sec: float = 1e-10
    eps_cor: float = 1e-15
    cascade_f: float = 1.09
    cascade_round_trips: float = 70.0
    ldpc_leak_fraction: float = 0.088
    ldpc_min_f: float = 1.1
    ldpc_round_trips: float = 2.0
    ldpc_fixed_s: float = 0.08  # per block: frame layout and code set-up
    ldpc_drift_excess: float = 0.005  # drift QBER term from which ldpc-blind fails on SimBench
    ldpc_drift_fail_prob: float = 0.75  # measured failure fraction there: 9 of 12 blocks (docs/control.md)
    proc_fixed_s: float = 0.04
    proc_s_per_detection: float = 3.3e-7
    proc_s_per_bit: tuple[tuple[str, float], ...] = (("cascade", 4e-7), ("ldpc", 6e-7))
    load_sigma: float = 0.2  # log-normal spread of compute time (a shared machine)

    def link(self, gate_width_ps: float, misalignment: float) -> LinkModel:
        """The link model of a block with gate width (ps) and optical error probability; its
        key_basis_prob is Bob's split (Alice's P(Z) enters through `block_stats`)."""
        period_ps = 1e12 / self.pulse_rate_hz
        capture = math.erf(gate_width_ps / (2.0 * math.sqrt(2.0) * self.jitter_ps)) if self.jitter_ps > 0 else 1.0
        return LinkModel(
            fiber_loss_db_per_km=self.fiber_loss_db_per_km, detector_efficiency=self.detector_efficiency * capture,
            dark_count_prob=self.dark_count_prob * gate_width_ps / period_ps,
            afterpulse_prob=self.afterpulse_prob * min(gate_width_ps / period_ps, 1.0),
            misalignment=min(misalignment, 0.5), intensities=self.mu, intensity_probs=self.p_mu,
            key_basis_prob=self.p_bob_z, distance_km=self.distance_km,
        )

    def block_stats(self, link: LinkModel, alice_p_z: float, n_pulses: float) -> DecoyStats:
        """Expected decoy statistics of n_pulses slots when Alice sends Z with alice_p_z and Bob
        splits with link.key_basis_prob (leak_ec_bits 0)."""
        r = link.expected_rates()
        p = self.p_mu
        return DecoyStats(tuple(n_pulses * alice_p_z * pk * g for pk, g in zip(p, r.gain_key)),
                          tuple(n_pulses * alice_p_z * pk * e for pk, e in zip(p, r.err_key)),
                          tuple(n_pulses * (1.0 - alice_p_z) * pk * g for pk, g in zip(p, r.gain_test)),
                          tuple(n_pulses * (1.0 - alice_p_z) * pk * e for pk, e in zip(p, r.err_test)), 0.0)

    def efficiency(self, method: str, qber: float) -> float:
        """Reconciliation efficiency f of `method` at `qber`."""
        if method.startswith("ldpc"):
            return max(self.ldpc_min_f, self.ldpc_leak_fraction / max(binary_entropy(qber), 1e-9))
        return self.cascade_f

    def per_bit_s(self, method: str) -> float:
        """Reconciliation compute seconds per sifted Z bit of `method`."""
        return dict(self.proc_s_per_bit)["ldpc" if method.startswith("ldpc") else "cascade"]


@dataclass(frozen=True)
class DriftTrace:
    """Exogenous conditions per block: channel RTT (s) and polarization drift (rad/sqrt(s))."""

    rtt_s: np.ndarray
    drift_rad_per_sqrt_s: np.ndarray

    def __post_init__(self) -> None:
        r, d = np.asarray(self.rtt_s, float), np.asarray(self.drift_rad_per_sqrt_s, float)
        if r.ndim != 1 or r.shape != d.shape or r.size == 0:
            raise QkdInputError(f"drift trace: rtt_s and drift_rad_per_sqrt_s must be equal-length 1-d, "
                                f"got {r.shape} and {d.shape}")
        if np.any(r < 0) or np.any(d < 0) or not (np.all(np.isfinite(r)) and np.all(np.isfinite(d))):
            raise QkdInputError("drift trace: rtt_s and drift_rad_per_sqrt_s must be finite and >= 0")
        object.__setattr__(self, "rtt_s", r)
        object.__setattr__(self, "drift_rad_per_sqrt_s", d)

    def __len__(self) -> int:
        return int(self.rtt_s.size)


def random_trace(n_blocks: int, rng: np.random.Generator) -> DriftTrace:
    """A training episode: RTT and drift rate each switch once between a calm and a rough level.

    RTT levels: 0.05 ms (same room) or 2-30 ms (a WAN classical channel); drift: 0.05-0.3 or
    0.8-2.5 rad/sqrt(s) (spooled lab fiber vs aerial fiber in wind).
    """
    if n_blocks < 1:
        raise QkdInputError(f"n_blocks must be >= 1, got {n_blocks}")
    t = np.arange(n_blocks)

    def two_levels(calm: float, rough: float) -> np.ndarray:
        switch = int(rng.integers(0, n_blocks + 1))
        start_rough = bool(rng.integers(0, 2))
        return np.where((t < switch) == start_rough, rough, calm)

    rtt = two_levels(5e-5, float(rng.uniform(2e-3, 3e-2)))
    drift = two_levels(float(rng.uniform(0.05, 0.3)), float(rng.uniform(0.8, 2.5)))
    return DriftTrace(rtt, drift)


def benchmark_trace(n_blocks: int) -> DriftTrace:
    """The fixed evaluation drift: four equal phases, (calm, calm), (WAN RTT, calm),
    (WAN RTT, windy), (LAN, windy); RTT 10 ms / 0.05 ms, drift 0.2 / 1.5 rad/sqrt(s)."""
    if n_blocks < 4:
        raise QkdInputError(f"benchmark trace needs >= 4 blocks, got {n_blocks}")
    phase = np.minimum(np.arange(n_blocks) * 4 // n_blocks, 3)
    rtt = np.where((phase == 1) | (phase == 2), 1e-2, 5e-5)
    drift = np.where(phase >= 2, 1.5, 0.2)
    return DriftTrace(rtt, drift)


class SurrogateBench:
    """Blocks of the surrogate under one DriftTrace; `step(action)` returns the block's report."""

    def __init__(self, trace: DriftTrace, rng: np.random.Generator,
                 calibration: SurrogateCalibration | None = None) -> None:
        self.trace = trace
        self.rng = rng
        self.cal = calibration or SurrogateCalibration()
        self.t = 0

    @property
    def done(self) -> bool:
        """True when every block of the trace has been run."""
        return self.t >= len(self.trace)

    def step(self, action: Action) -> BlockReport:
        """Run the next block with `action` in force; its report (reward: control.features.reward)."""
        if self.done:
            raise QkdInputError(f"surrogate bench: trace of {len(self.trace)} blocks is finished")
        cal = self.cal
        T = float(action.block_seconds)
        rtt_s = float(self.trace.rtt_s[self.t])
        sigma = float(self.trace.drift_rad_per_sqrt_s[self.t])
        e_drift = sigma ** 2 * T / 4.0
        link = cal.link(action.gate_width_ps, cal.misalignment_floor + e_drift)
        n_pulses = T * cal.pulse_rate_hz
        stats = cal.block_stats(link, float(action.alice_p_z), n_pulses)
        n_z = max(math.fsum(stats.n_key), 1.0)
        q_z = math.fsum(stats.m_key) / n_z
        n_x = math.fsum(stats.n_test)
        q_x_seen = float(self.rng.binomial(max(int(n_x), 1), min(math.fsum(stats.m_test) / n_x, 1.0))) / max(n_x, 1.0)
        f = cal.efficiency(action.method, q_z)
        rtrips = cal.ldpc_round_trips if action.method.startswith("ldpc") else cal.cascade_round_trips
        detections = n_z / (action.alice_p_z * cal.p_bob_z)  # sifted Z over its sifting fraction
        load = float(np.exp(self.rng.normal(0.0, cal.load_sigma)))
        other_s = load * (cal.proc_fixed_s + cal.proc_s_per_detection * detections)
        ldpc_fixed_s = cal.ldpc_fixed_s if action.method.startswith("ldpc") else 0.0
        rec_s = load * (ldpc_fixed_s + cal.per_bit_s(action.method) * n_z) + rtrips * rtt_s
        rep = BlockReport(block_id=self.t, duration_s=T, detections=int(detections), sifted_bits_z=int(n_z),
                          sifted_bits_x=int(n_x), qber_z=q_z, qber_x=q_x_seen, method=action.method,
                          ec_efficiency=f, round_trips=int(rtrips),
                          stage_seconds={"process": other_s, "reconcile": rec_s},
                          params={**action.params()},
                          telemetry={"channel_rtt_s": rtt_s * float(np.exp(self.rng.normal(0.0, 0.1)))})
        self.t += 1
        if q_z > QBER_ABORT or q_x_seen > QBER_ABORT:
            rep.status, rep.abort_reason = "aborted", "QBER above threshold"
            return rep
        if (action.method.startswith("ldpc") and e_drift >= cal.ldpc_drift_excess
                and self.rng.random() < cal.ldpc_drift_fail_prob):
            rep.status, rep.abort_reason = "aborted", "reconciliation failed (ldpc under drift)"
            return rep
        stats = replace(stats, leak_ec_bits=f * n_z * binary_entropy(q_z))
        kl = key_length(stats, DecoySettings(cal.mu, cal.p_mu, cal.eps_sec, cal.eps_cor))
        rep.key_bits = int(kl.key_length_bits)
        if rep.key_bits <= 0:
            rep.status, rep.abort_reason = "aborted", "no finite key"
        return rep


def training_envs(batch: int, n_blocks: int, calibration: SurrogateCalibration | None = None):
    """make_envs(rng) for the trainers: `batch` surrogate benches on fresh random traces."""
    if batch < 1:
        raise QkdInputError(f"batch must be >= 1, got {batch}")

    def make(rng: np.random.Generator) -> list[SurrogateBench]:
        return [SurrogateBench(random_trace(n_blocks, rng), np.random.default_rng(int(rng.integers(2**63))),
                               calibration) for _ in range(batch)]

    return make


def benchmark_envs(n_blocks: int, seed: int, calibration: SurrogateCalibration | None = None):
    """make_envs() for evaluation: one surrogate bench on benchmark_trace(n_blocks), bench seed `seed`."""
    return lambda: [SurrogateBench(benchmark_trace(n_blocks), np.random.default_rng(seed), calibration)]
