"""MPC320 APT firmware on a pty: exact frames, timed moves, resync past garbage."""

from __future__ import annotations

import struct
import time

import pytest
import serial

from firmware_sim.bench import SimBench
from firmware_sim.config import SimConfig
from firmware_sim.faults import InstrumentFaults
from firmware_sim.instruments import apt
from firmware_sim.instruments.mpc320_apt import (
    DEG_PER_STEP,
    RICH_BAD_CHANNEL,
    RICH_DISABLED,
    RICH_OUT_OF_RANGE,
    STATUS_ENABLED,
    STATUS_HOMED,
    STATUS_MOVING_FORWARD,
    Mpc320Firmware,
)
from firmware_sim.instruments.ptys import PtyPort


def host_short(msg_id: int, p1: int = 0, p2: int = 0) -> bytes:
    return struct.pack("<HBBBB", msg_id, p1, p2, 0x50, 0x01)


def host_long(msg_id: int, data: bytes) -> bytes:
    return struct.pack("<HHBB", msg_id, len(data), 0x50 | 0x80, 0x01) + data


def move_abs(ident: int, steps: int) -> bytes:
    return host_long(0x0453, struct.pack("<Hl", ident, steps))


def set_velocity(pct: int) -> bytes:
    return host_long(0x0530, struct.pack("<HHHHHH", 0, pct, 0, 100, 100, 100))


def read_frame(link: serial.Serial) -> tuple[int, int, int, bytes]:
    header = link.read(6)
    assert len(header) == 6, "no reply frame"
    msg_id, p1, p2, dest, source = struct.unpack("<HBBBB", header)
    assert source == 0x50
    if dest & 0x80:
        assert dest == 0x81
        data = link.read(p1 | (p2 << 8))
        return msg_id, 0, 0, data
    assert dest == 0x01
    return msg_id, p1, p2, b""


def paddles_deg(bench) -> tuple[float, ...]:
    return tuple(bench.paddle_deg(p) for p in range(1, 4))


@pytest.fixture
def bench():
    """The real simulated bench (settings only; these tests acquire nothing)."""
    return SimBench(SimConfig(), seed=5)


@pytest.fixture
def port(bench):
    firmware = Mpc320Firmware(bench)
    pty = PtyPort("mpc320", firmware, InstrumentFaults("mpc320"))
    pty.start()
    link = serial.Serial(pty.path, baudrate=115200, rtscts=True, timeout=2.0)
    yield link, firmware
    link.close()
    pty.stop()


def test_hw_info_frame(port):
    link, _ = port
    link.write(host_short(0x0005))
    header = link.read(6)
    assert header == bytes([0x06, 0x00, 84, 0x00, 0x81, 0x50])
    data = link.read(84)
    serial_no, model, hw_type = struct.unpack_from("<I8sH", data)
    assert serial_no == 38000001 and model == b"MPC320\x00\x00"
    assert struct.unpack_from("<H", data, 82)[0] == 3


def test_move_absolute_completes_with_status_and_reaches_bench(port, bench):
    link, _ = port
    link.write(set_velocity(100))
    t0 = time.monotonic()
    link.write(move_abs(2, 685))
    msg_id, _, _, data = read_frame(link)
    elapsed = time.monotonic() - t0
    assert msg_id == 0x0464 and len(data) == 14
    ident, position, velocity, current, bits = struct.unpack("<HlHhI", data)
    assert (ident, position, velocity, current) == (2, 685, 0, 0)
    assert bits & STATUS_ENABLED
    assert bench.paddle_deg(2) == pytest.approx(85.0)
    assert elapsed >= 685 * DEG_PER_STEP / 400.0 * 0.9


def test_move_takes_time_and_status_shows_motion(port, bench):
    link, _ = port
    link.write(set_velocity(10))  # 40 deg/s: 1370 steps take 4.25 s
    link.write(move_abs(1, 1370))
    time.sleep(0.2)
    link.write(host_short(0x0490, 1))
    msg_id, _, _, data = read_frame(link)
    ident, position, velocity, _, bits = struct.unpack("<HlHhI", data)
    assert msg_id == 0x0491 and ident == 1
    assert 0 < position < 1370 and velocity > 0
    assert bits & STATUS_MOVING_FORWARD
    link.timeout = 0.3
    assert link.read(6) == b""  # the client's timeout expires before MOVE_COMPLETED
    link.timeout = 2.0
    link.write(host_short(0x0465, 1, 2))  # stop
    msg_id, _, _, data = read_frame(link)
    assert msg_id == 0x0466
    stopped_at = struct.unpack("<HlHhI", data)[1]
    assert 0 < stopped_at < 1370
    assert bench.paddle_deg(1) == pytest.approx(stopped_at * DEG_PER_STEP)


def test_home_replies_homed_and_sets_status_bit(port, bench):
    link, _ = port
    link.write(set_velocity(100))
    link.write(move_abs(4, 100))
    assert read_frame(link)[0] == 0x0464
    link.write(host_short(0x0443, 4))
    assert read_frame(link) == (0x0444, 4, 0, b"")
    link.write(host_short(0x0490, 4))
    _, _, _, data = read_frame(link)
    assert struct.unpack("<HlHhI", data)[1] == 0
    assert struct.unpack("<HlHhI", data)[4] & STATUS_HOMED
    assert bench.paddle_deg(3) == 0.0


