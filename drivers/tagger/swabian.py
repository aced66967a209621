"""Adapter for Swabian Instruments Time Taggers through their Python API.

Uses `from Swabian import TimeTagger` (older installs: `import TimeTagger`).  The
library is proprietary and optional: when it is missing, constructing the adapter
raises `InstrumentError` saying so; there is no fallback to a simulator.

Documented API used: createTimeTagger(serial), setTriggerLevel(ch, V),
setInputDelay(ch, ps), setDeadtime(ch, ps), TimeTagStream(tagger, n_max_events,
channels) with startFor(ps, clear=True) / waitUntilFinished(timeout_ms) / stop /
getData() -> buffer (getTimestamps() int64 ps, getChannels() int32,
getEventTypes() 0 TimeTag, 1 Error, 2 OverflowBegin, 3 OverflowEnd, 4 MissedEvents,
getMissedEvents(), hasOverflows, size), Countrate(tagger, channels).getData() (Hz),
freeTimeTagger(tagger).
"""

from __future__ import annotations

import importlib
from typing import Any, Sequence

import numpy as np

from drivers.tagger.base import TimeTagger, check_duration_s
from qkdctl.core.errors import InstrumentError, QkdInputError
from qkdctl.core.tags import TagBlock

EVENT_TIME_TAG, EVENT_ERROR, EVENT_OVERFLOW_BEGIN, EVENT_OVERFLOW_END, EVENT_MISSED_EVENTS = 0, 1, 2, 3, 4
DEFAULT_MAX_EVENTS = 50_000_000
RATE_WINDOW_PS = 100_000_000_000
WAIT_MARGIN_S = 5.0


