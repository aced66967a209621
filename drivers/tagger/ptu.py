"""Reader of PicoQuant PTU files in T2 mode, streamed in chunks.

Format (PicoQuant's public "PTU" description and demo readers): 8-byte magic
"PQTTTR\\0\\0", 8-byte version string, then tagged header entries

    ident char[32] (NUL padded) | idx int32 | type uint32 | value 8 bytes

(strings, arrays and blobs: the value is the payload length in bytes and the
payload follows) up to the entry "Header_End"; then uint32 little-endian records.
`MeasDesc_GlobalResolution` (s) is the T2 time unit, `TTResult_NumberOfRecords`
the record count and `TTResultFormat_TTTRRecType` the record layout:

* PicoHarp T2 (0x00010203): channel bits 31..28, time bits 27..0.  Channel 0xF is
  special: low 4 time bits = marker bits, 0 means overflow (+210698240 units).
* HydraHarp v1 T2 (0x00010204), HydraHarp v2 T2 (0x01010204), TimeHarp 260 N/P T2
  (0x00010205 / 0x00010206), MultiHarp T2 (0x00010207): special bit 31, channel
  bits 30..25, time bits 24..0.  Special with channel 0x3F = overflow (v1: +33552000
  units per record; others: +33554432 x time, time 0 counting as 1); special with
  channel 1..15 = marker; special with channel 0 = sync event.

Channel numbering of the returned tags: a detector input k (1-based on the
instrument, i.e. HydraHarp channel field + 1, PicoHarp channel field 1..14) is
channel k; sync events (HydraHarp family) and PicoHarp's channel 0 (its sync
input) become `sync_channel`.  Markers are reported separately, never as tags.
A PicoHarp marker's time drops the low 4 bits, which hold the marker bits.

Records are decoded in fixed-size chunks from a read-only memory map, with the
overflow count carried across chunks, so files larger than memory stream fine.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from numba import njit

from qkdctl.core.errors import QkdInputError
from qkdctl.core.tags import TagBlock

MAGIC = b"PQTTTR\0\0"
TAG_HEAD = struct.Struct("<32siI")
HEADER_END = "Header_End"

TY_EMPTY8 = 0xFFFF0008
TY_BOOL8 = 0x00000008
TY_INT8 = 0x10000008
TY_BITSET64 = 0x11000008
TY_COLOR8 = 0x12000008
TY_FLOAT8 = 0x20000008
TY_TDATETIME = 0x21000008
TY_FLOAT8_ARRAY = 0x2001FFFF
TY_ANSI_STRING = 0x4001FFFF
TY_WIDE_STRING = 0x4002FFFF
TY_BINARY_BLOB = 0xFFFFFFFF

RT_PICOHARP_T2 = 0x00010203
RT_HYDRAHARP_T2 = 0x00010204
RT_HYDRAHARP2_T2 = 0x01010204
RT_TIMEHARP260N_T2 = 0x00010205
RT_TIMEHARP260P_T2 = 0x00010206
RT_MULTIHARP_T2 = 0x00010207
T2_RECORD_TYPES = {
    RT_PICOHARP_T2: "PicoHarp T2",
    RT_HYDRAHARP_T2: "HydraHarp v1 T2",
    RT_HYDRAHARP2_T2: "HydraHarp v2 T2",
    RT_TIMEHARP260N_T2: "TimeHarp 260 N T2",
    RT_TIMEHARP260P_T2: "TimeHarp 260 P T2",
    RT_MULTIHARP_T2: "MultiHarp T2",
}
T3_RECORD_TYPES = {0x00010303, 0x00010304, 0x01010304, 0x00010305, 0x00010306, 0x00010307}

PICOHARP_WRAP = 210698240
HYDRAHARP_V1_WRAP = 33552000
HYDRAHARP_V2_WRAP = 33554432
HH_OVERFLOW_CHANNEL = 0x3F
MAX_HEADER_BYTES = 1 << 24
DEFAULT_CHUNK_RECORDS = 1 << 20

# Kernel state slots: overflow (time units), tags out, markers out, invalid specials.
_OFL, _N_TAGS, _N_MARKERS, _N_INVALID = 0, 1, 2, 3


@njit(cache=True)
def _picoharp_t2_kernel(words, sync_channel, state, out_t, out_ch, out_mt, out_mb):
    """Decode PicoHarp T2 records; state carries the overflow across chunks."""
    ofl = state[_OFL]
    n_tags = 0
    n_markers = 0
    for i in range(words.size):
        w = np.int64(words[i])
        ch = (w >> 28) & 0xF
        tt = w & 0x0FFFFFFF
        if ch == 0xF:
            bits = tt & 0xF
            if bits == 0:
                ofl += PICOHARP_WRAP
            else:
                out_mt[n_markers] = ofl + (tt & 0x0FFFFFF0)
                out_mb[n_markers] = bits
                n_markers += 1
        else:
            out_t[n_tags] = ofl + tt
            out_ch[n_tags] = sync_channel if ch == 0 else ch
            n_tags += 1
    state[_OFL] = ofl
    state[_N_TAGS] = n_tags
    state[_N_MARKERS] = n_markers


@njit(cache=True)
def _hydraharp_t2_kernel(words, v1, sync_channel, state, out_t, out_ch, out_mt, out_mb):
    """Decode HydraHarp-family T2 records (v1 overflow if v1 else v2 style)."""
    ofl = state[_OFL]
    n_tags = 0
    n_markers = 0
    invalid = state[_N_INVALID]
    for i in range(words.size):
        w = np.int64(words[i])
        ch = (w >> 25) & 0x3F
        tt = w & 0x1FFFFFF
        if (w >> 31) & 1:
            if ch == HH_OVERFLOW_CHANNEL:
                if v1:
                    ofl += HYDRAHARP_V1_WRAP
                elif tt == 0:
                    ofl += HYDRAHARP_V2_WRAP
                else:
                    ofl += HYDRAHARP_V2_WRAP * tt
            elif ch == 0:
                out_t[n_tags] = ofl + tt
                out_ch[n_tags] = sync_channel
                n_tags += 1
            elif ch <= 15:
                out_mt[n_markers] = ofl + tt
                out_mb[n_markers] = ch
                n_markers += 1
            else:
                invalid += 1
        else:
            out_t[n_tags] = ofl + tt
            out_ch[n_tags] = ch + 1
            n_tags += 1
    state[_OFL] = ofl
    state[_N_TAGS] = n_tags
    state[_N_MARKERS] = n_markers
    state[_N_INVALID] = invalid


@dataclass(frozen=True)
class PtuHeader:
    """The parsed header of a PTU file.

    tags: header entries by name ("Name" or "Name(idx)" when indexed) -> value.
    record_type: TTResultFormat_TTTRRecType; resolution_s: MeasDesc_GlobalResolution
    (s per time unit); n_records: TTResult_NumberOfRecords; data_offset: byte offset
    of the first record.
    """

    path: Path
    version: str
    tags: dict
    record_type: int
    resolution_s: float
    n_records: int
    data_offset: int

    @property
    def record_type_name(self) -> str:
        """Get the instrument/mode name of the record type."""
        return T2_RECORD_TYPES.get(self.record_type, f"0x{self.record_type:08X}")


def _bad(path: Path, problem: str) -> QkdInputError:
    return QkdInputError(f"PTU file {str(path)!r}: {problem}")


def _read_exact(fh, n: int, path: Path, what: str) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise _bad(path, f"truncated in the header ({what}: {len(data)} of {n} bytes)")
    return data


def _tag_value(fh, typ: int, raw: bytes, path: Path, name: str):
    if typ in (TY_INT8, TY_BITSET64, TY_COLOR8):
        return struct.unpack("<q", raw)[0]
    if typ == TY_BOOL8:
        return struct.unpack("<q", raw)[0] != 0
    if typ in (TY_FLOAT8, TY_TDATETIME):
        return struct.unpack("<d", raw)[0]
    if typ == TY_EMPTY8:
        return None
    if typ in (TY_FLOAT8_ARRAY, TY_ANSI_STRING, TY_WIDE_STRING, TY_BINARY_BLOB):
        n = struct.unpack("<q", raw)[0]
        if not 0 <= n <= MAX_HEADER_BYTES:
            raise _bad(path, f"header entry {name!r} claims a payload of {n} bytes")
        payload = _read_exact(fh, n, path, name)
        if typ == TY_ANSI_STRING:
            return payload.rstrip(b"\0").decode("latin-1")
        if typ == TY_WIDE_STRING:
            return payload.decode("utf-16-le", "replace").rstrip("\0")
        if typ == TY_FLOAT8_ARRAY:
            return np.frombuffer(payload[: n - n % 8], dtype="<f8").copy()
        return payload
    raise _bad(path, f"header entry {name!r} has unknown type 0x{typ:08X}")


def read_ptu_header(path: str | os.PathLike) -> PtuHeader:
    """Parse a PTU header; `QkdInputError` naming the file for a foreign, truncated or non-T2 file."""
    path = Path(path)
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise _bad(path, f"cannot open ({exc.strerror})") from None
    with fh:
        magic = fh.read(8)
        if magic != MAGIC:
            raise _bad(path, f"not a PicoQuant TTTR file (magic {magic!r}, expected {MAGIC!r})")
        version = _read_exact(fh, 8, path, "version").rstrip(b"\0").decode("ascii", "replace")
        tags: dict = {}
        while True:
            ident, idx, typ = TAG_HEAD.unpack(_read_exact(fh, TAG_HEAD.size, path, "tag"))
            raw = _read_exact(fh, 8, path, "tag value")
            base = ident.split(b"\0", 1)[0].decode("ascii", "replace")
            name = base if idx < 0 else f"{base}({idx})"
            value = _tag_value(fh, typ, raw, path, name)
            if base == HEADER_END:
                break
            tags[name] = value
            if fh.tell() > MAX_HEADER_BYTES:
                raise _bad(path, f"no {HEADER_END!r} within {MAX_HEADER_BYTES} header bytes")
        data_offset = fh.tell()
    for key in ("TTResultFormat_TTTRRecType", "MeasDesc_GlobalResolution", "TTResult_NumberOfRecords"):
        if key not in tags:
            raise _bad(path, f"header lacks {key}")
    record_type = int(tags["TTResultFormat_TTTRRecType"]) & 0xFFFFFFFF
    if record_type in T3_RECORD_TYPES:
        raise _bad(path, f"record type 0x{record_type:08X} is T3; only T2 files are read")
    if record_type not in T2_RECORD_TYPES:
        raise _bad(path, f"unknown record type 0x{record_type:08X}")
    resolution_s = float(tags["MeasDesc_GlobalResolution"])
    if not (np.isfinite(resolution_s) and resolution_s > 0):
        raise _bad(path, f"MeasDesc_GlobalResolution {resolution_s!r} s is not positive")
    n_records = int(tags["TTResult_NumberOfRecords"])
    if n_records < 0:
        raise _bad(path, f"TTResult_NumberOfRecords {n_records} is negative")
    size = path.stat().st_size
    if size < data_offset + 4 * n_records:
        held = max(0, size - data_offset) // 4
        raise _bad(path, f"truncated: header says {n_records} records, file holds {held}")
    return PtuHeader(path, version, tags, record_type, resolution_s, n_records, data_offset)


@dataclass(frozen=True)
class PtuChunk:
    """Decoded records of one chunk: tags (ps, channel) and markers (ps, marker bits)."""

    t_ps: np.ndarray
    channel: np.ndarray
    marker_t_ps: np.ndarray
    marker_bits: np.ndarray


@dataclass
class _Pending:
    t_ps: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    channel: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    marker_t_ps: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    marker_bits: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint8))


def _units_to_ps(units: np.ndarray, resolution_ps: float, integral: int) -> np.ndarray:
    if integral:
        return units * np.int64(integral)
    return np.rint(units * resolution_ps).astype(np.int64)


class PtuReader:
    """Streams the tags and markers of a T2 PTU file in chunks of `chunk_records` records.

    `chunks()` yields `PtuChunk`s from the start of the file; `read_window(duration_ps)`
    returns consecutive time windows [start, start + duration) as `TagBlock`s whose
    meta holds the window's markers ("marker_t_ps", "marker_bits").
    """

    def __init__(
        self, path: str | os.PathLike, *, sync_channel: int = 0, chunk_records: int = DEFAULT_CHUNK_RECORDS
    ) -> None:
        if int(chunk_records) != chunk_records or chunk_records < 1:
            raise QkdInputError(f"PTU chunk_records must be an integer >= 1, got {chunk_records!r}")
        if int(sync_channel) != sync_channel:
            raise QkdInputError(f"PTU sync_channel must be an integer, got {sync_channel!r}")
        self.header = read_ptu_header(path)
        self.sync_channel = int(sync_channel)
        self.chunk_records = int(chunk_records)
        resolution_ps = self.header.resolution_s * 1e12
        rounded = round(resolution_ps)
        self._resolution_ps = resolution_ps
        self._integral_ps = int(rounded) if rounded >= 1 and abs(resolution_ps - rounded) < 1e-9 * rounded else 0
        self._chunks: Iterator[PtuChunk] | None = None
        self._eof = False
        self._pending = _Pending()
        self._window_start_ps = 0
        self.invalid_records = 0

    @property
    def path(self) -> Path:
        """Get the file's path."""
        return self.header.path

    def _words(self) -> np.ndarray:
        n = self.header.n_records
        if n == 0:
            return np.empty(0, dtype="<u4")
        return np.memmap(self.header.path, dtype="<u4", mode="r", offset=self.header.data_offset, shape=(n,))

    def chunks(self) -> Iterator[PtuChunk]:
        """Decode the whole file chunk by chunk (overflow carried across chunks)."""
        words = self._words()
        state = np.zeros(4, dtype=np.int64)
        size = self.chunk_records
        out_t = np.empty(size, dtype=np.int64)
        out_ch = np.empty(size, dtype=np.int32)
        out_mt = np.empty(size, dtype=np.int64)
        out_mb = np.empty(size, dtype=np.uint8)
        rt = self.header.record_type
        for lo in range(0, words.size, size):
            chunk = np.ascontiguousarray(words[lo : lo + size], dtype=np.uint32)
            if rt == RT_PICOHARP_T2:
                _picoharp_t2_kernel(chunk, self.sync_channel, state, out_t, out_ch, out_mt, out_mb)
            else:
                _hydraharp_t2_kernel(chunk, rt == RT_HYDRAHARP_T2, self.sync_channel, state, out_t, out_ch, out_mt, out_mb)
            self.invalid_records = int(state[_N_INVALID])
            n_t, n_m = int(state[_N_TAGS]), int(state[_N_MARKERS])
            yield PtuChunk(
                t_ps=_units_to_ps(out_t[:n_t], self._resolution_ps, self._integral_ps),
                channel=out_ch[:n_t].copy(),
                marker_t_ps=_units_to_ps(out_mt[:n_m], self._resolution_ps, self._integral_ps),
                marker_bits=out_mb[:n_m].copy(),
            )

    def read_all(self) -> TagBlock:
        """All tags of the file in one `TagBlock` (markers in its meta); for files that fit in memory."""
        parts = list(self.chunks())
        t = np.concatenate([p.t_ps for p in parts]) if parts else np.empty(0, np.int64)
        ch = np.concatenate([p.channel for p in parts]) if parts else np.empty(0, np.int32)
        mt = np.concatenate([p.marker_t_ps for p in parts]) if parts else np.empty(0, np.int64)
        mb = np.concatenate([p.marker_bits for p in parts]) if parts else np.empty(0, np.uint8)
        stop = int(max(t[-1] if t.size else 0, mt[-1] if mt.size else 0)) + 1
        return self._block(t, ch, mt, mb, 0, stop)

    def _block(self, t, ch, mt, mb, start_ps: int, stop_ps: int) -> TagBlock:
        if t.size > 1 and np.any(np.diff(t) < 0):
            order = np.argsort(t, kind="stable")
            t, ch = t[order], ch[order]
        meta = {"source": str(self.path), "marker_t_ps": mt, "marker_bits": mb}
        return TagBlock(t, ch, start_ps=start_ps, stop_ps=stop_ps, meta=meta)

    @property
    def exhausted(self) -> bool:
        """True when every record has been returned by `read_window`."""
        if self._chunks is None:
            return self.header.n_records == 0
        return self._eof and self._pending.t_ps.size == 0 and self._pending.marker_t_ps.size == 0

    def read_window(self, duration_ps: int) -> TagBlock:
        """The tags and markers of the next window [start, start + duration_ps) (ps).

        Windows follow each other from time 0.  Returns an empty block past the end
        of the file (check `exhausted`).
        """
        if int(duration_ps) != duration_ps or duration_ps < 1:
            raise QkdInputError(f"PTU window duration must be an integer >= 1 ps, got {duration_ps!r}")
        start = self._window_start_ps
        stop = start + int(duration_ps)
        if self._chunks is None:
            self._chunks = self.chunks()
        p = self._pending
        while not self._eof and (p.t_ps.size == 0 or p.t_ps[-1] < stop) and (
            p.marker_t_ps.size == 0 or p.marker_t_ps[-1] < stop
        ):
            chunk = next(self._chunks, None)
            if chunk is None:
                self._eof = True
                break
            p.t_ps = np.concatenate([p.t_ps, chunk.t_ps])
            p.channel = np.concatenate([p.channel, chunk.channel])
            p.marker_t_ps = np.concatenate([p.marker_t_ps, chunk.marker_t_ps])
            p.marker_bits = np.concatenate([p.marker_bits, chunk.marker_bits])
        take = p.t_ps < stop
        mtake = p.marker_t_ps < stop
        block = self._block(p.t_ps[take], p.channel[take], p.marker_t_ps[mtake], p.marker_bits[mtake], start, stop)
        p.t_ps, p.channel = p.t_ps[~take], p.channel[~take]
        p.marker_t_ps, p.marker_bits = p.marker_t_ps[~mtake], p.marker_bits[~mtake]
        self._window_start_ps = stop
        return block
