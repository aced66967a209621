"""Eve: intercept-resend, photon-number splitting, detector blinding, time shift.

Slots Eve attacks are simulated photon by photon (Poisson photon number, each
photon routed to a detector or lost); the others as coherent pulses.  Attacks
(each a fraction of pulses, chosen per pulse; at most one of IR/PNS/blinding):
- intercept-resend: Eve measures each non-empty pulse in a random basis and
  resends the same number of photons in the state she found (QBER 25% at 100%).
- PNS: from pulses with n >= 2 photons Eve keeps one and forwards n-1 over a
  lossless channel; she blocks single-photon pulses (probability pns_block) and,
  if needed, attenuates what she forwards (pns_forward) so that the signal gain
  matches the undisturbed link.  Decoy statistics then betray her.
- blinding: Bob's detectors are blinded for the whole block (no dark counts or
  afterpulses, single photons do not click); Eve measures attacked pulses in a
  random basis and forces a click on the detector of her result, which fires
  only when Bob's passive basis choice matches hers.
- time shift: on un-attacked pulses Eve delays the arrival by +-time_shift_ps
  (random sign); with efficiency windows differing between detectors this
  biases which detector clicks.  truth["eve"]["time_shift"][sign, bob_bit] counts.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from scipy.optimize import brentq

from firmware_sim.config import EveConfig, SourceConfig
from firmware_sim.physics.alice import alice_choices, choice_thresholds, words_needed
from qkdctl.core.errors import QkdInputError
from qkdctl.core.randomness import RandomSource

N_STATS = 8
"""Stats vector: intercepted, pns_kept, pns_blocked, blind_clicks, ts[+,0], ts[+,1], ts[-,0], ts[-,1]."""


@njit(cache=True)
def _route_photons(rng, n_ph, q, out_det_flags):
    """Route n_ph photons: photon goes to det j with prob q[j], else lost; flag detectors hit."""
    for _ in range(n_ph):
        r = rng.random()
        acc = 0.0
        for j in range(4):
            acc += q[j]
            if r < acc:
                out_det_flags[j] = True
                break


@njit(cache=True)
def _eve_kernel(
    rng, slot0, period_ps, delay_ps, jitter_ps, mu, t_link, t_bob, p_det, eff, center, width,
    f_ir, f_pns, f_blind, f_ts, shift_ps, pns_block, pns_forward, p_bob_z,
    basis, bit, intensity, stats, click_t, click_det,
):
    # Alice's basis/bit/intensity are given; click_t / click_det have room for 4 clicks per slot
    n = basis.size
    nc = 0
    hit = np.zeros(4, dtype=np.bool_)
    q = np.zeros(4)
    eff0 = np.empty(4)  # efficiency for an unshifted arrival
    for j in range(4):
        eff0[j] = eff[j]
        if width[j] > 0.0:
            eff0[j] *= math.exp(-0.5 * (center[j] / width[j]) ** 2)
    for i in range(n):
        c = intensity[i]
        b = basis[i]
        x = bit[i]
        s = 2 * b + x
        a = rng.random()
        hit[:] = False
        sh = 0.0
        if a < f_ir + f_pns + f_blind:
            n_ph = rng.poisson(mu[c])
            if n_ph > 0:
                if a < f_ir or a >= f_ir + f_pns:
                    eb = 1 if rng.random() < 0.5 else 0
                    ex = x if eb == b else (1 if rng.random() < 0.5 else 0)
                    es = 2 * eb + ex
                    if a < f_ir:
                        stats[0] += 1
                        for j in range(4):
                            q[j] = t_link * p_det[es, j] * eff0[j]
                        _route_photons(rng, n_ph, q, hit)
                    else:
                        bob_b = 0 if rng.random() < p_bob_z else 1
                        if bob_b == eb:
                            hit[es] = True
                            stats[3] += 1
                else:
                    fwd = n_ph
                    if n_ph >= 2:
                        stats[1] += 1
                        fwd = n_ph - 1
                    elif rng.random() < pns_block:
                        stats[2] += 1
                        fwd = 0
                    for j in range(4):
                        q[j] = pns_forward * t_bob * p_det[s, j] * eff0[j]
                    _route_photons(rng, fwd, q, hit)
        elif f_blind == 0.0:
            if f_ts > 0.0 and rng.random() < f_ts:
                sh = shift_ps if rng.random() < 0.5 else -shift_ps
            for j in range(4):
                g = 1.0
                if width[j] > 0.0:
                    g = math.exp(-0.5 * ((sh - center[j]) / width[j]) ** 2)
                lam = mu[c] * t_link * p_det[s, j] * eff[j] * g
                if rng.random() < -math.expm1(-lam):
                    hit[j] = True
            if sh != 0.0:
                for j in range(4):
                    if hit[j]:
                        stats[4 + (0 if sh > 0 else 2) + (j % 2)] += 1
        for j in range(4):
            if hit[j]:
                t_arr = (slot0 + i) * period_ps + delay_ps + sh + jitter_ps[j] * rng.standard_normal()
                click_t[nc] = np.int64(np.rint(t_arr))
                click_det[nc] = j
                nc += 1
    return nc


def pns_settings(mu_signal: float, t_link: float, t_bob: float, eta_det: float) -> tuple[float, float]:
    """(pns_block, pns_forward) that make Eve's signal gain equal the honest 1 - exp(-mu t eta).

    Eve blocks single-photon pulses with probability pns_block, keeps one photon of
    every multi-photon pulse, and forwards with transmission pns_forward * t_bob.
    """
    if mu_signal <= 0:
        return 0.0, 1.0
    target = -math.expm1(-mu_signal * t_link * eta_det)
    p1 = mu_signal * math.exp(-mu_signal)
    y = t_bob * eta_det

    def multi(f: float) -> float:
        # sum_{n>=2} P_n (1 - (1 - y f)^(n-1)) for Poisson P_n
        a = 1.0 - y * f
        # sum_{n>=1} P_n a^(n-1) = (exp(-mu(1-a)) - exp(-mu)) / a
        s = (math.exp(-mu_signal * (1 - a)) - math.exp(-mu_signal)) / a if a > 0 else p1
        return (1.0 - math.exp(-mu_signal) - p1) - (s - p1)

    m1 = multi(1.0)
    single = p1 * y
    if m1 + single <= target:
        return 0.0, 1.0
    if m1 <= target:
        return 1.0 - (target - m1) / single, 1.0
    f = brentq(lambda f: multi(f) - target, 1e-12, 1.0)
    return 1.0, float(f)


SUBBLOCK_SLOTS = 1 << 16
"""Slots per call of Eve's kernel (its click buffer is sized per sub-block)."""


