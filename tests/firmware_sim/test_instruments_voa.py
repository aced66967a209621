"""VOA SCPI firmware over TCP: exact bytes, errors with SCPI codes, state reaches the bench."""

from __future__ import annotations

import math
import socket

import pytest

from firmware_sim.bench import SimBench
from firmware_sim.config import SimConfig
from firmware_sim.faults import InstrumentFaults
from firmware_sim.instruments.scpi import format_nr3
from firmware_sim.instruments.servers import TcpService
from firmware_sim.instruments.voa_scpi import VoaFirmware
from qkdctl.core.errors import QkdInputError
from tests.firmware_sim.wire import WireClient


@pytest.fixture
def bench():
    """The real simulated bench (settings only; these tests acquire nothing)."""
    return SimBench(SimConfig(), seed=5)


@pytest.fixture
def voa(bench):
    faults = InstrumentFaults("voa")
    firmware = VoaFirmware(bench, faults)
    service = TcpService("voa", firmware.session, faults)
    service.start()
    yield service, firmware
    service.stop()


@pytest.fixture
def client(voa):
    service, _ = voa
    wire = WireClient(service.host, service.port)
    yield wire
    wire.close()


def ask(client: WireClient, line: bytes) -> bytes:
    client.send(line + b"\n")
    return client.readline()


def send(client: WireClient, line: bytes) -> None:
    client.send(line + b"\n")


def test_format_nr3_matches_keysight_style():
    assert format_nr3(2.5) == "+2.50000000E+000"
    assert format_nr3(1550e-9) == "+1.55000000E-006"
    assert format_nr3(0.0) == "+0.00000000E+000"
    assert format_nr3(-12.25) == "-1.22500000E+001"


def test_idn_and_opc(client):
    assert ask(client, b"*IDN?") == b"Keysight Technologies,N7764A,SIM0000001,1.0.0\n"
    assert ask(client, b"*OPC?") == b"1\n"


def test_attenuation_set_and_query_short_and_long_forms(client, bench):
    send(client, b":INP2:ATT 12.5")
    assert ask(client, b":INP2:ATT?") == b"+1.25000000E+001\n"
    assert bench.attenuation_db(2) == 12.5
    send(client, b":input3:attenuation 7dB")
    assert ask(client, b":INPut3:ATTenuation?") == b"+7.00000000E+000\n"
    send(client, b"inp4:chan1:att 3")
    assert ask(client, b"*OPC?") == b"1\n"
    assert bench.attenuation_db(4) == 3.0
    assert ask(client, b":INP1:ATT? MAX") == b"+4.50000000E+001\n"
    assert ask(client, b":SYST:ERR?") == b'+0,"No error"\n'


def test_chained_commands_relative_path_and_joined_replies(client, bench):
    assert ask(client, b":INP1:ATT 5;WAV 1310nm;:OUTP1:STAT OFF;STAT?;:INP1:ATT?;WAV?") == (
        b"0;+5.00000000E+000;+1.31000000E-006\n"
    )
    assert bench.attenuation_db(1) == 5.0 and bench.wavelength_m(1) == pytest.approx(1310e-9) and bench.output_enabled(1) is False


def test_out_of_range_gives_222_and_keeps_setting(client, bench):
    send(client, b":INP1:ATT 4")
    send(client, b":INP1:ATT 45.5")
    send(client, b":INP1:WAV 1700e-9")
    assert ask(client, b":INP1:ATT?") == b"+4.00000000E+000\n"
    assert ask(client, b":SYST:ERR?") == b'-222,"Data out of range"\n'
    assert ask(client, b":SYST:ERR?") == b'-222,"Data out of range"\n'
    assert ask(client, b":SYST:ERR?") == b'+0,"No error"\n'
    assert bench.attenuation_db(1) == 4.0 and bench.wavelength_m(1) == 1550e-9


@pytest.mark.parametrize(
    "line, error",
    [
        (b":INP1:FOO 3", b'-113,"Undefined header"'),
        (b":INP9:ATT 3", b'-114,"Header suffix out of range"'),
        (b":INP1:ATT abc", b'-104,"Data type error"'),
        (b":INP1:ATT 3 dBm", b'-131,"Invalid suffix"'),
        (b":INP1:ATT", b'-109,"Missing parameter"'),
        (b":OUTP1:STAT 2", b'-224,"Illegal parameter value"'),
        (b":INP1:A%T 3", b'-102,"Syntax error"'),
        (b"*IDN? 3", b'-108,"Parameter not allowed"'),
        (b"\xff\xfe", b'-102,"Syntax error"'),
        (b"*FOO", b'-113,"Undefined header"'),
    ],
)
def test_malformed_commands_queue_real_codes(client, line, error):
    send(client, line)
    assert ask(client, b":SYST:ERR?") == error + b"\n"
    assert ask(client, b"*IDN?").startswith(b"Keysight")


def test_bad_query_sends_no_reply(client):
    send(client, b":INP7:ATT?")
    with pytest.raises(socket.timeout):
        client.readline(timeout_s=0.2)
    assert ask(client, b":SYST:ERR:NEXT?") == b'-114,"Header suffix out of range"\n'


def test_error_queue_overflow_and_cls(client):
    for _ in range(35):
        send(client, b":BAD")
    replies = [ask(client, b":SYST:ERR?") for _ in range(31)]
    assert replies[:29] == [b'-113,"Undefined header"\n'] * 29
    assert replies[29] == b'-350,"Queue overflow"\n'
    assert replies[30] == b'+0,"No error"\n'
    send(client, b":BAD")
    send(client, b"*CLS")
    assert ask(client, b":SYST:ERR?") == b'+0,"No error"\n'


