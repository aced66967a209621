"""Decode tagger frames exactly as docs/sim_protocols.md describes them (independent of the encoder)."""

from __future__ import annotations

import struct
import zlib

HEADER = "<4sHHQqqQQII8x"


def read_frame(client) -> tuple[dict, list[tuple[int, int, int, int, int]]]:
    """Read one frame from a WireClient: header fields and records (type, reserved, missed, channel, t_ps)."""
    raw = client.read_exact(64)
    assert len(raw) == 64, f"short header {raw!r}"
    magic, version, header_len, block_id, start, stop, n, missed, flags, crc = struct.unpack(HEADER, raw)
    assert (magic, version, header_len) == (b"QTAG", 1, 64), raw[:8]
    body = client.read_exact(16 * n)
    assert len(body) == 16 * n
    assert zlib.crc32(body) == crc
    header = {"block_id": block_id, "start_ps": start, "stop_ps": stop, "n": n, "missed": missed, "flags": flags}
    return header, list(struct.iter_unpack("<BBHiq", body))
