"""Transcript tests of the Keysight N776xA driver: exact bytes out and in."""

import pytest

from drivers.attenuator.keysight_n776x import KeysightN7761A, KeysightN7764A, KeysightN7766A
from drivers.transport import DeviceError
from qkdctl.core.errors import InstrumentError, QkdInputError
from tests.drivers.fake_link import expected_protocol

OK = (b":SYST:ERR?\n", b'+0,"No error"\n')


def test_set_attenuation_checks_error_queue():
    with expected_protocol(KeysightN7764A, [(b":INP3:ATT 12.500\n", None), OK]) as voa:
        voa.channel(1).attenuation_db = 12.5


def test_read_attenuation_parses_scpi_float():
    with expected_protocol(KeysightN7764A, [(b":INP7:ATT?\n", b"+2.50000000E+000\n")]) as voa:
        assert voa.channel(3).attenuation_db == 2.5


def test_wavelength_in_nm_goes_out_in_metres():
    with expected_protocol(
        KeysightN7764A,
        [(b":INP1:WAV 1.550000E-06\n", None), OK, (b":INP1:WAV?\n", b"+1.55000000E-006\n")],
    ) as voa:
        voa.channel(0).wavelength_nm = 1550
        assert voa.channel(0).wavelength_nm == 1550.0


def test_output_and_power_control():
    with expected_protocol(
        KeysightN7766A,
        [
            (b":OUTP3:STAT 1\n", None), OK,
            (b":OUTP3:STAT?\n", b"1\n"),
            (b":OUTP1:POW:CONTR 1\n", None), OK,
            (b":OUTP1:POW -10.000\n", None), OK,
            (b":READ1:POW?\n", b"-1.00200000E+001\n"),
        ],
    ) as voa:
        voa.channel(1).output_enabled = True
        assert voa.channel(1).output_enabled is True
        voa.channel(0).power_control_enabled = True
        voa.channel(0).power_setpoint_dbm = -10
        assert voa.channel(0).power_dbm == pytest.approx(-10.02)


def test_model_without_monitor_has_no_power_control():
    with expected_protocol(KeysightN7761A, []) as voa:
        assert not hasattr(voa.channel(0), "power_dbm")


def test_limits_are_per_model_and_named_in_the_error():
    with expected_protocol(KeysightN7766A, []) as voa:
        with pytest.raises(ValueError, match=r"attenuation_db \(dB\): value 42.0 is out of range; allowed range is \[0, 40\]"):
            voa.channel(0).attenuation_db = 42.0
        with pytest.raises(QkdInputError, match="not a finite number"):
            voa.channel(0).attenuation_db = float("nan")
        with pytest.raises(QkdInputError, match="allowed values"):
            voa.channel(0).output_enabled = 2
    with expected_protocol(KeysightN7764A, [(b":INP1:ATT 42.000\n", None), OK]) as voa:
        voa.channel(0).attenuation_db = 42.0


def test_error_queue_is_drained_and_codes_reported():
    script = [
        (b":INP1:ATT 3.000\n", None),
        (b":SYST:ERR?\n", b'-222,"Data out of range"\n'),
        (b":SYST:ERR?\n", b'-113,"Undefined header"\n'),
        OK,
    ]
    with expected_protocol(KeysightN7764A, script) as voa:
        with pytest.raises(DeviceError, match=r'-222,Data out of range; -113,Undefined header') as info:
            voa.channel(0).attenuation_db = 3
        assert ":INP1:ATT 3.000" in str(info.value)


def test_garbled_reply_is_retried_then_reported():
    script = [(b":INP1:ATT?\n", b"garbage\n")] * 3
    with expected_protocol(KeysightN7764A, script) as voa:
        with pytest.raises(InstrumentError, match=r"fake: ':INP1:ATT\?': garbled reply .*'garbage'"):
            voa.channel(0).attenuation_db


def test_garbled_reply_recovers_on_retry():
    script = [(b":INP1:ATT?\n", b"#$%\n"), (b":INP1:ATT?\n", b"+1.0E+000\n")]
    with expected_protocol(KeysightN7764A, script) as voa:
        assert voa.channel(0).attenuation_db == 1.0


def test_channel_numbers_and_index_checked():
    with pytest.raises(QkdInputError, match="4 distinct positive channel numbers"):
        with expected_protocol(KeysightN7764A, [], channel_numbers=(1, 2)):
            pass
    with expected_protocol(KeysightN7764A, [(b":INP4:ATT?\n", b"0\n")], channel_numbers=(1, 2, 3, 4)) as voa:
        assert voa.channel(3).attenuation_db == 0.0
        with pytest.raises(QkdInputError, match=r"channel index 4 out of range; allowed range is \[0, 3\]"):
            voa.channel(4)


def test_identity_and_set_all():
    script = [(b"*IDN?\n", b"Keysight Technologies,N7764A,MY123,1.0\n")]
    for slot, value in zip((1, 3, 5, 7), ("1.000", "2.000", "3.000", "4.000")):
        script += [(f":INP{slot}:ATT {value}\n".encode(), None), OK]
    with expected_protocol(KeysightN7764A, script) as voa:
        assert voa.identity() == "Keysight Technologies,N7764A,MY123,1.0"
        voa.set_all_attenuations_db([1, 2, 3, 4])
        with pytest.raises(QkdInputError, match="3 attenuations given for 4 channels"):
            voa.set_all_attenuations_db([1, 2, 3])
