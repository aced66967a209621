"""Decoy-state parameters by direct optimization of the finite-key rate (the reference).

The link is summarised by `LinkFigures` (total loss, misalignment, dark counts,
afterpulses, block size); the expected statistics of a block come from
qkdctl.core.linkmodel and its key length from qkdctl.core.keyrate (Lim et al.
2014).  `optimize_decoy` maximises the secret bits per pulse over the signal and
decoy intensities, the intensity probabilities and the key-basis probability
(or over the intensities only, the rest held fixed).  Variables are searched in
an unconstrained transform (logistic / softmax) that keeps mu1 > mu2 + mu3,
mu2 > mu3 and the probabilities in the simplex, by Nelder-Mead from a few starts.

`link_from_report` estimates the figures of the link as measured from one
BlockReport (gains per intensity and QBER); `DecoyDirectTuner` turns the optimum
into VOA attenuations voa.1, voa.2 (dB): mu = mu_at_0db * 10^(-att / 10).
"""

from __future__ import annotations

import math
import time
from abc import abstractmethod
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

import numpy as np
from scipy.optimize import brentq, minimize

from qkdctl.blockreport import BlockReport
from qkdctl.core.constants import BASIS_Z
from qkdctl.core.errors import QkdInputError
from qkdctl.core.keyrate import DecoySettings, key_length
from qkdctl.core.linkmodel import LinkModel
from qkdctl.tune.base import Probe, Proposal, Tuner


@dataclass(frozen=True)
class LinkFigures:
    """What the decoy optimum depends on.

    loss_db: total loss from Alice's output to a click (fiber, Bob's optics and the
    detector efficiency): transmittance eta = 10^(-loss_db / 10).  misalignment:
    optical error probability; dark_count_prob, afterpulse_prob: per detector per
    slot; block_size: key-basis detections per block (Lim's n_X).
    """

    loss_db: float
    misalignment: float
    dark_count_prob: float
    afterpulse_prob: float
    block_size: float

    def __post_init__(self) -> None:
        checks = (("loss_db", 0.0 <= self.loss_db < 80.0, "[0, 80) dB"),
                  ("misalignment", 0.0 <= self.misalignment < 0.5, "[0, 0.5)"),
                  ("dark_count_prob", 0.0 <= self.dark_count_prob < 0.1, "[0, 0.1)"),
                  ("afterpulse_prob", 0.0 <= self.afterpulse_prob < 0.5, "[0, 0.5)"),
                  ("block_size", 1e3 <= self.block_size <= 1e12, "[1e3, 1e12] detections"))
        for name, ok, allowed in checks:
            if not (math.isfinite(getattr(self, name)) and ok):
                raise QkdInputError(f"link figures: {name} = {getattr(self, name)} must lie in {allowed}")

    def features(self) -> np.ndarray:
        """(loss_db, misalignment, log10 dark_count_prob, afterpulse_prob, log10 block_size)."""
        return np.array([self.loss_db, self.misalignment, math.log10(max(self.dark_count_prob, 1e-12)),
                         self.afterpulse_prob, math.log10(self.block_size)])

    def link_model(self, choice: "DecoyChoice") -> LinkModel:
        """The link model of these figures with Alice's settings `choice`."""
        return LinkModel(fiber_loss_db_per_km=self.loss_db, detector_efficiency=1.0,
                         dark_count_prob=self.dark_count_prob, afterpulse_prob=self.afterpulse_prob,
                         misalignment=self.misalignment, intensities=choice.mu,
                         intensity_probs=choice.p_mu, key_basis_prob=choice.key_basis_prob,
                         distance_km=1.0)


@dataclass(frozen=True)
class DecoyChoice:
    """Alice's decoy settings: intensities mu (photons/pulse), their probabilities, P(Z)."""

    mu: tuple[float, float, float]
    p_mu: tuple[float, float, float]
    key_basis_prob: float

    def as_dict(self) -> dict:
        """Plain dict (JSON-friendly)."""
        return {"mu": list(self.mu), "p_mu": list(self.p_mu), "key_basis_prob": self.key_basis_prob}


