"""Transcript tests of the OZ Optics EPC-400 driver."""

import pytest

from drivers.polarization.epc400 import Epc400, parse_voltages_mv
from drivers.transport import DeviceError
from qkdctl.core.errors import InstrumentError, QkdInputError
from tests.drivers.fake_link import expected_protocol

REPORT = b"Voltage(mV): CH1 +2200 CH2 +5000 CH3 -1000 CH4 -4000\r\nDone\r\n"


def test_read_all_voltages():
    with expected_protocol(Epc400, [(b"V?\r\n", REPORT)]) as epc:
        assert epc.get_settings() == (2200.0, 5000.0, -1000.0, -4000.0)


def test_channel_parameter_reads_its_own_channel():
    with expected_protocol(Epc400, [(b"V?\r\n", REPORT)]) as epc:
        assert epc.channels[2].voltage_mv == -1000.0


def test_set_settings_sends_integer_mv_and_waits_for_done():
    script = [(b"V1,1234\r\n", b"Done\r\n"), (b"V2,-5000\r\n", b"Done\r\n"),
              (b"V3,0\r\n", b"Done\r\n"), (b"V4,4999\r\n", b"Done\r\n")]
    with expected_protocol(Epc400, script) as epc:
        epc.set_settings([1234.4, -5000, 0, 4998.6])


def test_out_of_range_voltage_names_value_and_range():
    with expected_protocol(Epc400, []) as epc:
        with pytest.raises(ValueError, match=r"setting 1 = 6000.0 mV out of range; allowed range is \[-5000, 5000\] mV"):
            epc.set_settings([0, 6000, 0, 0])
        with pytest.raises(QkdInputError, match=r"voltage_mv \(mV\): value -5001 is out of range"):
            epc.channels[0].voltage_mv = -5001
        with pytest.raises(QkdInputError, match="3 settings given; 4 needed"):
            epc.set_settings([0, 0, 0])


def test_error_line_raises_device_error():
    with expected_protocol(Epc400, [(b"V5,10\r\n", b"Error-2\r\n")]) as epc:
        with pytest.raises(DeviceError, match=r"'V5,10': instrument error; received 'Error-2'"):
            epc._set("V5,10")


def test_missing_done_times_out_and_set_is_not_retried():
    with expected_protocol(Epc400, [(b"V1,0\r\n", b"")]) as epc:
        with pytest.raises(InstrumentError, match=r"fake: 'V1,0': timeout"):
            epc.channels[0].voltage_mv = 0


def test_garbled_report_retried_then_fails():
    script = [(b"V?\r\n", b"Voltage(mV): CH1 +2200\r\nDone\r\n")] * 3
    with expected_protocol(Epc400, script) as epc:
        with pytest.raises(InstrumentError, match=r"garbled reply .*CH1 \+2200"):
            epc.get_settings()


def test_dc_mode():
    with expected_protocol(Epc400, [(b"MDC\r\n", b"Done\r\n")]) as epc:
        epc.set_dc_mode()


def test_parse_voltages_rejects_foreign_text():
    with pytest.raises(ValueError, match="not a voltage report"):
        parse_voltages_mv("hello")
