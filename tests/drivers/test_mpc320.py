"""Transcript tests of the APT framing and the Thorlabs MPC320 driver (frames written out by hand)."""

import struct

import pytest

from drivers.polarization.apt import AptId, AptMessage, MotorStatus, read_message
from drivers.polarization.mpc320 import Mpc320, deg_to_steps, parse_hardware_info, steps_to_deg
from drivers.transport import DeviceError
from qkdctl.core.errors import InstrumentError, QkdInputError
from tests.drivers.fake_link import expected_protocol, fake_transport

H = bytes.fromhex


def test_short_and_long_frames():
    assert AptMessage(0x0223).to_bytes() == H("23 02 00 00 50 01")
    assert AptMessage(0x0210, 4, 2).to_bytes() == H("10 02 04 02 50 01")
    assert AptMessage(0x0453, data=H("02 00 ad 02 00 00")).to_bytes() == H("53 04 06 00 d0 01 02 00 ad 02 00 00")


def test_read_message_short_and_long():
    transport, link = fake_transport([(None, H("44 04 01 00 01 50") + H("91 04 03 00 81 50 aa bb cc"))])
    first = read_message(transport, timeout_s=0.1, label="x")
    assert (first.msg_id, first.param1, first.data) == (AptId.MOT_MOVE_HOMED, 1, None)
    second = read_message(transport, timeout_s=0.1, label="x")
    assert (second.msg_id, second.data, second.dest) == (0x0491, H("aa bb cc"), 0x01)
    link.assert_done()


def test_read_message_rejects_header_not_for_host():
    transport, _ = fake_transport([(None, H("64 04 01 00 50 01"))])
    with pytest.raises(InstrumentError, match=r"garbled APT header \(destination 0x50"):
        read_message(transport, timeout_s=0.1, label="x")


def test_steps_degrees():
    assert deg_to_steps(170.0) == 1370
    assert deg_to_steps(85.0) == 685
    assert steps_to_deg(1370) == 170.0
    assert steps_to_deg(685) == pytest.approx(85.0)


def test_move_absolute_waits_for_completion_long_reply():
    completed = H("64 04 0e 00 81 50") + H("02 00 ad 02 00 00 00 00 00 00 00 00 00 80")
    with expected_protocol(Mpc320, [(H("53 04 06 00 d0 01 02 00 ad 02 00 00"), completed)]) as mpc:
        mpc.move_to_deg(2, 85.0)


def test_move_skips_unrelated_messages_and_accepts_short_completion():
    status_p1 = H("91 04 0e 00 81 50") + H("01 00 00 00 00 00 00 00 00 00 00 00 00 00")
    completed_p1 = H("64 04 01 00 01 50")
    completed_p3 = H("64 04 04 00 01 50")
    script = [(H("53 04 06 00 d0 01 04 00 5a 05 00 00"), status_p1 + completed_p1 + completed_p3)]
    with expected_protocol(Mpc320, script) as mpc:
        mpc.paddles[2].angle_deg = 170.0


def test_move_that_never_completes_raises_within_timeout():
    script = [(H("53 04 06 00 d0 01 01 00 00 00 00 00"), b"")]
    with expected_protocol(Mpc320, script, move_timeout_s=0.2) as mpc:
        with pytest.raises(InstrumentError, match=r"'APT MOT_MOVE_ABSOLUTE': timeout"):
            mpc.move_to_deg(1, 0.0)


def test_status_update_position_and_flags():
    reply = H("91 04 0e 00 81 50") + H("04 00") + struct.pack("<i", 548) + H("00 00 00 00") + H("00 04 00 80")
    with expected_protocol(Mpc320, [(H("90 04 04 00 50 01"), reply)]) as mpc:
        status = mpc.status(3)
    assert status.position_steps == 548
    assert status.angle_deg == pytest.approx(68.0)
    assert status.flags == MotorStatus.HOMED | MotorStatus.ENABLED


