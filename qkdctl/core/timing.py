"""Arrival-time statistics relative to the recovered pulse clock: where to put the gate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from qkdctl.core.errors import QkdInputError
from qkdctl.core.tags import Clock, TagBlock


@dataclass(frozen=True)
class ArrivalPeak:
    """Detection-time peak within the pulse period.

    offset_ps: peak centre relative to the clock phase, in [0, period); width_ps:
    rms width around it; contrast: fraction of detector tags within +-2 rms.
    """

    offset_ps: float
    width_ps: float
    contrast: float


def arrival_phase_ps(block: TagBlock, clock: Clock, channels: Iterable[int]) -> np.ndarray:
    """Times (ps) of the tags on `channels` modulo the pulse period, in [0, period)."""
    chans = np.asarray(list(channels), dtype=np.int32)
    t = block.t_ps[np.isin(block.channel, chans)]
    return np.mod(t - clock.phase_ps, clock.period_ps)


def find_arrival_peak(block: TagBlock, clock: Clock, channels: Iterable[int], bin_ps: float = 10.0) -> ArrivalPeak:
    """Locate the detection peak (circular histogram, then a circular mean around it).

    Raises QkdInputError when the channels hold fewer than 100 tags.
    """
    phase = arrival_phase_ps(block, clock, channels)
    if phase.size < 100:
        raise QkdInputError(f"arrival peak: {phase.size} detector tags; need at least 100")
    period = clock.period_ps
    n_bins = max(8, int(period // bin_ps))
    hist = np.bincount((phase * n_bins / period).astype(np.int64) % n_bins, minlength=n_bins)
    # Smooth circularly over ~5 bins and take the maximum as a coarse centre.
    kernel = np.ones(5)
    smooth = np.convolve(np.concatenate((hist[-2:], hist, hist[:2])), kernel, mode="valid")
    coarse = (np.argmax(smooth) + 0.5) * period / n_bins
    # Refine: circular mean of the tags within a quarter period of the coarse centre.
    d = np.mod(phase - coarse + period / 2, period) - period / 2
    near = np.abs(d) < period / 4
    centre = coarse + float(np.mean(d[near]))
    d = np.mod(phase - centre + period / 2, period) - period / 2
    # Clipped rms: shrink the window to 3 rms a few times so flat background drops out.
    window = period / 4
    for _ in range(5):
        rms = float(np.sqrt(np.mean(d[np.abs(d) < window] ** 2)))
        window = 3 * rms
    contrast = float(np.mean(np.abs(d) <= 2 * rms))
    return ArrivalPeak(offset_ps=float(np.mod(centre, period)), width_ps=rms, contrast=contrast)
