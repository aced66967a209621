"""Key-rate planning: expected finite-key and asymptotic rates of a link, optimisation
over intensities and probabilities, sweeps against distance and the maximum distance.

Glue between the core link model and the core key-length bound; used by
`qkdctl keyrate` and by tuners.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.optimize import minimize

from qkdctl.core.errors import QkdInputError
from qkdctl.core.keyrate import DecoySettings, KeyLength, gllp_rate, key_length
from qkdctl.core.linkmodel import LinkModel


@dataclass(frozen=True)
class PlanSettings:
    """Finite-key settings of a plan: block_size = key-basis detections per block (Lim's n_X)."""

    block_size: float
    eps_sec: float
    eps_cor: float
    ec_efficiency: float

    def __post_init__(self) -> None:
        if not self.block_size > 0:
            raise QkdInputError(f"block_size = {self.block_size} must be > 0")
        if not self.ec_efficiency >= 1.0:
            raise QkdInputError(f"ec_efficiency = {self.ec_efficiency} must be >= 1")
        for name in ("eps_sec", "eps_cor"):
            v = getattr(self, name)
            if not 0.0 < v < 1.0:
                raise QkdInputError(f"{name} = {v} must lie in (0, 1)")


@dataclass(frozen=True)
class RatePoint:
    """Expected rates of one link at one distance (bits per pulse sent)."""

    distance_km: float
    block_size: float
    n_pulses: float
    asymptotic_bits_per_pulse: float
    asymptotic_3int_bits_per_pulse: float
    finite_bits_per_pulse: float
    finite_key_bits: int
    qber_key: float
    intensities: tuple[float, float, float]
    intensity_probs: tuple[float, float, float]
    key_basis_prob: float
    bound: KeyLength = field(repr=False)

    def as_dict(self) -> dict:
        """JSON-friendly summary (the key-length bound's terms under 'bound')."""
        return {
            "distance_km": self.distance_km,
            "block_size": self.block_size,
            "n_pulses": self.n_pulses,
            "asymptotic_bits_per_pulse": self.asymptotic_bits_per_pulse,
            "asymptotic_3int_bits_per_pulse": self.asymptotic_3int_bits_per_pulse,
            "finite_bits_per_pulse": self.finite_bits_per_pulse,
            "finite_key_bits": self.finite_key_bits,
            "qber_key": self.qber_key,
            "intensities": list(self.intensities),
            "intensity_probs": list(self.intensity_probs),
            "key_basis_prob": self.key_basis_prob,
            "flags": list(self.bound.flags),
            "bound": self.bound.as_dict(),
        }


def evaluate(model: LinkModel, plan: PlanSettings) -> RatePoint:
    """Expected finite-key (Lim 2014) and asymptotic rates of `model` at its distance."""
    rates = model.expected_rates()
    stats, n_pulses = model.expected_stats(plan.block_size, plan.ec_efficiency, rates)
    settings = DecoySettings(model.intensities, model.intensity_probs, plan.eps_sec, plan.eps_cor)
    finite = key_length(stats, settings, finite=True)
    asym3 = key_length(stats, settings, finite=False)
    qber = math.fsum(stats.m_key) / math.fsum(stats.n_key)
    gllp = gllp_rate(
        rates.q_key0, rates.q_key1, rates.e1_test, model.key_detection_prob(rates), qber, plan.ec_efficiency
    )
    return RatePoint(
        distance_km=model.distance_km,
        block_size=plan.block_size,
        n_pulses=n_pulses,
        asymptotic_bits_per_pulse=max(gllp, 0.0),
        asymptotic_3int_bits_per_pulse=max(asym3.length_bits, 0.0) / n_pulses,
        finite_bits_per_pulse=finite.key_length_bits / n_pulses,
        finite_key_bits=finite.key_length_bits,
        qber_key=qber,
        intensities=model.intensities,
        intensity_probs=model.intensity_probs,
        key_basis_prob=model.key_basis_prob,
        bound=finite,
    )


# Search box of the optimiser, in transformed variables x = (mu1, t, p1, s, q):
# mu2 = mu3 + t (mu1 - 2 mu3) keeps mu1 > mu2 + mu3 > 2 mu3; p2 = s (1 - p1), p3 = rest.
_MU1_MAX = 1.0
_FRAC_BOUNDS = (0.02, 0.98)
_P1_BOUNDS = (0.05, 0.95)
_Q_BOUNDS = (0.5, 0.99)


def _from_x(model: LinkModel, x: np.ndarray) -> LinkModel:
    mu3 = model.intensities[2]
    mu1, t, p1, s, q = (float(v) for v in x)
    mu2 = mu3 + t * (mu1 - 2.0 * mu3)
    p2 = s * (1.0 - p1)
    return replace(
        model, intensities=(mu1, mu2, mu3), intensity_probs=(p1, p2, 1.0 - p1 - p2), key_basis_prob=q
    )


def _to_x(model: LinkModel, bounds: list[tuple[float, float]]) -> np.ndarray:
    mu1, mu2, mu3 = model.intensities
    p1, p2, _ = model.intensity_probs
    x = np.array([mu1, (mu2 - mu3) / (mu1 - 2.0 * mu3), p1, p2 / (1.0 - p1), model.key_basis_prob])
    lo, hi = np.array(bounds).T
    return np.clip(x, lo, hi)


def _objective_rate(model: LinkModel, plan: PlanSettings) -> float:
    """Unfloored finite-key length per pulse (negative past the cutoff: gives a slope)."""
    stats, n_pulses = model.expected_stats(plan.block_size, plan.ec_efficiency)
    settings = DecoySettings(model.intensities, model.intensity_probs, plan.eps_sec, plan.eps_cor)
    return key_length(stats, settings, finite=True).length_bits / n_pulses


def optimize(model: LinkModel, plan: PlanSettings) -> RatePoint:
    """Maximise the finite-key rate over mu1, mu2, p_mu1, p_mu2 and the key-basis probability.

    mu3 stays fixed (as in Lim et al.'s Fig. 1).  Deterministic: bounded Powell from the
    given settings and from a generic start; the better result is returned.
    """
    mu3 = model.intensities[2]
    lo_mu1 = max(2.0 * mu3 + 1e-3, 0.02)
    bounds = [(lo_mu1, _MU1_MAX), _FRAC_BOUNDS, _P1_BOUNDS, _FRAC_BOUNDS, _Q_BOUNDS]
    starts = [_to_x(model, bounds), np.array([0.5, 0.3, 0.5, 0.6, 0.8])]
    scale = max(abs(_objective_rate(model, plan)), 1e-12)

    def neg_rate(x: np.ndarray) -> float:
        return -_objective_rate(_from_x(model, x), plan) / scale

    best_x, best_f = starts[0], neg_rate(starts[0])
    for x0 in starts:
        res = minimize(neg_rate, x0, method="Powell", bounds=bounds, options={"xtol": 1e-3, "ftol": 1e-6})
        if res.fun < best_f:
            best_x, best_f = res.x, float(res.fun)
    return evaluate(_from_x(model, best_x), plan)


def sweep(
    model: LinkModel, plan: PlanSettings, distances_km: list[float], optimized: bool = False
) -> list[RatePoint]:
    """Rates at each distance (km), optionally re-optimising the settings at each."""
    out = []
    for d in distances_km:
        m = model.at(d)
        out.append(optimize(m, plan) if optimized else evaluate(m, plan))
    return out


def max_distance(
    model: LinkModel,
    plan: PlanSettings,
    optimized: bool = False,
    hi_km: float = 400.0,
    tol_km: float = 0.5,
) -> float:
    """Largest distance (km, to tol_km) with a positive finite key; 0 if none even at 0 km.

    Bisection, assuming the key is positive below the cutoff and zero above it.
    """

    def has_key(d: float) -> bool:
        m = model.at(d)
        point = optimize(m, plan) if optimized else evaluate(m, plan)
        return point.finite_key_bits > 0

    if not has_key(0.0):
        return 0.0
    if has_key(hi_km):
        return hi_km
    lo, hi = 0.0, hi_km
    while hi - lo > tol_km:
        mid = 0.5 * (lo + hi)
        if has_key(mid):
            lo = mid
        else:
            hi = mid
    return lo


def plan_from_protocol(protocol) -> PlanSettings:
    """PlanSettings of a [protocol] config table."""
    return PlanSettings(
        block_size=float(protocol.block_size),
        eps_sec=protocol.eps_sec,
        eps_cor=protocol.eps_cor,
        ec_efficiency=protocol.ec_efficiency,
    )


def keyrate_summary(
    config, distance_km: float | None, optimized: bool, swept: bool, step_km: float = 10.0
) -> dict:
    """The `qkdctl keyrate` result as one JSON-friendly dict.

    Without swept: the rates at distance_km (default [link].distance_km or 0).  With
    swept: rates from 0 km in steps of step_km up to the maximum distance, plus
    max_distance_km.  optimized re-optimises mu1, mu2, p_mu1, p_mu2, q at each point.
    """
    link, protocol = config.require_planning()
    plan = plan_from_protocol(protocol)
    d0 = distance_km if distance_km is not None else (link.distance_km or 0.0)
    model = config.link_model(d0)
    if not swept:
        point = optimize(model, plan) if optimized else evaluate(model, plan)
        return point.as_dict()
    d_max = max_distance(model, plan, optimized=optimized, tol_km=min(1.0, step_km))
    n_steps = int(d_max // step_km) + 1
    points = sweep(model, plan, [i * step_km for i in range(n_steps)], optimized=optimized)
    rows = []
    for p in points:
        row = p.as_dict()
        row.pop("bound")
        rows.append(row)
    return {
        "block_size": plan.block_size,
        "optimized": optimized,
        "max_distance_km": d_max,
        "sweep": rows,
    }
