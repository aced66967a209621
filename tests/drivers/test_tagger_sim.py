"""Simulated-tagger client: exact bytes on a scripted link, then the real firmware over loopback TCP."""

from __future__ import annotations

import struct
import time
import zlib

import numpy as np
import pytest

from drivers.alice_host import AliceHostClient
from drivers.tagger.sim_client import SimTagger
from drivers.transport import DeviceError
from firmware_sim.bench import SimBench
from firmware_sim.config import SimConfig
from firmware_sim.serve import SimServer
from qkdctl.core.errors import InstrumentError, QkdInputError, SecurityAbort
from tests.drivers.fake_link import expected_protocol


def frame(block_id, start_ps, stop_ps, records, missed=0, flags=0, crc=None):
    """A tag frame built from the documented layout (independent of the client)."""
    body = b"".join(struct.pack("<BBHiq", *r) for r in records)
    crc = zlib.crc32(body) if crc is None else crc
    head = struct.pack("<4sHHQqqQQII8x", b"QTAG", 1, 64, block_id, start_ps, stop_ps, len(records), missed, flags, crc)
    return head + body


def test_settings_transcript():
    script = [
        (b"CHAN?\n", b"0,1,2,3,4\n"),
        (b"TRIG 2 0.25\n", b"OK\n"),
        (b"DELAY 3 -1500\n", b"OK\n"),
        (b"DEAD 1 12000\n", b"OK\n"),
        (b"TRIG? 2\n", b"0.250000\n"),
        (b"DELAY? 3\n", b"-1500\n"),
        (b"RATES?\n", b"0=1.000000e+03,1=2.500000e+02\n"),
        (b"*IDN?\n", b"QKDCTL,SIM-TAGGER,TT0001,1.0\n"),
    ]
    with expected_protocol(SimTagger, script) as tagger:
        tagger.configure(2, trigger_level_v=0.25)
        tagger.configure(3, input_delay_ps=-1500)
        tagger.set_dead_time_ps(1, 12000)
        assert tagger.channel(2).trigger_level_v == 0.25
        assert tagger.channel(3).input_delay_ps == -1500
        assert tagger.count_rates_hz() == {0: 1000.0, 1: 250.0}
        assert tagger.identity().startswith("QKDCTL")
        assert tagger.channels == (0, 1, 2, 3, 4)


def test_limits_are_checked_before_sending():
    with expected_protocol(SimTagger, [(b"CHAN?\n", b"0,1\n")]) as tagger:
        with pytest.raises(QkdInputError, match=r"trigger_level_v \(V\).*3\.0.*\[-2\.5, 2\.5\]"):
            tagger.set_trigger_level_v(1, 3.0)
        with pytest.raises(QkdInputError, match=r"channel 7 not in \[0, 1\]"):
            tagger.set_dead_time_ps(7, 10)
        with pytest.raises(QkdInputError, match="block duration"):
            tagger.read_block(0.0)


def test_device_error_reply_names_instrument_and_reply():
    with expected_protocol(SimTagger, [(b"CHAN?\n", b"0,1\n"), (b"DEAD 1 5\n", b"ERR 3 dead time out of range\n")],
                           name="tt") as tagger:
        with pytest.raises(DeviceError, match=r"tt: 'DEAD 1 5': instrument error; received 'ERR 3 dead time"):
            tagger.set_dead_time_ps(1, 5)


def test_block_frame_transcript_with_overflow_and_missed_events():
    records = [
        (2, 0, 0, -1, 100),       # overflow begin
        (0, 0, 0, 0, 150),        # sync tag
        (0, 0, 0, 3, 160),
        (4, 0, 65535, -1, 900),   # missed events
        (4, 0, 5, -1, 900),
        (3, 0, 0, -1, 900),       # overflow end
        (0, 0, 0, 1, 950),
    ]
    script = [(b"BLOCK 0.001\n", frame(42, 100, 1000, records, missed=65540, flags=1))]
    with expected_protocol(SimTagger, script) as tagger:
        block = tagger.read_block(0.001)
    assert block.t_ps.tolist() == [150, 160, 950] and block.channel.tolist() == [0, 3, 1]
    assert block.start_ps == 100 and block.stop_ps == 1000
    assert block.overflow and block.missed_events == 65540 and block.meta["block_id"] == 42


def test_clean_block_has_no_overflow():
    script = [(b"BLOCK 2e-06\n", frame(1, 0, 2_000_000, [(0, 0, 0, 4, 7)]))]
    with expected_protocol(SimTagger, script) as tagger:
        block = tagger.read_block(2e-6)
    assert not block.overflow and block.missed_events == 0 and len(block) == 1


