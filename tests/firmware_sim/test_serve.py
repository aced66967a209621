"""SimServer: every instrument up on real transports around one SimBench; clean stop; `qkdctl sim serve`."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading

import pytest
import serial

from firmware_sim.config import SimConfig
from firmware_sim.serve import SimServer
from tests.firmware_sim.tagframes import read_frame
from tests.firmware_sim.wire import WireClient


def host_port(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host, int(port)


@pytest.fixture
def sim():
    with SimServer.from_config(SimConfig(), seed=7) as server:
        yield server


def test_resource_strings(sim):
    r = sim.resources
    assert r.voa.startswith("TCPIP::127.0.0.1::") and r.voa.endswith("::SOCKET")
    assert os.path.exists(r.epc) and os.path.exists(r.mpc320) and r.epc != r.mpc320
    assert host_port(r.tagger)[0] == "127.0.0.1" and host_port(r.alice)[0] == "127.0.0.1"
    assert sorted(r.as_dict()) == ["alice", "epc", "mpc320", "tagger", "voa"]


def test_settings_reach_the_sim_bench(sim):
    bench = sim.bench
    port = int(sim.resources.voa.split("::")[2])
    voa = WireClient("127.0.0.1", port)
    voa.send(b":INP3:ATT 12.5;:OUTP3:STAT 1;:INP3:ATT?\n")  # N7764A slot 3 = bench channel 2
    assert voa.readline() == b"+1.25000000E+001\n"
    voa.close()
    assert bench.attenuation_db(2) == 12.5 and bench.output_enabled(2)
    with serial.Serial(sim.resources.epc, timeout=2.0) as epc:
        epc.write(b"V3,-1500\r\n")
        assert epc.readline() == b"Done\r\n"
    assert bench.epc_voltage_mv(3) == -1500
    with serial.Serial(sim.resources.mpc320, timeout=3.0) as mpc:
        mpc.write(struct.pack("<HHBB", 0x0453, 6, 0xD0, 0x01) + struct.pack("<Hl", 4, 685))
        head = mpc.read(6)
        assert struct.unpack("<HHBB", head) == (0x0464, 14, 0x81, 0x50)
        assert struct.unpack("<HlHhI", mpc.read(14))[:2] == (4, 685)
    assert bench.paddle_deg(3) == pytest.approx(85.0)
    tagger = WireClient(*host_port(sim.resources.tagger))
    tagger.send(b"DELAY 1 5000\nTRIG 2 0.3\n")
    assert tagger.readline() + tagger.readline() == b"OK\nOK\n"
    tagger.close()
    assert bench.tagger_delay_ps(1) == 5000 and bench.trigger_level_v(2) == 0.3


def test_tag_block_and_alice_record_share_block_id(sim):
    tagger = WireClient(*host_port(sim.resources.tagger))
    alice = WireClient(*host_port(sim.resources.alice))
    try:
        tagger.send(b"BLOCK 0.0005\n")
        header, records = read_frame(tagger)
        assert header["stop_ps"] - header["start_ps"] == 500_000_000 and header["n"] == len(records) > 0
        alice.send(struct.pack("<4sBBHqI", b"QALI", 1, 0x01, 0, header["block_id"], 0))
        magic, _, rtype, _, block_id, n = struct.unpack("<4sBBHqI", alice.read_exact(20))
        assert (magic, rtype, block_id) == (b"QALR", 0x81, header["block_id"])
        data = alice.read_exact(n)
        first_slot, n_slots = struct.unpack_from("<qQ", data)
        assert n_slots == 500_000 and n == 16 + 3 * n_slots
        basis = data[16:16 + n_slots]
        query = [first_slot, first_slot + 17, first_slot + n_slots - 1]
        payload = struct.pack("<3q", *query)
        alice.send(struct.pack("<4sBBHqI", b"QALI", 1, 0x02, 0, block_id, len(payload)) + payload)
        head = struct.unpack("<4sBBHqI", alice.read_exact(20))
        assert head[2] == 0x82 and alice.read_exact(head[5]) == bytes(basis[s - first_slot] for s in query)
    finally:
        tagger.close()
        alice.close()


def _first_frame(seed: int) -> bytes:
    with SimServer.from_config(SimConfig(), seed=seed) as server:
        client = WireClient(*host_port(server.resources.tagger))
        client.send(b"BLOCK 0.0002\n")
        head = client.read_exact(64)
        n = struct.unpack_from("<Q", head, 32)[0]
        body = client.read_exact(16 * n)
        client.close()
    return head + body


def test_same_seed_same_bytes_on_the_wire():
    assert _first_frame(11) == _first_frame(11)
    assert _first_frame(11) != _first_frame(12)


def test_stop_closes_ports_and_threads():
    before = threading.active_count()
    server = SimServer.from_config(SimConfig(), seed=1)
    r = server.start()
    assert server.start() is r
    client = WireClient(*host_port(r.tagger))
    client.send(b"*IDN?\n")
    assert client.readline().startswith(b"QKDCTL")
    server.stop()
    assert client.read_all(timeout_s=2.0) == b""  # our connection was closed by the server
    client.close()
    with pytest.raises(OSError):
        socket.create_connection(host_port(r.tagger), timeout=1.0)
    assert threading.active_count() == before
    server.stop()


def _qkdctl(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "qkdctl.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw
    )


def test_cli_sim_serve_runs_until_sigterm(tmp_path):
    cfg = tmp_path / "bench.toml"
    cfg.write_text("[sim]\nbob_loss_db = 2.0\n[sim.fiber]\nlength_km = 20.0\n")
    proc = _qkdctl("sim", "serve", str(cfg), "--seed", "3", "--json")
    try:
        line = proc.stdout.readline()
        resources = json.loads(line)
        client = WireClient(*host_port(resources["tagger"]))
        client.send(b"*IDN?\n")
        assert client.readline() == b"QKDCTL,SIM-TAGGER,TT0001,1.0\n"
        client.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert b"[sim]" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_cli_sim_serve_bad_sim_table_exits_2(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[sim]\nbob_loss_db = -1.0\n")
    proc = _qkdctl("sim", "serve", str(cfg))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert b"bob_loss_db" in err and b"Traceback" not in err


def _records(seed: int, commands: bytes) -> list[tuple[int, int, int, int, int]]:
    with SimServer.from_config(SimConfig(), seed=seed) as server:
        client = WireClient(*host_port(server.resources.tagger))
        try:
            client.send(commands)
            for _ in commands.splitlines():
                assert client.readline() == b"OK\n"
            client.send(b"BLOCK 0.0002\n")
            return read_frame(client)[1]
        finally:
            client.close()


def by_channel(records: list[tuple[int, int, int, int, int]], channel: int) -> list[int]:
    return [r[4] for r in records if r[3] == channel]


def test_tagger_delay_moves_that_channels_tags_on_the_sim_bench():
    plain = _records(21, b"DELAY 1 0\n")
    moved = _records(21, b"DELAY 2 1000\n")
    assert len(plain) == len(moved) > 0
    assert [t + 1000 for t in by_channel(plain, 2)] == by_channel(moved, 2)
    for ch in (0, 1, 3, 4):
        assert by_channel(plain, ch) == by_channel(moved, ch)


def test_disabled_tagger_channel_sends_no_tags(sim):
    client = WireClient(*host_port(sim.resources.tagger))
    try:
        client.send(b"ENABLE 3 0\nENABLE? 3\n")
        assert client.readline() + client.readline() == b"OK\n0\n"
        client.send(b"BLOCK 0.0002\n")
        records = read_frame(client)[1]
        assert by_channel(records, 3) == [] and by_channel(records, 1)
        client.send(b"*RST\nENABLE? 3\nENABLE 3 2\n")
        assert client.readline() + client.readline() + client.readline() == (
            b"OK\n1\nERR 2 state '2' is not 0 or 1\n"
        )
    finally:
        client.close()


def test_stop_during_endless_stream_and_long_move():
    before = threading.active_count()
    server = SimServer.from_config(SimConfig(), seed=2)
    r = server.start()
    tagger = WireClient(*host_port(r.tagger))
    tagger.send(b"STREAM 0.0001 0\n")
    assert read_frame(tagger)[0]["n"] > 0
    mpc = serial.Serial(r.mpc320, timeout=1.0)
    mpc.write(struct.pack("<HHBB", 0x0530, 12, 0xD0, 0x01) + struct.pack("<HHHHHH", 0, 10, 0, 1, 1, 1))
    mpc.write(struct.pack("<HHBB", 0x0453, 6, 0xD0, 0x01) + struct.pack("<Hl", 1, 1370))  # 4 s move
    server.stop()
    assert threading.active_count() == before
    mpc.close()
    tagger.close()
