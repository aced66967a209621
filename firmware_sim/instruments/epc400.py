"""Emulated OZ Optics EPC-400 style fiber-squeezer controller: ASCII over a serial pty.

Commands (case-insensitive, ended by CR, LF or CR LF; replies end in CR LF):

    V<ch>,<mV>   set channel ch (1..4) to mV (integer, -5000..+5000)   -> Done
    V?           all voltages -> "Voltage(mV): CH1 +2200 CH2 +5000 CH3 -1000 CH4 -4000" then Done
    VZ<ch>       channel to 0 mV                                         -> Done
    VH<ch>       channel to +5000 mV                                     -> Done
    VL<ch>       channel to -5000 mV                                     -> Done
    MDC          fixed-voltage (DC) mode                                 -> Done

Only DC mode is emulated: the scrambling (AC) mode `MAC` answers Error-2.

Errors replace Done: Error-2 unknown command, Error-3 channel out of range,
Error-4 voltage out of range, Error-5 malformed number.  Lines longer than
MAX_LINE_CHARS are discarded with Error-2.  The voltages live in the SimBench.
"""

from __future__ import annotations

import re

N_CHANNELS = 4
V_MIN_MV, V_MAX_MV = -5000, 5000
MAX_LINE_CHARS = 128
DONE = b"Done\r\n"
ERR_UNKNOWN = b"Error-2\r\n"
ERR_CHANNEL = b"Error-3\r\n"
ERR_RANGE = b"Error-4\r\n"
ERR_NUMBER = b"Error-5\r\n"


class EpcError(Exception):
    """A command failed; carries the reply line."""

    def __init__(self, reply: bytes) -> None:
        super().__init__(reply.decode().strip())
        self.reply = reply


class Epc400Firmware:
    """Line-oriented firmware of the EPC-400 style controller (a `SerialFirmware`)."""

    terminator = b"\r\n"

    def __init__(self, bench) -> None:
        self.bench = bench
        self._buffer = bytearray()
        self._overlong = False

    @staticmethod
    def _channel(text: str) -> int:
        if not text.isdigit():
            raise EpcError(ERR_NUMBER if text else ERR_UNKNOWN)
        ch = int(text)
        if not 1 <= ch <= N_CHANNELS:
            raise EpcError(ERR_CHANNEL)
        return ch

    def _voltages_line(self) -> bytes:
        parts = " ".join(
            f"CH{ch} {int(round(self.bench.epc_voltage_mv(ch))):+d}" for ch in range(1, N_CHANNELS + 1)
        )
        return f"Voltage(mV): {parts}\r\n".encode("ascii")

    def execute(self, line: str) -> bytes:
        """Run one command line; return the full reply (with Done or Error-N)."""
        cmd = line.strip().upper()
        try:
            if cmd == "MDC":
                return DONE
            if cmd == "V?":
                return self._voltages_line() + DONE
            m = re.fullmatch(r"V([ZHL])(.*)", cmd)
            if m:
                ch = self._channel(m.group(2))
                self.bench.set_epc_voltage_mv(ch, {"Z": 0, "H": V_MAX_MV, "L": V_MIN_MV}[m.group(1)])
                return DONE
            m = re.fullmatch(r"V([^,]*),(.*)", cmd)
            if m:
                ch = self._channel(m.group(1))
                if not re.fullmatch(r"[+-]?\d+", m.group(2).strip()):
                    raise EpcError(ERR_NUMBER)
                mv = int(m.group(2))
                if not V_MIN_MV <= mv <= V_MAX_MV:
                    raise EpcError(ERR_RANGE)
                self.bench.set_epc_voltage_mv(ch, mv)
                return DONE
            raise EpcError(ERR_UNKNOWN)
        except EpcError as exc:
            return exc.reply

    def feed(self, data: bytes, now_s: float) -> list[bytes]:
        """Split host bytes into lines and answer each."""
        replies = []
        self._buffer += data
        while True:
            cut = [i for i in (self._buffer.find(b"\r"), self._buffer.find(b"\n")) if i >= 0]
            if not cut:
                break
            idx = min(cut)
            raw = bytes(self._buffer[:idx])
            del self._buffer[: idx + 1]
            if self._overlong:
                self._overlong = False
                continue
            if not raw.strip():
                continue
            try:
                line = raw.decode("ascii")
            except UnicodeDecodeError:
                replies.append(ERR_UNKNOWN)
                continue
            replies.append(self.execute(line))
        if len(self._buffer) > MAX_LINE_CHARS:
            self._buffer.clear()
            self._overlong = True
            replies.append(ERR_UNKNOWN)
        return replies

    def next_event_s(self) -> float | None:
        """The EPC has no timed events."""
        return None

    def tick(self, now_s: float) -> list[bytes]:
        """The EPC has no timed events."""
        return []
