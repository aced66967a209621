"""SimBench: the shared physical state of the simulated BB84 bench.

The emulated instruments (firmware_sim.instruments) read and write this object;
every public method takes one lock, so instruments on different threads may call
it concurrently.  Channel numbering follows the instruments:
  VOA (Keysight N7764A-like) channels 1..4: 1 signal, 2 decoy, 3 vacuum, 4 unused;
  mu_k = source.mu_max * 10**(-attenuation_db[k]/10), 0 when the output is disabled.
  EPC (OZ Optics EPC-400 style) channels 1..4, -5000..5000 mV.
  MPC320 paddles 1..3, 0..170 degrees.
  Tagger channels: the numbers in config.tagger.channels (sync + H, V, D, A).
Simulated time advances only in `acquire`.  Same config + seed + call sequence
gives the same tags.  Alice's choices come from config.alice_choices
(physics/qrng.choice_source); when her QRNG fails a health test, `acquire` raises
SecurityAbort, now and on every later call.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from firmware_sim.config import SimConfig
from firmware_sim.physics import eve as eve_physics
from firmware_sim.physics.alice import counter_key
from firmware_sim.physics.clicks import simulate_slots
from firmware_sim.physics.detectors import DetectorState, apply_dead_time, dark_counts, sort_nearly_sorted
from firmware_sim.physics.fiber import FiberState, nominal_delay_ps, transmission
from firmware_sim.physics.polarization import (
    EPC_MAX_MV,
    MPC320_MAX_DEG,
    epc_unitary,
    link_probabilities,
    mpc320_unitary,
)
from firmware_sim.physics.qrng import choice_source
from firmware_sim.physics.source import intensity_mu
from firmware_sim.physics.tagger import TaggerState, tag_stream
from qkdctl.core.errors import QkdInputError
from qkdctl.core.records import AliceRecord
from qkdctl.core.tags import TagBlock

ROLES = ("sync", "H", "V", "D", "A")
"""Tagger roles in internal index order (index 1 + j is detector j)."""
VOA_CHANNELS = 4
EPC_CHANNELS = 4
MPC320_PADDLES = 3


@dataclass(frozen=True)
class SimBlock:
    """One acquisition: the tags Bob's tagger recorded, Alice's record, hidden truth.

    truth holds figures no real bench would show (true rotation, optical QBER per
    basis, mu per class, transmission, Eve's statistics); tests and plots use it,
    the control stack must not.
    """

    block_id: int
    tags: TagBlock
    alice: AliceRecord
    truth: dict = field(default_factory=dict)


def _window_factor(offset_ps: np.ndarray, center_ps: np.ndarray, width_ps: np.ndarray) -> np.ndarray:
    """Relative detector efficiency for photons arriving offset_ps late (Gaussian window)."""
    safe = np.where(width_ps > 0, width_ps, 1.0)
    return np.where(width_ps > 0, np.exp(-0.5 * ((offset_ps - center_ps) / safe) ** 2), 1.0)


class SimBench:
    """The simulated bench's physical state and its event generator (thread-safe)."""

    def __init__(self, config: SimConfig, seed: int) -> None:
        if not isinstance(config, SimConfig):
            raise QkdInputError(f"config must be a SimConfig, got {type(config).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise QkdInputError(f"seed must be an integer >= 0, got {seed!r}")
        self._lock = threading.RLock()
        self.config = config
        self.seed = int(seed)
        fiber_seq, event_seq = np.random.SeedSequence(self.seed).spawn(2)
        self._rng = np.random.Generator(np.random.SFC64(event_seq))  # ~1.5x PCG64's raw words/s
        self._choices = choice_source(config.alice_choices, config.qrng, self.seed)
        self._key = counter_key(self.seed)  # counter generator: Alice's choices and click candidates
        self._fiber = FiberState(config.fiber, np.random.default_rng(fiber_seq))
        src = config.source
        self._att_db = np.array(src.attenuation_db, dtype=np.float64)
        self._out_on = np.array(src.output_enabled, dtype=bool)
        self._wavelength_m = np.full(VOA_CHANNELS, src.wavelength_m)
        self._epc_mv = np.zeros(EPC_CHANNELS)
        self._paddle_deg = np.zeros(MPC320_PADDLES)
        tg = config.tagger
        self._ch_number = np.array([tg.channels[r] for r in ROLES], dtype=np.int32)
        n_ch = len(ROLES)
        self._tag_delay_ps = np.zeros(n_ch, dtype=np.int64)
        self._tag_dead_ps = np.full(n_ch, tg.dead_time_ps, dtype=np.int64)
        self._trigger_v = np.full(n_ch, tg.trigger_level_v)
        self._tag_enabled = np.ones(n_ch, dtype=bool)
        self._max_rate = float(tg.max_rate_tags_per_s)
        self._buffer_tags = int(tg.buffer_tags)
        self._det_state = DetectorState()
        self._tag_state = TaggerState()
        self._next_slot = 0
        self._block_id = 0
        self._rates_hz = {int(c): 0.0 for c in self._ch_number}
        self._sync_delay_ps = nominal_delay_ps(config.fiber)

    # ---- Alice's VOA -------------------------------------------------------------
    def _voa_index(self, channel: int) -> int:
        if not 1 <= int(channel) <= VOA_CHANNELS:
            raise QkdInputError(f"VOA channel {channel} out of range 1..{VOA_CHANNELS}")
        return int(channel) - 1

    def set_attenuation_db(self, channel: int, db: float) -> None:
        """Set VOA channel attenuation (dB, 0..voa_max_attenuation_db)."""
        top = self.config.source.voa_max_attenuation_db
        if not 0.0 <= float(db) <= top:
            raise QkdInputError(f"attenuation {db} dB out of range 0..{top} dB")
        with self._lock:
            self._att_db[self._voa_index(channel)] = float(db)

    def attenuation_db(self, channel: int) -> float:
        """VOA channel attenuation (dB)."""
        with self._lock:
            return float(self._att_db[self._voa_index(channel)])

    def set_output_enabled(self, channel: int, on: bool) -> None:
        """Open (True) or close (False) the VOA channel's output shutter."""
        with self._lock:
            self._out_on[self._voa_index(channel)] = bool(on)

    def output_enabled(self, channel: int) -> bool:
        """True when the VOA channel's shutter is open."""
        with self._lock:
            return bool(self._out_on[self._voa_index(channel)])

    def set_wavelength_m(self, channel: int, metres: float) -> None:
        """Set the VOA channel's calibration wavelength (m, 1260e-9..1640e-9)."""
        if not 1260e-9 <= float(metres) <= 1640e-9:
            raise QkdInputError(f"wavelength {metres} m out of range 1.26e-6..1.64e-6 m")
        with self._lock:
            self._wavelength_m[self._voa_index(channel)] = float(metres)

    def wavelength_m(self, channel: int) -> float:
        """VOA channel calibration wavelength (m)."""
        with self._lock:
            return float(self._wavelength_m[self._voa_index(channel)])

    def mu(self) -> np.ndarray:
        """Mean photon number per class (signal, decoy, vacuum) from the VOA state."""
        with self._lock:
            s = self.config.source
            return intensity_mu(
                s.mu_max, self._att_db, self._out_on, self._wavelength_m, s.wavelength_m,
                s.voa_wdl_db_per_nm,
            )

    # ---- Alice's choice probabilities ---------------------------------------------------
    def set_choice_probabilities(self, p_z: float, p_intensity: tuple[float, float, float]) -> None:
        """Set Alice's P(Z) and intensity-class probabilities (signal, decoy, vacuum), from the
        next acquisition on.  Bob's basis splitter (config.p_bob_z) is a fixed component."""
        p_z = float(p_z)
        p = tuple(float(v) for v in p_intensity)
        if len(p) != 3 or not all(np.isfinite(v) and 0.0 <= v <= 1.0 for v in p) or abs(sum(p) - 1.0) > 1e-9:
            raise QkdInputError(f"intensity probabilities {p_intensity} must be three values in [0, 1] summing to 1")
        if not (np.isfinite(p_z) and 0.0 < p_z < 1.0):
            raise QkdInputError(f"P(Z) = {p_z} must lie in (0, 1)")
        with self._lock:
            src = self.config.source.model_copy(update={"p_z": p_z, "p_intensity": p})
            self.config = self.config.model_copy(update={"source": src})

    def choice_probabilities(self) -> tuple[float, tuple[float, float, float]]:
        """(P(Z), (p_signal, p_decoy, p_vacuum)) Alice uses for the next acquisition."""
        with self._lock:
            src = self.config.source
            return float(src.p_z), tuple(float(v) for v in src.p_intensity)

    # ---- Bob's polarization controllers ---------------------------------------------
    def set_epc_voltage_mv(self, channel: int, mv: float) -> None:
        """Set EPC squeezer channel 1..4 voltage (mV, -5000..5000)."""
        if not 1 <= int(channel) <= EPC_CHANNELS:
            raise QkdInputError(f"EPC channel {channel} out of range 1..{EPC_CHANNELS}")
        if not -EPC_MAX_MV <= float(mv) <= EPC_MAX_MV:
            raise QkdInputError(f"EPC voltage {mv} mV out of range -5000..5000 mV")
        with self._lock:
            self._epc_mv[int(channel) - 1] = float(mv)

    def epc_voltage_mv(self, channel: int) -> float:
        """EPC squeezer channel voltage (mV)."""
        if not 1 <= int(channel) <= EPC_CHANNELS:
            raise QkdInputError(f"EPC channel {channel} out of range 1..{EPC_CHANNELS}")
        with self._lock:
            return float(self._epc_mv[int(channel) - 1])

    def set_paddle_deg(self, paddle: int, deg: float) -> None:
        """Set MPC320 paddle 1..3 angle (degrees, 0..170)."""
        if not 1 <= int(paddle) <= MPC320_PADDLES:
            raise QkdInputError(f"MPC320 paddle {paddle} out of range 1..{MPC320_PADDLES}")
        if not 0.0 <= float(deg) <= MPC320_MAX_DEG:
            raise QkdInputError(f"paddle angle {deg} deg out of range 0..{MPC320_MAX_DEG} deg")
        with self._lock:
            self._paddle_deg[int(paddle) - 1] = float(deg)

    def paddle_deg(self, paddle: int) -> float:
        """MPC320 paddle angle (degrees)."""
        if not 1 <= int(paddle) <= MPC320_PADDLES:
            raise QkdInputError(f"MPC320 paddle {paddle} out of range 1..{MPC320_PADDLES}")
        with self._lock:
            return float(self._paddle_deg[int(paddle) - 1])

    def controller_unitary(self) -> np.ndarray:
        """SU(2) of the controller in the light path (config.controller.model)."""
        with self._lock:
            c = self.config.controller
            if c.model == "epc":
                return epc_unitary(self._epc_mv, c.epc_v_pi_mv, c.epc_offset_rad)
            return mpc320_unitary(self._paddle_deg)

    def fiber_unitary(self) -> np.ndarray:
        """Current SU(2) of the fiber (hidden from the control stack; for tests/tuner studies)."""
        with self._lock:
            return self._fiber.rotation.copy()

    # ---- Bob's time tagger -------------------------------------------------------------
    def _tag_index(self, channel: int) -> int:
        hits = np.flatnonzero(self._ch_number == int(channel))
        if hits.size == 0:
            raise QkdInputError(
                f"tagger channel {channel} not configured; channels: {sorted(self._ch_number.tolist())}"
            )
        return int(hits[0])

    def tagger_channels(self) -> dict[str, int]:
        """Role -> tagger channel number (sync, H, V, D, A)."""
        return dict(self.config.tagger.channels)

    def set_tagger_delay_ps(self, channel: int, ps: int) -> None:
        """Set a tagger channel's input delay (ps, |delay| <= 1e9)."""
        if abs(int(ps)) > 1_000_000_000:
            raise QkdInputError(f"tagger delay {ps} ps out of range +-1e9 ps")
        with self._lock:
            self._tag_delay_ps[self._tag_index(channel)] = int(ps)

    def tagger_delay_ps(self, channel: int) -> int:
        """Tagger channel input delay (ps)."""
        with self._lock:
            return int(self._tag_delay_ps[self._tag_index(channel)])

    def set_tagger_dead_time_ps(self, channel: int, ps: int) -> None:
        """Set a tagger channel's dead time (ps, 0..1e9)."""
        if not 0 <= int(ps) <= 1_000_000_000:
            raise QkdInputError(f"tagger dead time {ps} ps out of range 0..1e9 ps")
        with self._lock:
            self._tag_dead_ps[self._tag_index(channel)] = int(ps)

    def tagger_dead_time_ps(self, channel: int) -> int:
        """Tagger channel dead time (ps)."""
        with self._lock:
            return int(self._tag_dead_ps[self._tag_index(channel)])

    def set_trigger_level_v(self, channel: int, v: float) -> None:
        """Set a tagger channel's trigger level (V, -2.5..2.5).

        Above the detector pulse height the channel sees nothing; below the noise
        level it also triggers on noise (config.tagger.noise_rate_hz).
        """
        if not -2.5 <= float(v) <= 2.5:
            raise QkdInputError(f"trigger level {v} V out of range -2.5..2.5 V")
        with self._lock:
            self._trigger_v[self._tag_index(channel)] = float(v)

    def trigger_level_v(self, channel: int) -> float:
        """Tagger channel trigger level (V)."""
        with self._lock:
            return float(self._trigger_v[self._tag_index(channel)])

    def set_tagger_channel_enabled(self, channel: int, on: bool) -> None:
        """Include (True) or exclude (False) a channel from the tag stream."""
        with self._lock:
            self._tag_enabled[self._tag_index(channel)] = bool(on)

    def tagger_channel_enabled(self, channel: int) -> bool:
        """True when the channel is in the tag stream."""
        with self._lock:
            return bool(self._tag_enabled[self._tag_index(channel)])

    def set_tagger_buffer(self, max_rate_tags_per_s: float, buffer_tags: int) -> None:
        """Set the transfer limit (tags/s) and buffer size (tags); lowering them forces overflow."""
        if float(max_rate_tags_per_s) <= 0 or int(buffer_tags) < 1:
            raise QkdInputError(
                f"tagger max rate {max_rate_tags_per_s} tags/s must be > 0 and buffer {buffer_tags} >= 1"
            )
        with self._lock:
            self._max_rate = float(max_rate_tags_per_s)
            self._buffer_tags = int(buffer_tags)

    def tagger_buffer(self) -> tuple[float, int]:
        """(max_rate_tags_per_s, buffer_tags)."""
        with self._lock:
            return self._max_rate, self._buffer_tags

    def count_rates_hz(self) -> dict[int, float]:
        """Tags per second per tagger channel number, from the last acquired block."""
        with self._lock:
            return dict(self._rates_hz)

    @property
    def now_s(self) -> float:
        """Simulated time (s) since the bench started."""
        with self._lock:
            return self._next_slot / self.config.source.pulse_rate_hz

    # ---- events -----------------------------------------------------------------------
    def acquire(self, duration_s: float) -> SimBlock:
        """Run the link for duration_s of simulated time and return what the tagger saw.

        Advances fiber drift, delay drift and Eve with simulated time.
        """
        duration_s = float(duration_s)
        if not duration_s > 0 or not np.isfinite(duration_s):
            raise QkdInputError(f"acquire duration must be > 0 s, got {duration_s}")
        with self._lock:
            return self._acquire(duration_s)

    def _acquire(self, duration_s: float) -> SimBlock:
        """Emit the block's slots, then detectors (dark counts, dead time, afterpulses), then tagger."""
        cfg = self.config
        src = cfg.source
        rate = src.pulse_rate_hz
        period_ps = 1e12 / rate
        slot0 = self._next_slot
        slot_end = int(round((slot0 / rate + duration_s) * rate))
        n_slots = slot_end - slot0
        if n_slots < 1:
            raise QkdInputError(f"acquire duration {duration_s} s is shorter than one pulse slot")
        if n_slots > cfg.max_slots_per_acquire:
            raise QkdInputError(
                f"acquire of {n_slots} slots exceeds max_slots_per_acquire={cfg.max_slots_per_acquire}"
            )
        mu = self.mu()
        det_cfg = cfg.detectors
        u_ctrl = self.controller_unitary()
        alice, t_click, c_det, optics = self._emit(slot0, n_slots, mu, u_ctrl)
        t0_ps = int(round(slot0 * period_ps + self._sync_delay_ps))
        t1_ps = int(round(slot_end * period_ps + self._sync_delay_ps))
        blinded = cfg.eve.blinding_fraction > 0
        dark_hz = np.array([0.0 if blinded else d.dark_count_hz for d in det_cfg])
        d_t, d_det = dark_counts(self._rng, dark_hz, t0_ps, t1_ps)
        sort_nearly_sorted(t_click, c_det)
        ap_prob = np.array([0.0 if blinded else d.afterpulse_prob for d in det_cfg])
        clk_t, clk_det, clk_ap, ap_lost = apply_dead_time(
            self._rng, (t_click, c_det), (d_t, d_det),
            np.array([d.dead_time_ps for d in det_cfg]), ap_prob,
            np.array([d.afterpulse_delay_ps for d in det_cfg]), self._det_state, t1_ps,
        )
        tags = self._tagger(slot0, slot_end, period_ps, t0_ps, t1_ps, clk_t, clk_det)
        self._next_slot = slot_end
        self._block_id += 1
        for num, count in zip(self._ch_number, self._tag_state.counts):
            self._rates_hz[int(num)] = float(count) / duration_s
        truth = {
            "mu": mu,
            "fiber_rotation": self._fiber.rotation.copy(),
            "controller_rotation": u_ctrl,
            **optics,
            "fiber_delay_ps": float(self._fiber.delay_ps),
            "n_slots": n_slots,
            # count_nonzero per detector: ~6x faster than bincount (which widens uint8 to intp first)
            "clicks_per_detector": np.array([np.count_nonzero(clk_det == j) for j in range(4)]),
            "afterpulses": int(np.count_nonzero(clk_ap)),
            "afterpulses_lost": int(ap_lost),
            "dark_counts": int(d_t.size),
        }
        return SimBlock(block_id=self._block_id, tags=tags, alice=alice, truth=truth)

    def _emit(
        self, slot0: int, n_slots: int, mu: np.ndarray, u_ctrl: np.ndarray
    ) -> tuple[AliceRecord, np.ndarray, np.ndarray, dict]:
        """Alice's record and Bob's photon clicks (t_ps, det) for n_slots slots from slot0.

        The fiber drifts every physics_step_s; returns also the optical truth of the block
        (transmission, mean e_z/e_x, Eve's counts).
        """
        cfg = self.config
        src = cfg.source
        rate = src.pulse_rate_hz
        period_ps = 1e12 / rate
        det_cfg = cfg.detectors
        eff = np.array([d.efficiency for d in det_cfg])
        center = np.array([d.window_center_ps for d in det_cfg])
        width = np.array([d.window_width_ps for d in det_cfg])
        jitter = np.array([d.jitter_ps for d in det_cfg])
        t_bob = 10.0 ** (-cfg.bob_loss_db / 10.0)
        t_link = transmission(cfg.fiber) * t_bob
        step_slots = max(1, int(cfg.physics_step_s * rate))
        n_steps = -(-n_slots // step_slots)
        eff_0 = eff * _window_factor(0.0, center, width)
        lam = np.empty((n_steps, 3, 4, 4))
        delay_ps = np.empty(n_steps)
        alice_arrays = tuple(np.empty(n_slots, dtype=np.uint8) for _ in range(3))
        parts_t, parts_det = [], []
        eve_stats: dict = {}
        e_z_acc = e_x_acc = 0.0
        u_prev = None
        for k in range(n_steps):
            s = slot0 + k * step_slots
            n = min(step_slots, slot0 + n_slots - s)
            u_total = u_ctrl @ self._fiber.rotation
            if u_prev is None or not np.array_equal(u_total, u_prev):  # a still fiber: the same tables
                p_det, e_z, e_x = link_probabilities(u_total, cfg.p_bob_z)
                u_prev = u_total
            e_z_acc += e_z * n
            e_x_acc += e_x * n
            if cfg.eve.active:
                basis, bit, inten, c_t, c_det = eve_physics.simulate_slots_with_eve(
                    self._rng, self._key, s, n, src, cfg.eve, mu, t_link, p_det, eff, center, width, eve_stats,
                    period_ps, self._fiber.delay_ps, jitter, t_bob=t_bob, p_bob_z=cfg.p_bob_z,
                    choices=self._choices,
                )
                for a, chunk in zip(alice_arrays, (basis, bit, inten)):
                    a[s - slot0:s - slot0 + n] = chunk
                parts_t.append(c_t)
                parts_det.append(c_det)
            else:
                lam[k] = mu[:, None, None] * t_link * p_det[None, :, :] * eff_0
                delay_ps[k] = self._fiber.delay_ps
            self._fiber.step(n / rate)
        if not cfg.eve.active:  # one call for the block: the fiber's drift has its own generator
            _, _, _, c_t, c_det = simulate_slots(
                self._rng, self._key, slot0, n_slots, src.p_intensity, src.p_z, src.p_bit_one, lam,
                period_ps, delay_ps, jitter, out=alice_arrays, choices=self._choices, step_slots=step_slots,
            )
            parts_t.append(c_t)
            parts_det.append(c_det)
        # the choice kernel writes o >> 2, (o >> 1) & 1, o & 1 of an outcome o <= 11: in range by construction
        alice = AliceRecord.trusted(alice_arrays[0], alice_arrays[1], alice_arrays[2], first_slot=slot0)
        optics = {"transmission": t_link, "e_z": e_z_acc / n_slots, "e_x": e_x_acc / n_slots, "eve": eve_stats}
        if len(parts_t) == 1:  # the one call of the fast path: no copy
            return alice, parts_t[0], parts_det[0], optics
        return alice, np.concatenate(parts_t), np.concatenate(parts_det), optics

    def _tagger(
        self, slot0: int, slot_end: int, period_ps: float, t0_ps: int, t1_ps: int,
        clk_t: np.ndarray, clk_det: np.ndarray,
    ) -> TagBlock:
        tg = self.config.tagger
        div = self.config.source.sync_divider
        first_sync = -(-slot0 // div) * div
        sync_slots = np.arange(first_sync, slot_end, div, dtype=np.int64)
        sync_t = np.rint(sync_slots * period_ps + self._sync_delay_ps).astype(np.int64)
        extra = [sync_t] + [np.empty(0, dtype=np.int64)] * 4
        for k in range(len(ROLES)):
            if self._trigger_v[k] < tg.noise_level_v and tg.noise_rate_hz > 0:
                n_noise = int(self._rng.poisson(tg.noise_rate_hz * (t1_ps - t0_ps) * 1e-12))
                noise = (t0_ps + self._rng.random(n_noise) * (t1_ps - t0_ps)).astype(np.int64)
                extra[k] = np.sort(np.concatenate((extra[k], noise)))
        visible = self._tag_enabled & (self._trigger_v < tg.pulse_amplitude_v)
        t, ch, missed = tag_stream(
            clk_t, clk_det, extra, self._tag_delay_ps, visible, self._tag_dead_ps,
            tg.resolution_ps, self._ch_number, self._max_rate, self._buffer_tags, self._tag_state,
        )
        return TagBlock.trusted(  # the tagger's merge of time-sorted streams is sorted by construction
            t_ps=t, channel=ch, start_ps=t0_ps, stop_ps=t1_ps,
            overflow=missed > 0, missed_events=missed,
            meta={"first_slot": slot0, "n_slots": slot_end - slot0, "period_ps": period_ps},
        )
