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

    offset_ps: peak centre relative to the clock phase, in [-period/2, period/2); width_ps:
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
    # The first window holds the coarse peak's tags; a jitter-free peak (rms 0) leaves
    # the next window empty, and the width found so far stands.
    window = period / 4
    for _ in range(5):
        inside = d[np.abs(d) < window]
        if inside.size == 0:
            break
        rms = float(np.sqrt(np.mean(inside ** 2)))
        window = 3 * rms
    contrast = float(np.mean(np.abs(d) <= 2 * rms))
    # Report the offset in [-period/2, period/2): a peak just before the sync is a
    # small negative offset of the same slot, not the end of the previous one.
    offset = float(np.mod(centre + period / 2, period) - period / 2)
    return ArrivalPeak(offset_ps=offset, width_ps=rms, contrast=contrast)


@dataclass(frozen=True)
class SlotAlignment:
    """Offset that maps Bob's slot numbers onto Alice's record, and how sure it is.

    shift: Alice's index = Bob's slot + shift.  score/runner_up: mean intensity of
    Alice's pulses in the detected slots at the best and second-best shift.
    """

    shift: int
    score: float
    runner_up: float


def align_slots(
    slots: np.ndarray,
    intensity: np.ndarray,
    mu: tuple[float, float, float],
    guess: int,
    step: int,
    n_steps: int = 16,
    max_detections: int = 4000,
) -> SlotAlignment:
    """Find Alice's index offset of Bob's detected slots from public data only.

    Detections pile up in Alice's bright slots: the right shift maximises the mean
    intensity mu[intensity[slot + shift]] over detected slots.  Candidates are
    guess + k * step + d for |k| <= n_steps (step = pulses per sync) and
    d in {-1, 0, 1} (a gate centred near half a period).  Raises
    QkdInputError when the best shift does not stand out (no light, or wrong
    intensities).
    """
    slots = np.asarray(slots, dtype=np.int64)[:max_detections]
    if slots.size < 20:
        raise QkdInputError(f"slot alignment: {slots.size} detections; need at least 20")
    weight = np.asarray(mu, dtype=np.float64)
    scores = []
    # Whole syncs, and one slot either way (a gate centred near half a period).
    shifts = [guess + k * step + d for k in range(-n_steps, n_steps + 1) for d in (-1, 0, 1)]
    for shift in shifts:
        idx = slots + shift
        idx = idx[(idx >= 0) & (idx < intensity.size)]
        scores.append(float(weight[intensity[idx]].mean()) if idx.size >= slots.size // 2 else -1.0)
    order = np.argsort(scores)[::-1]
    best, second = scores[order[0]], scores[order[1]]
    spread = float(weight.max() - weight.min())
    if best <= 0 or best - second < 0.1 * spread:
        raise QkdInputError(
            f"slot alignment failed: best mean intensity {best:.4f} vs {second:.4f} at the next "
            "shift (no correlation between detections and Alice's intensities)"
        )
    return SlotAlignment(shift=int(shifts[order[0]]), score=best, runner_up=second)
