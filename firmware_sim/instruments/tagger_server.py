"""Emulated time tagger: a line-based command protocol over TCP plus binary tag frames.

See docs/sim_protocols.md for the exact protocol.  Commands end in "\\n" (a
trailing "\\r" is ignored); every command gets one reply line ("OK", a value or
"ERR <code> <text>") except BLOCK and STREAM, which answer with tag frames
(`tag_frame.encode_frame`).  Settings live in the SimBench; every acquired
block is also put into the `BlockStore` served by Alice's host.
"""

from __future__ import annotations

import math

from firmware_sim.faults import InstrumentFaults
from firmware_sim.instruments.block_store import BlockStore
from firmware_sim.instruments.servers import Connection
from firmware_sim.instruments.tag_frame import encode_frame
from qkdctl.core.errors import QkdInputError, SecurityAbort

IDN = "QKDCTL,SIM-TAGGER,TT0001,1.0"
TRIG_MIN_V, TRIG_MAX_V = -2.5, 2.5
DELAY_MAX_PS = 1_000_000_000
DEAD_MAX_PS = 1_000_000_000
DURATION_MIN_S, DURATION_MAX_S = 1e-6, 10.0

ERR_UNKNOWN_COMMAND = 1
ERR_BAD_ARGUMENT = 2
ERR_OUT_OF_RANGE = 3
ERR_UNKNOWN_CHANNEL = 4
ERR_ACQUISITION = 5
ERR_SOURCE_STOPPED = 6  # Alice's randomness source failed its health tests: no block, no key