def test_rst_restores_defaults_on_the_bench(client, bench):
    send(client, b":INP2:ATT 20;:INP2:WAV 1.31e-6;:OUTP2:STAT 1")
    send(client, b"*RST")
    assert ask(client, b"*OPC?") == b"1\n"
    assert ask(client, b":INP2:ATT?;:INP2:WAV?;:OUTP2:STAT?") == b"+0.00000000E+000;+1.55000000E-006;0\n"
    assert bench.attenuation_db(2) == 0.0 and bench.output_enabled(2) is False


def test_state_read_back_from_bench(client, bench):
    bench.set_attenuation_db(3, 33.0)
    bench.set_output_enabled(3, False)
    assert ask(client, b":INP3:ATT?;:OUTP3:STAT?") == b"+3.30000000E+001;0\n"


def test_pyvisa_socket_resource_talks_to_the_firmware(voa, bench):
    pyvisa = pytest.importorskip("pyvisa")
    service, _ = voa
    rm = pyvisa.ResourceManager("@py")
    try:
        inst = rm.open_resource(
            f"TCPIP::127.0.0.1::{service.port}::SOCKET", read_termination="\n", write_termination="\n",
            timeout=2000,
        )
        try:
            assert inst.query("*IDN?").startswith("Keysight Technologies,N7764A")
            inst.write(":INP1:ATT 6.25")
            assert float(inst.query(":INP1:ATT?")) == 6.25
            assert inst.query(":SYST:ERR?") == '+0,"No error"'
        finally:
            inst.close()
    finally:
        rm.close()
    assert bench.attenuation_db(1) == 6.25


def test_output_state_node_is_optional_as_in_the_manual(client, bench):
    send(client, b":OUTP3 ON")
    assert ask(client, b":OUTP3?;:OUTPut3:CHANnel1:STATe?") == b"1;1\n"
    send(client, b"outp3 0")
    assert ask(client, b":OUTP3?") == b"0\n"
    assert bench.output_enabled(3) is False


def test_all_forms_set_every_channel(client, bench):
    send(client, b":INP:ATT:ALL 12;:INP:WAV:ALL 1310NM;:OUTP:STAT:ALL ON")
    assert ask(client, b"*OPC?") == b"1\n"
    assert [bench.attenuation_db(ch) for ch in range(1, 5)] == [12.0] * 4
    assert [bench.output_enabled(ch) for ch in range(1, 5)] == [True] * 4
    assert bench.wavelength_m(4) == pytest.approx(1310e-9)
    send(client, b":INP:ATT:ALL 99")
    assert ask(client, b":SYST:ERR?") == b'-222,"Data out of range"\n'
    assert bench.attenuation_db(1) == 12.0
    send(client, b":INP2:ATT:ALL 3")
    assert ask(client, b":SYST:ERR?") == b'-113,"Undefined header"\n'


def test_power_setpoint_and_monitor_follow_the_bench_mu(client, bench):
    src = bench.config.source
    photon_w = 6.62607015e-34 * 299792458.0 / src.wavelength_m * src.pulse_rate_hz
    ref_dbm = 10 * math.log10(src.mu_max * photon_w / 1e-3) + 70.0
    send(client, b":OUTP1:POW -10")
    assert float(ask(client, b":INP1:ATT?")) == pytest.approx(ref_dbm + 10.0)
    assert float(ask(client, b":OUTP1:POW?")) == pytest.approx(-10.0)
    monitor_dbm = float(ask(client, b":READ1:POW?"))
    assert monitor_dbm == pytest.approx(10 * math.log10(bench.mu()[0] * photon_w / 1e-3) + 70.0)
    assert monitor_dbm == pytest.approx(-10.0)
    send(client, b":OUTP1:POW:UNIT WATT;:OUTP1:POW 2uW")
    assert ask(client, b":OUTP1:POW:UN?") == b"1\n"
    assert float(ask(client, b":READ1:SCAL:POW:DC?")) == pytest.approx(2e-6)
    send(client, b":OUTP1:STAT 0")
    assert float(ask(client, b":READ1:POW?")) == pytest.approx(1e-11)  # -80 dBm floor
    assert ask(client, b":READ4:POW?;:OUTP1:POW:UN 0;:READ1:POW?") == b"-8.00000000E+001;-8.00000000E+001\n"
    send(client, b":OUTP2:POW:CONTR ON")
    assert ask(client, b":OUTP2:POW:CONTR?") == b"1\n"
    send(client, b":OUTP2:POW 40")
    send(client, b":OUTP2:POW 3 dBW")
    assert ask(client, b":SYST:ERR?") == b'-222,"Data out of range"\n'
    assert ask(client, b":SYST:ERR?") == b'-131,"Invalid suffix"\n'


def test_slot_numbering_is_configurable(bench):
    firmware = VoaFirmware(bench, InstrumentFaults("voa"), slots=(1, 3, 5, 7))
    assert firmware.execute(":INP5:ATT 17;:INP5:ATT?") == "+1.70000000E+001"
    assert bench.attenuation_db(3) == 17.0
    assert firmware.execute(":INP2:ATT 1") is None
    assert firmware.execute(":SYST:ERR?") == '-114,"Header suffix out of range"'
    firmware.execute(":INP:ATT:ALL 20")
    assert [bench.attenuation_db(ch) for ch in range(1, 5)] == [20.0] * 4
    with pytest.raises(QkdInputError, match="slots"):
        VoaFirmware(bench, InstrumentFaults("voa"), slots=(1, 1))
