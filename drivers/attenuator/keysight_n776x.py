"""Keysight N776xA multi-channel variable optical attenuators (SCPI over VISA).

Commands (Keysight N77xx programming guide, as summarised in
/work/shared/references/instruments.md): `:INP<n>:ATT <dB>` / `?`, `:INP<n>:WAV <m>` / `?`
(SI metres), `:OUTP<n>:STAT 0|1` / `?` (shutter), `:OUTP<n>:POW:CONTR 0|1` (power-control
mode), `:OUTP<n>:POW <dBm>` / `?`, `:READ<n>:POW?` (built-in monitor), `:SYST:ERR?`.

The SCPI channel numbers of the attenuators are the slot numbers `channel_numbers`
(the notes give slots 1, 3, 5, 7 for the N7764A; pass `channel_numbers=` if a
firmware numbers them differently). Power values are in dBm (the power unit is left
at its default, dBm).
"""

from __future__ import annotations

from typing import ClassVar, Sequence

from drivers.instrument import Channel, ScpiInstrument
from drivers.parameters import BOOL, Parameter, Range, parse_bool
from drivers.transport import Transport
from qkdctl.core.errors import QkdInputError


def _nm_to_m(value_nm: float) -> str:
    return f"{value_nm * 1e-9:.6E}"


def _m_to_nm(text: str) -> float:
    return round(float(text) * 1e9, 6)


class N776xChannel(Channel):
    """One attenuator channel (SCPI slot number `number`)."""

    parent: "KeysightN776x"

    attenuation_db = Parameter(
        ":INP{ch}:ATT?", ":INP{ch}:ATT {value}",
        unit="dB", doc="Control the attenuation of the channel (dB).",
        validator=Range(limits_attr="attenuation_limits_db"), set_formatter=lambda v: f"{v:.3f}",
    )
    wavelength_nm = Parameter(
        ":INP{ch}:WAV?", ":INP{ch}:WAV {value}",
        unit="nm", doc="Control the calibration wavelength (nm; sent in metres).",
        validator=Range(limits_attr="wavelength_limits_nm"), get_parser=_m_to_nm, set_formatter=_nm_to_m,
    )
    output_enabled = Parameter(
        ":OUTP{ch}:STAT?", ":OUTP{ch}:STAT {value}",
        unit="bool", doc="Control the output shutter (True = light passes).",
        validator=BOOL, get_parser=parse_bool, set_formatter=lambda v: str(int(v)),
    )

    @property
    def attenuation_limits_db(self) -> tuple[float, float]:
        """The model's attenuation range (dB)."""
        return self.parent.attenuation_limits_db

    @property
    def wavelength_limits_nm(self) -> tuple[float, float]:
        """The model's wavelength range (nm)."""
        return self.parent.wavelength_limits_nm


class N776xPowerChannel(N776xChannel):
    """A channel with the built-in power monitor and power-control mode."""

    power_control_enabled = Parameter(
        ":OUTP{ch}:POW:CONTR?", ":OUTP{ch}:POW:CONTR {value}",
        unit="bool", doc="Control power-control mode (True = hold the output power at the setpoint).",
        validator=BOOL, get_parser=parse_bool, set_formatter=lambda v: str(int(v)),
    )
    power_setpoint_dbm = Parameter(
        ":OUTP{ch}:POW?", ":OUTP{ch}:POW {value}",
        unit="dBm", doc="Control the output power setpoint of power-control mode (dBm).",
        validator=Range(-60.0, 23.0), set_formatter=lambda v: f"{v:.3f}",
    )
    power_dbm = Parameter(
        ":READ{ch}:POW?", None,
        unit="dBm", doc="Measure the output power with the built-in monitor (dBm).",
    )


class KeysightN776x(ScpiInstrument):
    """Keysight N776xA VOA family; subclasses fix the channel count and limits."""

    channel_class: ClassVar[type[N776xChannel]] = N776xPowerChannel
    default_channel_numbers: ClassVar[tuple[int, ...]] = (1,)
    attenuation_limits_db: ClassVar[tuple[float, float]] = (0.0, 45.0)
    wavelength_limits_nm: ClassVar[tuple[float, float]] = (1260.0, 1640.0)

    def __init__(
        self,
        transport: Transport,
        *,
        name: str | None = None,
        channel_numbers: Sequence[int] | None = None,
    ) -> None:
        super().__init__(transport, name=name)
        numbers = tuple(self.default_channel_numbers if channel_numbers is None else channel_numbers)
        if len(numbers) != len(self.default_channel_numbers) or len(set(numbers)) != len(numbers) or not all(
            isinstance(n, int) and n >= 1 for n in numbers
        ):
            raise QkdInputError(
                f"{type(self).__name__} needs {len(self.default_channel_numbers)} distinct positive "
                f"channel numbers, got {numbers!r}"
            )
        self.channels: tuple[N776xChannel, ...] = tuple(self.channel_class(self, n) for n in numbers)

    def channel(self, index: int) -> N776xChannel:
        """The channel at 0-based `index` (front-panel order)."""
        if not 0 <= index < len(self.channels):
            raise QkdInputError(f"channel index {index} out of range; allowed range is [0, {len(self.channels) - 1}]")
        return self.channels[index]

    def set_all_attenuations_db(self, values_db: Sequence[float]) -> None:
        """Set every channel's attenuation (dB) under one lock."""
        if len(values_db) != len(self.channels):
            raise QkdInputError(f"{len(values_db)} attenuations given for {len(self.channels)} channels")
        with self.lock:
            for ch, value in zip(self.channels, values_db):
                ch.attenuation_db = value


class KeysightN7761A(KeysightN776x):
    """Keysight N7761A: one single-mode attenuator, no power monitor."""

    channel_class = N776xChannel
    default_channel_numbers = (1,)


class KeysightN7764A(KeysightN776x):
    """Keysight N7764A: four single-mode attenuators with power monitor and power control."""

    default_channel_numbers = (1, 3, 5, 7)


class KeysightN7766A(KeysightN776x):
    """Keysight N7766A: two multimode attenuators with power monitor and power control.

    Multimode limits (0-40 dB, 800-1370 nm) are from product literature, unverified.
    """

    default_channel_numbers = (1, 3)
    attenuation_limits_db = (0.0, 40.0)
    wavelength_limits_nm = (800.0, 1370.0)
