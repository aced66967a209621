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
    assert 25 < peak.width_ps < 40
    assert peak.contrast > 0.8


def test_too_few_tags():
    block = TagBlock(np.arange(10), np.ones(10))
    with pytest.raises(QkdInputError, match="need at least 100"):
        find_arrival_peak(block, Clock(period_ps=1000.0, phase_ps=0.0), [1])
