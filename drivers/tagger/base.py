"""The common interface of every time tagger (live, simulated or replayed).

A tagger has numbered input channels.  Per channel it takes a trigger level (V),
an input delay (ps) and a dead time (ps); it delivers tags in blocks
(`read_block(duration_s) -> TagBlock`, with the block's overflow flag and
missed-event count set) and reports count rates (Hz).  Every tagger closes with
`close()` and works as a context manager.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

from qkdctl.core.errors import QkdInputError
from qkdctl.core.tags import TagBlock


def check_duration_s(duration_s: float, low_s: float = 0.0, high_s: float = math.inf) -> float:
    """A block duration (s) as float; `QkdInputError` unless low_s < duration_s <= high_s."""
    try:
        value = float(duration_s)
    except (TypeError, ValueError):
        raise QkdInputError(f"block duration {duration_s!r} s is not a number") from None
    if not (math.isfinite(value) and low_s < value <= high_s):
        raise QkdInputError(f"block duration {duration_s!r} s not in ({low_s:g}, {high_s:g}] s")
    return value


class TimeTagger(ABC):
    """A time tagger delivering `TagBlock`s (int64 ps timestamps, int32 channels)."""

    @property
    @abstractmethod
    def channels(self) -> tuple[int, ...]:
        """Get the tagger's input channel numbers."""

    @abstractmethod
    def set_trigger_level_v(self, channel: int, level_v: float) -> None:
        """Set the trigger level (V) of one input channel."""

    @abstractmethod
    def set_input_delay_ps(self, channel: int, delay_ps: int) -> None:
        """Set the input delay (ps, may be negative) of one input channel."""

    @abstractmethod
    def set_dead_time_ps(self, channel: int, dead_time_ps: int) -> None:
        """Set the dead time (ps) of one input channel."""

    @abstractmethod
    def read_block(self, duration_s: float) -> TagBlock:
        """Acquire for `duration_s` seconds and return the block's tags (overflow and missed events set)."""

    @abstractmethod
    def count_rates_hz(self) -> dict[int, float]:
        """Measure the count rate (Hz) of every channel."""

    @abstractmethod
    def close(self) -> None:
        """Release the tagger (idempotent)."""

    def check_channel(self, channel: int) -> int:
        """The channel as int; `QkdInputError` naming it unless it is one of `channels`."""
        if isinstance(channel, bool) or int(channel) != channel or int(channel) not in self.channels:
            raise QkdInputError(f"tagger channel {channel!r} not in {list(self.channels)}")
        return int(channel)

    def configure(
        self,
        channel: int,
        *,
        trigger_level_v: float | None = None,
        input_delay_ps: int | None = None,
        dead_time_ps: int | None = None,
    ) -> None:
        """Set any of trigger level (V), input delay (ps) and dead time (ps) of one channel."""
        channel = self.check_channel(channel)
        if trigger_level_v is not None:
            self.set_trigger_level_v(channel, trigger_level_v)
        if input_delay_ps is not None:
            self.set_input_delay_ps(channel, input_delay_ps)
        if dead_time_ps is not None:
            self.set_dead_time_ps(channel, dead_time_ps)

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
