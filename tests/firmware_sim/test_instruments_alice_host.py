"""Alice's host over TCP: exact frames for record, disclosure and errors."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from firmware_sim.faults import InstrumentFaults
from firmware_sim.instruments.alice_host import AliceHost
from firmware_sim.instruments.block_store import BlockStore
from firmware_sim.instruments.servers import TcpService
from qkdctl.core.records import AliceRecord
from tests.firmware_sim.wire import WireClient

HEAD = "<4sBBHqI"


class _Block:
    def __init__(self, block_id: int, alice: AliceRecord) -> None:
        self.block_id = block_id
        self.alice = alice


@pytest.fixture
def store():
    s = BlockStore(capacity=4)
    s.put(_Block(5, AliceRecord([0, 1, 1, 0, 1], [1, 1, 0, 0, 1], [0, 0, 1, 2, 0], first_slot=1000)))
    s.put(_Block(6, AliceRecord([1, 1], [0, 1], [2, 2], first_slot=1005)))
    return s


@pytest.fixture
def client(store):
    faults = InstrumentFaults("alice")
    service = TcpService("alice", AliceHost(store).session, faults)
    service.start()
    wire = WireClient(service.host, service.port)
    yield wire
    wire.close()
    service.stop()


def request(client: WireClient, msg_type: int, block_id: int, payload: bytes = b"") -> tuple[int, int, bytes]:
    client.send(struct.pack(HEAD, b"QALI", 1, msg_type, 0, block_id, len(payload)) + payload)
    magic, version, rtype, reserved, rblock, n = struct.unpack(HEAD, client.read_exact(20))
    assert (magic, version, reserved) == (b"QALR", 1, 0)
    return rtype, rblock, client.read_exact(n)


def slots(*values: int) -> bytes:
    return np.array(values, dtype="<i8").tobytes()


def test_get_record_exact_bytes(client):
    rtype, rblock, data = request(client, 0x01, 5)
    assert (rtype, rblock) == (0x81, 5)
    assert data == struct.pack("<qQ", 1000, 5) + bytes([0, 1, 1, 0, 1]) + bytes([1, 1, 0, 0, 1]) + bytes([0, 0, 1, 2, 0])


def test_bases_intensities_bits_of_slots(client):
    assert request(client, 0x02, 5, slots(1004, 1000, 1001)) == (0x82, 5, bytes([1, 0, 1]))
    assert request(client, 0x03, 5, slots(1003, 1002)) == (0x83, 5, bytes([2, 1]))
    assert request(client, 0x05, 6, slots(1006)) == (0x85, 6, bytes([1]))
    assert request(client, 0x02, 5, b"") == (0x82, 5, b"")


def test_list_blocks(client):
    assert request(client, 0x04, 0) == (0x84, 0, struct.pack("<qq", 5, 6))


@pytest.mark.parametrize(
    "msg_type, block_id, payload, code, text",
    [
        (0x01, 9, b"", 3, "block 9 not held; held: [5, 6]"),
        (0x02, 5, slots(1005), 4, "slot 1005 outside block slots 1000..1004"),
        (0x02, 5, slots(999), 4, "slot 999 outside block slots 1000..1004"),
        (0x03, 5, b"\x00" * 7, 5, "slot list of 7 bytes is not a multiple of 8"),
        (0x42, 5, b"", 2, "unknown message type 0x42"),
    ],
)
def test_errors_then_connection_still_serves(client, msg_type, block_id, payload, code, text):
    rtype, rblock, data = request(client, msg_type, block_id, payload)
    assert (rtype, rblock) == (0xFF, block_id)
    assert struct.unpack_from("<H", data)[0] == code and data[2:].decode() == text
    assert request(client, 0x04, 0)[0] == 0x84


def test_bad_magic_gets_error_then_close(client):
    client.send(struct.pack(HEAD, b"JUNK", 1, 0x01, 0, 5, 0))
    magic, _, rtype, _, _, n = struct.unpack(HEAD, client.read_exact(20))
    assert magic == b"QALR" and rtype == 0xFF
    assert struct.unpack_from("<H", client.read_exact(n))[0] == 1
    assert client.read_all() == b""


def test_choice_probabilities_set_query_and_refused(store):
    from firmware_sim.bench import SimBench
    from firmware_sim.config import SimConfig

    bench = SimBench(SimConfig(), 1)
    host = AliceHost(store, bench)

    def ask(msg_type: int, payload: bytes = b"") -> tuple[int, bytes]:
        frame = host.answer(msg_type, 0, payload)
        head = struct.unpack(HEAD, bytes(frame[:20]))
        return head[2], bytes(frame[20:])

    assert ask(0x07) == (0x87, struct.pack("<dddd", 0.5, 0.7, 0.2, 0.1))
    assert ask(0x06, struct.pack("<dddd", 0.8, 0.5, 0.3, 0.2)) == (0x86, struct.pack("<dddd", 0.8, 0.5, 0.3, 0.2))
    assert bench.choice_probabilities() == (0.8, (0.5, 0.3, 0.2))
    for bad in ((1.0, 0.5, 0.3, 0.2), (0.5, 0.5, 0.3, 0.3), (0.5, -0.1, 0.9, 0.2)):
        rtype, body = ask(0x06, struct.pack("<dddd", *bad))
        assert rtype == 0xFF and struct.unpack_from("<H", body)[0] == 6
        assert b"P(Z)" in body or b"sum to 1" in body
    rtype, body = ask(0x06, b"\x00" * 8)
    assert rtype == 0xFF and struct.unpack_from("<H", body)[0] == 5
    assert bench.choice_probabilities() == (0.8, (0.5, 0.3, 0.2))
    frame = AliceHost(store).answer(0x07, 0, b"")
    assert struct.unpack(HEAD, bytes(frame[:20]))[2] == 0xFF and struct.unpack_from("<H", bytes(frame[20:]))[0] == 7
