"""Compare the simulator with the analytic link model of qkdctl.core.linkmodel.

`measure` assigns every detector tag of a block to its nearest pulse slot, squashes
multi-clicks exactly as the link model does (clicks in one arm: that basis, two clicks
in it: random bit; clicks in both arms: random basis) and returns gains and error
rates per Alice basis and intensity, with the random choices replaced by their
probabilities (weights 1/2).  `link_model` builds the LinkModel that should agree
with a bench whose dead times, drift and Eve are off.  Afterpulsing: the model adds
p_ap * <c> per slot; the simulator puts each afterpulse dead_time + Exp(delay) after
its click and lets afterpulses afterpulse, so the model is given the effective
p_ap * f / (1 - p_ap), with f = exp(-max(0, period/2 - dead_time) / delay) the
fraction that lands in a later slot (the rest merges with its own click; ~10 % at
1 GHz and a 5 ns delay, a -2.5 sigma bias of the vacuum gain in 40 ms without f).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware_sim.bench import ROLES, SimBench, SimBlock
from qkdctl.core.errors import QkdInputError
from qkdctl.core.linkmodel import LinkModel


@dataclass(frozen=True)
class LinkStats:
    """Per Alice basis (0 Z, 1 X) and intensity class: pulses sent, reported gain and error.

    sent[a, k]: pulses; gain[a, k]: P(Bob reports basis a | Alice a, k); err[a, k]:
    P(Bob reports basis a with the wrong bit | Alice a, k).
    """

    sent: np.ndarray
    gain: np.ndarray
    err: np.ndarray

    def sigma(self, p: np.ndarray) -> np.ndarray:
        """Binomial standard error of a per-pulse probability p measured on `sent` pulses."""
        return np.sqrt(np.maximum(p * (1 - p), 1e-300) / np.maximum(self.sent, 1))


def measure(bench: SimBench, block: SimBlock) -> LinkStats:
    """Squashed gains and errors of one block (nearest-slot assignment, no delay drift)."""
    period = 1e12 / bench.config.source.pulse_rate_hz
    chans = bench.tagger_channels()
    a = block.alice
    n = len(a)
    mask = np.zeros(n, dtype=np.uint8)
    for j, role in enumerate(ROLES[1:]):
        num = chans[role]
        t = block.tags.t_ps[block.tags.channel == num]
        slot = np.rint((t - block.truth["fiber_delay_ps"] - bench.tagger_delay_ps(num)) / period)
        slot = slot.astype(np.int64) - a.first_slot
        slot = slot[(slot >= 0) & (slot < n)]
        mask[slot] |= np.uint8(1 << j)
    z = mask & 3
    x = (mask >> 2) & 3
    w_z = np.where(z > 0, np.where(x > 0, 0.5, 1.0), 0.0)
    w_x = np.where(x > 0, np.where(z > 0, 0.5, 1.0), 0.0)
    wrong_z = np.where(a.bit == 0, 2, 1)  # the detector of the wrong bit in the arm
    e_z = np.where(z == 3, 0.5, (z == wrong_z).astype(float))
    e_x = np.where(x == 3, 0.5, (x == wrong_z).astype(float))
    sent = np.zeros((2, 3))
    gain = np.zeros((2, 3))
    err = np.zeros((2, 3))
    for b, w, e in ((0, w_z, e_z), (1, w_x, e_x)):
        for k in range(3):
            sel = (a.basis == b) & (a.intensity == k)
            sent[b, k] = sel.sum()
            if sent[b, k]:
                gain[b, k] = w[sel].sum() / sent[b, k]
                err[b, k] = (w[sel] * e[sel]).sum() / sent[b, k]
    return LinkStats(sent, gain, err)


def link_model(bench: SimBench, misalignment: float) -> LinkModel:
    """The analytic model of the bench's link (one misalignment for both arms)."""
    cfg = bench.config
    if cfg.source.p_z != cfg.p_bob_z:
        raise QkdInputError("link model needs Alice's Z probability equal to Bob's Z split")
    effs = {d.efficiency for d in cfg.detectors}
    darks = {d.dark_count_hz for d in cfg.detectors}
    aps = {d.afterpulse_prob for d in cfg.detectors}
    timing = {(d.dead_time_ps, d.afterpulse_delay_ps) for d in cfg.detectors}
    if len(effs) != 1 or len(darks) != 1 or len(aps) != 1 or len(timing) != 1:
        raise QkdInputError("link model needs identical detectors")
    eff = effs.pop() * 10 ** (-(cfg.bob_loss_db + cfg.fiber.extra_loss_db) / 10)
    p_ap = aps.pop()
    dead_ps, delay_ps = timing.pop()
    half_slot_ps = 0.5e12 / cfg.source.pulse_rate_hz
    later = float(np.exp(-max(0.0, half_slot_ps - dead_ps) / delay_ps))
    return LinkModel(
        fiber_loss_db_per_km=cfg.fiber.loss_db_per_km,
        detector_efficiency=eff,
        dark_count_prob=-np.expm1(-darks.pop() / cfg.source.pulse_rate_hz),
        afterpulse_prob=p_ap * later / (1.0 - p_ap),
        misalignment=misalignment,
        intensities=tuple(float(m) for m in bench.mu()),
        intensity_probs=cfg.source.p_intensity,
        key_basis_prob=cfg.source.p_z,
        distance_km=cfg.fiber.length_km,
    )


def expected(bench: SimBench, block: SimBlock) -> tuple[np.ndarray, np.ndarray]:
    """(gain, err) per (basis, intensity) from the link model, with the block's true misalignment."""
    gain = np.zeros((2, 3))
    err = np.zeros((2, 3))
    for b, e_mis in ((0, block.truth["e_z"]), (1, block.truth["e_x"])):
        r = link_model(bench, float(e_mis)).expected_rates()
        gain[b] = r.gain_key if b == 0 else r.gain_test
        err[b] = r.err_key if b == 0 else r.err_test
    return gain, err
