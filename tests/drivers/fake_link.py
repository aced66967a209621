"""A scripted link: every expected exchange must be consumed, byte for byte.

`expected_protocol(Driver, [(sent, reply), ...])` builds the driver on a `Transport`
over a `FakeLink`; leaving the block asserts that every exchange happened and every
reply byte was read (the PyMeasure `expected_protocol` idea). `sent=None` marks an
unsolicited message the instrument emits once the previous exchange is done.
A read that asks for more bytes than are queued raises `LinkTimeout` immediately.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from drivers.transport import Link, LinkTimeout, Transport

Exchange = tuple[bytes | None, bytes | None]


class FakeLink(Link):
    """A link that checks writes against a script and answers from it."""

    description = "fake"

    def __init__(self, exchanges: Sequence[Exchange]) -> None:
        self.exchanges = list(exchanges)
        self.index = 0
        self.out = b""
        self.inbox = b""
        self.closed = False
        self.discards = 0
        self.reopens = 0
        self._release_unsolicited()

    def _release_unsolicited(self) -> None:
        while self.index < len(self.exchanges) and self.exchanges[self.index][0] is None:
            self.inbox += self.exchanges[self.index][1] or b""
            self.index += 1

    def write(self, data: bytes) -> None:
        assert not self.closed, "write on a closed link"
        self.out += data
        while self.out:
            assert self.index < len(self.exchanges), f"unexpected write {self.out!r}: script exhausted"
            sent, reply = self.exchanges[self.index]
            if len(self.out) < len(sent):
                assert sent.startswith(self.out), f"sent {self.out!r}, expected {sent!r}"
                return
            assert self.out.startswith(sent), f"sent {self.out!r}, expected {sent!r}"
            self.out = self.out[len(sent):]
            self.inbox += reply or b""
            self.index += 1
            self._release_unsolicited()

    def _take(self, n: int) -> bytes:
        data, self.inbox = self.inbox[:n], self.inbox[n:]
        return data

    def read_exact(self, n_bytes: int, timeout_s: float) -> bytes:
        if len(self.inbox) < n_bytes:
            raise LinkTimeout(f"{len(self.inbox)} of {n_bytes} bytes", self._take(len(self.inbox)))
        return self._take(n_bytes)

    def read_until(self, terminator: bytes, timeout_s: float) -> bytes:
        pos = self.inbox.find(terminator)
        if pos < 0:
            raise LinkTimeout(f"no terminator {terminator!r}", self._take(len(self.inbox)))
        return self._take(pos + len(terminator))

    def discard_input(self) -> None:
        self.discards += 1
        self.inbox = b""

    def reopen(self) -> None:
        self.reopens += 1
        self.inbox = b""

    def close(self) -> None:
        self.closed = True

    def assert_done(self) -> None:
        """Every exchange consumed, nothing half-written, every reply byte read."""
        assert self.index == len(self.exchanges), f"unconsumed exchanges: {self.exchanges[self.index:]!r}"
        assert not self.out, f"partial write left: {self.out!r}"
        assert not self.inbox, f"unread reply bytes: {self.inbox!r}"


def fake_transport(exchanges: Sequence[Exchange], **transport_kw: Any) -> tuple[Transport, FakeLink]:
    """A `Transport` named 'fake' over a new `FakeLink`."""
    link = FakeLink(exchanges)
    return Transport(link, name="fake", **transport_kw), link


@contextmanager
def expected_protocol(driver_cls: type, exchanges: Sequence[Exchange], *, transport_kw: dict | None = None,
                      **driver_kw: Any) -> Iterator[Any]:
    """Yield `driver_cls` on a scripted link; on exit assert the script was consumed."""
    settings = {**getattr(driver_cls, "default_transport", {}), **(transport_kw or {})}
    transport, link = fake_transport(exchanges, **settings)
    driver = driver_cls(transport, **driver_kw)
    yield driver
    link.assert_done()