def test_get_settings_reads_three_paddles():
    script = []
    for ident, steps in ((1, 0), (2, 685), (4, 1370)):
        reply = H("91 04 0e 00 81 50") + struct.pack("<HlHhI", ident, steps, 0, 0, 0)
        script.append((bytes([0x90, 0x04, ident, 0x00, 0x50, 0x01]), reply))
    with expected_protocol(Mpc320, script) as mpc:
        assert mpc.get_settings() == pytest.approx((0.0, 85.0, 170.0))


def test_short_status_reply_is_garbled():
    reply = H("91 04 06 00 81 50") + H("01 00 00 00 00 00")
    with expected_protocol(Mpc320, [(H("90 04 01 00 50 01"), reply)], transport_kw={"retries": 0}) as mpc:
        with pytest.raises(InstrumentError, match=r"status data 6 bytes, expected 14"):
            mpc.status(1)


def test_status_retried_after_timeout():
    reply = H("91 04 0e 00 81 50") + struct.pack("<HlHhI", 1, 10, 0, 0, 0)
    script = [(H("90 04 01 00 50 01"), b""), (H("90 04 01 00 50 01"), reply)]
    with expected_protocol(Mpc320, script) as mpc:
        assert mpc.paddles[0].angle_deg == pytest.approx(10 * 170 / 1370)


def test_home_identify_enable():
    script = [
        (H("23 02 00 00 50 01"), None),
        (H("10 02 02 01 50 01"), None),
        (H("10 02 04 02 50 01"), None),
        (H("43 04 02 00 50 01"), H("44 04 02 00 01 50")),
    ]
    with expected_protocol(Mpc320, script) as mpc:
        mpc.identify()
        mpc.set_enabled(2, True)
        mpc.set_enabled(3, False)
        mpc.home(2)


def test_hardware_info():
    data = (struct.pack("<I", 38123456) + b"MPC320\0\0" + struct.pack("<H", 16) + bytes([3, 2, 1, 0])
            + b"notes".ljust(48, b"\0") + bytes(12) + struct.pack("<HHH", 2, 0, 3))
    assert len(data) == 84
    reply = H("06 00 54 00 81 50") + data
    with expected_protocol(Mpc320, [(H("05 00 00 00 50 01"), reply)]) as mpc:
        info = mpc.hardware_info()
    assert (info.serial_number, info.model, info.firmware_version, info.hardware_version, info.n_channels) == (
        38123456, "MPC320", "1.2.3", 2, 3)
    with pytest.raises(ValueError, match="too short"):
        parse_hardware_info(b"abc")


def test_bad_paddle_and_angle():
    with expected_protocol(Mpc320, []) as mpc:
        with pytest.raises(QkdInputError, match="paddle 4 out of range"):
            mpc.home(4)
        with pytest.raises(ValueError, match=r"value 171.0 is out of range; allowed range is \[0, 170\]"):
            mpc.paddles[0].angle_deg = 171.0
        with pytest.raises(QkdInputError, match=r"setting 2 = -1.0 deg out of range"):
            mpc.set_settings([0, 0, -1])


def test_rich_response_raises_device_error():
    rich = H("81 00 44 00 81 50") + H("53 04 02 00") + b"paddle disabled".ljust(64, b"\0")
    with expected_protocol(Mpc320, [(H("53 04 06 00 d0 01 01 00 00 00 00 00"), rich)]) as mpc:
        with pytest.raises(DeviceError, match=r"HW_RICHRESPONSE for 0x0453: code 2 'paddle disabled'"):
            mpc.move_to_deg(1, 0.0)


def test_stale_completion_of_an_earlier_move_is_skipped():
    stale = H("64 04 0e 00 81 50") + struct.pack("<HlHhI", 1, 483, 0, 0, 0)
    fresh = H("64 04 0e 00 81 50") + struct.pack("<HlHhI", 1, 492, 0, 0, 0)
    with expected_protocol(Mpc320, [(H("53 04 06 00 d0 01 01 00 ec 01 00 00"), stale + fresh)]) as mpc:
        mpc.move_to_deg(1, 61.0)
