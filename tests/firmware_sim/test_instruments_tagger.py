"""Simulated tagger over TCP: command replies, binary frames, streaming, overflow markers."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from firmware_sim.faults import InstrumentFaults
from firmware_sim.instruments.block_store import BlockStore
from firmware_sim.instruments.servers import TcpService
from firmware_sim.instruments.tag_frame import encode_frame
from firmware_sim.instruments.tagger_server import TaggerFirmware
from qkdctl.core.tags import TagBlock
from tests.firmware_sim.fakebench import FakeBench
from tests.firmware_sim.tagframes import read_frame
from tests.firmware_sim.wire import WireClient


@pytest.fixture
def bench(rng):
    return FakeBench(rng)


@pytest.fixture
def store():
    return BlockStore(capacity=3)


@pytest.fixture
def tagger(bench, store):
    faults = InstrumentFaults("tagger")
    service = TcpService("tagger", TaggerFirmware(bench, faults, store).session, faults)
    service.start()
    client = WireClient(service.host, service.port)
    yield client, faults
    client.close()
    service.stop()


def ask(client: WireClient, line: bytes) -> bytes:
    client.send(line + b"\n")
    return client.readline()


def test_identity_channels_and_settings(tagger, bench):
    client, _ = tagger
    assert ask(client, b"*IDN?") == b"QKDCTL,SIM-TAGGER,TT0001,1.0\n"
    assert ask(client, b"CHAN?") == b"0,1,2,3,4\n"
    assert ask(client, b"TRIG 2 0.25") == b"OK\n"
    assert ask(client, b"TRIG? 2") == b"0.250000\n"
    assert ask(client, b"delay 3 -1500\r") == b"OK\n"
    assert ask(client, b"DELAY? 3") == b"-1500\n"
    assert ask(client, b"DEAD 1 12000") == b"OK\n"
    assert ask(client, b"DEAD? 1") == b"12000\n"
    assert bench.trig[2] == 0.25 and bench.delay[3] == -1500 and bench.dead[1] == 12000
    assert ask(client, b"*RST") == b"OK\n"
    assert ask(client, b"DELAY? 3") == b"0\n"
    assert ask(client, b"RATES?") == b"0=1.000000e+03,1=2.000000e+03,2=3.000000e+03,3=4.000000e+03,4=5.000000e+03\n"


@pytest.mark.parametrize(
    "line, reply",
    [
        (b"FOO", b"ERR 1 unknown command 'FOO'\n"),
        (b"", b"ERR 1 empty command\n"),
        (b"TRIG 1", b"ERR 2 usage: TRIG <ch> <V>\n"),
        (b"TRIG 1 high", b"ERR 2 level 'high' is not a number\n"),
        (b"TRIG 1 3.0", b"ERR 3 level 3.0 V not in -2.5..2.5 V\n"),
        (b"TRIG 9 0.1", b"ERR 4 channel 9 not in 0,1,2,3,4\n"),
        (b"DELAY 1 2000000000", b"ERR 3 delay 2000000000 ps not in -1000000000..1000000000 ps\n"),
        (b"DEAD 1 -5", b"ERR 3 dead time -5 ps not in 0..1000000000 ps\n"),
        (b"DEAD? x", b"ERR 2 channel 'x' is not an integer\n"),
        (b"BLOCK 0", b"ERR 3 duration 0.0 s not in 1e-06..10 s\n"),
        (b"BLOCK nan", b"ERR 2 duration 'nan' is not finite\n"),
        (b"STREAM 0.001", b"ERR 2 usage: STREAM <duration_s> <n_blocks>\n"),
        (b"\xff\xfe", b"ERR 1 unknown command '??'\n"),
    ],
)
def test_errors_are_one_line_and_server_survives(tagger, line, reply):
    client, _ = tagger
    assert ask(client, line) == reply
    assert ask(client, b"*IDN?").startswith(b"QKDCTL")


def test_block_frame_carries_the_bench_tags_and_is_stored(tagger, bench, store):
    client, _ = tagger
    assert ask(client, b"DELAY 2 777") == b"OK\n"
    client.send(b"BLOCK 0.001\n")
    header, records = read_frame(client)
    assert header["block_id"] == 0 and header["start_ps"] == 0 and header["stop_ps"] == 1_000_000_000
    assert header["flags"] == 0 and header["missed"] == 0 and header["n"] == 64
    block = store.get(0)
    assert [r[4] for r in records] == block.tags.t_ps.tolist()
    assert [r[3] for r in records] == block.tags.channel.tolist()
    assert all(r[:3] == (0, 0, 0) for r in records)
    slot_ps = 1_000_000_000 // 64
    delayed = [r[4] % slot_ps for r in records if r[3] == 2]
    assert delayed and set(delayed) == {777}


def test_stream_n_blocks_then_end(tagger, store):
    client, _ = tagger
    client.send(b"STREAM 0.0005 3\n")
    ids = [read_frame(client)[0]["block_id"] for _ in range(3)]
    assert ids == [0, 1, 2]
    assert client.readline() == b"END 3\n"
    assert store.ids() == [0, 1, 2]


def test_stream_until_stop_and_commands_queued_during_stream(tagger):
    client, _ = tagger
    client.send(b"STREAM 0.0005 0\n")
    read_frame(client)
    client.send(b"*IDN?\nSTOP\n")
    while True:
        peek = client.read_exact(4)
        if peek != b"QTAG":
            break
        client.buffer[:0] = peek
        read_frame(client)
    line = peek + client.readline()
    assert line.startswith(b"END ") and int(line.split()[1]) >= 1
    assert client.readline() == b"QKDCTL,SIM-TAGGER,TT0001,1.0\n"


def test_store_evicts_oldest(tagger, store):
    client, _ = tagger
    client.send(b"STREAM 0.0005 5\n")
    for _ in range(5):
        read_frame(client)
    assert client.readline() == b"END 5\n"
    assert store.ids() == [2, 3, 4] and store.get(0) is None


def test_physics_overflow_marks_whole_block():
    tags = TagBlock(np.array([10, 20, 30]), np.array([1, 2, 3]), 0, 100, overflow=True, missed_events=70000)
    frame = encode_frame(7, tags)
    head = struct.unpack("<4sHHQqqQQII8x", frame[:64])
    assert head[3] == 7 and head[6] == 3 + 4 and head[7] == 70000 and head[8] == 1
    recs = list(struct.iter_unpack("<BBHiq", frame[64:]))
    assert recs == [
        (2, 0, 0, -1, 0), (0, 0, 0, 1, 10), (0, 0, 0, 2, 20), (0, 0, 0, 3, 30),
        (4, 0, 65535, -1, 100), (4, 0, 70000 - 65535, -1, 100), (3, 0, 0, -1, 100),
    ]


def test_bench_failure_answers_err_5_and_session_survives(tagger, bench, monkeypatch):
    client, _ = tagger

    def broken(duration_s: float):
        raise RuntimeError("physics exploded")

    monkeypatch.setattr(bench, "acquire", broken)
    assert ask(client, b"BLOCK 0.001") == b"ERR 5 RuntimeError: physics exploded\n"
    assert ask(client, b"*IDN?").startswith(b"QKDCTL")