def load_library() -> Any:
    """The Swabian `TimeTagger` module; `InstrumentError` when it is not installed."""
    for name in ("Swabian.TimeTagger", "TimeTagger"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise InstrumentError(
        "Swabian Time Tagger library not installed: neither 'from Swabian import TimeTagger' nor "
        "'import TimeTagger' works (install Swabian Instruments' Time Tagger software / the "
        "Swabian-TimeTagger package)"
    )


class SwabianTagger(TimeTagger):
    """A Swabian Time Tagger (Ultra, X, 20) read through `TimeTagStream` blocks.

    serial: the device serial ("" = the first one found); channels: the input
    channels to stream (rising edges are positive numbers); n_max_events: the
    stream buffer size, a block that fills it is flagged as overflowed.
    """

    def __init__(
        self,
        serial: str = "",
        *,
        channels: Sequence[int],
        n_max_events: int = DEFAULT_MAX_EVENTS,
        name: str | None = None,
    ) -> None:
        channels = tuple(int(c) for c in channels)
        if not channels or len(set(channels)) != len(channels) or 0 in channels:
            raise QkdInputError(f"Swabian tagger: channels must be distinct non-zero numbers, got {list(channels)}")
        if int(n_max_events) != n_max_events or n_max_events < 1:
            raise QkdInputError(f"Swabian tagger: n_max_events must be an integer >= 1, got {n_max_events!r}")
        self.name = name or f"SwabianTagger({serial or 'first'})"
        self._tt = load_library()
        self._channels = channels
        self.n_max_events = int(n_max_events)
        try:
            self._tagger = self._tt.createTimeTagger(serial)
        except Exception as exc:
            raise InstrumentError(f"{self.name}: createTimeTagger({serial!r}) failed: {exc}") from exc
        if self._tagger is None:
            raise InstrumentError(f"{self.name}: createTimeTagger({serial!r}) found no device")

    def _call(self, what: str, fn, *args):
        """Call fn(*args) (fn: a callable or the name of a device method); library errors -> InstrumentError."""
        if self._tagger is None:
            raise InstrumentError(f"{self.name}: {what}: tagger is closed")
        if isinstance(fn, str):
            fn = getattr(self._tagger, fn)
        try:
            return fn(*args)
        except (RuntimeError, ValueError, OSError) as exc:
            raise InstrumentError(f"{self.name}: {what} failed: {exc}") from exc

    @property
    def channels(self) -> tuple[int, ...]:
        """Get the streamed input channels."""
        return self._channels

    def set_trigger_level_v(self, channel: int, level_v: float) -> None:
        """Set the trigger level (V) of one channel (the model's range is checked by the library)."""
        channel = self.check_channel(channel)
        self._call(f"setTriggerLevel({channel}, {level_v})", "setTriggerLevel", channel, float(level_v))

    def set_input_delay_ps(self, channel: int, delay_ps: int) -> None:
        """Set the input delay (ps) of one channel."""
        channel = self.check_channel(channel)
        self._call(f"setInputDelay({channel}, {delay_ps})", "setInputDelay", channel, int(delay_ps))

    def set_dead_time_ps(self, channel: int, dead_time_ps: int) -> None:
        """Set the dead time (ps) of one channel (the device rounds it to its clock)."""
        channel = self.check_channel(channel)
        if int(dead_time_ps) < 0:
            raise QkdInputError(f"{self.name}: dead time {dead_time_ps} ps must be >= 0")
        self._call(f"setDeadtime({channel}, {dead_time_ps})", "setDeadtime", channel, int(dead_time_ps))

    def _run_for(self, measurement, duration_ps: int, what: str) -> None:
        self._call(f"{what}.startFor", measurement.startFor, duration_ps)
        wait_ms = int((duration_ps * 1e-12 + WAIT_MARGIN_S) * 1000)
        if not self._call(f"{what}.waitUntilFinished", measurement.waitUntilFinished, wait_ms):
            measurement.stop()
            raise InstrumentError(f"{self.name}: {what} did not finish within {wait_ms} ms")

    def read_block(self, duration_s: float) -> TagBlock:
        """Stream for `duration_s` seconds.

        OverflowBegin/End and Error events set `overflow`, MissedEvents add to
        `missed_events`, a full stream buffer also sets `overflow`.  The library does
        not report the window start: start_ps is the first event's time (0 if none)
        and stop_ps = start_ps + duration.
        """
        duration_ps = int(round(check_duration_s(duration_s) * 1e12))
        stream = self._call("TimeTagStream", self._tt.TimeTagStream, self._tagger, self.n_max_events, list(self._channels))
        self._run_for(stream, duration_ps, "TimeTagStream")
        buf = self._call("TimeTagStream.getData", stream.getData)
        t = np.asarray(buf.getTimestamps(), dtype=np.int64)
        ch = np.asarray(buf.getChannels(), dtype=np.int32)
        kind = np.asarray(buf.getEventTypes(), dtype=np.int64)
        missed = np.asarray(buf.getMissedEvents(), dtype=np.int64)
        if not t.shape == ch.shape == kind.shape == missed.shape:
            raise InstrumentError(f"{self.name}: TimeTagStream buffer arrays differ in length")
        tags = kind == EVENT_TIME_TAG
        buffer_full = int(buf.size) >= self.n_max_events
        flagged = bool(np.any((kind >= EVENT_ERROR) & (kind <= EVENT_OVERFLOW_END)))
        start_ps = int(t[0]) if t.size else 0
        try:
            return TagBlock(
                t[tags], ch[tags], start_ps=start_ps, stop_ps=start_ps + duration_ps,
                overflow=bool(buf.hasOverflows) or flagged or buffer_full,
                missed_events=int(missed[kind == EVENT_MISSED_EVENTS].sum()),
                meta={"instrument": self.name, "buffer_full": buffer_full,
                      "error_events": int(np.count_nonzero(kind == EVENT_ERROR))},
            )
        except QkdInputError as exc:
            raise InstrumentError(f"{self.name}: TimeTagStream data rejected: {exc}") from exc

    def count_rates_hz(self) -> dict[int, float]:
        """Measure each channel's count rate (Hz) over 0.1 s with `Countrate`."""
        rate = self._call("Countrate", self._tt.Countrate, self._tagger, list(self._channels))
        self._run_for(rate, RATE_WINDOW_PS, "Countrate")
        values = np.asarray(self._call("Countrate.getData", rate.getData), dtype=float)
        return {c: float(v) for c, v in zip(self._channels, values)}

    def close(self) -> None:
        """Free the device (idempotent)."""
        if self._tagger is not None:
            tagger, self._tagger = self._tagger, None
            self._tt.freeTimeTagger(tagger)
