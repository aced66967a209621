"""Base classes of every driver: an instrument on a transport, and its channels.

Every driver class is constructed as `Cls(transport, *, name=None, ...)` and can be
opened from a resource string with `Cls.open(resource, ...)`; it closes its
transport on `close()` and works as a context manager. `Parameter` descriptors
talk through `_get` / `_set`, which a driver overrides when its protocol is not
plain "write a line / read a line".
"""

from __future__ import annotations

import threading
from typing import Any, Callable, ClassVar, Self

from drivers.transport import Transport, open_link

_LINK_KEYS = ("baudrate", "rtscts")
_TRANSPORT_KEYS = ("timeout_s", "retries", "write_termination", "read_termination", "encoding")


class Instrument:
    """One instrument on one `Transport` (the transport's lock makes it thread-safe)."""

    #: Transport settings used by `open()`; drivers override what their manual says.
    default_transport: ClassVar[dict[str, Any]] = {}
    #: Link settings used by `open()` (baudrate, rtscts).
    default_link: ClassVar[dict[str, Any]] = {}

    def __init__(self, transport: Transport, *, name: str | None = None) -> None:
        self.transport = transport
        self.name = name or transport.name

    @classmethod
    def open(cls, resource: str, *, name: str | None = None, backend: str = "@py", **kwargs: Any) -> Self:
        """Open `resource` (VISA name, device path or socket:// URL) with the driver's defaults.

        Link keywords (baudrate, rtscts) and transport keywords (timeout_s, retries,
        write_termination, read_termination, encoding) override the driver's defaults;
        the rest go to the driver's constructor.
        """
        link_kw = {**cls.default_link, **{k: kwargs.pop(k) for k in _LINK_KEYS if k in kwargs}}
        transport_kw = {**cls.default_transport, **{k: kwargs.pop(k) for k in _TRANSPORT_KEYS if k in kwargs}}
        link = open_link(resource, backend=backend, **link_kw)
        transport = Transport(link, name=name or f"{cls.__name__}@{resource}", **transport_kw)
        try:
            return cls(transport, name=name, **kwargs)
        except BaseException:
            transport.close()
            raise

    @property
    def lock(self) -> threading.RLock:
        """The re-entrant lock that serialises access (hold it for multi-step sequences)."""
        return self.transport.lock

    def _placeholders(self) -> dict[str, Any]:
        return {}

    def _get(self, command: str, parse: Callable[[str], Any]) -> Any:
        return self.transport.query(command, parse)

    def _set(self, command: str) -> None:
        self.transport.write(command)

    def close(self) -> None:
        """Close the transport (idempotent)."""
        self.transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class ScpiInstrument(Instrument):
    """A SCPI instrument: every setting written is followed by draining `error_query`."""

    error_query: ClassVar[str] = ":SYST:ERR?"
    default_transport: ClassVar[dict[str, Any]] = {"write_termination": "\n", "read_termination": "\n"}

    def _set(self, command: str) -> None:
        with self.transport.lock:
            self.transport.write(command)
            self.transport.check_errors(self.error_query, after=command)

    def identity(self) -> str:
        """Get the `*IDN?` string (manufacturer, model, serial, firmware)."""
        return self.transport.query("*IDN?", str.strip)


class Channel:
    """One channel of a multi-channel instrument; its commands fill `{ch}` with `number`."""

    def __init__(self, parent: Instrument, number: int) -> None:
        self.parent = parent
        self.number = number

    def _placeholders(self) -> dict[str, Any]:
        return {"ch": self.number}

    def _get(self, command: str, parse: Callable[[str], Any]) -> Any:
        return self.parent._get(command, parse)

    def _set(self, command: str) -> None:
        self.parent._set(command)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.parent.name!r} ch{self.number}>"
