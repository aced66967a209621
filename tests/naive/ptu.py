"""Slow, record-by-record PTU T2 decoder written straight from the format description."""

from __future__ import annotations

import struct


def read_header(path) -> tuple[dict, int]:
    """(tags by name, byte offset of the first record) of a PTU file."""
    with open(path, "rb") as fh:
        assert fh.read(8) == b"PQTTTR\0\0"
        fh.read(8)
        tags = {}
        while True:
            ident, idx, typ = struct.unpack("<32siI", fh.read(40))
            raw = fh.read(8)
            name = ident.rstrip(b"\0").decode()
            if typ in (0x10000008, 0x11000008, 0x12000008):
                value = struct.unpack("<q", raw)[0]
            elif typ in (0x20000008, 0x21000008):
                value = struct.unpack("<d", raw)[0]
            elif typ in (0x2001FFFF, 0x4001FFFF, 0x4002FFFF, 0xFFFFFFFF):
                value = fh.read(struct.unpack("<q", raw)[0])
            else:
                value = raw
            if name == "Header_End":
                return tags, fh.tell()
            tags[name] = value


def decode_t2(words, record_type: int, sync_channel: int = 0):
    """(tags [(time units, channel)], markers [(time units, bits)]) of a list of records."""
    tags, markers = [], []
    ofl = 0
    for w in words:
        w = int(w)
        if record_type == 0x00010203:  # PicoHarp T2
            ch, tt = w >> 28, w & 0x0FFFFFFF
            if ch == 15:
                if tt & 15 == 0:
                    ofl += 210698240
                else:
                    markers.append((ofl + tt - (tt & 15), tt & 15))
            else:
                tags.append((ofl + tt, sync_channel if ch == 0 else ch))
            continue
        special, ch, tt = w >> 31, (w >> 25) & 63, w & (2**25 - 1)
        if special and ch == 63:
            if record_type == 0x00010204:  # HydraHarp v1
                ofl += 33552000
            else:
                ofl += 33554432 * max(tt, 1)
        elif special and ch == 0:
            tags.append((ofl + tt, sync_channel))
        elif special and ch <= 15:
            markers.append((ofl + tt, ch))
        elif not special:
            tags.append((ofl + tt, ch + 1))
    return tags, markers


def read_ptu(path, sync_channel: int = 0):
    """(tags [(ps, channel)], markers [(ps, bits)]) of a whole T2 PTU file."""
    tags, offset = read_header(path)
    res_ps = round(tags["MeasDesc_GlobalResolution"] * 1e12)
    n = tags["TTResult_NumberOfRecords"]
    with open(path, "rb") as fh:
        fh.seek(offset)
        words = struct.unpack(f"<{n}I", fh.read(4 * n))
    t, m = decode_t2(words, tags["TTResultFormat_TTTRRecType"], sync_channel)
    return [(u * res_ps, c) for u, c in t], [(u * res_ps, b) for u, b in m]
