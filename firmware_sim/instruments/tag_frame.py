"""Binary tag-block frame of the simulated time tagger (documented in docs/sim_protocols.md).

Frame = 64-byte little-endian header + n_records x 16-byte records.
Header "<4sHHQqqQQII8x": magic b"QTAG", version 1, header_len 64, block_id,
start_ps, stop_ps, n_records, missed_events, flags (bit 0: overflow), crc32 of
the record bytes (zlib.crc32).  Record "<BBHiq" (Swabian raw-tag layout):
type (0 tag, 2 overflow begin, 3 overflow end, 4 missed events), reserved 0,
missed-event count (u16, type 4 only), channel (int32, -1 on markers), time ps.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from qkdctl.core.tags import TagBlock

MAGIC = b"QTAG"
VERSION = 1
HEADER = struct.Struct("<4sHHQqqQQII8x")
FLAG_OVERFLOW = 0x1
TYPE_TAG, TYPE_ERROR, TYPE_OVERFLOW_BEGIN, TYPE_OVERFLOW_END, TYPE_MISSED_EVENTS = 0, 1, 2, 3, 4
MARKER_CHANNEL = -1
MISSED_PER_RECORD = 0xFFFF
RECORD = np.dtype([("type", "u1"), ("reserved", "u1"), ("missed", "<u2"), ("channel", "<i4"), ("time_ps", "<i8")])


def _markers(window: tuple[int, int], missed: int) -> np.ndarray:
    """OverflowBegin at window[0], MissedEvents records (<= 65535 each) and OverflowEnd at window[1]."""
    counts = [MISSED_PER_RECORD] * (missed // MISSED_PER_RECORD)
    if missed % MISSED_PER_RECORD:
        counts.append(missed % MISSED_PER_RECORD)
    rec = np.zeros(2 + len(counts), dtype=RECORD)
    rec["channel"] = MARKER_CHANNEL
    rec["type"][0] = TYPE_OVERFLOW_BEGIN
    rec["time_ps"][0] = window[0]
    rec["type"][1:-1] = TYPE_MISSED_EVENTS
    rec["missed"][1:-1] = counts
    rec["time_ps"][1:] = window[1]
    rec["type"][-1] = TYPE_OVERFLOW_END
    return rec


def encode_frame(block_id: int, tags: TagBlock, forced_overflow: bool = False) -> bytearray:
    """Encode one block into a fresh buffer (header + records, written in place).

    A block the tagger flagged as overflowed gets OverflowBegin at start_ps and
    MissedEvents + OverflowEnd at stop_ps (the tagger does not say where inside
    the block tags were lost).  forced_overflow (fault injection) drops every
    tag of the middle third of the block and marks that window instead.
    """
    t, ch = tags.t_ps, tags.channel
    missed = int(tags.missed_events)
    window = (int(tags.start_ps), int(tags.stop_ps)) if tags.overflow else None
    if forced_overflow:
        span = int(tags.stop_ps) - int(tags.start_ps)
        window = (int(tags.start_ps) + span // 3, int(tags.start_ps) + 2 * span // 3)
        lost = (t >= window[0]) & (t < window[1])
        missed += int(lost.sum())
        t, ch = t[~lost], ch[~lost]
    marks = _markers(window, missed) if window is not None else np.zeros(0, dtype=RECORD)
    n_records = t.size + marks.size
    frame = bytearray(HEADER.size + RECORD.itemsize * n_records)
    records = np.frombuffer(frame, dtype=RECORD, offset=HEADER.size)
    if window is None:
        records["channel"] = ch
        records["time_ps"] = t
    else:
        lo, hi = int(np.searchsorted(t, window[0])), int(np.searchsorted(t, window[1]))
        tag_pos = np.concatenate([np.arange(lo), np.arange(lo, hi) + 1, np.arange(hi, t.size) + marks.size])
        records["channel"][tag_pos] = ch
        records["time_ps"][tag_pos] = t
        records[lo] = marks[0]
        records[hi + 1:hi + marks.size] = marks[1:]
    flags = FLAG_OVERFLOW if window is not None else 0
    crc = zlib.crc32(memoryview(frame)[HEADER.size:])
    HEADER.pack_into(
        frame, 0, MAGIC, VERSION, HEADER.size, int(block_id), int(tags.start_ps), int(tags.stop_ps),
        n_records, missed, flags, crc,
    )
    return frame
