"""A single-channel SCPI variable optical attenuator whose command words come from the config.

For VOAs without a dedicated driver: the lab config gives the get/set commands
(templates with `{value}`), the unit scaling of the wavelength and the limits, e.g.

    [instruments.voa.commands]
    attenuation_get = "ATT?"
    attenuation_set = "ATT {value}"
    wavelength_get = "WVL?"
    wavelength_set = "WVL {value}"
    wavelength_scale = 1.0          # instrument unit per nm (1e-9 when it wants metres)
    output_get = ""                 # empty: not supported
    error_query = ""                # empty: no error queue
    attenuation_limits_db = [0, 60]
"""

from __future__ import annotations

from typing import Any, Mapping

from drivers.instrument import Instrument
from drivers.parameters import BOOL, Parameter, Range, parse_bool
from drivers.transport import Transport
from qkdctl.core.errors import ConfigError, QkdInputError

DEFAULT_COMMANDS: dict[str, Any] = {
    "attenuation_get": ":INP1:ATT?",
    "attenuation_set": ":INP1:ATT {value}",
    "wavelength_get": ":INP1:WAV?",
    "wavelength_set": ":INP1:WAV {value}",
    "wavelength_scale": 1e-9,
    "output_get": ":OUTP1:STAT?",
    "output_set": ":OUTP1:STAT {value}",
    "error_query": ":SYST:ERR?",
    "attenuation_limits_db": (0.0, 60.0),
    "wavelength_limits_nm": (600.0, 1700.0),
}
_TEXT_KEYS = ("attenuation_get", "attenuation_set", "wavelength_get", "wavelength_set",
              "output_get", "output_set", "error_query")


def _limits(key: str, value: Any) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"generic VOA command config: {key} = {value!r} must be [low, high]") from None
    if not low < high:
        raise ConfigError(f"generic VOA command config: {key} = {value!r} needs low < high")
    return low, high


def validate_commands(commands: Mapping[str, Any]) -> dict[str, Any]:
    """Merge `commands` over the defaults; raise `ConfigError` naming a bad key or value."""
    unknown = sorted(set(commands) - set(DEFAULT_COMMANDS))
    if unknown:
        raise ConfigError(f"generic VOA command config: unknown key(s) {unknown}; allowed: {sorted(DEFAULT_COMMANDS)}")
    merged = {**DEFAULT_COMMANDS, **commands}
    for key in _TEXT_KEYS:
        if not isinstance(merged[key], str):
            raise ConfigError(f"generic VOA command config: {key} = {merged[key]!r} must be a string ('' = unsupported)")
        if key.endswith("_set") and merged[key] and "{value}" not in merged[key]:
            raise ConfigError(f"generic VOA command config: {key} = {merged[key]!r} lacks the '{{value}}' placeholder")
    scale = merged["wavelength_scale"]
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
        raise ConfigError(f"generic VOA command config: wavelength_scale = {scale!r} must be a number > 0")
    merged["attenuation_limits_db"] = _limits("attenuation_limits_db", merged["attenuation_limits_db"])
    merged["wavelength_limits_nm"] = _limits("wavelength_limits_nm", merged["wavelength_limits_nm"])
    return merged


def _configured_get(key: str, parse):
    def get(voa: "GenericScpiVoa") -> Any:
        return voa._get(voa._command(key), lambda text: parse(voa, text))

    return get


def _configured_set(key: str, fmt):
    def set_(voa: "GenericScpiVoa", value: Any) -> None:
        voa._set(voa._command(key).format(value=fmt(voa, value)))

    return set_


class GenericScpiVoa(Instrument):
    """A one-channel SCPI VOA driven by command words from the config (see module doc)."""

    default_transport = {"write_termination": "\n", "read_termination": "\n"}

    attenuation_db = Parameter(
        _configured_get("attenuation_get", lambda voa, text: float(text)),
        _configured_set("attenuation_set", lambda voa, v: f"{v:.3f}"),
        unit="dB", doc="Control the attenuation (dB).",
        validator=Range(limits_attr="attenuation_limits_db"),
    )
    wavelength_nm = Parameter(
        _configured_get("wavelength_get", lambda voa, text: round(float(text) / voa.commands["wavelength_scale"], 6)),
        _configured_set("wavelength_set", lambda voa, v: f"{v * voa.commands['wavelength_scale']:.6G}"),
        unit="nm", doc="Control the calibration wavelength (nm; scaled by wavelength_scale on the wire).",
        validator=Range(limits_attr="wavelength_limits_nm"),
    )
    output_enabled = Parameter(
        _configured_get("output_get", lambda voa, text: parse_bool(text)),
        _configured_set("output_set", lambda voa, v: str(int(v))),
        unit="bool", doc="Control the output shutter (True = light passes).",
        validator=BOOL,
    )

    def __init__(self, transport: Transport, *, name: str | None = None, commands: Mapping[str, Any] | None = None) -> None:
        super().__init__(transport, name=name)
        self.commands = validate_commands(commands or {})
        self.attenuation_limits_db = self.commands["attenuation_limits_db"]
        self.wavelength_limits_nm = self.commands["wavelength_limits_nm"]

    def _command(self, key: str) -> str:
        command = self.commands[key]
        if not command:
            raise QkdInputError(f"{self.name}: {key} is not configured for this VOA")
        return command

    def _set(self, command: str) -> None:
        with self.transport.lock:
            self.transport.write(command)
            if self.commands["error_query"]:
                self.transport.check_errors(self.commands["error_query"], after=command)
