"""The firmware never crashes: arbitrary input gives error replies, and it keeps answering."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_sim.bench import SimBench
from firmware_sim.config import SimConfig
from firmware_sim.faults import InstrumentFaults
from firmware_sim.instruments import apt
from firmware_sim.instruments.alice_host import RESPONSE_MAGIC, AliceHost
from firmware_sim.instruments.block_store import BlockStore
from firmware_sim.instruments.epc400 import Epc400Firmware
from firmware_sim.instruments.mpc320_apt import Mpc320Firmware
from firmware_sim.instruments.tagger_server import TaggerError, TaggerFirmware
from firmware_sim.instruments.voa_scpi import IDN, VoaFirmware
from qkdctl.core.records import AliceRecord

BENCH = SimBench(SimConfig(), seed=3)
SCPI_WORDS = st.sampled_from(
    [":INP1:ATT", ":INP2:WAV", ":OUTP3", "ATT", "*IDN?", "*RST", ":SYST:ERR?", "MAX", "1e-6", "-3", "ON",
     ";", " ", ":", "?", "nm", "dB", "x", "1.5e400", "nan"]
)


@settings(max_examples=150, deadline=None)
@given(st.lists(SCPI_WORDS, max_size=8).map("".join))
def test_voa_survives_any_line(line):
    firmware = VoaFirmware(BENCH, InstrumentFaults("voa"))
    reply = firmware.execute(line)
    assert reply is None or isinstance(reply, str)
    assert firmware.execute("*IDN?") == IDN
    assert all(0 <= BENCH.attenuation_db(ch) <= 45 for ch in range(1, 5))


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_epc_survives_any_bytes(data):
    firmware = Epc400Firmware(BENCH)
    replies = firmware.feed(data, 0.0)
    assert all(r.endswith(b"Done\r\n") or r.startswith(b"Error-") for r in replies)
    assert firmware.feed(b"\r\nV?\r\n", 0.0)[-1].endswith(b"Done\r\n")


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_apt_parser_and_mpc320_survive_any_bytes(data):
    firmware = Mpc320Firmware(BENCH)
    replies = firmware.feed(data, 0.0) + firmware.tick(1e9)
    assert all(len(r) >= 6 for r in replies)
    known = apt.SHORT_IDS | set(apt.LONG_DATA_BYTES)
    msgs = apt.AptParser().feed(data)
    assert all(m.source == apt.HOST and m.msg_id in known for m in msgs)
    assert apt.AptParser().feed(data + bytes(6) * 2 + apt.encode_short(0x0005, dest=0x50, source=0x01))


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 255), st.integers(-5, 5), st.binary(max_size=40))
def test_alice_host_answers_any_request(msg_type, block_id, payload):
    store = BlockStore()
    store.put(type("B", (), {"block_id": 1, "alice": AliceRecord([0, 1], [1, 0], [2, 0], first_slot=4)})())
    frame = AliceHost(store).answer(msg_type, block_id, payload)
    assert frame[:4] == RESPONSE_MAGIC


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="TRIGDELAYEBOCKSN?*0123456789 .-e", max_size=24))
def test_tagger_commands_answer_or_raise_typed(line):
    firmware = TaggerFirmware(BENCH, InstrumentFaults("tagger"), BlockStore())
    try:
        reply = firmware.command(line)
    except TaggerError as exc:
        assert 1 <= exc.code <= 5 and exc.text
    else:
        assert isinstance(reply, str) and "\n" not in reply
    assert np.isfinite(BENCH.trigger_level_v(1))
