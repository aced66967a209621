"""Transcript tests of the config-driven generic SCPI VOA."""

import pytest

from drivers.attenuator.generic_scpi import GenericScpiVoa, validate_commands
from qkdctl.core.errors import ConfigError, InstrumentError, QkdInputError
from tests.drivers.fake_link import expected_protocol

HP_STYLE = {
    "attenuation_get": "ATT?", "attenuation_set": "ATT {value}",
    "wavelength_get": "WVL?", "wavelength_set": "WVL {value}NM", "wavelength_scale": 1.0,
    "output_get": "", "output_set": "D {value}", "error_query": "",
    "attenuation_limits_db": [0, 60],
}


def test_default_commands_are_keysight_like_with_error_check():
    script = [(b":INP1:ATT 7.250\n", None), (b":SYST:ERR?\n", b'+0,"No error"\n'),
              (b":INP1:WAV?\n", b"1.31E-06\n")]
    with expected_protocol(GenericScpiVoa, script) as voa:
        voa.attenuation_db = 7.25
        assert voa.wavelength_nm == 1310.0


def test_configured_words_are_used_verbatim():
    script = [(b"ATT 55.000\n", None), (b"ATT?\n", b"55.0\n"), (b"WVL 1550NM\n", None),
              (b"WVL?\n", b"1550\n"), (b"D 1\n", None)]
    with expected_protocol(GenericScpiVoa, script, commands=HP_STYLE) as voa:
        voa.attenuation_db = 55
        assert voa.attenuation_db == 55.0
        voa.wavelength_nm = 1550
        assert voa.wavelength_nm == 1550.0
        voa.output_enabled = True
        with pytest.raises(QkdInputError, match="output_get is not configured"):
            voa.output_enabled


def test_config_limits_apply():
    with expected_protocol(GenericScpiVoa, [], commands={"attenuation_limits_db": [0, 30]}) as voa:
        with pytest.raises(ValueError, match=r"value 31 is out of range; allowed range is \[0, 30\]"):
            voa.attenuation_db = 31


def test_error_reported_by_queue():
    script = [(b":OUTP1:STAT 0\n", None), (b":SYST:ERR?\n", b'-221,"Settings conflict"\n'),
              (b":SYST:ERR?\n", b'0,"No error"\n')]
    with expected_protocol(GenericScpiVoa, script) as voa:
        with pytest.raises(InstrumentError, match="-221,Settings conflict"):
            voa.output_enabled = False


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"attenuation_gte": "X"}, r"unknown key\(s\) \['attenuation_gte'\]"),
        ({"attenuation_set": "ATT"}, "attenuation_set = 'ATT' lacks the '{value}' placeholder"),
        ({"output_get": None}, "output_get = None must be a string"),
        ({"wavelength_scale": 0}, "wavelength_scale = 0 must be a number > 0"),
        ({"attenuation_limits_db": [5, 1]}, "needs low < high"),
        ({"wavelength_limits_nm": "wide"}, "must be \\[low, high\\]"),
    ],
)
def test_bad_config_names_key_and_value(bad, message):
    with pytest.raises(ConfigError, match=message):
        validate_commands(bad)
