"""Writer of PicoQuant PTU files in T2 mode (header tags + uint32 records).

Writes what `drivers.tagger.ptu` reads: the header entries a T2 reader needs
(record type, global resolution, number of records, ...) and records of one of the
T2 layouts, inserting overflow records where the time field wraps.  Channel
numbering is the reader's: `sync_channel` becomes a sync record (HydraHarp family)
or PicoHarp channel 0; channel k becomes HydraHarp channel field k - 1 or PicoHarp
channel k.  A PicoHarp marker keeps its time to 16 units (the low 4 bits carry the
marker bits).  The record count in the header is patched on `close()`, so a file
can be written block by block.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from drivers.tagger.ptu import (
    HEADER_END,
    HYDRAHARP_V1_WRAP,
    HYDRAHARP_V2_WRAP,
    MAGIC,
    PICOHARP_WRAP,
    RT_HYDRAHARP2_T2,
    RT_HYDRAHARP_T2,
    RT_PICOHARP_T2,
    T2_RECORD_TYPES,
    TAG_HEAD,
    TY_ANSI_STRING,
    TY_EMPTY8,
    TY_FLOAT8,
    TY_INT8,
)
from qkdctl.core.errors import QkdInputError
from qkdctl.core.tags import TagBlock

VERSION = b"1.0.00\0\0"
HH_V2_MAX_OVERFLOWS = (1 << 25) - 1
MEASUREMENT_MODE_T2 = 2


def _tag(ident: str, typ: int, value: bytes, idx: int = -1) -> bytes:
    return TAG_HEAD.pack(ident.encode("ascii"), idx, typ) + value


def _int_tag(ident: str, value: int) -> bytes:
    return _tag(ident, TY_INT8, struct.pack("<q", value))


def _string_tag(ident: str, text: str) -> bytes:
    payload = text.encode("latin-1") + b"\0"
    payload += b"\0" * (-len(payload) % 8)
    return _tag(ident, TY_ANSI_STRING, struct.pack("<q", len(payload))) + payload


class PtuWriter:
    """Write a T2 PTU file block by block; use as a context manager or call `close()`."""

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        record_type: int = RT_HYDRAHARP2_T2,
        resolution_s: float = 1e-12,
        sync_channel: int = 0,
        sync_rate_hz: int = 0,
        comment: str = "written by qkdctl",
    ) -> None:
        if record_type not in T2_RECORD_TYPES:
            raise QkdInputError(
                f"PTU writer: record type {record_type!r} is not a T2 type; allowed "
                + ", ".join(f"0x{k:08X} ({v})" for k, v in T2_RECORD_TYPES.items())
            )
        resolution_ps = float(resolution_s) * 1e12
        if not (resolution_ps >= 1 and abs(resolution_ps - round(resolution_ps)) < 1e-9 * resolution_ps):
            raise QkdInputError(f"PTU writer: resolution {resolution_s!r} s is not a whole number of ps")
        self.path = Path(path)
        self.record_type = record_type
        self.resolution_ps = int(round(resolution_ps))
        self.sync_channel = int(sync_channel)
        self.n_records = 0
        self._last_units = 0
        self._wraps = 0
        self._fh = open(self.path, "wb")
        head = [
            _string_tag("File_Comment", comment),
            _string_tag("CreatorSW_Name", "qkdctl"),
            _int_tag("Measurement_Mode", MEASUREMENT_MODE_T2),
            _int_tag("Measurement_SubMode", 0),
            _int_tag("TTResultFormat_TTTRRecType", record_type),
            _int_tag("TTResultFormat_BitsPerRecord", 32),
            _tag("MeasDesc_GlobalResolution", TY_FLOAT8, struct.pack("<d", float(resolution_s))),
            _tag("MeasDesc_Resolution", TY_FLOAT8, struct.pack("<d", float(resolution_s))),
            _int_tag("TTResult_SyncRate", int(sync_rate_hz)),
        ]
        self._fh.write(MAGIC + VERSION + b"".join(head))
        self._count_offset = self._fh.tell() + TAG_HEAD.size
        self._fh.write(_int_tag("TTResult_NumberOfRecords", 0))
        self._fh.write(_tag(HEADER_END, TY_EMPTY8, bytes(8)))

    @property
    def _wrap_units(self) -> int:
        if self.record_type == RT_PICOHARP_T2:
            return PICOHARP_WRAP
        if self.record_type == RT_HYDRAHARP_T2:
            return HYDRAHARP_V1_WRAP
        return HYDRAHARP_V2_WRAP

    def _units(self, t_ps: np.ndarray, what: str) -> np.ndarray:
        t = np.asarray(t_ps, dtype=np.int64)
        if t.size and np.any(t % self.resolution_ps):
            raise QkdInputError(f"PTU writer: {what} times are not multiples of the {self.resolution_ps} ps resolution")
        return t // self.resolution_ps

    def _event_words(self, units: np.ndarray, channel: np.ndarray, is_marker: np.ndarray) -> np.ndarray:
        """The record word of each event, given its time field (units within the wrap)."""
        field = units % self._wrap_units
        if self.record_type == RT_PICOHARP_T2:
            ch = np.where(channel == self.sync_channel, 0, channel)
            bad = ~is_marker & ((ch < 0) | (ch > 14))
            words = (ch.astype(np.uint64) << 28) | field.astype(np.uint64)
            marker_words = (np.uint64(0xF) << 28) | (field.astype(np.uint64) & 0x0FFFFFF0) | channel.astype(np.uint64)
        else:
            sync = channel == self.sync_channel
            ch = channel - 1
            bad = ~is_marker & ~sync & ((ch < 0) | (ch > 63))
            ch_field = np.where(sync, 0, ch).astype(np.uint64)
            words = (np.where(sync, 1, 0).astype(np.uint64) << 31) | (ch_field << 25) | field.astype(np.uint64)
            marker_words = (np.uint64(1) << 31) | (channel.astype(np.uint64) << 25) | field.astype(np.uint64)
        if np.any(bad):
            first = int(channel[np.argmax(bad)])
            allowed = "1..14" if self.record_type == RT_PICOHARP_T2 else "1..64"
            raise QkdInputError(
                f"PTU writer: channel {first} cannot be written to {T2_RECORD_TYPES[self.record_type]} "
                f"(allowed {allowed} and the sync channel {self.sync_channel})"
            )
        return np.where(is_marker, marker_words, words).astype(np.uint32)

    def write(
        self,
        t_ps: np.ndarray,
        channel: np.ndarray,
        marker_t_ps: np.ndarray | None = None,
        marker_bits: np.ndarray | None = None,
    ) -> None:
        """Append tags (ps, channel) and markers (ps, bits 1..15), all no earlier than what was written."""
        units = self._units(t_ps, "tag")
        channel = np.asarray(channel, dtype=np.int64)
        if units.shape != channel.shape:
            raise QkdInputError(f"PTU writer: {units.size} tag times but {channel.size} channels")
        m_units = self._units(np.empty(0) if marker_t_ps is None else marker_t_ps, "marker")
        bits = np.asarray(np.empty(0) if marker_bits is None else marker_bits, dtype=np.int64)
        if m_units.shape != bits.shape:
            raise QkdInputError(f"PTU writer: {m_units.size} marker times but {bits.size} marker bit sets")
        if bits.size and (bits.min() < 1 or bits.max() > 15):
            raise QkdInputError("PTU writer: marker bits must be 1..15")
        all_units = np.concatenate([units, m_units])
        is_marker = np.concatenate([np.zeros(units.size, bool), np.ones(m_units.size, bool)])
        all_ch = np.concatenate([channel, bits])
        order = np.argsort(all_units, kind="stable")
        all_units, is_marker, all_ch = all_units[order], is_marker[order], all_ch[order]
        if all_units.size == 0:
            return
        if all_units[0] < self._last_units:
            raise QkdInputError(
                f"PTU writer: time {int(all_units[0]) * self.resolution_ps} ps is before the last written "
                f"{self._last_units * self.resolution_ps} ps"
            )
        self._fh.write(self._records(all_units, all_ch, is_marker).tobytes())
        self._last_units = int(all_units[-1])

    def _records(self, units: np.ndarray, channel: np.ndarray, is_marker: np.ndarray) -> np.ndarray:
        wraps = units // self._wrap_units
        delta = np.diff(np.concatenate([[self._wraps], wraps]))
        self._wraps = int(wraps[-1])
        v2 = self.record_type not in (RT_PICOHARP_T2, RT_HYDRAHARP_T2)
        n_ofl = -(-delta // HH_V2_MAX_OVERFLOWS) if v2 else delta
        per_event = n_ofl + 1
        event_pos = np.cumsum(per_event) - 1
        if self.record_type == RT_PICOHARP_T2:
            overflow_word = 0xF << 28
        elif v2:
            overflow_word = (1 << 31) | (0x3F << 25) | HH_V2_MAX_OVERFLOWS
        else:
            overflow_word = (1 << 31) | (0x3F << 25)
        out = np.full(int(per_event.sum()), overflow_word, dtype=np.uint32)
        if v2:
            has = delta > 0
            rest = delta[has] - (n_ofl[has] - 1) * HH_V2_MAX_OVERFLOWS
            out[event_pos[has] - 1] = ((1 << 31) | (0x3F << 25) | rest).astype(np.uint32)
        out[event_pos] = self._event_words(units, channel, is_marker)
        self.n_records += out.size
        return out

    def write_block(self, block: TagBlock) -> None:
        """Append a `TagBlock` (and its meta markers "marker_t_ps"/"marker_bits", if any)."""
        self.write(block.t_ps, block.channel, block.meta.get("marker_t_ps"), block.meta.get("marker_bits"))

    def close(self) -> None:
        """Write the record count into the header and close the file (idempotent)."""
        if self._fh.closed:
            return
        self._fh.seek(self._count_offset)
        self._fh.write(struct.pack("<q", self.n_records))
        self._fh.close()

    def __enter__(self) -> "PtuWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_ptu(path: str | os.PathLike, block: TagBlock, **kwargs) -> Path:
    """Write one `TagBlock` as a T2 PTU file (keywords as `PtuWriter`); return the path."""
    with PtuWriter(path, **kwargs) as writer:
        writer.write_block(block)
    return writer.path