@dataclass(frozen=True)
class ProtocolConstants:
    """What the optimizer does not choose: EC efficiency f, eps_sec, eps_cor, mu3, largest mu1."""

    ec_efficiency: float = 1.16
    eps_sec: float = 1e-10
    eps_cor: float = 1e-15
    mu3: float = 0.0
    mu_max: float = 1.0


def finite_key_rate(figures: LinkFigures, choice: DecoyChoice,
                    constants: ProtocolConstants = ProtocolConstants()) -> float:
    """Secret bits per pulse of a block of `figures.block_size` key-basis detections.

    Negative values (the key length bound is negative) mean no key; their size still
    orders settings, which the optimizer uses to climb out of the no-key region.
    """
    link = figures.link_model(choice)
    stats, n_pulses = link.expected_stats(figures.block_size, constants.ec_efficiency)
    kl = key_length(stats, DecoySettings(choice.mu, choice.p_mu, constants.eps_sec, constants.eps_cor))
    return kl.length_bits / n_pulses


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(x, 60.0), -60.0)))


def _logit(p: float) -> float:
    p = min(max(p, 1e-9), 1.0 - 1e-9)
    return math.log(p / (1.0 - p))


def _decode(x: np.ndarray, fixed: DecoyChoice | None, c: ProtocolConstants) -> DecoyChoice:
    """Unconstrained vector -> DecoyChoice (mu only when `fixed` holds the probabilities)."""
    mu1 = c.mu3 + (c.mu_max - c.mu3) * _sigmoid(x[0])
    mu2 = c.mu3 + (mu1 - 2.0 * c.mu3) * _sigmoid(x[1])
    if fixed is not None:
        return DecoyChoice((mu1, mu2, c.mu3), fixed.p_mu, fixed.key_basis_prob)
    z = np.array([x[2], x[3], 0.0])
    z = np.exp(z - z.max())
    p = 0.001 + 0.997 * z / z.sum()
    q = 0.02 + 0.96 * _sigmoid(x[4])
    return DecoyChoice((mu1, mu2, c.mu3), tuple(float(v) for v in p), q)


def _encode(choice: DecoyChoice, fixed: bool, c: ProtocolConstants) -> np.ndarray:
    """Inverse of _decode (up to clipping)."""
    mu1, mu2, _ = choice.mu
    x = [_logit((mu1 - c.mu3) / (c.mu_max - c.mu3)), _logit((mu2 - c.mu3) / max(mu1 - 2.0 * c.mu3, 1e-12))]
    if not fixed:
        p = (np.asarray(choice.p_mu) - 0.001) / 0.997
        p = np.clip(p, 1e-9, None)
        x += [math.log(p[0] / p[2]), math.log(p[1] / p[2]), _logit((choice.key_basis_prob - 0.02) / 0.96)]
    return np.array(x)


_STARTS = (DecoyChoice((0.5, 0.15, 0.0), (0.6, 0.3, 0.1), 0.8),
           DecoyChoice((0.3, 0.08, 0.0), (0.4, 0.4, 0.2), 0.6))


@dataclass(frozen=True)
class DecoyOptimum:
    """Best settings found, their rate (bits/pulse, <= 0: no key), evaluations and seconds."""

    choice: DecoyChoice
    rate_per_pulse: float
    evaluations: int
    seconds: float


def optimize_decoy(figures: LinkFigures, constants: ProtocolConstants = ProtocolConstants(),
                   fixed: DecoyChoice | None = None, start: DecoyChoice | None = None) -> DecoyOptimum:
    """Maximise finite_key_rate over (mu1, mu2, p_mu, P(Z)), or over (mu1, mu2) only.

    fixed: hold its p_mu and key_basis_prob (settings the bench cannot set); start:
    an extra starting point (e.g. the settings in force).
    """
    t0 = time.perf_counter()
    if not 0.0 <= constants.mu3 < constants.mu_max / 3:
        raise QkdInputError(f"mu3 = {constants.mu3} must lie in [0, mu_max / 3 = {constants.mu_max / 3})")
    n_eval = 0

    def cost(x: np.ndarray) -> float:
        nonlocal n_eval
        n_eval += 1
        try:
            return -finite_key_rate(figures, _decode(x, fixed, constants), constants)
        except (QkdInputError, ZeroDivisionError):
            return 1.0  # outside the model's domain (zero gain, mu1 (mu2 - mu3) = mu2^2 - mu3^2): worse than any rate
    starts = [s if fixed is None else replace(s, p_mu=fixed.p_mu, key_basis_prob=fixed.key_basis_prob)
              for s in ((start,) if start is not None else ()) + _STARTS]
    best = None
    for s in starts:
        x0 = _encode(s, fixed is not None, constants)
        res = minimize(cost, x0, method="Nelder-Mead",
                       options={"xatol": 1e-4, "fatol": 1e-12, "maxfev": 600, "adaptive": True})
        if best is None or res.fun < best.fun:
            best = res
    choice = _decode(best.x, fixed, constants)
    return DecoyOptimum(choice, -float(best.fun), n_eval, time.perf_counter() - t0)


