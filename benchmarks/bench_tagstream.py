"""Simulated tagger throughput: frame encoding and BLOCK frames delivered over loopback TCP.

Baseline (timed in the same run): a per-record `struct.pack` encoder of the same
frame, the obvious way to write the firmware.  The goal is that the tagger
server never limits the stack: it should deliver well above the simulator's
20 M tags/s.
"""

from __future__ import annotations

import socket
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from benchmarks.common import best_seconds, result
from firmware_sim.faults import InstrumentFaults
from firmware_sim.instruments.block_store import BlockStore
from firmware_sim.instruments.servers import TcpService
from firmware_sim.instruments.tag_frame import HEADER, MAGIC, VERSION, encode_frame
from firmware_sim.instruments.tagger_server import TaggerFirmware
from qkdctl.core.tags import TagBlock


@dataclass
class _Block:
    block_id: int
    tags: TagBlock
    alice: object = None


class _FixedBench:
    """Returns the same prepared block on every acquire (no physics cost)."""

    def __init__(self, tags: TagBlock) -> None:
        self.tags = tags

    def tagger_channels(self) -> dict[str, int]:
        return {"sync": 0, "H": 1, "V": 2, "D": 3, "A": 4}

    def trigger_level_v(self, ch: int) -> float:
        return 0.5

    def tagger_delay_ps(self, ch: int) -> int:
        return 0

    def tagger_dead_time_ps(self, ch: int) -> int:
        return 2000

    def acquire(self, duration_s: float) -> _Block:
        return _Block(1, self.tags)


def _naive_frame(block_id: int, tags: TagBlock) -> bytes:
    body = b"".join(struct.pack("<BBHiq", 0, 0, 0, int(c), int(t)) for t, c in zip(tags.t_ps, tags.channel))
    return HEADER.pack(MAGIC, VERSION, HEADER.size, block_id, tags.start_ps, tags.stop_ps, len(tags), 0, 0,
                       zlib.crc32(body)) + body


def _tags(n_tags: int, rng: np.random.Generator) -> TagBlock:
    t = np.cumsum(rng.integers(1, 100_000, n_tags)).astype(np.int64)
    return TagBlock(t, rng.integers(0, 5, n_tags).astype(np.int32), 0, int(t[-1]) + 1)


def _fetch_block(sock: socket.socket, n_tags: int) -> None:
    sock.sendall(b"BLOCK 0.001\n")
    want = HEADER.size + 16 * n_tags
    buf = bytearray(want)
    view = memoryview(buf)
    got = 0
    while got < want:
        got += sock.recv_into(view[got:])
    assert buf[:4] == MAGIC


def run(quick: bool) -> list[dict]:
    """Encode rate and loopback delivery rate (tags/s) of the simulated tagger."""
    rng = np.random.default_rng(4)
    n_tags = 200_000 if quick else 4_000_000
    n_naive = 20_000 if quick else 200_000
    tags = _tags(n_tags, rng)
    small = TagBlock(tags.t_ps[:n_naive], tags.channel[:n_naive], 0, tags.stop_ps)
    assert encode_frame(1, small) == _naive_frame(1, small)
    naive_s = best_seconds(lambda: _naive_frame(1, small), repeats=2) * n_tags / n_naive
    encode_s = best_seconds(lambda: encode_frame(1, tags), repeats=3)
    faults = InstrumentFaults("tagger")
    service = TcpService("tagger", TaggerFirmware(_FixedBench(tags), faults, BlockStore(2)).session, faults)
    service.start()
    try:
        with socket.create_connection((service.host, service.port), timeout=30.0) as sock:
            wire_s = best_seconds(lambda: _fetch_block(sock, n_tags), repeats=3)
    finally:
        service.stop()
    return [
        result("tagframe_encode", n_tags, encode_s, "tags/s", "struct.pack per record", naive_s),
        result("tagger_block_loopback", n_tags, wire_s, "tags/s", "struct.pack per record (encode only)", naive_s,
               bytes_per_tag=16),
    ]