@pytest.mark.parametrize(
    "reply, message",
    [
        (b"ERR 3 duration 20.0 s not in 1e-06..10 s\n", r"instrument error; received 'ERR 3 duration"),
        (b"QTXG" + bytes(60), r"garbled tag frame \(magic b'QTXG'"),
        (frame(1, 0, 10, [(0, 0, 0, 1, 5)], crc=123), r"garbled tag frame \(crc32 0x[0-9a-f]+ of 1 records != header 0x0000007b\)"),
        (frame(1, 0, 10, [(9, 0, 0, 1, 5)]), r"record type 9 unknown"),
        (frame(1, 0, 10, [(0, 0, 0, 1, 5)], missed=3), r"header says 3 missed events, records say 0"),
        (frame(1, 0, 10, [(0, 0, 0, 1, 5), (0, 0, 0, 1, 4)]), r"tag frame of block 1 rejected: .*out of order"),
        (frame(1, 0, 10, [(0, 0, 0, 1, 5)])[:70], r"'BLOCK 0.001': timeout"),
        (b"QTAG\x01", r"'BLOCK 0.001': timeout"),
    ],
)
def test_bad_frames_raise_instrument_error(reply, message):
    with expected_protocol(SimTagger, [(b"BLOCK 0.001\n", reply)], name="tt") as tagger:
        with pytest.raises(InstrumentError, match=message) as info:
            tagger.read_block(0.001)
        assert str(info.value).startswith(("tt: ", "fake: "))  # driver name, or its transport's for timeouts
        tagger.transport.link.inbox = b""  # the client discards or leaves partial input; the script is done


def test_stopped_randomness_source_is_a_security_abort():
    reply = b"ERR 6 QRNG stopped: health test failed at raw sample 23\n"
    with expected_protocol(SimTagger, [(b"BLOCK 0.001\n", reply)], name="tt") as tagger:
        with pytest.raises(SecurityAbort, match=r"tt: 'BLOCK 0.001': QRNG stopped: health test failed"):
            tagger.read_block(0.001)


def test_stream_transcript():
    script = [(b"STREAM 0.0005 2\n", frame(3, 0, 5, [(0, 0, 0, 1, 1)]) + frame(4, 5, 10, [(0, 0, 0, 2, 6)]) + b"END 2\n")]
    with expected_protocol(SimTagger, script) as tagger:
        blocks = list(tagger.stream(0.0005, 2))
    assert [b.meta["block_id"] for b in blocks] == [3, 4] and blocks[1].t_ps.tolist() == [6]


# ---- integration: the real firmware over a loopback socket ------------------------------------------


@pytest.fixture
def sim():
    with SimServer(SimBench(SimConfig(), seed=11)) as server:
        yield server


def test_against_firmware_settings_block_and_alice(sim):
    res = sim.resources
    with SimTagger.open(res.tagger, timeout_s=2.0) as tagger, AliceHostClient.open(res.alice, timeout_s=2.0) as alice:
        assert tagger.channels == tuple(sorted(sim.bench.tagger_channels().values()))
        ch = tagger.channels[2]
        tagger.configure(ch, trigger_level_v=0.125, input_delay_ps=-250, dead_time_ps=30_000)
        assert sim.bench.trigger_level_v(ch) == pytest.approx(0.125)
        assert sim.bench.tagger_delay_ps(ch) == -250 and tagger.channel(ch).dead_time_ps == 30_000
        tagger.configure(ch, input_delay_ps=0)
        block = tagger.read_block(0.001)
        stored = sim.store.get(block.meta["block_id"])
        np.testing.assert_array_equal(block.t_ps, stored.tags.t_ps)
        np.testing.assert_array_equal(block.channel, stored.tags.channel)
        assert len(block) > 0 and not block.overflow
        assert set(tagger.count_rates_hz()) == set(tagger.channels)
        record = alice.record_for(block)
        np.testing.assert_array_equal(record.basis, stored.alice.basis)
        assert record.first_slot == stored.alice.first_slot
        slots = record.first_slot + np.array([0, 5, len(record) - 1])
        np.testing.assert_array_equal(alice.get_bases(block.meta["block_id"], slots), stored.alice.basis[[0, 5, -1]])
        assert block.meta["block_id"] in alice.list_blocks()
        streamed = list(tagger.stream(0.0005, 2))
        assert [b.meta["block_id"] for b in streamed] == [block.meta["block_id"] + 1, block.meta["block_id"] + 2]


def test_against_firmware_faults(sim):
    faults = sim.faults["tagger"]
    with SimTagger.open(sim.resources.tagger, timeout_s=0.5, block_timeout_s=1.0) as tagger:
        faults.set(tagger_overflow=True)
        block = tagger.read_block(0.001)
        assert block.overflow and block.missed_events > 0
        faults.set(tagger_overflow=False, corrupt=True)
        with pytest.raises(InstrumentError, match="garbled tag frame"):
            tagger.read_block(0.001)
        faults.set(corrupt=False, drop_replies=True)
        start = time.monotonic()
        with pytest.raises(InstrumentError, match="timeout"):
            tagger.read_block(0.001)
        assert time.monotonic() - start < 3.0
        faults.set(drop_replies=False)
        assert len(tagger.read_block(0.001)) > 0
        faults.set(disconnect=True)
        with pytest.raises(InstrumentError):
            tagger.read_block(0.001)