class TaggerError(Exception):
    """A command failed: code and text for the ERR reply."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


def _args(parts: list[str], n: int, usage: str) -> list[str]:
    if len(parts) != n:
        raise TaggerError(ERR_BAD_ARGUMENT, f"usage: {usage}")
    return parts


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise TaggerError(ERR_BAD_ARGUMENT, f"{what} {text!r} is not an integer") from None


def _float(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TaggerError(ERR_BAD_ARGUMENT, f"{what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise TaggerError(ERR_BAD_ARGUMENT, f"{what} {text!r} is not finite")
    return value


class TaggerFirmware:
    """Command interpreter of the simulated tagger, bound to a bench and a block store."""

    def __init__(self, bench, faults: InstrumentFaults, store: BlockStore) -> None:
        self.bench = bench
        self.faults = faults
        self.store = store
        self.channels = sorted(bench.tagger_channels().values())
        self._defaults = {
            ch: (bench.trigger_level_v(ch), bench.tagger_delay_ps(ch), bench.tagger_dead_time_ps(ch))
            for ch in self.channels
        }

    def _channel(self, text: str) -> int:
        ch = _int(text, "channel")
        if ch not in self.channels:
            raise TaggerError(ERR_UNKNOWN_CHANNEL, f"channel {ch} not in {','.join(map(str, self.channels))}")
        return ch

    def _apply(self, setter, ch: int, value) -> None:
        try:
            setter(ch, value)
        except QkdInputError as exc:
            raise TaggerError(ERR_OUT_OF_RANGE, str(exc)) from None

    def reset(self) -> None:
        """*RST: power-on trigger levels, delays and dead times; every channel enabled."""
        for ch, (trig, delay, dead) in self._defaults.items():
            self.bench.set_trigger_level_v(ch, trig)
            self.bench.set_tagger_delay_ps(ch, delay)
            self.bench.set_tagger_dead_time_ps(ch, dead)
            self.bench.set_tagger_channel_enabled(ch, True)

    def command(self, line: str) -> str:
        """Run one non-acquisition command; return its reply line (no terminator)."""
        parts = line.split()
        if not parts:
            raise TaggerError(ERR_UNKNOWN_COMMAND, "empty command")
        name, args = parts[0].upper(), parts[1:]
        if name == "*IDN?":
            _args(args, 0, "*IDN?")
            return IDN
        if name == "*RST":
            _args(args, 0, "*RST")
            self.reset()
            return "OK"
        if name == "CHAN?":
            _args(args, 0, "CHAN?")
            return ",".join(map(str, self.channels))
        if name == "RATES?":
            _args(args, 0, "RATES?")
            rates = self.bench.count_rates_hz()
            return ",".join(f"{ch}={rates.get(ch, 0.0):.6e}" for ch in self.channels)
        if name == "STOP":
            _args(args, 0, "STOP")
            return "OK"
        if name == "TRIG":
            ch_s, v_s = _args(args, 2, "TRIG <ch> <V>")
            ch, v = self._channel(ch_s), _float(v_s, "level")
            if not TRIG_MIN_V <= v <= TRIG_MAX_V:
                raise TaggerError(ERR_OUT_OF_RANGE, f"level {v} V not in -2.5..2.5 V")
            self._apply(self.bench.set_trigger_level_v, ch, v)
            return "OK"
        if name == "DELAY":
            ch_s, d_s = _args(args, 2, "DELAY <ch> <ps>")
            ch, d = self._channel(ch_s), _int(d_s, "delay")
            if abs(d) > DELAY_MAX_PS:
                raise TaggerError(ERR_OUT_OF_RANGE, f"delay {d} ps not in -1000000000..1000000000 ps")
            self._apply(self.bench.set_tagger_delay_ps, ch, d)
            return "OK"
        if name == "DEAD":
            ch_s, d_s = _args(args, 2, "DEAD <ch> <ps>")
            ch, d = self._channel(ch_s), _int(d_s, "dead time")
            if not 0 <= d <= DEAD_MAX_PS:
                raise TaggerError(ERR_OUT_OF_RANGE, f"dead time {d} ps not in 0..1000000000 ps")
            self._apply(self.bench.set_tagger_dead_time_ps, ch, d)
            return "OK"
        if name == "ENABLE":
            ch_s, on_s = _args(args, 2, "ENABLE <ch> 0|1")
            ch = self._channel(ch_s)
            if on_s not in ("0", "1"):
                raise TaggerError(ERR_BAD_ARGUMENT, f"state {on_s!r} is not 0 or 1")
            self.bench.set_tagger_channel_enabled(ch, on_s == "1")
            return "OK"
        if name == "ENABLE?":
            (ch_s,) = _args(args, 1, "ENABLE? <ch>")
            return "1" if self.bench.tagger_channel_enabled(self._channel(ch_s)) else "0"
        if name == "TRIG?":
            (ch_s,) = _args(args, 1, "TRIG? <ch>")
            return f"{self.bench.trigger_level_v(self._channel(ch_s)):.6f}"
        if name == "DELAY?":
            (ch_s,) = _args(args, 1, "DELAY? <ch>")
            return str(self.bench.tagger_delay_ps(self._channel(ch_s)))
        if name == "DEAD?":
            (ch_s,) = _args(args, 1, "DEAD? <ch>")
            return str(self.bench.tagger_dead_time_ps(self._channel(ch_s)))
        raise TaggerError(ERR_UNKNOWN_COMMAND, f"unknown command {parts[0]!r}")

    def acquire_frame(self, duration_text: str) -> bytes:
        """Acquire one block of duration_text seconds, keep it for Alice's host, encode it."""
        duration_s = _float(duration_text, "duration")
        if not DURATION_MIN_S <= duration_s <= DURATION_MAX_S:
            raise TaggerError(ERR_OUT_OF_RANGE, f"duration {duration_s} s not in 1e-06..10 s")
        try:
            block = self.bench.acquire(duration_s)
        except QkdInputError as exc:
            raise TaggerError(ERR_ACQUISITION, str(exc)) from None
        except SecurityAbort as exc:
            raise TaggerError(ERR_SOURCE_STOPPED, str(exc)) from None
        except Exception as exc:  # the firmware answers ERR 5 instead of dying with the session
            raise TaggerError(ERR_ACQUISITION, f"{type(exc).__name__}: {exc}") from None
        self.store.put(block)
        return encode_frame(block.block_id, block.tags, self.faults.snapshot().tagger_overflow)

    def _stream(self, conn: Connection, args: list[str], pending: list[str]) -> bool:
        duration_s, n_text = _args(args, 2, "STREAM <duration_s> <n_blocks>")
        n_blocks = _int(n_text, "n_blocks")
        if n_blocks < 0:
            raise TaggerError(ERR_OUT_OF_RANGE, f"n_blocks {n_blocks} must be >= 0 (0 = until STOP)")
        sent = 0
        while n_blocks == 0 or sent < n_blocks:
            if conn.stop_event.is_set():
                return False
            stop = False
            while conn.line_waiting():
                raw = conn.recv_line()
                if raw is None:
                    return False
                text = raw.decode("ascii", "replace").strip()
                if text.upper() == "STOP":
                    stop = True
                    break
                pending.append(text)
            if stop:
                break
            if not conn.reply(self.acquire_frame(duration_s)):
                return False
            sent += 1
        return conn.reply(f"END {sent}\n".encode("ascii"), b"\n")

    def session(self, conn: Connection) -> None:
        """Serve one TCP client until it leaves or the link is cut."""
        pending: list[str] = []
        while True:
            if pending:
                text = pending.pop(0)
            else:
                raw = conn.recv_line()
                if raw is None:
                    return
                text = raw.decode("ascii", "replace").rstrip("\r")
            parts = text.split()
            name = parts[0].upper() if parts else ""
            try:
                if name == "BLOCK":
                    (duration_s,) = _args(parts[1:], 1, "BLOCK <duration_s>")
                    ok = conn.reply(self.acquire_frame(duration_s))
                elif name == "STREAM":
                    ok = self._stream(conn, parts[1:], pending)
                else:
                    ok = conn.reply((self.command(text) + "\n").encode("ascii"), b"\n")
            except TaggerError as exc:
                ok = conn.reply(f"ERR {exc.code} {exc.text}\n".encode("ascii", "replace"), b"\n")
            if not ok:
                return
