"""Expected detection statistics of a fiber link and a seeded generator of blocks from it.

Setup: Alice sends phase-randomised weak coherent pulses (three intensities) in the Z
(key) basis with probability q = key_basis_prob, else X.  Bob splits the light
passively: fraction q to the Z arm (detectors H = bit 0, V = bit 1), 1 - q to the X
arm (D = bit 0, A = bit 1).  eta = 10^(-alpha L / 10) * eta_det.  A pulse of mean
photon number mu in Alice's basis a with bit b gives each detector j an independent
Poisson mean lam_j; in the matching arm the right detector gets (1 - e_mis) of the
arm's light and the wrong one e_mis, in the other arm each detector gets half.
Primary click probability: c_j = 1 - (1 - p_dark) exp(-lam_j).  Afterpulsing (first
order): a primary click in slot t-1 adds a click in slot t with probability p_ap, so
the stationary extra click probability is p_ap * <c_j> (average over Alice's
choices).  Double clicks are squashed: clicks in one arm only give that basis (two
clicks in it: random bit); clicks in both arms give a random basis, then that
arm's bit (random if both of its detectors clicked).  docs/keyrate.md gives the
closed forms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from qkdctl.core.constants import BASIS_X, BASIS_Z, DEFAULT_CHANNELS
from qkdctl.core.errors import QkdInputError
from qkdctl.core.keyrate import (
    DecoyStats,
    binary_entropy,
    check_decoy_settings,
)
from qkdctl.core.records import AliceRecord
from qkdctl.core.tags import TagBlock

_DET_NAMES = ("H", "V", "D", "A")
_CHUNK_SLOTS = 1 << 20


def squash(c: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """Bob's squashed outcome probabilities from independent click probabilities.

    c = (c_H, c_V, c_D, c_A).  Returns P(Z, 0), P(Z, 1), P(X, 0), P(X, 1):
    P(Z, b) = (1 - P(any X click)/2) * (c_b (1 - c_other) + c_H c_V / 2), same for X.
    """
    ch, cv, cd, ca = c
    z_any = 1.0 - (1.0 - ch) * (1.0 - cv)
    x_any = 1.0 - (1.0 - cd) * (1.0 - ca)
    wz = 1.0 - 0.5 * x_any
    wx = 1.0 - 0.5 * z_any
    both_z = 0.5 * ch * cv
    both_x = 0.5 * cd * ca
    return (
        wz * (ch * (1.0 - cv) + both_z),
        wz * (cv * (1.0 - ch) + both_z),
        wx * (cd * (1.0 - ca) + both_x),
        wx * (ca * (1.0 - cd) + both_x),
    )


@dataclass(frozen=True)
class ExpectedRates:
    """Per-pulse probabilities of the link model, per intensity (signal, decoy, vacuum).

    gain_key[k]: P(Bob reports the key basis | Alice sent key basis, intensity k).
    err_key[k]: P(Bob reports the key basis with the wrong bit | same).  gain_test /
    err_test: the same for the test basis.  q_key0 / q_key1: per-pulse probability
    (all intensities, Alice's basis choice included) of a key-basis detection caused
    by a vacuum / single-photon pulse; e1_test: single-photon test-basis error rate
    (the asymptotic phase error).
    """

    eta: float
    gain_key: tuple[float, float, float]
    err_key: tuple[float, float, float]
    gain_test: tuple[float, float, float]
    err_test: tuple[float, float, float]
    q_key0: float
    q_key1: float
    e1_test: float


@dataclass(frozen=True)
class LinkModel:
    """Fiber link, detectors and Alice's settings (units in names; probabilities per pulse).

    dark_count_prob and afterpulse_prob are per detector per pulse slot; misalignment
    is the probability that a photon lands in the wrong detector of the right arm.
    intensities: (mu1, mu2, mu3) mean photons per pulse; intensity_probs their
    probabilities; key_basis_prob: Alice's Z probability and Bob's Z-arm split ratio.
    """

    fiber_loss_db_per_km: float
    detector_efficiency: float
    dark_count_prob: float
    afterpulse_prob: float
    misalignment: float
    intensities: tuple[float, float, float]
    intensity_probs: tuple[float, float, float]
    key_basis_prob: float
    distance_km: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "intensities", tuple(float(m) for m in self.intensities))
        object.__setattr__(self, "intensity_probs", tuple(float(p) for p in self.intensity_probs))
        check_decoy_settings(self.intensities, self.intensity_probs)
        checks = (
            ("fiber_loss_db_per_km", 0.0, math.inf, "must be >= 0"),
            ("distance_km", 0.0, math.inf, "must be >= 0"),
            ("detector_efficiency", 0.0, 1.0, "must lie in (0, 1]"),
            ("dark_count_prob", 0.0, 1.0, "must lie in [0, 1)"),
            ("afterpulse_prob", 0.0, 1.0, "must lie in [0, 1)"),
            ("misalignment", 0.0, 0.5, "must lie in [0, 0.5]"),
            ("key_basis_prob", 0.0, 1.0, "must lie in (0, 1)"),
        )
        for name, lo, hi, allowed in checks:
            v = float(getattr(self, name))
            ok = math.isfinite(v) and lo <= v <= hi
            if name == "detector_efficiency":
                ok = ok and v > 0.0
            elif name in ("dark_count_prob", "afterpulse_prob"):
                ok = ok and v < 1.0
            elif name == "key_basis_prob":
                ok = ok and 0.0 < v < 1.0
            if not ok:
                raise QkdInputError(f"link model: {name} = {v} {allowed}")
            object.__setattr__(self, name, v)

    def at(self, distance_km: float) -> "LinkModel":
        """The same link at another fiber length (km)."""
        return replace(self, distance_km=float(distance_km))

    @property
    def eta(self) -> float:
        """Overall transmittance: fiber 10^(-alpha L / 10) times detector efficiency."""
        return 10.0 ** (-self.fiber_loss_db_per_km * self.distance_km / 10.0) * self.detector_efficiency

    def _arm_fractions(self, basis: int, bit: int) -> tuple[float, float, float, float]:
        """Fraction of Bob's light reaching H, V, D, A for Alice's (basis, bit)."""
        q = self.key_basis_prob
        e = self.misalignment
        right, wrong = (1.0 - e, e) if bit == 0 else (e, 1.0 - e)
        if basis == BASIS_Z:
            return (q * right, q * wrong, 0.5 * (1.0 - q), 0.5 * (1.0 - q))
        return (0.5 * q, 0.5 * q, (1.0 - q) * right, (1.0 - q) * wrong)

    def primary_click_table(self) -> np.ndarray:
        """Primary click probability per (intensity, basis, bit, detector): shape (3, 2, 2, 4)."""
        eta = self.eta
        pd = self.dark_count_prob
        table = np.empty((3, 2, 2, 4))
        for k, mu in enumerate(self.intensities):
            for a in (BASIS_Z, BASIS_X):
                for b in (0, 1):
                    f = self._arm_fractions(a, b)
                    table[k, a, b] = [1.0 - (1.0 - pd) * math.exp(-eta * mu * fj) for fj in f]
        return table

    def _weights(self) -> np.ndarray:
        """Probability of each (intensity, basis, bit) choice of Alice: shape (3, 2, 2)."""
        q = self.key_basis_prob
        w = np.empty((3, 2, 2))
        for k, p in enumerate(self.intensity_probs):
            w[k, BASIS_Z] = 0.5 * p * q
            w[k, BASIS_X] = 0.5 * p * (1.0 - q)
        return w

    def afterpulse_click(self) -> np.ndarray:
        """Stationary extra click probability per detector from afterpulsing: p_ap * <c_j>."""
        mean_c = np.tensordot(self._weights(), self.primary_click_table(), axes=3)
        return self.afterpulse_prob * mean_c

    def expected_rates(self) -> ExpectedRates:
        """Per-pulse gains and errors per intensity, plus the exact vacuum/single-photon yields."""
        table = self.primary_click_table()
        ap = self.afterpulse_click().tolist()
        total = (1.0 - (1.0 - table) * (1.0 - np.asarray(ap))).tolist()
        gains = {BASIS_Z: [], BASIS_X: []}
        errs = {BASIS_Z: [], BASIS_X: []}
        for k in range(3):
            for a in (BASIS_Z, BASIS_X):
                out = squash(tuple(total[k][a][0]))  # bit 0; bit 1 is the mirror image
                right = out[2 * a]
                wrong = out[2 * a + 1]
                gains[a].append(right + wrong)
                errs[a].append(wrong)
        # Exact yields of vacuum and single-photon pulses (detections per such pulse).
        pd = self.dark_count_prob
        noise = tuple(1.0 - (1.0 - pd) * (1.0 - x) for x in ap)
        dark_out = squash(noise)
        eta = self.eta
        y0 = {}
        y1 = {}
        e1 = {}
        for a in (BASIS_Z, BASIS_X):
            y0[a] = dark_out[2 * a] + dark_out[2 * a + 1]
            f = self._arm_fractions(a, 0)
            right = (1.0 - eta) * dark_out[2 * a]
            wrong = (1.0 - eta) * dark_out[2 * a + 1]
            for j in range(4):
                c = list(noise)
                c[j] = 1.0
                out = squash(tuple(c))
                right += eta * f[j] * out[2 * a]
                wrong += eta * f[j] * out[2 * a + 1]
            y1[a] = right + wrong
            e1[a] = wrong / y1[a] if y1[a] > 0.0 else 0.5
        tau0 = math.fsum(p * math.exp(-m) for m, p in zip(self.intensities, self.intensity_probs))
        tau1 = math.fsum(p * m * math.exp(-m) for m, p in zip(self.intensities, self.intensity_probs))
        q = self.key_basis_prob
        return ExpectedRates(
            eta=eta,
            gain_key=tuple(gains[BASIS_Z]),
            err_key=tuple(errs[BASIS_Z]),
            gain_test=tuple(gains[BASIS_X]),
            err_test=tuple(errs[BASIS_X]),
            q_key0=q * tau0 * y0[BASIS_Z],
            q_key1=q * tau1 * y1[BASIS_Z],
            e1_test=e1[BASIS_X],
        )

    def key_detection_prob(self, rates: ExpectedRates | None = None) -> float:
        """Per-pulse probability of a sifted key-basis detection (all intensities)."""
        r = self.expected_rates() if rates is None else rates
        q = self.key_basis_prob
        return q * math.fsum(p * g for p, g in zip(self.intensity_probs, r.gain_key))

    def expected_stats(
        self, n_key: float, ec_efficiency: float, rates: ExpectedRates | None = None
    ) -> tuple[DecoyStats, float]:
        """Expected block statistics when n_key key-basis detections are collected.

        Returns (DecoyStats, n_pulses); leak_EC = f_EC * n_key * h(QBER_key).
        """
        if not n_key > 0.0:
            raise QkdInputError(f"block size (key-basis detections) must be > 0, got {n_key}")
        if not ec_efficiency >= 1.0:
            raise QkdInputError(f"ec_efficiency = {ec_efficiency} must be >= 1")
        r = self.expected_rates() if rates is None else rates
        q = self.key_basis_prob
        per_pulse = self.key_detection_prob(r)
        if not per_pulse > 0.0:
            raise QkdInputError("link model gives no key-basis detections (zero gain)")
        n_pulses = n_key / per_pulse
        p = self.intensity_probs
        nk = tuple(n_pulses * q * pk * g for pk, g in zip(p, r.gain_key))
        mk = tuple(n_pulses * q * pk * e for pk, e in zip(p, r.err_key))
        nt = tuple(n_pulses * (1.0 - q) * pk * g for pk, g in zip(p, r.gain_test))
        mt = tuple(n_pulses * (1.0 - q) * pk * e for pk, e in zip(p, r.err_test))
        qber = math.fsum(mk) / math.fsum(nk)
        leak = ec_efficiency * math.fsum(nk) * binary_entropy(qber)
        return DecoyStats(nk, mk, nt, mt, leak), n_pulses


def generate_block(
    model: LinkModel,
    n_pulses: int,
    rng: np.random.Generator,
    pulse_period_ps: float = 1000.0,
    gate_offset_ps: float = 300.0,
    channels: dict[str, int] | None = None,
    sync_divider: int = 1,
    first_slot: int = 0,
) -> tuple[AliceRecord, TagBlock]:
    """Alice's record and Bob's tags for n_pulses slots drawn from the link model.

    Sync tags at slot * pulse_period_ps for every sync_divider-th slot; a click of
    detector j in slot s is a tag at s * pulse_period_ps + gate_offset_ps on
    channels[j] (roles sync, H, V, D, A; default DEFAULT_CHANNELS).  Clicks per slot
    are drawn per detector from the model (double clicks kept), plus first-order
    afterpulses.  All randomness comes from rng.
    """
    if int(n_pulses) != n_pulses or n_pulses < 1:
        raise QkdInputError(f"n_pulses must be a positive integer, got {n_pulses!r}")
    if not (math.isfinite(pulse_period_ps) and pulse_period_ps > 0.0):
        raise QkdInputError(f"pulse_period_ps = {pulse_period_ps} must be > 0")
    if not (0.0 <= gate_offset_ps < pulse_period_ps):
        raise QkdInputError(
            f"gate_offset_ps = {gate_offset_ps} must lie in [0, pulse_period_ps = {pulse_period_ps})"
        )
    if int(sync_divider) != sync_divider or sync_divider < 1:
        raise QkdInputError(f"sync_divider must be a positive integer, got {sync_divider!r}")
    if first_slot < 0:
        raise QkdInputError(f"first_slot = {first_slot} must be >= 0")
    ch = dict(DEFAULT_CHANNELS if channels is None else channels)
    missing = [r for r in ("sync", *_DET_NAMES) if r not in ch]
    if missing:
        raise QkdInputError(f"channels map lacks roles {missing}")
    n = int(n_pulses)
    q = model.key_basis_prob
    basis = (rng.random(n) >= q).astype(np.uint8)  # 0 = Z with probability q
    bit = rng.integers(0, 2, n, dtype=np.uint8)
    intensity = rng.choice(3, size=n, p=np.asarray(model.intensity_probs)).astype(np.uint8)
    table = model.primary_click_table().reshape(12, 4)
    choice = intensity.astype(np.intp) * 4 + basis * 2 + bit
    clicks = np.empty((n, 4), dtype=bool)
    for start in range(0, n, _CHUNK_SLOTS):
        stop = min(n, start + _CHUNK_SLOTS)
        clicks[start:stop] = rng.random((stop - start, 4)) < table[choice[start:stop]]
    if model.afterpulse_prob > 0.0:
        src_slot, src_det = np.nonzero(clicks[:-1])
        keep = rng.random(src_slot.size) < model.afterpulse_prob
        clicks[src_slot[keep] + 1, src_det[keep]] = True
    det_slot, det_idx = np.nonzero(clicks)
    sync_slot = np.arange(0, n, int(sync_divider), dtype=np.int64)
    det_channels = np.array([ch[r] for r in _DET_NAMES], dtype=np.int32)
    period = float(pulse_period_ps)
    t_sync = np.rint((first_slot + sync_slot) * period).astype(np.int64)
    t_det = np.rint((first_slot + det_slot) * period + gate_offset_ps).astype(np.int64)
    t_all = np.concatenate([t_sync, t_det])
    c_all = np.concatenate([np.full(t_sync.size, ch["sync"], dtype=np.int32), det_channels[det_idx]])
    order = np.argsort(t_all, kind="stable")
    tags = TagBlock(
        t_ps=t_all[order],
        channel=c_all[order],
        start_ps=int(round(first_slot * period)),
        stop_ps=int(round((first_slot + n) * period)),
        meta={"pulse_period_ps": period, "gate_offset_ps": float(gate_offset_ps), "generator": "linkmodel"},
    )
    record = AliceRecord(basis=basis, bit=bit, intensity=intensity, first_slot=int(first_slot))
    return record, tags
