"""Injected faults: each misbehaves on the wire as promised, and clearing it heals the instrument."""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest
import serial

from firmware_sim.bench import SimBench
from firmware_sim.config import SimConfig
from firmware_sim.faults import Faults, InstrumentFaults, corrupt_bytes
from firmware_sim.instruments.alice_host import AliceHost
from firmware_sim.instruments.block_store import BlockStore
from firmware_sim.instruments.epc400 import Epc400Firmware
from firmware_sim.instruments.mpc320_apt import Mpc320Firmware
from firmware_sim.instruments.ptys import PtyPort
from firmware_sim.instruments.servers import TcpService
from firmware_sim.instruments.tagger_server import TaggerFirmware
from firmware_sim.instruments.voa_scpi import IDN, VoaFirmware
from qkdctl.core.errors import QkdInputError
from tests.firmware_sim.fakebench import FakeBench
from tests.firmware_sim.tagframes import read_frame
from tests.firmware_sim.wire import WireClient

IDN_LINE = (IDN + "\n").encode()


@pytest.fixture
def bench():
    """The real simulated bench (settings only; these tests acquire nothing)."""
    return SimBench(SimConfig(), seed=5)


@pytest.fixture
def fake_bench(rng):
    """Deterministic 64-tag blocks for exact tagger frame sizes."""
    return FakeBench(rng)


@pytest.fixture
def voa(bench):
    faults = InstrumentFaults("voa")
    service = TcpService("voa", VoaFirmware(bench, faults).session, faults)
    service.start()
    clients: list[WireClient] = []

    def connect() -> WireClient:
        clients.append(WireClient(service.host, service.port))
        return clients[-1]

    yield connect, faults
    for c in clients:
        c.close()
    service.stop()


@pytest.fixture
def tagger(fake_bench):
    faults = InstrumentFaults("tagger")
    store = BlockStore()
    service = TcpService("tagger", TaggerFirmware(fake_bench, faults, store).session, faults)
    service.start()
    client = WireClient(service.host, service.port)
    yield client, faults, store
    client.close()
    service.stop()


@pytest.fixture
def epc(bench):
    faults = InstrumentFaults("epc")
    pty = PtyPort("epc", Epc400Firmware(bench), faults)
    pty.start()
    link = serial.Serial(pty.path, timeout=0.3)
    yield link, faults
    link.close()
    pty.stop()


def test_registry_and_validation():
    faults = Faults()
    faults["voa"].set(drop_replies=True)
    faults["tagger"].set(delay_s=0.5)
    assert faults.names() == ["tagger", "voa"]
    assert faults["voa"].snapshot().drop_replies and faults["tagger"].snapshot().delay_s == 0.5
    faults.clear_all()
    assert not faults["voa"].snapshot().drop_replies and faults["tagger"].snapshot().delay_s == 0.0
    with pytest.raises(QkdInputError, match="delay_s"):
        faults["voa"].set(delay_s=-1.0)
    with pytest.raises(QkdInputError, match="code"):
        faults["voa"].queue_error("x", "msg")


def test_corrupt_bytes_keeps_terminator():
    assert corrupt_bytes(b"AB\n", b"\n") == b"\xc1\xc2\n"
    assert corrupt_bytes(b"AB", b"\n") == b"\xc1\xc2"
    assert corrupt_bytes(b"\x00\xff") == b"\x80\x7f"


def test_dropped_replies_then_recovery(voa, bench):
    connect, faults = voa
    client = connect()
    faults.set(drop_replies=True)
    client.send(b":INP1:ATT 9;ATT?\n")
    with pytest.raises(socket.timeout):
        client.readline(timeout_s=0.3)
    assert bench.attenuation_db(1) == 9.0  # the command took effect, only the reply was lost
    faults.clear()
    client.send(b"*IDN?\n")
    assert client.readline() == IDN_LINE


def test_delayed_reply_beyond_client_timeout(voa):
    connect, faults = voa
    client = connect()
    faults.set(delay_s=0.4)
    client.send(b"*IDN?\n")
    with pytest.raises(socket.timeout):
        client.readline(timeout_s=0.15)
    assert client.readline(timeout_s=2.0) == IDN_LINE  # the late reply still arrives
    faults.clear()
    t0 = time.monotonic()
    client.send(b"*IDN?\n")
    assert client.readline() == IDN_LINE and time.monotonic() - t0 < 0.2


def test_corrupted_reply_bytes(voa):
    connect, faults = voa
    client = connect()
    faults.set(corrupt=True)
    client.send(b"*IDN?\n")
    line = client.readline()
    assert line == bytes(b ^ 0x80 for b in IDN.encode()) + b"\n"
    faults.clear()
    client.send(b"*IDN?\n")
    assert client.readline() == IDN_LINE


def test_disconnect_mid_command_then_reconnect(voa, bench):
    connect, faults = voa
    client = connect()
    faults.set(disconnect=True)
    client.send(b":INP2:ATT 4;ATT?\n")
    assert client.read_all() == b"+4.00000"  # first half of "+4.00000000E+000\n", then end of stream
    faults.clear()
    again = connect()
    again.send(b":INP2:ATT?\n")
    assert again.readline() == b"+4.00000000E+000\n"


def test_queued_error_entries(voa):
    connect, faults = voa
    client = connect()
    faults.queue_error(-310, "System error")
    faults.queue_error(-350, "Queue overflow")
    client.send(b":SYST:ERR?\n")
    assert client.readline() == b'-310,"System error"\n'
    client.send(b":SYST:ERR?\n:SYST:ERR?\n")
    assert client.readline() + client.readline() == b'-350,"Queue overflow"\n+0,"No error"\n'


