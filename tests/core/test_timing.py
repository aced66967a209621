import warnings

import numpy as np
import pytest

from qkdctl.core.errors import QkdInputError
from qkdctl.core.tags import Clock, TagBlock
from qkdctl.core.timing import find_arrival_peak


@pytest.mark.parametrize("offset_ps", [50.0, 400.0, 990.0])
def test_finds_peak_including_wraparound(rng, offset_ps):
    period = 1000.0
    slots = np.sort(rng.integers(0, 10**6, 20000))
    t = (slots * period + 7.0 + offset_ps + rng.normal(0, 30, slots.size)).astype(np.int64)
    noise = rng.integers(0, int(1e9), 2000)
    t_all = np.concatenate([t, noise])
    ch = np.concatenate([np.ones(t.size, np.int32), np.full(noise.size, 2, np.int32)])
    order = np.argsort(t_all, kind="stable")
    block = TagBlock(t_all[order], ch[order])
    peak = find_arrival_peak(block, Clock(period_ps=period, phase_ps=7.0), [1, 2])
    circ = (peak.offset_ps - offset_ps + period / 2) % period - period / 2
    assert abs(circ) < 3.0
    assert -period / 2 <= peak.offset_ps < period / 2
    assert 25 < peak.width_ps < 40
    assert peak.contrast > 0.8


def test_jitter_free_peak_has_zero_width_and_no_nan(rng):
    period = 1000.0
    slots = np.sort(rng.choice(10**6, 500, replace=False))
    block = TagBlock((slots * 1000 + 250).astype(np.int64), np.ones(slots.size, np.int32))
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        peak = find_arrival_peak(block, Clock(period_ps=period, phase_ps=0.0), [1])
    assert peak.offset_ps == pytest.approx(250.0) and peak.width_ps == 0.0 and peak.contrast == 1.0


def test_too_few_tags():
    block = TagBlock(np.arange(10), np.ones(10))
    with pytest.raises(QkdInputError, match="need at least 100"):
        find_arrival_peak(block, Clock(period_ps=1000.0, phase_ps=0.0), [1])


def test_align_slots_finds_shift_from_intensities(rng):
    from qkdctl.core.timing import align_slots

    n = 200_000
    intensity = rng.choice(3, size=n, p=[0.3, 0.4, 0.3]).astype(np.uint8)
    mu = (0.5, 0.1, 0.0)
    p_click = np.array(mu)[intensity] * 0.2
    alice_idx = np.flatnonzero(rng.random(n) < p_click)
    for true_shift in (3000, 3001, 2999):
        bob_slots = alice_idx - true_shift
        bob_slots = bob_slots[bob_slots >= 0]
        al = align_slots(bob_slots, intensity, mu, guess=3000 + 2000, step=1000)
        assert al.shift == true_shift
    assert al.score > al.runner_up


def test_align_slots_refuses_without_correlation(rng):
    from qkdctl.core.timing import align_slots

    intensity = rng.integers(0, 3, 100_000).astype(np.uint8)
    slots = np.sort(rng.integers(0, 90_000, 3000))
    with pytest.raises(QkdInputError, match="slot alignment failed"):
        align_slots(slots, intensity, (0.5, 0.1, 0.0), guess=0, step=1000, n_steps=4)
