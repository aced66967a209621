"""Synthetic gated blocks with timing noise for the selection tests."""

import numpy as np
import pytest

from qkdctl.core.records import AliceRecord
from qkdctl.core.sift import sift
from qkdctl.core.tags import Gated, GateStats


def make_block(rng: np.random.Generator, n_slots: int = 300_000, p_click: float = 0.6,
               p_noise: float = 0.1, half_width_ps: float = 150.0):
    """(gated, alice): signal clicks with 40 ps jitter and correct bits; noise clicks
    (uniform in the gate, random detector) wrong half of the time."""
    basis = rng.integers(0, 2, n_slots).astype(np.uint8)
    bit = rng.integers(0, 2, n_slots).astype(np.uint8)
    intensity = rng.choice(3, n_slots, p=[0.5, 0.3, 0.2]).astype(np.uint8)
    mu = np.array([0.5, 0.15, 0.0002])[intensity]
    signal = rng.random(n_slots) < p_click * mu / 0.5
    noise = rng.random(n_slots) < p_click * p_noise * 0.3
    slot = np.flatnonzero(signal | noise)
    bob_basis = np.where(rng.random(slot.size) < 0.5, basis[slot], 1 - basis[slot])  # passive choice
    is_sig = signal[slot]
    bob_bit = np.where(is_sig & (bob_basis == basis[slot]), bit[slot], rng.integers(0, 2, slot.size))
    role = (2 * bob_basis + bob_bit).astype(np.uint8)
    dt = np.where(is_sig, rng.normal(0.0, 40.0, slot.size), rng.uniform(-half_width_ps, half_width_ps, slot.size))
    dt = np.clip(dt, -half_width_ps, half_width_ps).astype(np.float32)
    stats = GateStats(slot.size, slot.size, 0, 0, np.bincount(role, minlength=4))
    gated = Gated(slot.astype(np.int64), role, dt, stats)
    return gated, AliceRecord(basis, bit, intensity, first_slot=0)


def flipped(gated: Gated, alice: AliceRecord):
    """The same block with every private bit flipped: Alice's bits and Bob's detector
    within its basis (H<->V, D<->A); timing and bases unchanged."""
    g = Gated(gated.slot, (gated.role ^ 1).astype(np.uint8), gated.dt_ps, gated.stats)
    a = AliceRecord(alice.basis, (alice.bit ^ 1).astype(np.uint8), alice.intensity, alice.first_slot)
    return g, a


@pytest.fixture
def block(rng):
    gated, alice = make_block(rng)
    return gated, alice, sift(gated, alice, np.random.default_rng(3))
