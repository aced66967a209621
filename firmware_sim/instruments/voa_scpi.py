"""Emulated Keysight N7764A-style multi-channel VOA: SCPI over a TCP socket.

Command set (each also in long form, case-insensitive, `;`-chainable, "\\n"
terminated; n = channel 1..n_channels, default 1; optional `:CHANnel1` node):

    *IDN? *RST *CLS *OPC? *WAI
    :INPut<n>:ATTenuation <dB>[DB]|MIN|MAX|DEF    :INPut<n>:ATTenuation? [MIN|MAX|DEF]
    :INPut<n>:WAVelength <m>[M|NM|UM|PM]|MIN|MAX|DEF    :INPut<n>:WAVelength? [MIN|MAX|DEF]
    :OUTPut<n>[:STATe] 0|1|ON|OFF                  :OUTPut<n>[:STATe]?
    :INPut:ATTenuation:ALL <dB>   :INPut:WAVelength:ALL <m>   :OUTPut[:STATe]:ALL 0|1|ON|OFF
    :SYSTem:ERRor[:NEXT]?

Numbers are answered in NR3 ("+2.50000000E+000"), states as "0"/"1".  The
settings live in the SimBench: what is written is read back from it.
"""

from __future__ import annotations

import threading

from firmware_sim.faults import InstrumentFaults
from firmware_sim.instruments.scpi import (
    DATA_OUT_OF_RANGE,
    HEADER_SUFFIX_OUT_OF_RANGE,
    ILLEGAL_PARAMETER_VALUE,
    MISSING_PARAMETER,
    PARAMETER_NOT_ALLOWED,
    SYNTAX_ERROR,
    ScpiDevice,
    ScpiError,
    format_nr3,
    parse_number,
)
from firmware_sim.instruments.servers import Connection

IDN = "Keysight Technologies,N7764A,SIM0000001,1.0.0"
ATT_MIN_DB, ATT_MAX_DB, ATT_DEF_DB = 0.0, 45.0, 0.0
WAV_MIN_M, WAV_MAX_M, WAV_DEF_M = 1260e-9, 1640e-9, 1550e-9
DB_UNITS = {"": 1.0, "DB": 1.0}
M_UNITS = {"": 1.0, "M": 1.0, "MM": 1e-3, "UM": 1e-6, "NM": 1e-9, "PM": 1e-12}


def _limits(lo: float, hi: float, default: float) -> dict[str, float]:
    return {"MINIMUM": lo, "MAXIMUM": hi, "DEFAULT": default}