def _any_click(link: LinkModel, k: int) -> float:
    """P(any detector clicks | Alice sends intensity k in the key basis), afterpulses included."""
    c = link.primary_click_table()[k, BASIS_Z, 0]
    total = 1.0 - (1.0 - c) * (1.0 - link.afterpulse_click())
    return float(1.0 - np.prod(1.0 - total))


def _qber_key(link: LinkModel) -> float:
    r = link.expected_rates()
    p = link.intensity_probs
    return math.fsum(pk * e for pk, e in zip(p, r.err_key)) / math.fsum(pk * g for pk, g in zip(p, r.gain_key))


def link_from_report(report: BlockReport, choice: DecoyChoice, afterpulse_prob: float,
                     block_size: float, dark_count_prob: float = 1e-7) -> LinkFigures:
    """Link figures as measured by one block: loss from the signal's gain, dark counts from
    the vacuum's gain (when mu3 = 0), misalignment from the key-basis QBER.

    report.gains_by_intensity["z"]: P(click | Alice sent Z at intensity k); afterpulse_prob
    and block_size are taken as given (not separable from one block's figures);
    dark_count_prob is the starting value (kept when mu3 > 0).
    """
    gains = (report.gains_by_intensity or {}).get("z")
    if gains is None or len(gains) != 3 or not all(math.isfinite(g) for g in gains):
        raise QkdInputError("block report lacks finite key-basis gains per intensity (gains_by_intensity['z'])")
    qber = report.qber_z if math.isfinite(report.qber_z) else report.qber_x
    if not (math.isfinite(qber) and 0.0 <= qber < 0.5):
        raise QkdInputError(f"block report has no usable QBER (qber_z {report.qber_z}, qber_x {report.qber_x})")
    if not 0.0 < gains[0] < 1.0:
        raise QkdInputError(f"signal gain {gains[0]} must lie in (0, 1) to estimate the loss")
    fig = LinkFigures(20.0, 0.01, dark_count_prob, afterpulse_prob, block_size)

    def solve(name: str, lo: float, hi: float, f) -> float:
        a, b = f(lo), f(hi)
        if a * b > 0:
            return lo if abs(a) < abs(b) else hi
        return brentq(f, lo, hi, xtol=1e-12)

    for _ in range(3):
        fig = replace(fig, loss_db=solve("loss_db", 0.0, 79.0, lambda x: _any_click(
            replace(fig, loss_db=x).link_model(choice), 0) - gains[0]))
        if choice.mu[2] == 0.0 and gains[2] > 0.0:
            fig = replace(fig, dark_count_prob=solve("dark", 0.0, 0.05, lambda x: _any_click(
                replace(fig, dark_count_prob=x).link_model(choice), 2) - gains[2]))
        fig = replace(fig, misalignment=solve("misalignment", 0.0, 0.499, lambda x: _qber_key(
            replace(fig, misalignment=x).link_model(choice)) - qber))
    return fig


def intensities_from_params(params: Mapping[str, float], mu_at_0db: float) -> tuple[float, float, float]:
    """(mu1, mu2, mu3) photons/pulse from voa.1..3 (dB): mu = mu_at_0db * 10^(-att / 10); off = 0."""
    missing = [f"voa.{k}" for k in (1, 2, 3) if f"voa.{k}" not in params]
    if missing:
        raise QkdInputError(f"operating parameters lack attenuations {missing}")
    return tuple(mu_at_0db * 10 ** (-float(params[f"voa.{k}"]) / 10) if params.get(f"voa.on.{k}", 1.0) else 0.0
                 for k in (1, 2, 3))


