"""Client of the simulated time tagger's network protocol (docs/sim_protocols.md).

Line commands over TCP, each answered by one line ("OK", a value, or
"ERR <code> <text>"): *IDN?, *RST, CHAN?, RATES?, TRIG/TRIG? <ch> [V],
DELAY/DELAY? <ch> [ps], DEAD/DEAD? <ch> [ps].  `BLOCK <duration_s>` and
`STREAM <duration_s> <n_blocks>` are answered with binary tag frames:

    header "<4sHHQqqQQII8x" (64 bytes): magic b"QTAG", version 1, header_len 64,
        block_id, start_ps, stop_ps, n_records, missed_events, flags (bit 0 =
        overflow), crc32 of the record bytes
    records "<BBHiq" (16 bytes, Swabian raw-tag layout): type (0 tag, 1 error,
        2 overflow begin, 3 overflow end, 4 missed events), reserved, missed-event
        count, channel, time (ps)

and STREAM ends with a line "END <n_sent>".  Every read is bounded by a timeout;
a garbled, short or inconsistent frame raises `InstrumentError` naming the
instrument, the command and the bytes that came back.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any, Callable, ClassVar, Iterator

import numpy as np

from drivers.instrument import Channel, Instrument
from drivers.parameters import Parameter, Range
from drivers.tagger.base import TimeTagger, check_duration_s
from drivers.transport import DeviceError
from qkdctl.core.errors import InstrumentError, QkdInputError, SecurityAbort
from qkdctl.core.tags import TagBlock

FRAME_MAGIC = b"QTAG"
FRAME_VERSION = 1
FRAME_HEADER = struct.Struct("<4sHHQqqQQII8x")
FRAME_RECORD = np.dtype([("type", "u1"), ("reserved", "u1"), ("missed", "<u2"), ("channel", "<i4"), ("time_ps", "<i8")])
FLAG_OVERFLOW = 0x1
TYPE_TAG, TYPE_ERROR, TYPE_OVERFLOW_BEGIN, TYPE_OVERFLOW_END, TYPE_MISSED_EVENTS = 0, 1, 2, 3, 4
MAX_RECORDS = 1 << 26
BLOCK_MIN_S, BLOCK_MAX_S = 1e-6, 10.0
BODY_BYTES_PER_S = 20e6


def _value_text(value: float) -> str:
    return format(float(value), ".9g")


class SimTaggerChannel(Channel):
    """One input of the simulated tagger: trigger level, input delay, dead time."""

    trigger_level_v = Parameter(
        "TRIG? {ch}", "TRIG {ch} {value}", unit="V", doc="Control the trigger level (V).",
        validator=Range(-2.5, 2.5), set_formatter=_value_text,
    )
    input_delay_ps = Parameter(
        "DELAY? {ch}", "DELAY {ch} {value}", unit="ps", doc="Control the input delay (ps).",
        validator=Range(-1_000_000_000, 1_000_000_000, integer=True), get_parser=int,
    )
    dead_time_ps = Parameter(
        "DEAD? {ch}", "DEAD {ch} {value}", unit="ps", doc="Control the dead time (ps).",
        validator=Range(0, 1_000_000_000, integer=True), get_parser=int,
    )


def _parse_rates(line: str) -> dict[int, float]:
    rates = {}
    for item in line.split(","):
        ch, value = item.split("=")
        rates[int(ch)] = float(value)
    return rates


def _parse_channels(line: str) -> tuple[int, ...]:
    return tuple(int(c) for c in line.split(","))


class SimTagger(Instrument, TimeTagger):
    """The simulated bench's time tagger over TCP ("host:port" or socket://host:port).

    block_timeout_s bounds the wait for a tag frame after BLOCK/STREAM (acquisition
    and simulation time included); reads of the frame body are bounded by the
    transport timeout plus the time to move the frame at 20 MB/s.
    """

    default_transport: ClassVar[dict[str, Any]] = {"write_termination": "\n", "read_termination": "\n", "timeout_s": 2.0}

    def __init__(self, transport, *, name: str | None = None, block_timeout_s: float = 30.0) -> None:
        super().__init__(transport, name=name)
        if not block_timeout_s > 0:
            raise QkdInputError(f"block_timeout_s must be > 0 s, got {block_timeout_s!r}")
        self.block_timeout_s = float(block_timeout_s)
        self._channels: tuple[int, ...] | None = None
        self._channel_objects: dict[int, SimTaggerChannel] = {}

    @classmethod
    def open(cls, resource: str, **kwargs: Any) -> "SimTagger":
        """Open "host:port" (as printed by the simulated bench) or a socket:// URL."""
        if "://" not in resource and not resource.startswith("/") and resource.count(":") == 1:
            resource = f"socket://{resource}"
        return super().open(resource, **kwargs)

    # -- line protocol ------------------------------------------------------------
    def _checked(self, command: str, line: str) -> str:
        if line.startswith("ERR"):
            raise DeviceError(f"{self.name}: {command!r}: instrument error; received {line!r}")
        return line

    def _get(self, command: str, parse: Callable[[str], Any]) -> Any:
        return self.transport.query(command, lambda line: parse(self._checked(command, line)))

    def _set(self, command: str) -> None:
        def ok(line: str) -> None:
            if self._checked(command, line) != "OK":
                raise ValueError("expected 'OK'")

        self.transport.query(command, ok, idempotent=False)

    def identity(self) -> str:
        """Get the *IDN? string."""
        return self._get("*IDN?", str)

    def reset(self) -> None:
        """Set every channel to its power-on trigger level, delay and dead time (*RST)."""
        self._set("*RST")

    @property
    def channels(self) -> tuple[int, ...]:
        """Get the input channel numbers (asked once with CHAN?)."""
        if self._channels is None:
            self._channels = self._get("CHAN?", _parse_channels)
        return self._channels

    def channel(self, number: int) -> SimTaggerChannel:
        """Get the channel object of input `number`."""
        number = self.check_channel(number)
        if number not in self._channel_objects:
            self._channel_objects[number] = SimTaggerChannel(self, number)
        return self._channel_objects[number]

    def set_trigger_level_v(self, channel: int, level_v: float) -> None:
        """Set the trigger level (V) of one channel."""
        self.channel(channel).trigger_level_v = level_v

    def set_input_delay_ps(self, channel: int, delay_ps: int) -> None:
        """Set the input delay (ps) of one channel."""
        self.channel(channel).input_delay_ps = delay_ps

    def set_dead_time_ps(self, channel: int, dead_time_ps: int) -> None:
        """Set the dead time (ps) of one channel."""
        self.channel(channel).dead_time_ps = dead_time_ps

    def count_rates_hz(self) -> dict[int, float]:
        """Measure the count rate (Hz) of every channel over the last block (RATES?)."""
        return self._get("RATES?", _parse_rates)

    # -- tag frames -----------------------------------------------------------------
    def _garbled(self, command: str, problem: str, received: bytes) -> InstrumentError:
        try:
            self.transport.discard_input()
        except InstrumentError:
            pass
        shown = received[:80] + (b"..." if len(received) > 80 else b"")
        return InstrumentError(f"{self.name}: {command!r}: garbled tag frame ({problem}); received {shown!r}")

    def _read_frame(self, command: str) -> TagBlock:
        magic = self.transport.read_exact(4, label=command, timeout_s=self.block_timeout_s)
        if magic == b"ERR ":
            line = "ERR " + self.transport.read_line(label=command)
            if line.startswith("ERR 6 "):  # the bench's randomness source stopped: a security failure
                raise SecurityAbort(f"{self.name}: {command!r}: {line[6:]}")
            raise DeviceError(f"{self.name}: {command!r}: instrument error; received {line!r}")
        if magic != FRAME_MAGIC:
            raise self._garbled(command, f"magic {magic!r}, expected {FRAME_MAGIC!r}", magic)
        raw = magic + self.transport.read_exact(FRAME_HEADER.size - 4, label=command)
        _, version, header_len, block_id, start_ps, stop_ps, n, missed, flags, crc = FRAME_HEADER.unpack(raw)
        if version != FRAME_VERSION or header_len != FRAME_HEADER.size:
            raise self._garbled(command, f"version {version}, header length {header_len}", raw)
        if n > MAX_RECORDS:
            raise self._garbled(command, f"{n} records announced, more than {MAX_RECORDS}", raw)
        timeout = self.transport.timeout_s + n * FRAME_RECORD.itemsize / BODY_BYTES_PER_S
        body = self.transport.read_exact(n * FRAME_RECORD.itemsize, label=command, timeout_s=timeout) if n else b""
        if zlib.crc32(body) != crc:
            raise self._garbled(command, f"crc32 0x{zlib.crc32(body):08x} of {n} records != header 0x{crc:08x}", raw)
        rec = np.frombuffer(body, dtype=FRAME_RECORD)
        kind = rec["type"]
        if kind.size and kind.max() > TYPE_MISSED_EVENTS:
            raise self._garbled(command, f"record type {int(kind.max())} unknown", raw)
        counted = int(rec["missed"][kind == TYPE_MISSED_EVENTS].sum(dtype=np.int64))
        if counted != missed:
            raise self._garbled(command, f"header says {missed} missed events, records say {counted}", raw)
        tags = kind == TYPE_TAG
        overflow = bool(flags & FLAG_OVERFLOW) or bool(np.any((kind >= TYPE_ERROR) & (kind <= TYPE_OVERFLOW_END)))
        try:
            return TagBlock(
                rec["time_ps"][tags], rec["channel"][tags], start_ps=start_ps, stop_ps=stop_ps,
                overflow=overflow, missed_events=missed,
                meta={"block_id": block_id, "instrument": self.name,
                      "error_records": int(np.count_nonzero(kind == TYPE_ERROR))},
            )
        except QkdInputError as exc:
            raise InstrumentError(f"{self.name}: {command!r}: tag frame of block {block_id} rejected: {exc}") from exc

    def read_block(self, duration_s: float) -> TagBlock:
        """Acquire one block of `duration_s` seconds (1e-6..10 s); meta["block_id"] names it for Alice's host."""
        duration_s = check_duration_s(duration_s, BLOCK_MIN_S / 2, BLOCK_MAX_S)
        command = f"BLOCK {_value_text(duration_s)}"
        with self.lock:
            self.transport.write(command)
            return self._read_frame(command)

    def stream(self, duration_s: float, n_blocks: int) -> Iterator[TagBlock]:
        """Acquire `n_blocks` consecutive blocks of `duration_s` seconds each (STREAM), yielding each."""
        duration_s = check_duration_s(duration_s, BLOCK_MIN_S / 2, BLOCK_MAX_S)
        if isinstance(n_blocks, bool) or int(n_blocks) != n_blocks or n_blocks < 1:
            raise QkdInputError(f"n_blocks must be an integer >= 1, got {n_blocks!r}")
        command = f"STREAM {_value_text(duration_s)} {int(n_blocks)}"
        with self.lock:
            self.transport.write(command)
            for _ in range(int(n_blocks)):
                yield self._read_frame(command)
            end = self.transport.read_line(label=command)
            if end != f"END {int(n_blocks)}":
                raise self._garbled(command, "expected the END line", end.encode("ascii", "replace"))
