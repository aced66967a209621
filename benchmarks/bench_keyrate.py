"""`qkdctl bench keyrate`: one finite-key evaluation (Lim et al. 2014) against a baseline.

Baseline, timed in the same run: the same bounds written the "vectorised" way — numpy
arrays over the three intensities, scipy.special for the entropy — which is how one
would first write it; on 3-element arrays its per-call overhead dominates.  Both
must agree to 1e-9 before anything is timed.  Goal: one evaluation < 1 ms.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import xlogy

from benchmarks.common import best_seconds, result
from qkdctl.core.keyrate import DecoySettings, key_length
from qkdctl.core.linkmodel import LinkModel
from qkdctl.planner import PlanSettings, evaluate


def _numpy_key_length(stats, settings) -> float:
    """Unfloored Lim key length with numpy/scipy on per-intensity arrays (the baseline)."""
    mu = np.asarray(settings.mu)
    p = np.asarray(settings.p_mu)
    ln = np.log(21.0 / settings.eps_sec)
    norm = np.exp(mu) / p
    fact = np.array([1.0, 1.0])
    tau = (p * np.exp(-mu) * mu[None, :] ** np.arange(2)[:, None]).sum(axis=1) / fact

    def pm(counts):
        c = np.asarray(counts)
        d = np.sqrt(c.sum() / 2.0 * ln)
        return norm * (c - d), norm * (c + d)

    def s0(lo, hi):
        return max(tau[0] * (mu[1] * lo[2] - mu[2] * hi[1]) / (mu[1] - mu[2]), 0.0)

    def s1(lo, hi, s0v):
        a = (mu[1] ** 2 - mu[2] ** 2) / mu[0] ** 2
        den = mu[0] * (mu[1] - mu[2]) - mu[1] ** 2 + mu[2] ** 2
        return tau[1] * mu[0] * (lo[1] - hi[2] - a * (hi[0] - s0v / tau[0])) / den

    def h(x):
        return float(-(xlogy(x, x) + xlogy(1 - x, 1 - x)) / np.log(2.0))

    nk_lo, nk_hi = pm(stats.n_key)
    nt_lo, nt_hi = pm(stats.n_test)
    mt_lo, mt_hi = pm(stats.m_test)
    sk0 = s0(nk_lo, nk_hi)
    sk1 = s1(nk_lo, nk_hi, sk0)
    st1 = s1(nt_lo, nt_hi, s0(nt_lo, nt_hi))
    v1 = tau[1] * (mt_hi[1] - mt_lo[2]) / (mu[1] - mu[2])
    b = v1 / st1
    c, d = st1, sk1
    g = np.sqrt((c + d) * (1 - b) * b / (c * d * np.log(2.0))
                * np.log2((c + d) / (c * d * (1 - b) * b) * 21.0**2 / settings.eps_sec**2))
    eps_cost = 6 * np.log2(21.0 / settings.eps_sec) + np.log2(2.0 / settings.eps_cor)
    return float(sk0 + sk1 * (1 - h(b + g)) - stats.leak_ec_bits - eps_cost)


def run(quick: bool) -> list[dict]:
    """Time `key_length` on link-model statistics at 50 km (n_X = 1e7)."""
    model = LinkModel(0.2, 0.1, 6e-7, 0.04, 0.005, (0.5, 0.1, 2e-4), (0.6, 0.2, 0.2), 0.8, distance_km=50.0)
    plan = PlanSettings(block_size=1e7, eps_sec=1e-10, eps_cor=1e-15, ec_efficiency=1.16)
    stats, _ = model.expected_stats(plan.block_size, plan.ec_efficiency)
    settings = DecoySettings(model.intensities, model.intensity_probs, plan.eps_sec, plan.eps_cor)
    fast = key_length(stats, settings).length_bits
    slow = _numpy_key_length(stats, settings)
    if not math.isclose(fast, slow, rel_tol=1e-9):
        raise AssertionError(f"keyrate baseline disagrees: {fast} vs {slow}")
    calls = 200 if quick else 5000
    repeats = 3 if quick else 5

    def fast_loop() -> None:
        for _ in range(calls):
            key_length(stats, settings)

    def slow_loop() -> None:
        for _ in range(calls):
            _numpy_key_length(stats, settings)

    t_fast = best_seconds(fast_loop, repeats=repeats)
    t_slow = best_seconds(slow_loop, repeats=repeats)
    plan_calls = max(calls // 10, 20)
    t_plan = best_seconds(lambda: [evaluate(model, plan) for _ in range(plan_calls)], repeats=repeats)
    us_per_eval = t_fast / calls * 1e6
    return [
        result(
            "keyrate.finite_eval", calls, t_fast, "evals/s",
            "numpy/scipy array transcription", t_slow,
            us_per_eval=us_per_eval,
            goal_us=1000.0,
            meets_goal=us_per_eval < 1000.0,
            plan_point_us=t_plan / plan_calls * 1e6,
        )
    ]