def attenuation_params(mu1: float, mu2: float, mu_at_0db: float) -> dict[str, float]:
    """{"voa.1": dB, "voa.2": dB} realising mu1, mu2 from a source of mu_at_0db at 0 dB."""
    if not (0.0 < mu2 < mu1 <= mu_at_0db):
        raise QkdInputError(f"need 0 < mu2 < mu1 <= mu_at_0db = {mu_at_0db}, got mu1 {mu1}, mu2 {mu2}")
    return {"voa.1": 10 * math.log10(mu_at_0db / mu1), "voa.2": 10 * math.log10(mu_at_0db / mu2)}


class DecoyTuner(Tuner):
    """Set the signal and decoy intensities (voa.1, voa.2) for the link as measured.

    Only the intensities are settable (the VOA); the probabilities p_mu and P(Z) are
    Alice's pattern (fixed on the simulated bench) and are held at `p_mu`,
    `key_basis_prob`.  Subclasses say how the intensities are found.  mu_at_0db:
    the source's mean photon number at 0 dB (its calibration); min_change_db: moves
    smaller than this are not proposed.
    """

    def __init__(self, mu_at_0db: float = 1.0, p_mu: Sequence[float] = (0.7, 0.2, 0.1),
                 key_basis_prob: float = 0.5, afterpulse_prob: float = 0.0, block_size: float = 1e6,
                 min_change_db: float = 0.2, constants: ProtocolConstants | None = None) -> None:
        if not mu_at_0db > 0:
            raise QkdInputError(f"mu_at_0db must be > 0 photons/pulse, got {mu_at_0db}")
        if not min_change_db >= 0:
            raise QkdInputError(f"min_change_db must be >= 0, got {min_change_db}")
        self.mu_at_0db = float(mu_at_0db)
        self.p_mu = tuple(float(p) for p in p_mu)
        self.key_basis_prob = float(key_basis_prob)
        self.afterpulse_prob, self.block_size = float(afterpulse_prob), float(block_size)
        self.min_change_db = float(min_change_db)
        self.constants = constants or ProtocolConstants(mu_max=self.mu_at_0db)

    @abstractmethod
    def _choose(self, figures: LinkFigures, held: DecoyChoice,
                constants: ProtocolConstants) -> tuple[tuple[float, float], str, dict]:
        """(mu1, mu2), how they were found, extra figures for the proposal."""

    def propose(self, history: Sequence[BlockReport], params: Mapping[str, float],
                probe: Probe | None = None) -> Proposal | None:
        """voa.1, voa.2 for the link measured by the newest block (None if the change is small)."""
        ok = [r for r in history if r.status == "ok"]
        if not ok:
            return None
        mu = intensities_from_params(params, self.mu_at_0db)
        constants = replace(self.constants, mu3=mu[2])
        held = DecoyChoice(mu, self.p_mu, self.key_basis_prob)
        figures = link_from_report(ok[-1], held, self.afterpulse_prob, self.block_size)
        (mu1, mu2), how, extra = self._choose(figures, held, constants)
        new = attenuation_params(mu1, mu2, self.mu_at_0db)
        if all(abs(new[k] - float(params[k])) < self.min_change_db for k in new):
            return None
        return Proposal(new, f"{how}: mu1 {mu1:.3f}, mu2 {mu2:.3f} for loss {figures.loss_db:.1f} dB, "
                        f"misalignment {figures.misalignment:.4f} (p_mu, P(Z) not settable: held)",
                        extra={"figures": figures.features().tolist(), **extra})


class DecoyDirectTuner(DecoyTuner):
    """Intensities by direct optimization of the finite-key rate (the reference)."""

    name = "decoy-direct"

    def _choose(self, figures: LinkFigures, held: DecoyChoice, constants: ProtocolConstants):
        settable = optimize_decoy(figures, constants, fixed=held, start=held)
        full = optimize_decoy(figures, constants, start=settable.choice)
        return settable.choice.mu[:2], "direct optimum", {
            "rate_per_pulse": settable.rate_per_pulse, "full_optimum": full.choice.as_dict(),
            "full_rate_per_pulse": full.rate_per_pulse}
