"""Bob's time tagger: input delays, resolution, per-channel dead time and a finite buffer.

Each input (role r: 0 sync, 1..4 detectors H, V, D, A) is a time-sorted stream of
edges; the tagger delays each input by delay_ps[r], rounds down to resolution_ps,
drops edges inside the input's dead time (silently, as the real instrument does),
and merges everything into one time-ordered stream.  The buffer is a leaky bucket:
each accepted tag adds one, the transfer link drains max_rate_tags_per_s; a tag
arriving with the buffer full is lost and counted as a missed event (the block is
then flagged as overflowed).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from qkdctl.core.errors import QkdInputError

N_ROLES = 5


@njit(cache=True)
def _next_click(clk_det, i, j):
    """Index of the next click of detector j at or after i (clk_det.size if none)."""
    while i < clk_det.size and clk_det[i] != j:
        i += 1
    return i


@njit(cache=True)
def _tagger_kernel(
    clk_t, clk_det, extra_t, extra_off, delay_ps, visible, dead_ps, resolution_ps, ch_number,
    last_tag, bucket, rate_per_ps, capacity,
):
    n_total = clk_t.size + extra_t.size
    out_t = np.empty(n_total, dtype=np.int64)
    out_ch = np.empty(n_total, dtype=np.int32)
    big = np.iinfo(np.int64).max
    # stream s < 4: clicks of detector s (role s + 1); stream 4 + r: extra edges of role r
    ptr = np.empty(4 + N_ROLES, dtype=np.int64)
    for j in range(4):
        ptr[j] = _next_click(clk_det, 0, j)
    for r in range(N_ROLES):
        ptr[4 + r] = extra_off[r]
    no = 0
    missed = 0
    level = bucket[0]
    t_last = bucket[1]
    while True:
        best = big
        bs = -1
        for s in range(4 + N_ROLES):
            if s < 4:
                r = s + 1
                if not visible[r] or ptr[s] >= clk_t.size:
                    continue
                ts = clk_t[ptr[s]] + delay_ps[r]
            else:
                r = s - 4
                if not visible[r] or ptr[s] >= extra_off[r + 1]:
                    continue
                ts = extra_t[ptr[s]] + delay_ps[r]
            if ts < best:
                best = ts
                bs = s
        if bs < 0:
            break
        if bs < 4:
            r = bs + 1
            ptr[bs] = _next_click(clk_det, ptr[bs] + 1, bs)
        else:
            r = bs - 4
            ptr[bs] += 1
        t = (best // resolution_ps) * resolution_ps
        if t - last_tag[r] < dead_ps[r]:
            continue
        last_tag[r] = t
        level -= (t - t_last) * rate_per_ps
        if level < 0.0:
            level = 0.0
        t_last = t
        if level + 1.0 > capacity:
            missed += 1
            continue
        level += 1.0
        out_t[no] = t
        out_ch[no] = ch_number[r]
        no += 1
    bucket[0] = level
    bucket[1] = t_last
    return out_t[:no], out_ch[:no], missed


class TaggerState:
    """Tagger memory across blocks: last tag per role (ps) and the bucket (level, t_ps)."""

    def __init__(self) -> None:
        self.last_tag_ps = np.full(N_ROLES, np.iinfo(np.int64).min // 2, dtype=np.int64)
        self.bucket = np.zeros(2, dtype=np.float64)


def tag_stream(
    clk_t_ps: np.ndarray,
    clk_det: np.ndarray,
    extra_t_ps: list[np.ndarray],
    delay_ps: np.ndarray,
    visible: np.ndarray,
    dead_time_ps: np.ndarray,
    resolution_ps: int,
    ch_number: np.ndarray,
    max_rate_tags_per_s: float,
    buffer_tags: int,
    state: TaggerState,
) -> tuple[np.ndarray, np.ndarray, int]:
    """What the tagger records: (t_ps sorted, channel number, missed events).

    clk_t_ps/clk_det: detector clicks sorted by time (det 0..3 = role 1..4).
    extra_t_ps: per role (5 arrays, each sorted) further edges: sync pulses, noise.
    delay_ps, visible, dead_time_ps, ch_number: per role.
    """
    clk_t_ps = np.ascontiguousarray(clk_t_ps, dtype=np.int64)
    clk_det = np.ascontiguousarray(clk_det, dtype=np.uint8)
    if clk_t_ps.shape != clk_det.shape:
        raise QkdInputError(f"clk_t_ps ({clk_t_ps.size}) and clk_det ({clk_det.size}) differ in length")
    if len(extra_t_ps) != N_ROLES:
        raise QkdInputError(f"extra_t_ps needs {N_ROLES} arrays (one per role), got {len(extra_t_ps)}")
    for name, arr in (("clicks", clk_t_ps), *((f"extra[{r}]", a) for r, a in enumerate(extra_t_ps))):
        if np.asarray(arr).size > 1 and np.any(np.diff(arr) < 0):
            raise QkdInputError(f"tagger input {name} must be sorted by time")
    if clk_det.size and clk_det.max() > 3:
        raise QkdInputError(f"detector index {int(clk_det.max())} out of range 0..3")
    if resolution_ps < 1:
        raise QkdInputError(f"tagger resolution must be >= 1 ps, got {resolution_ps}")
    if max_rate_tags_per_s <= 0 or buffer_tags < 1:
        raise QkdInputError("tagger max rate must be > 0 and buffer >= 1 tag")
    extra_off = np.zeros(N_ROLES + 1, dtype=np.int64)
    extra_off[1:] = np.cumsum([np.asarray(a).size for a in extra_t_ps])
    extra = np.ascontiguousarray(np.concatenate(extra_t_ps).astype(np.int64, copy=False))
    t, ch, missed = _tagger_kernel(
        clk_t_ps, clk_det, extra, extra_off,
        np.ascontiguousarray(delay_ps, dtype=np.int64), np.ascontiguousarray(visible, dtype=np.bool_),
        np.ascontiguousarray(dead_time_ps, dtype=np.int64), int(resolution_ps),
        np.ascontiguousarray(ch_number, dtype=np.int32), state.last_tag_ps, state.bucket,
        max_rate_tags_per_s * 1e-12, float(buffer_tags),
    )
    return t, ch, int(missed)
