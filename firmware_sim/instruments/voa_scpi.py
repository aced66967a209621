"""Emulated Keysight N7764A-style multi-channel VOA: SCPI over a TCP socket.

Command set (each also in long form, case-insensitive, `;`-chainable, "\\n"
terminated; n = a slot number of `slots`, default 1; optional `:CHANnel1` node):

    *IDN? *RST *CLS *OPC? *WAI
    :INPut<n>:ATTenuation <dB>[DB]|MIN|MAX|DEF    :INPut<n>:ATTenuation? [MIN|MAX|DEF]
    :INPut<n>:WAVelength <m>[M|NM|UM|PM]|MIN|MAX|DEF    :INPut<n>:WAVelength? [MIN|MAX|DEF]
    :OUTPut<n>[:STATe] 0|1|ON|OFF                  :OUTPut<n>[:STATe]?
    :INPut:ATTenuation:ALL <dB>   :INPut:WAVelength:ALL <m>   :OUTPut[:STATe]:ALL 0|1|ON|OFF
    :OUTPut<n>:POWer <P>[DBM|W|MW|UW|NW|PW]|MIN|MAX|DEF   :OUTPut<n>:POWer?  (sets/reads via attenuation)
    :OUTPut<n>:POWer:CONTRol 0|1|ON|OFF   :OUTPut<n>:POWer:CONTRol?
    :OUTPut<n>:POWer:UNit DBM|WATT|0|1    :OUTPut<n>:POWer:UNit?
    :READ<n>[:SCALar]:POWer[:DC]?   :FETCh<n>[:SCALar]:POWer[:DC]?   (built-in output power monitor)
    :SYSTem:ERRor[:NEXT]?

Numbers are answered in NR3 ("+2.50000000E+000"), states as "0"/"1".  The
settings live in the SimBench: what is written is read back from it.

Power: the reference (input) power of every channel is what makes mu_max at
0 dB on the bench, raised by `fixed_attenuation_db` (the fixed attenuator
between the VOA and the fiber that brings the monitored light down to single
photons): P_ref = mu_max * h c / lambda_source * pulse_rate * 10**(fixed/10).
The output power value is P_ref - attenuation.  The monitor of channels 1..3
reads the bench's actual mu of that class (wavelength mismatch included, 0 with
the shutter closed) converted the same way; channel 4 carries no light; no
light reads the monitor floor, -80 dBm.  Power control holds the set power
against input changes; the simulated input never changes, so it only records
its state.
"""

from __future__ import annotations

import math
import re
import threading

from firmware_sim.faults import InstrumentFaults
from firmware_sim.instruments.scpi import (
    DATA_OUT_OF_RANGE,
    DATA_TYPE_ERROR,
    HEADER_SUFFIX_OUT_OF_RANGE,
    ILLEGAL_PARAMETER_VALUE,
    INVALID_SUFFIX,
    MISSING_PARAMETER,
    PARAMETER_NOT_ALLOWED,
    SYNTAX_ERROR,
    ScpiDevice,
    ScpiError,
    format_nr3,
    parse_number,
)
from firmware_sim.instruments.servers import Connection
from qkdctl.core.errors import QkdInputError

IDN = "Keysight Technologies,N7764A,SIM0000001,1.0.0"
ATT_MIN_DB, ATT_MAX_DB, ATT_DEF_DB = 0.0, 45.0, 0.0
WAV_MIN_M, WAV_MAX_M, WAV_DEF_M = 1260e-9, 1640e-9, 1550e-9
DB_UNITS = {"": 1.0, "DB": 1.0}
M_UNITS = {"": 1.0, "M": 1.0, "MM": 1e-3, "UM": 1e-6, "NM": 1e-9, "PM": 1e-12}
W_UNITS = {"W": 1.0, "MW": 1e-3, "UW": 1e-6, "NW": 1e-9, "PW": 1e-12}
PLANCK_J_S = 6.62607015e-34
LIGHT_M_S = 299792458.0
MONITOR_FLOOR_DBM = -80.0
N_SOURCE_CHANNELS = 3  # VOA channels 1..3 carry the signal, decoy and vacuum light


