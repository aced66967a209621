"""Injected faults of the emulated instruments, switchable at run time.

Every instrument server holds one `InstrumentFaults` and consults it for each
reply it sends.  A `Faults` registry keeps one per instrument name, so a test
(or `qkdctl sim serve`) can break and heal any instrument while clients are
connected.  What each fault does on the wire:

- ``drop_replies``: the command takes effect but no reply is sent.
- ``delay_s``: every reply is held back this long (set it beyond the client's
  timeout to provoke a timeout; the late reply still arrives afterwards).
- ``corrupt``: every reply byte is XOR-ed with 0x80 (line terminators of
  text protocols are kept, so the client reads one garbled line).
- ``disconnect``: the command takes effect, the first half of its reply is
  sent, then a TCP connection is closed; a serial line goes silent (input is
  discarded) until the fault is cleared.
- ``queued_errors``: SCPI error-queue entries the instrument adds to its queue
  at the next command (consumed once).
- ``tagger_overflow``: tag blocks lose the tags of their middle third and
  carry OverflowBegin / MissedEvents / OverflowEnd records instead.

No fault uses randomness: the same fault gives the same bytes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace

import numpy as np

from qkdctl.core.errors import QkdInputError

CORRUPT_MASK = 0x80


@dataclass(frozen=True)
class FaultState:
    """A snapshot of one instrument's active faults."""

    drop_replies: bool = False
    delay_s: float = 0.0
    corrupt: bool = False
    disconnect: bool = False
    tagger_overflow: bool = False
    queued_errors: tuple[tuple[int, str], ...] = field(default_factory=tuple)


class InstrumentFaults:
    """The faults of one instrument; thread-safe, changed while servers run."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._state = FaultState()

    def set(
        self,
        *,
        drop_replies: bool | None = None,
        delay_s: float | None = None,
        corrupt: bool | None = None,
        disconnect: bool | None = None,
        tagger_overflow: bool | None = None,
    ) -> None:
        """Switch faults on or off; arguments left as None keep their state."""
        if delay_s is not None and not delay_s >= 0.0:
            raise QkdInputError(f"fault delay_s must be >= 0 s, got {delay_s!r}")
        changes = {
            k: v
            for k, v in {
                "drop_replies": drop_replies,
                "delay_s": None if delay_s is None else float(delay_s),
                "corrupt": corrupt,
                "disconnect": disconnect,
                "tagger_overflow": tagger_overflow,
            }.items()
            if v is not None
        }
        with self._lock:
            self._state = replace(self._state, **changes)

    def queue_error(self, code: int, message: str) -> None:
        """Have the instrument add (code, message) to its error queue at its next command."""
        if not isinstance(code, int) or not message:
            raise QkdInputError(f"queue_error needs an int code and a message, got {code!r}, {message!r}")
        with self._lock:
            self._state = replace(self._state, queued_errors=self._state.queued_errors + ((code, message),))

    def take_errors(self) -> tuple[tuple[int, str], ...]:
        """Return and forget the queued error entries."""
        with self._lock:
            errors = self._state.queued_errors
            self._state = replace(self._state, queued_errors=())
        return errors

    def clear(self) -> None:
        """Switch every fault off."""
        with self._lock:
            self._state = FaultState()

    def snapshot(self) -> FaultState:
        """The faults in force now."""
        with self._lock:
            return self._state


def corrupt_bytes(payload: bytes, terminator: bytes = b"") -> bytes:
    """Flip bit 7 of every byte of payload, keeping a trailing terminator intact."""
    keep = len(terminator) if terminator and payload.endswith(terminator) else 0
    flipped = np.frombuffer(payload, dtype=np.uint8) ^ np.uint8(CORRUPT_MASK)
    if keep:
        flipped[-keep:] ^= np.uint8(CORRUPT_MASK)
    return flipped.tobytes()


class Faults:
    """Registry of per-instrument faults, keyed by instrument name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_name: dict[str, InstrumentFaults] = {}

    def __getitem__(self, name: str) -> InstrumentFaults:
        with self._lock:
            if name not in self._by_name:
                self._by_name[name] = InstrumentFaults(name)
            return self._by_name[name]

    def names(self) -> list[str]:
        """Names of the instruments that have a fault entry."""
        with self._lock:
            return sorted(self._by_name)

    def clear_all(self) -> None:
        """Switch every fault of every instrument off."""
        with self._lock:
            entries = list(self._by_name.values())
        for entry in entries:
            entry.clear()