def test_tagger_overflow_drops_middle_third_with_markers(tagger):
    client, faults, store = tagger
    faults.set(tagger_overflow=True)
    client.send(b"BLOCK 0.001\n")
    header, records = read_frame(client)
    tags = store.get(header["block_id"]).tags
    lo, hi = 1_000_000_000 // 3, 2 * 1_000_000_000 // 3
    lost = int(((tags.t_ps >= lo) & (tags.t_ps < hi)).sum())
    assert header["flags"] == 1 and header["missed"] == lost > 0
    types = [r[0] for r in records]
    assert types.count(2) == 1 and types.count(3) == 1 and types.count(4) == 1
    begin, missed_at, end = types.index(2), types.index(4), types.index(3)
    assert records[begin][3:] == (-1, lo) and records[end][3:] == (-1, hi)
    assert records[missed_at][2] == lost and begin < missed_at < end
    assert all(not lo <= r[4] < hi for r in records if r[0] == 0)
    times = [r[4] for r in records]
    assert times == sorted(times)
    faults.clear()
    client.send(b"BLOCK 0.001\n")
    header, records = read_frame(client)
    assert header["flags"] == 0 and all(r[0] == 0 for r in records)


def test_tagger_disconnect_cuts_frame(tagger):
    client, faults, _ = tagger
    faults.set(disconnect=True)
    client.send(b"BLOCK 0.001\n")
    data = client.read_all()
    assert data.startswith(b"QTAG") and len(data) == (64 + 64 * 16) // 2


def test_serial_line_dead_while_disconnected(epc, bench):
    link, faults = epc
    faults.set(disconnect=True)
    link.write(b"V1,100\r\n")
    assert link.readline() == b""
    assert bench.epc_voltage_mv(1) == 0  # input discarded: a dead line executes nothing
    faults.clear()
    link.write(b"V1,100\r\n")
    assert link.readline() == b"Done\r\n"
    assert bench.epc_voltage_mv(1) == 100


def test_serial_corrupt_and_drop(epc):
    link, faults = epc
    faults.set(corrupt=True)
    link.write(b"VZ1\r\n")
    assert link.readline() == bytes(b ^ 0x80 for b in b"Done") + b"\r\n"
    faults.set(corrupt=False, drop_replies=True)
    link.write(b"VZ1\r\n")
    assert link.readline() == b""
    faults.clear()
    link.write(b"VZ1\r\n")
    assert link.readline() == b"Done\r\n"


def test_apt_reply_delayed_beyond_timeout(bench):
    faults = InstrumentFaults("mpc320")
    pty = PtyPort("mpc320", Mpc320Firmware(bench), faults)
    pty.start()
    link = serial.Serial(pty.path, timeout=0.15)
    try:
        faults.set(delay_s=0.4)
        link.write(struct.pack("<HBBBB", 0x0005, 0, 0, 0x50, 0x01))
        assert link.read(6) == b""
        link.timeout = 2.0
        assert link.read(6) == bytes([0x06, 0x00, 84, 0x00, 0x81, 0x50])
        assert len(link.read(84)) == 84
    finally:
        link.close()
        pty.stop()


def test_corrupt_tagger_frame_has_garbled_magic(tagger):
    client, faults, _ = tagger
    faults.set(corrupt=True)
    client.send(b"BLOCK 0.001\n")
    raw = client.read_exact(64 + 64 * 16)
    assert raw[:4] == bytes(b ^ 0x80 for b in b"QTAG")
    faults.clear()
    client.send(b"BLOCK 0.001\n")
    assert read_frame(client)[0]["flags"] == 0


def test_alice_host_delayed_and_dropped_responses(rng):
    store = BlockStore()
    store.put(FakeBench(rng).acquire(1e-3))
    faults = InstrumentFaults("alice")
    service = TcpService("alice", AliceHost(store).session, faults)
    service.start()
    client = WireClient(service.host, service.port)
    request = struct.pack("<4sBBHqI", b"QALI", 1, 0x04, 0, 0, 0)
    try:
        faults.set(drop_replies=True)
        client.send(request)
        with pytest.raises(socket.timeout):
            client.read_exact(20, timeout_s=0.2)
        faults.set(drop_replies=False, delay_s=0.3)
        client.send(request)
        with pytest.raises(socket.timeout):
            client.read_exact(20, timeout_s=0.1)
        assert struct.unpack("<4sBBHqI", client.read_exact(20, timeout_s=2.0))[2] == 0x84
        faults.clear()
        client.read_exact(8)
        client.send(request)
        assert struct.unpack("<4sBBHqI", client.read_exact(20))[5] == 8
    finally:
        client.close()
        service.stop()


def test_concurrent_voa_clients_keep_their_replies(voa, bench):
    connect, _ = voa
    clients = [connect() for _ in range(4)]
    errors: list[str] = []

    def work(k: int, client: WireClient) -> None:
        for i in range(25):
            value = f"{(k * 25 + i) % 45}.5".encode()
            client.send(b":INP%d:ATT %s;ATT?\n" % (k + 1, value))
            reply = client.readline()
            if float(reply) != float(value):
                errors.append(f"client {k}: sent {value!r}, read {reply!r}")

    threads = [threading.Thread(target=work, args=(k, c)) for k, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    clients[0].send(b":SYST:ERR?\n")
    assert clients[0].readline() == b'+0,"No error"\n'