class VoaFirmware:
    """SCPI firmware of the VOA, bound to the bench; one lock via the bench."""

    def __init__(self, bench, faults: InstrumentFaults, n_channels: int = 4) -> None:
        self.bench = bench
        self.faults = faults
        self.n_channels = n_channels
        self._lock = threading.Lock()
        dev = ScpiDevice()
        dev.add_common("*IDN?", lambda s, a: self._no_arg(a) or IDN)
        dev.add_common("*RST", lambda s, a: self._no_arg(a) or self.reset())
        dev.add_common("*CLS", lambda s, a: self._no_arg(a) or dev.errors.clear())
        dev.add_common("*OPC?", lambda s, a: self._no_arg(a) or "1")
        dev.add_common("*WAI", lambda s, a: self._no_arg(a))
        dev.add(":INPut#[:CHANnel#]:ATTenuation", False, self._set_att)
        dev.add(":INPut#[:CHANnel#]:ATTenuation", True, self._get_att)
        dev.add(":INPut#[:CHANnel#]:WAVelength", False, self._set_wav)
        dev.add(":INPut#[:CHANnel#]:WAVelength", True, self._get_wav)
        dev.add(":OUTPut#[:CHANnel#][:STATe]", False, self._set_state)
        dev.add(":OUTPut#[:CHANnel#][:STATe]", True, self._get_state)
        dev.add(":INPut[:CHANnel#]:ATTenuation:ALL", False, self._all(self._set_att))
        dev.add(":INPut[:CHANnel#]:WAVelength:ALL", False, self._all(self._set_wav))
        dev.add(":OUTPut[:CHANnel#][:STATe]:ALL", False, self._all(self._set_state))
        dev.add(":SYSTem:ERRor[:NEXT]", True, lambda s, a: self._no_arg(a) or dev.pop_error())
        self.device = dev

    @staticmethod
    def _no_arg(argument: str) -> None:
        if argument:
            raise ScpiError(PARAMETER_NOT_ALLOWED)

    def _channel(self, suffixes: list[int]) -> int:
        channel, sub = suffixes
        if not 1 <= channel <= self.n_channels or sub != 1:
            raise ScpiError(HEADER_SUFFIX_OUT_OF_RANGE)
        return channel

    def _all(self, setter):
        """The ':ALL' form of a per-channel setter: every channel, or none if the value is bad."""

        def handler(suffixes: list[int], argument: str) -> None:
            (sub,) = suffixes
            if sub != 1:
                raise ScpiError(HEADER_SUFFIX_OUT_OF_RANGE)
            setter([1, 1], argument)
            for ch in range(2, self.n_channels + 1):
                setter([ch, 1], argument)

        return handler

    def reset(self) -> None:
        """*RST: every channel to 0 dB, 1550 nm, output (shutter) disabled."""
        for ch in range(1, self.n_channels + 1):
            self.bench.set_attenuation_db(ch, ATT_DEF_DB)
            self.bench.set_wavelength_m(ch, WAV_DEF_M)
            self.bench.set_output_enabled(ch, False)

    def _set_att(self, suffixes: list[int], argument: str) -> None:
        ch = self._channel(suffixes)
        value = parse_number(argument, DB_UNITS, _limits(ATT_MIN_DB, ATT_MAX_DB, ATT_DEF_DB))
        if not ATT_MIN_DB <= value <= ATT_MAX_DB:
            raise ScpiError(DATA_OUT_OF_RANGE)
        self.bench.set_attenuation_db(ch, value)

    def _get_att(self, suffixes: list[int], argument: str) -> str:
        ch = self._channel(suffixes)
        if argument:
            return format_nr3(parse_number(argument, {}, _limits(ATT_MIN_DB, ATT_MAX_DB, ATT_DEF_DB)))
        return format_nr3(self.bench.attenuation_db(ch))

    def _set_wav(self, suffixes: list[int], argument: str) -> None:
        ch = self._channel(suffixes)
        value = parse_number(argument, M_UNITS, _limits(WAV_MIN_M, WAV_MAX_M, WAV_DEF_M))
        if not WAV_MIN_M * (1 - 1e-12) <= value <= WAV_MAX_M * (1 + 1e-12):
            raise ScpiError(DATA_OUT_OF_RANGE)
        self.bench.set_wavelength_m(ch, value)

    def _get_wav(self, suffixes: list[int], argument: str) -> str:
        ch = self._channel(suffixes)
        if argument:
            return format_nr3(parse_number(argument, {}, _limits(WAV_MIN_M, WAV_MAX_M, WAV_DEF_M)))
        return format_nr3(self.bench.wavelength_m(ch))

    def _set_state(self, suffixes: list[int], argument: str) -> None:
        ch = self._channel(suffixes)
        word = argument.strip().upper()
        if not word:
            raise ScpiError(MISSING_PARAMETER)
        states = {"0": False, "OFF": False, "1": True, "ON": True}
        if word not in states:
            raise ScpiError(ILLEGAL_PARAMETER_VALUE)
        self.bench.set_output_enabled(ch, states[word])

    def _get_state(self, suffixes: list[int], argument: str) -> str:
        ch = self._channel(suffixes)
        self._no_arg(argument)
        return "1" if self.bench.output_enabled(ch) else "0"

    def execute(self, line: str) -> str | None:
        """Run one command line (faults' queued errors are added first)."""
        with self._lock:
            for error in self.faults.take_errors():
                self.device.push_error(error)
            return self.device.execute(line)

    def session(self, conn: Connection) -> None:
        """Serve one TCP client: "\\n"-terminated lines in, reply lines out."""
        while True:
            raw = conn.recv_line(b"\n")
            if raw is None:
                return
            try:
                line = raw.decode("ascii").rstrip("\r")
            except UnicodeDecodeError:
                line = None
            if line is None:
                with self._lock:
                    self.device.push_error(SYNTAX_ERROR)
                reply = None
            else:
                reply = self.execute(line)
            payload = b"" if reply is None else (reply + "\n").encode("ascii")
            if not conn.reply(payload, b"\n"):
                return
