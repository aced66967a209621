"""Bob's time tagger: per-channel dead time and a finite buffer drained at a fixed rate.

The buffer is a leaky bucket: each accepted tag adds one, the transfer link drains
max_rate_tags_per_s; a tag arriving with the buffer full is lost and counted as a
missed event (the block is then flagged as overflowed).  Tags inside a channel's
dead time are lost silently, as on the real instrument.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from qkdctl.core.errors import QkdInputError


@njit(cache=True)
def _tagger_kernel(t, ch, dead_ps, last_tag, bucket, rate_per_ps, capacity, keep):
    missed = 0
    level = bucket[0]
    t_last = bucket[1]
    for i in range(t.size):
        c = ch[i]
        if t[i] - last_tag[c] < dead_ps[c]:
            keep[i] = False
            continue
        last_tag[c] = t[i]
        level -= (t[i] - t_last) * rate_per_ps
        if level < 0.0:
            level = 0.0
        t_last = t[i]
        if level + 1.0 > capacity:
            keep[i] = False
            missed += 1
            continue
        level += 1.0
        keep[i] = True
    bucket[0] = level
    bucket[1] = t_last
    return missed


class TaggerState:
    """Tagger memory across blocks: last tag per channel index (ps), bucket (level, t_ps)."""

    def __init__(self, n_channels: int) -> None:
        self.last_tag_ps = np.full(n_channels, np.iinfo(np.int64).min // 2, dtype=np.int64)
        self.bucket = np.zeros(2, dtype=np.float64)


def tagger_filter(
    t_ps: np.ndarray,
    ch_index: np.ndarray,
    dead_time_ps: np.ndarray,
    max_rate_tags_per_s: float,
    buffer_tags: int,
    state: TaggerState,
) -> tuple[np.ndarray, int]:
    """Keep-mask of the tags (sorted by t_ps) that survive dead time and buffer, and missed count.

    ch_index: index into dead_time_ps / state.last_tag_ps (not the channel number).
    """
    t_ps = np.ascontiguousarray(t_ps, dtype=np.int64)
    ch_index = np.ascontiguousarray(ch_index, dtype=np.int64)
    if t_ps.shape != ch_index.shape:
        raise QkdInputError(f"t_ps ({t_ps.size}) and ch_index ({ch_index.size}) differ in length")
    if t_ps.size > 1 and np.any(np.diff(t_ps) < 0):
        raise QkdInputError("tags must be sorted by t_ps")
    if ch_index.size and (ch_index.min() < 0 or ch_index.max() >= len(dead_time_ps)):
        raise QkdInputError("ch_index out of range of dead_time_ps")
    if max_rate_tags_per_s <= 0 or buffer_tags < 1:
        raise QkdInputError("tagger max rate must be > 0 and buffer >= 1 tag")
    keep = np.empty(t_ps.size, dtype=np.bool_)
    missed = _tagger_kernel(
        t_ps, ch_index, np.ascontiguousarray(dead_time_ps, dtype=np.int64),
        state.last_tag_ps, state.bucket, max_rate_tags_per_s * 1e-12, float(buffer_tags), keep,
    )
    return keep, int(missed)
