"""EPC-400 style firmware on a pty: exact bytes, Error-N replies, voltages reach the bench."""

from __future__ import annotations

import pytest
import serial

from firmware_sim.bench import SimBench
from firmware_sim.config import SimConfig
from firmware_sim.faults import InstrumentFaults
from firmware_sim.instruments.epc400 import Epc400Firmware
from firmware_sim.instruments.ptys import PtyPort


def epc_mv(bench) -> tuple[float, ...]:
    return tuple(bench.epc_voltage_mv(ch) for ch in range(1, 5))


@pytest.fixture
def bench():
    """The real simulated bench (settings only; these tests acquire nothing)."""
    return SimBench(SimConfig(), seed=5)


@pytest.fixture
def port(bench):
    faults = InstrumentFaults("epc")
    pty = PtyPort("epc", Epc400Firmware(bench), faults)
    pty.start()
    link = serial.Serial(pty.path, baudrate=9600, timeout=1.0)
    yield link, faults
    link.close()
    pty.stop()


def ask(link: serial.Serial, command: bytes, n_lines: int = 1) -> bytes:
    link.write(command + b"\r\n")
    return b"".join(link.readline() for _ in range(n_lines))


def test_set_and_read_all_voltages(port, bench):
    link, _ = port
    assert ask(link, b"V1,2200") == b"Done\r\n"
    assert ask(link, b"V2,5000") == b"Done\r\n"
    assert ask(link, b"v3,-1000") == b"Done\r\n"
    assert ask(link, b"V4,-4000") == b"Done\r\n"
    assert ask(link, b"V?", 2) == b"Voltage(mV): CH1 +2200 CH2 +5000 CH3 -1000 CH4 -4000\r\nDone\r\n"
    assert epc_mv(bench) == (2200, 5000, -1000, -4000)


def test_zero_high_low(port, bench):
    link, _ = port
    assert ask(link, b"VH1") == b"Done\r\n"
    assert ask(link, b"VL2") == b"Done\r\n"
    assert ask(link, b"VZ1") == b"Done\r\n"
    assert ask(link, b"V?", 2) == b"Voltage(mV): CH1 +0 CH2 -5000 CH3 +0 CH4 +0\r\nDone\r\n"
    assert bench.epc_voltage_mv(2) == -5000


@pytest.mark.parametrize(
    "command, reply",
    [
        (b"V5,100", b"Error-3\r\n"),
        (b"V0,100", b"Error-3\r\n"),
        (b"VZ9", b"Error-3\r\n"),
        (b"V1,5001", b"Error-4\r\n"),
        (b"V1,-6000", b"Error-4\r\n"),
        (b"V1,12.5", b"Error-5\r\n"),
        (b"V1,abc", b"Error-5\r\n"),
        (b"Vx,100", b"Error-5\r\n"),
        (b"HELLO", b"Error-2\r\n"),
        (b"V", b"Error-2\r\n"),
        (b"\xff\x00", b"Error-2\r\n"),
    ],
)
def test_errors_and_no_state_change(port, bench, command, reply):
    link, _ = port
    assert ask(link, command) == reply
    assert epc_mv(bench) == (0, 0, 0, 0)
    assert ask(link, b"V1,10") == b"Done\r\n"


def test_bare_cr_and_lf_terminators_and_blank_lines(port, bench):
    link, _ = port
    link.write(b"\r\n\rV1,7\rV2,8\n")
    assert link.readline() + link.readline() == b"Done\r\nDone\r\n"
    assert bench.epc_voltage_mv(1) == 7 and bench.epc_voltage_mv(2) == 8


def test_overlong_line_is_rejected_then_recovers(port):
    link, _ = port
    link.write(b"V" * 300)
    assert link.readline() == b"Error-2\r\n"
    link.write(b"\r\n")
    assert ask(link, b"V1,1") == b"Done\r\n"


def test_dc_mode_is_the_emulated_mode(port):
    link, _ = port
    assert ask(link, b"MDC") == b"Done\r\n"
    assert ask(link, b"MAC") == b"Error-2\r\n"