def simulate_slots_with_eve(
    rng: np.random.Generator,
    key: int,
    slot0: int,
    n_slots: int,
    src: SourceConfig,
    eve: EveConfig,
    mu: np.ndarray,
    t_link: float,
    p_det: np.ndarray,
    eff: np.ndarray,
    center_ps: np.ndarray,
    width_ps: np.ndarray,
    stats: dict,
    period_ps: float,
    delay_ps: float,
    jitter_ps: np.ndarray,
    t_bob: float = 1.0,
    p_bob_z: float = 0.5,
    choices: RandomSource | None = None,
) -> tuple[np.ndarray, ...]:
    """Like clicks.simulate_slots but with Eve (time-shifted clicks arrive shifted).

    Alice's choices of all slots first (physics/alice.py: the counter generator of
    `key`, or the words of `choices`), then per sub-block of SUBBLOCK_SLOTS per slot
    Eve's and the channel's draws.

    stats (dict) is updated in place with Eve's counts for the block.  choices: source of
    Alice's words as in clicks.simulate_slots (None = the counter generator).
    """
    p_det = np.ascontiguousarray(p_det, dtype=np.float64)
    if p_det.shape != (4, 4):
        raise QkdInputError(f"p_det must be (4, 4), got {p_det.shape}")
    if not 0 < t_link <= 1 or not 0 < t_bob <= 1:
        raise QkdInputError(f"transmissions must be in (0, 1], got {t_link}, {t_bob}")
    mu = np.ascontiguousarray(mu, dtype=np.float64)
    eff = np.ascontiguousarray(eff, dtype=np.float64)
    eta_det = float(np.mean(p_det @ eff))
    block, forward = pns_settings(float(mu[0]), t_link, t_bob, eta_det) if eve.pns_fraction > 0 else (0.0, 1.0)
    basis = np.empty(n_slots, dtype=np.uint8)
    bit = np.empty(n_slots, dtype=np.uint8)
    intensity = np.empty(n_slots, dtype=np.uint8)
    counts = np.zeros(N_STATS, dtype=np.int64)
    words = None if choices is None else choices.words(words_needed(n_slots))
    alice_choices(key, slot0, choice_thresholds(src.p_intensity, src.p_z, src.p_bit_one), basis, bit, intensity,
                  words=words)
    m = min(n_slots, SUBBLOCK_SLOTS)
    click_t = np.empty(4 * m + 1024, dtype=np.int64)
    click_det = np.empty(4 * m + 1024, dtype=np.uint8)
    nc = 0
    for a in range(0, n_slots, SUBBLOCK_SLOTS):
        b = min(n_slots, a + SUBBLOCK_SLOTS)
        if click_t.size - nc < 4 * (b - a):
            click_t = np.concatenate((click_t[:nc], np.empty(click_t.size, dtype=np.int64)))
            click_det = np.concatenate((click_det[:nc], np.empty(click_det.size, dtype=np.uint8)))
        nc += _eve_kernel(
            rng, int(slot0) + a, float(period_ps), float(delay_ps),
            np.ascontiguousarray(jitter_ps, dtype=np.float64), mu,
            float(t_link), float(t_bob), p_det, eff,
            np.ascontiguousarray(center_ps, dtype=np.float64), np.ascontiguousarray(width_ps, dtype=np.float64),
            eve.intercept_resend_fraction, eve.pns_fraction, eve.blinding_fraction,
            eve.time_shift_fraction, float(eve.time_shift_ps), block, forward, float(p_bob_z),
            basis[a:b], bit[a:b], intensity[a:b], counts, click_t[nc:], click_det[nc:],
        )
    for key, val in zip(("intercepted", "pns_kept", "pns_blocked", "blind_clicks"), counts[:4]):
        stats[key] = stats.get(key, 0) + int(val)
    ts = stats.setdefault("time_shift", np.zeros((2, 2), dtype=np.int64))
    ts += counts[4:].reshape(2, 2)
    stats["pns_block"] = block
    stats["pns_forward"] = forward
    return basis, bit, intensity, click_t[:nc], click_det[:nc]