def _dbm(watts: float) -> float:
    return 10.0 * math.log10(watts / 1e-3)


def _watts(dbm: float) -> float:
    return 1e-3 * 10.0 ** (dbm / 10.0)


def _limits(lo: float, hi: float, default: float) -> dict[str, float]:
    return {"MINIMUM": lo, "MAXIMUM": hi, "DEFAULT": default}


class VoaFirmware:
    """SCPI firmware of the VOA, bound to the bench; one lock via the bench."""

    def __init__(
        self,
        bench,
        faults: InstrumentFaults,
        slots: tuple[int, ...] = (1, 2, 3, 4),
        fixed_attenuation_db: float = 70.0,
    ) -> None:
        """slots: the SCPI numbers <n> of the attenuators, in bench VOA channel order 1, 2, ..."""
        if len(set(slots)) != len(slots) or min(slots) < 1:
            raise QkdInputError(f"VOA slots must be distinct numbers >= 1, got {slots}")
        self.bench = bench
        self.faults = faults
        self.slots = tuple(slots)
        self._bench_channel = {slot: k + 1 for k, slot in enumerate(self.slots)}
        self.fixed_attenuation_db = fixed_attenuation_db
        self._power_control = {ch: False for ch in self._bench_channel.values()}
        self._unit_watt = {ch: False for ch in self._bench_channel.values()}
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
        dev.add(":OUTPut#[:CHANnel#]:POWer", False, self._set_power)
        dev.add(":OUTPut#[:CHANnel#]:POWer", True, self._get_power)
        dev.add(":OUTPut#[:CHANnel#]:POWer:CONTRol", False, self._set_control)
        dev.add(":OUTPut#[:CHANnel#]:POWer:CONTRol", True, self._get_control)
        dev.add(":OUTPut#[:CHANnel#]:POWer:UNit", False, self._set_unit)
        dev.add(":OUTPut#[:CHANnel#]:POWer:UNit", True, self._get_unit)
        dev.add(":READ#[:CHANnel#][:SCALar]:POWer[:DC]", True, self._read_power)
        dev.add(":FETCh#[:CHANnel#][:SCALar]:POWer[:DC]", True, self._read_power)
        dev.add(":SYSTem:ERRor[:NEXT]", True, lambda s, a: self._no_arg(a) or dev.pop_error())
        self.device = dev

    @staticmethod
    def _no_arg(argument: str) -> None:
        if argument:
            raise ScpiError(PARAMETER_NOT_ALLOWED)

    def _channel(self, suffixes: list[int]) -> int:
        """The bench VOA channel of a header's slot suffix."""
        slot, sub = suffixes
        if slot not in self._bench_channel or sub != 1:
            raise ScpiError(HEADER_SUFFIX_OUT_OF_RANGE)
        return self._bench_channel[slot]

    def _all(self, setter):
        """The ':ALL' form of a per-channel setter: every channel, or none if the value is bad."""

        def handler(suffixes: list[int], argument: str) -> None:
            (sub,) = suffixes
            if sub != 1:
                raise ScpiError(HEADER_SUFFIX_OUT_OF_RANGE)
            for slot in self.slots:
                setter([slot, 1], argument)

        return handler

    def reset(self) -> None:
        """*RST: every channel to 0 dB, 1550 nm, output (shutter) disabled, power control off, dBm."""
        for ch in self._bench_channel.values():
            self._power_control[ch] = False
            self._unit_watt[ch] = False
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

    @staticmethod
    def _parse_bool(argument: str) -> bool:
        word = argument.strip().upper()
        if not word:
            raise ScpiError(MISSING_PARAMETER)
        states = {"0": False, "OFF": False, "1": True, "ON": True}
        if word not in states:
            raise ScpiError(ILLEGAL_PARAMETER_VALUE)
        return states[word]

    def _set_state(self, suffixes: list[int], argument: str) -> None:
        ch = self._channel(suffixes)
        self.bench.set_output_enabled(ch, self._parse_bool(argument))

    def _get_state(self, suffixes: list[int], argument: str) -> str:
        ch = self._channel(suffixes)
        self._no_arg(argument)
        return "1" if self.bench.output_enabled(ch) else "0"

    # --- output power (reference power, setpoint, monitor) -----------------------
    def reference_power_dbm(self) -> float:
        """Input (reference) power of a channel (dBm): what gives mu_max at 0 dB, before the fixed attenuator."""
        src = self.bench.config.source
        photon_j = PLANCK_J_S * LIGHT_M_S / src.wavelength_m
        return _dbm(src.mu_max * photon_j * src.pulse_rate_hz) + self.fixed_attenuation_db

    def _format_power(self, ch: int, dbm: float) -> str:
        return format_nr3(_watts(dbm) if self._unit_watt[ch] else dbm)

    def _parse_power_dbm(self, ch: int, argument: str) -> float:
        ref = self.reference_power_dbm()
        text = argument.strip().upper()
        if not text:
            raise ScpiError(MISSING_PARAMETER)
        limits = {"MINIMUM": ref - ATT_MAX_DB, "MAXIMUM": ref - ATT_MIN_DB, "DEFAULT": ref - ATT_DEF_DB}
        for word, value in limits.items():
            if text in (word, word[:3]):
                return value
        m = re.fullmatch(r"([+-]?(?:\d+\.?\d*|\.\d+)(?:E[+-]?\d+)?)\s*([A-Z]*)", text)
        if m is None:
            raise ScpiError(DATA_TYPE_ERROR)
        value, unit = float(m.group(1)), m.group(2)
        if unit == "":
            unit = "W" if self._unit_watt[ch] else "DBM"
        if unit == "DBM":
            return value
        if unit not in W_UNITS:
            raise ScpiError(INVALID_SUFFIX)
        if value <= 0.0:
            raise ScpiError(DATA_OUT_OF_RANGE)
        return _dbm(value * W_UNITS[unit])

    def _set_power(self, suffixes: list[int], argument: str) -> None:
        ch = self._channel(suffixes)
        att = self.reference_power_dbm() - self._parse_power_dbm(ch, argument)
        if not ATT_MIN_DB - 1e-9 <= att <= ATT_MAX_DB + 1e-9:
            raise ScpiError(DATA_OUT_OF_RANGE)
        self.bench.set_attenuation_db(ch, min(max(att, ATT_MIN_DB), ATT_MAX_DB))

    def _get_power(self, suffixes: list[int], argument: str) -> str:
        ch = self._channel(suffixes)
        if argument:
            return self._format_power(ch, self._parse_power_dbm(ch, argument))
        return self._format_power(ch, self.reference_power_dbm() - self.bench.attenuation_db(ch))

    def _set_control(self, suffixes: list[int], argument: str) -> None:
        ch = self._channel(suffixes)
        self._power_control[ch] = self._parse_bool(argument)

    def _get_control(self, suffixes: list[int], argument: str) -> str:
        ch = self._channel(suffixes)
        self._no_arg(argument)
        return "1" if self._power_control[ch] else "0"

    def _set_unit(self, suffixes: list[int], argument: str) -> None:
        ch = self._channel(suffixes)
        units = {"DBM": False, "0": False, "WATT": True, "W": True, "1": True}
        word = argument.strip().upper()
        if not word:
            raise ScpiError(MISSING_PARAMETER)
        if word not in units:
            raise ScpiError(ILLEGAL_PARAMETER_VALUE)
        self._unit_watt[ch] = units[word]

    def _get_unit(self, suffixes: list[int], argument: str) -> str:
        ch = self._channel(suffixes)
        self._no_arg(argument)
        return "1" if self._unit_watt[ch] else "0"

    def _read_power(self, suffixes: list[int], argument: str) -> str:
        ch = self._channel(suffixes)
        self._no_arg(argument)
        mu = float(self.bench.mu()[ch - 1]) if ch <= N_SOURCE_CHANNELS else 0.0
        src = self.bench.config.source
        if mu > 0.0:
            photon_j = PLANCK_J_S * LIGHT_M_S / src.wavelength_m
            dbm = max(_dbm(mu * photon_j * src.pulse_rate_hz) + self.fixed_attenuation_db, MONITOR_FLOOR_DBM)
        else:
            dbm = MONITOR_FLOOR_DBM
        return self._format_power(ch, dbm)

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
