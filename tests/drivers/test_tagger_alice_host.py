"""Alice-host client: exact request/response bytes on a scripted link, errors (the firmware test is in test_tagger_sim)."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from drivers.alice_host import AliceHostClient
from drivers.transport import DeviceError
from qkdctl.core.errors import InstrumentError, QkdInputError
from qkdctl.core.tags import TagBlock
from tests.drivers.fake_link import expected_protocol


def req(msg_type, block_id, payload=b""):
    return struct.pack("<4sBBHqI", b"QALI", 1, msg_type, 0, block_id, len(payload)) + payload


def resp(msg_type, block_id, payload=b"", magic=b"QALR"):
    return struct.pack("<4sBBHqI", magic, 1, msg_type, 0, block_id, len(payload)) + payload


def test_record_and_disclosures_transcript():
    record = struct.pack("<qQ", 1000, 3) + bytes([0, 1, 1]) + bytes([1, 0, 1]) + bytes([0, 2, 1])
    slots = struct.pack("<2q", 1000, 1002)
    script = [
        (req(0x04, 0), resp(0x84, 0, struct.pack("<2q", 5, 6))),
        (req(0x01, 5), resp(0x81, 5, record)),
        (req(0x02, 5, slots), resp(0x82, 5, bytes([0, 1]))),
        (req(0x03, 5, slots), resp(0x83, 5, bytes([0, 1]))),
        (req(0x05, 5, slots), resp(0x85, 5, bytes([1, 1]))),
    ]
    with expected_protocol(AliceHostClient, script) as alice:
        assert alice.list_blocks() == [5, 6]
        rec = alice.record_for(TagBlock([], [], meta={"block_id": 5}))
        assert rec.first_slot == 1000
        assert rec.basis.tolist() == [0, 1, 1] and rec.bit.tolist() == [1, 0, 1] and rec.intensity.tolist() == [0, 2, 1]
        assert alice.get_bases(5, [1000, 1002]).tolist() == [0, 1]
        assert alice.get_intensities(5, np.array([1000, 1002])).tolist() == [0, 1]
        assert alice.get_bits(5, [1000, 1002]).tolist() == [1, 1]


def test_error_response_is_a_device_error():
    err = struct.pack("<H", 3) + b"block 9 not held; held: [5, 6]"
    with expected_protocol(AliceHostClient, [(req(0x01, 9), resp(0xFF, 9, err))], name="alice") as alice:
        with pytest.raises(DeviceError, match=r"alice: request 0x01 block 9: Alice host error 3: block 9 not held"):
            alice.get_record(9)


@pytest.mark.parametrize(
    "reply, message",
    [
        (resp(0x81, 5, magic=b"XALR"), "garbled reply \\(bad magic"),
        (resp(0x82, 5, struct.pack("<qQ", 0, 0)), "reply type 0x82 for block 5"),
        (resp(0x81, 5, struct.pack("<qQ", 0, 4) + bytes(3)), "19 bytes for 4 slots"),
        (resp(0x81, 5, struct.pack("<qQ", 0, 1) + bytes([2, 0, 0])), "AliceRecord.basis holds 2"),
        (resp(0x81, 5, struct.pack("<qQ", 0, 1)), "16 bytes for 1 slots"),
        (resp(0x81, 5)[:10], "timeout"),
    ],
)
def test_garbled_replies(reply, message):
    with expected_protocol(AliceHostClient, [(req(0x01, 5), reply)], name="alice") as alice:
        with pytest.raises(InstrumentError, match=message):
            alice.get_record(5)
        alice.transport.link.inbox = b""


def test_block_without_id_is_rejected():
    with expected_protocol(AliceHostClient, []) as alice:
        with pytest.raises(QkdInputError, match="no meta\\['block_id'\\]"):
            alice.record_for(TagBlock([], []))


def test_choice_probabilities_transcript():
    in_force = struct.pack("<dddd", 0.5, 0.7, 0.2, 0.1)
    new = struct.pack("<dddd", 0.8, 0.5, 0.3, 0.2)
    script = [(req(0x07, 0), resp(0x87, 0, in_force)), (req(0x06, 0, new), resp(0x86, 0, new))]
    with expected_protocol(AliceHostClient, script) as alice:
        assert alice.get_choice() == (0.5, (0.7, 0.2, 0.1))
        assert alice.set_choice(0.8, (0.5, 0.3, 0.2)) == (0.8, (0.5, 0.3, 0.2))
    with expected_protocol(AliceHostClient, []) as alice:
        with pytest.raises(QkdInputError, match="sum"):
            alice.set_choice(0.5, (0.5, 0.3, 0.3))
        with pytest.raises(QkdInputError, match="P\\(Z\\)"):
            alice.set_choice(1.0, (0.5, 0.3, 0.2))


def test_choice_refused_by_host_is_a_device_error():
    err = struct.pack("<H", 6) + b"P(Z) = 1.5 must lie in (0, 1)"
    bad = struct.pack("<dddd", 0.5, 0.5, 0.3, 0.2)
    with expected_protocol(AliceHostClient, [(req(0x06, 0, bad), resp(0xFF, 0, err))], name="alice") as alice:
        with pytest.raises(DeviceError, match="Alice host error 6"):
            alice.set_choice(0.5, (0.5, 0.3, 0.2))
