"""PTU T2 reading: the chunked numba reader (file -> tags) against a vectorized numpy decoder.

Baseline (timed in the same run): the whole file read with numpy.fromfile and
decoded with array operations (overflow correction by cumulative sum), the usual
way T2 files are decoded in Python (as in phconvert).  Both produce int64 ps
timestamps and int32 channels; the benchmark checks they agree.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import best_seconds, result
from drivers.tagger.ptu import PtuReader, read_ptu_header
from drivers.tagger.ptu_writer import PtuWriter

SIZES = {"quick": [200_000], "full": [1_000_000, 10_000_000]}


def _numpy_decode(path: Path, sync_channel: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """HydraHarp v2 T2 decoded with whole-array numpy operations (1 ps resolution)."""
    header = read_ptu_header(path)
    w = np.fromfile(path, dtype="<u4", offset=header.data_offset, count=header.n_records).astype(np.int64)
    special = (w >> 31) & 1
    ch = (w >> 25) & 0x3F
    tt = w & 0x1FFFFFF
    overflow = (special == 1) & (ch == 0x3F)
    ofl = np.cumsum(np.where(overflow, 33554432 * np.maximum(tt, 1), 0))
    keep = (special == 0) | (ch == 0)
    t = ofl[keep] + tt[keep]
    c = np.where(special[keep] == 1, sync_channel, ch[keep] + 1).astype(np.int32)
    return t * int(round(header.resolution_s * 1e12)), c


def _reader_decode(path: Path) -> tuple[np.ndarray, np.ndarray]:
    block = PtuReader(path).read_all()
    return block.t_ps, block.channel


def run(quick: bool) -> list[dict]:
    """Decode rate (tags/s) of the chunked numba reader vs the numpy decoder."""
    rng = np.random.default_rng(2024)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in SIZES["quick" if quick else "full"]:
            path = Path(tmp) / f"bench_{n}.ptu"
            t = np.cumsum(rng.integers(1, 200_000, n))  # ~10 M tags/s: an overflow record every ~335 tags
            with PtuWriter(path) as writer:
                writer.write(t, rng.integers(0, 5, n))
            fast = _reader_decode(path)
            base = _numpy_decode(path)
            if not (np.array_equal(fast[0], base[0]) and np.array_equal(fast[1], base[1])):
                raise AssertionError("PTU reader and numpy decoder disagree")
            seconds = best_seconds(lambda: _reader_decode(path))
            baseline = best_seconds(lambda: _numpy_decode(path))
            out.append(result("ptu_read_hh2_t2", n, seconds, "tags/s", "numpy_vectorized", baseline,
                              records=read_ptu_header(path).n_records))
    return out