def test_params_round_trip(port):
    link, _ = port
    link.write(host_long(0x0530, struct.pack("<HHHHHH", 0, 70, 10, 1, 2, 3)))
    link.write(host_short(0x0531))
    assert read_frame(link) == (0x0532, 0, 0, struct.pack("<HHHHHH", 0, 70, 10, 1, 2, 3))


def test_enable_state(port):
    link, _ = port
    link.write(host_short(0x0210, 2, 2))
    link.write(host_short(0x0211, 2))
    assert read_frame(link) == (0x0212, 2, 2, b"")
    link.write(move_abs(2, 10))
    msg_id, _, _, data = read_frame(link)
    assert msg_id == 0x0081 and struct.unpack_from("<HH", data) == (0x0453, RICH_DISABLED)
    link.write(host_short(0x0210, 2, 1))
    link.write(host_short(0x0211, 2))
    assert read_frame(link) == (0x0212, 2, 1, b"")


@pytest.mark.parametrize(
    "frame, code",
    [
        (move_abs(1, 1371), RICH_OUT_OF_RANGE),
        (move_abs(1, -1), RICH_OUT_OF_RANGE),
        (move_abs(3, 10), RICH_BAD_CHANNEL),
        (set_velocity(5), RICH_OUT_OF_RANGE),
        (host_short(0x0490, 8), RICH_BAD_CHANNEL),
    ],
)
def test_rejected_commands_get_rich_response(port, bench, frame, code):
    link, _ = port
    link.write(frame)
    msg_id, _, _, data = read_frame(link)
    assert msg_id == 0x0081 and len(data) == 68
    assert struct.unpack_from("<H", data, 2)[0] == code
    assert paddles_deg(bench) == (0.0, 0.0, 0.0)


def test_garbage_and_split_frames_resynchronize(port, bench):
    link, firmware = port
    link.write(set_velocity(100))
    garbage = b"\x00\xff\x53\x04\xff\xff\xd0\x01" + struct.pack("<HHBB", 0x0453, 200, 0xD0, 0x01)
    frame = move_abs(1, 137)
    link.write(garbage + frame[:3])
    time.sleep(0.05)
    link.write(frame[3:])
    msg_id, _, _, data = read_frame(link)
    assert msg_id == 0x0464 and struct.unpack("<HlHhI", data)[:2] == (1, 137)
    assert firmware.parser.dropped_bytes == len(garbage)
    link.write(host_short(0x0223))
    link.write(host_short(0x0492))
    link.write(host_short(0x0490, 1))
    assert read_frame(link)[0] == 0x0491
    assert firmware.identify_count == 1 and firmware.keepalive_count == 1


def test_parser_unit_rejects_wrong_addresses_and_lengths():
    parser = apt.AptParser()
    wrong_source = struct.pack("<HBBBB", 0x0005, 0, 0, 0x50, 0x22)
    wrong_len = struct.pack("<HHBB", 0x0453, 4, 0xD0, 0x01) + b"\x01\x00\x00\x00"
    assert parser.feed(wrong_source + wrong_len) == []
    assert parser.feed(host_short(0x0005)) == [apt.AptMessage(0x0005, 0, 0, None, 0x50, 0x01)]


def test_jog_uses_the_paddle_jog_step_and_clamps(port, bench):
    link, _ = port
    link.write(host_long(0x0530, struct.pack("<HHHHHH", 0, 100, 0, 50, 137, 20)))
    link.write(host_short(0x046A, 2, 1))
    msg_id, _, _, data = read_frame(link)
    assert msg_id == 0x0464 and struct.unpack("<HlHhI", data)[:2] == (2, 137)
    assert bench.paddle_deg(2) == pytest.approx(17.0)
    link.write(host_short(0x046A, 4, 2))  # reverse from 0: clamped at 0
    msg_id, _, _, data = read_frame(link)
    assert msg_id == 0x0464 and struct.unpack("<HlHhI", data)[:2] == (4, 0)
    link.write(host_short(0x046A, 1, 3))
    msg_id, _, _, data = read_frame(link)
    assert msg_id == 0x0081 and struct.unpack_from("<HH", data) == (0x046A, RICH_OUT_OF_RANGE)


def test_status_updates_need_keepalive(bench):
    firmware = Mpc320Firmware(bench, update_period_s=0.02, updates_without_ack=3)
    pty = PtyPort("mpc320", firmware, InstrumentFaults("mpc320"))
    pty.start()
    link = serial.Serial(pty.path, timeout=0.3)
    try:
        link.write(host_short(0x0011))
        idents = [struct.unpack_from("<H", read_frame(link)[3])[0] for _ in range(6)]
        assert idents == [1, 2, 4, 1, 2, 4]
        link.write(host_short(0x0492))  # keep-alive: 3 more rounds after it, then silence
        time.sleep(0.3)
        link.reset_input_buffer()
        assert link.read(6) == b""
        link.write(host_short(0x0011))
        assert read_frame(link)[0] == 0x0491
        link.write(host_short(0x0012))
        time.sleep(0.1)
        link.reset_input_buffer()
        assert link.read(6) == b""
    finally:
        link.close()
        pty.stop()
