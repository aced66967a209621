"""A counting channel wrapper for tests: tallies what actually crosses the channel."""

from __future__ import annotations

import numpy as np

from qkdctl.protocol.messages import Message


class CountingChannel:
    """Wraps a Channel; counts messages by kind and the parity bits Alice really sent."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.sent_kinds: list[str] = []
        self.parity_bits_sent = 0

    def send(self, msg: Message) -> None:
        self.inner.send(msg)
        self.sent_kinds.append(msg.kind)
        if msg.kind == "cascade/parities":
            packed = np.asarray(msg.fields["bits"])
            count = int(msg.fields["count"])
            assert packed.size == (count + 7) // 8
            self.parity_bits_sent += count

    def recv(self, timeout_s: float | None = 30.0) -> Message:
        return self.inner.recv(timeout_s)

    def __getattr__(self, name):
        return getattr(self.inner, name)
