"""OZ Optics EPC-400 electronic polarization controller (ASCII over serial).

Commands end in CR LF; the controller answers every command with zero or more
content lines and a final "Done" line (an "Error..." line on failure):

    V<ch>,<mV>   set channel ch (1..4) to mV (-5000..+5000)     -> "Done"
    V?           read all voltages -> "Voltage(mV): CH1 +2200 CH2 +5000 CH3 -1000 CH4 -4000", "Done"
    MDC          fixed-voltage (DC) mode, no scrambling          -> "Done"

Settings are the four channel voltages in mV (four fiber squeezers; see
`SqueezerCalibration`).
"""

from __future__ import annotations

import re
from typing import Any, Callable, Sequence

from drivers.instrument import Channel
from drivers.parameters import Parameter, Range
from drivers.polarization.base import PolarizationController
from drivers.transport import Transport

_CHANNEL_VOLTAGE = re.compile(r"CH\s*(\d)\s*[:=]?\s*([+-]?\d+(?:\.\d*)?)", re.IGNORECASE)


def parse_voltages_mv(text: str) -> tuple[float, float, float, float]:
    """Parse a `V?` reply ("Voltage(mV): CH1 +2200 CH2 ...") into the four voltages (mV)."""
    if "voltage" not in text.lower():
        raise ValueError(f"not a voltage report: {text!r}")
    found = {int(ch): float(mv) for ch, mv in _CHANNEL_VOLTAGE.findall(text)}
    if sorted(found) != [1, 2, 3, 4]:
        raise ValueError(f"expected CH1..CH4 in {text!r}")
    return found[1], found[2], found[3], found[4]


def _read_channel_mv(channel: "EpcChannel") -> float:
    return channel.parent.voltages_mv()[channel.number - 1]


class EpcChannel(Channel):
    """One fiber squeezer channel (1..4)."""

    parent: "Epc400"

    voltage_mv = Parameter(
        _read_channel_mv, "V{ch},{value}",
        unit="mV", doc="Control the squeezer drive voltage (mV, sent as an integer).",
        validator=Range(-5000.0, 5000.0), set_formatter=lambda v: f"{round(v):d}",
    )


class Epc400(PolarizationController):
    """OZ Optics EPC-400: four voltage-driven fiber squeezers."""

    default_transport = {"write_termination": "\r\n", "read_termination": "\r\n"}
    default_link = {"baudrate": 9600}
    setting_unit = "mV"
    setting_limits = (-5000.0, 5000.0)
    n_settings = 4

    def __init__(self, transport: Transport, *, name: str | None = None) -> None:
        super().__init__(transport, name=name)
        self.channels = tuple(EpcChannel(self, n) for n in range(1, 5))

    def _get(self, command: str, parse: Callable[[str], Any]) -> Any:
        return self.transport.query_lines(command, lambda lines: parse(" ".join(lines)), idempotent=True)

    def _set(self, command: str) -> None:
        self.transport.query_lines(command)

    def voltages_mv(self) -> tuple[float, float, float, float]:
        """Measure all four channel voltages (mV) with one `V?`."""
        return self._get("V?", parse_voltages_mv)

    def set_dc_mode(self) -> None:
        """Set fixed-voltage (DC) mode: voltages hold, no scrambling (`MDC`)."""
        self._set("MDC")

    def get_settings(self) -> tuple[float, ...]:
        """The four voltages (mV)."""
        return self.voltages_mv()

    def set_settings(self, values: Sequence[float]) -> None:
        """Set the four voltages (mV), each acknowledged by "Done"."""
        values = self.check_settings(values)
        with self.lock:
            for channel, value in zip(self.channels, values):
                channel.voltage_mv = value
