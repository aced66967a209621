"""The authenticated classical channel between Alice and Bob, and how methods plug in.

A `Channel` sends and receives typed `Message`s.  Every frame on the wire is::

    seq (8 bytes LE) | body = messages.encode(msg) | tag = MAC(direction, seq, body)

Each direction has its own sequence counter starting at 0; the receiver accepts only the
next expected number, so a replayed, reordered, dropped, forged or truncated frame raises
`ProtocolError`.  After the first error the channel is aborted: every later send/recv
raises too, so a role that hits an error discloses nothing further.  The MACs
(HMAC-SHA256, default; Wegman-Carter one-time tags) and the key they consume are
described in `qkdctl.protocol.auth`.

Implementations only move frames (`_send_frame` / `_recv_frame`): `InProcessChannel`
(queue pair; Alice runs in a thread — the default), `direct_pair` (one thread: Alice's
responder runs inside Bob's send) and `TcpChannel`
(`qkdctl.protocol.tcp`, length-prefixed frames between two processes).  The roles cannot
tell which one they have.

Accounting (`ChannelStats`): messages and bytes in each direction, and round trips — one
round trip is counted each time this side receives after having sent since its last
receive (a request answered by a reply).

Plugging in a reconciliation method (see `qkdctl.protocol.reconcile`): write two role
functions that only talk through a Channel::

    def bob(bob_bits, qber_estimate, channel, rng) -> MethodOutcome
    def alice(alice_bits, qber_estimate, channel, rng) -> None

put them in a frozen `ReconcileMethod(name, alice, bob)` and list it in that method
family's `METHODS` dict.  Message kinds are namespaced by family (``"ldpc/syndrome"``).
"""

from __future__ import annotations

import queue
from collections import deque
from abc import ABC, abstractmethod
from dataclasses import dataclass

from qkdctl.core.errors import ProtocolError
from qkdctl.protocol.auth import KeyPool, make_authenticator
from qkdctl.protocol.messages import Message, decode, encode

_SEQ_BYTES = 8


@dataclass
class ChannelStats:
    """What crossed the channel from this side: messages, bytes (incl. headers), round trips."""

    messages_sent: int = 0
    messages_received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    round_trips: int = 0


class Channel(ABC):
    """Authenticated, sequenced message channel; subclasses move raw frames."""

    def __init__(self, pool: KeyPool, direction_out: bytes, direction_in: bytes,
                 mac: str = "hmac-sha256") -> None:
        self._auth = make_authenticator(pool, mac)
        self._out = direction_out
        self._in = direction_in
        self._seq_out = 0
        self._seq_in = 0
        self._sent_since_recv = False
        self._aborted: str | None = None
        self.stats = ChannelStats()

    @property
    def auth_key_bytes(self) -> int:
        """Authentication key bytes consumed by this side so far."""
        return self._auth.key_bytes_consumed

    def _check_open(self) -> None:
        if self._aborted is not None:
            raise ProtocolError(f"channel aborted earlier: {self._aborted}")

    def abort(self, reason: str) -> None:
        """Mark the channel unusable; later send/recv raise ProtocolError."""
        if self._aborted is None:
            self._aborted = reason

    def send(self, msg: Message) -> None:
        """Encode, sequence, authenticate and send one message."""
        if self._aborted is not None:
            raise ProtocolError(f"channel aborted earlier: {self._aborted}")
        body = encode(msg)
        seq = self._seq_out
        frame = b"".join((seq.to_bytes(_SEQ_BYTES, "little"), body,
                          self._auth.tag(self._out, seq, body)))
        self._seq_out = seq + 1
        stats = self.stats
        stats.messages_sent += 1
        stats.bytes_sent += len(frame)
        self._sent_since_recv = True
        self._send_frame(frame)

    def recv(self, timeout_s: float | None = 30.0) -> Message:
        """Receive, check and decode the next message; ProtocolError on any defect."""
        self._check_open()
        try:
            frame = self._recv_frame(timeout_s)
            tag_len = self._auth.tag_bytes
            if len(frame) < _SEQ_BYTES + tag_len:
                raise ProtocolError(f"truncated frame of {len(frame)} bytes")
            seq = int.from_bytes(frame[:_SEQ_BYTES], "little")
            body = frame[_SEQ_BYTES:-tag_len]
            self._auth.check(self._in, seq, body, frame[-tag_len:])
            if seq != self._seq_in:
                what = "replayed" if seq < self._seq_in else "reordered"
                raise ProtocolError(f"{what} message: sequence {seq}, expected {self._seq_in}")
            msg = decode(body)
        except ProtocolError as exc:
            self.abort(str(exc))
            raise
        self._seq_in += 1
        self.stats.messages_received += 1
        self.stats.bytes_received += len(frame)
        if self._sent_since_recv:
            self.stats.round_trips += 1
            self._sent_since_recv = False
        return msg

    @abstractmethod
    def _send_frame(self, frame: bytes) -> None:
        """Deliver one frame to the peer."""

    @abstractmethod
    def _recv_frame(self, timeout_s: float | None) -> bytes:
        """Next frame from the peer; ProtocolError on timeout or transport loss."""

    def close(self) -> None:
        """Release transport resources (no-op for in-process channels)."""


class InProcessChannel(Channel):
    """One end of an in-process queue pair (build both ends with `in_process_pair`)."""

    def __init__(self, pool: KeyPool, direction_out: bytes, direction_in: bytes,
                 outbox: queue.SimpleQueue, inbox: queue.SimpleQueue,
                 mac: str = "hmac-sha256") -> None:
        super().__init__(pool, direction_out, direction_in, mac)
        self._outbox = outbox
        self._inbox = inbox

    def _send_frame(self, frame: bytes) -> None:
        self._outbox.put(frame)

    def _recv_frame(self, timeout_s: float | None) -> bytes:
        try:
            frame = self._inbox.get(timeout=timeout_s)
        except queue.Empty:
            raise ProtocolError(f"no message from peer within {timeout_s} s") from None
        if frame is None:
            raise ProtocolError("peer closed the channel")
        return frame

    def close(self) -> None:
        """Tell the peer this end is gone (its pending recv raises ProtocolError)."""
        self._outbox.put(None)


class DirectChannel(Channel):
    """One end of a single-thread channel: frames wait in a deque until the peer reads them."""

    def __init__(self, pool: KeyPool, direction_out: bytes, direction_in: bytes,
                 outbox: deque, inbox: deque, mac: str = "hmac-sha256") -> None:
        super().__init__(pool, direction_out, direction_in, mac)
        self._outbox = outbox
        self._inbox = inbox

    def _send_frame(self, frame: bytes) -> None:
        self._outbox.append(frame)

    def _recv_frame(self, timeout_s: float | None) -> bytes:
        if not self._inbox:  # in one thread a missing reply never comes
            raise ProtocolError("no message from peer (single-thread channel)")
        return self._inbox.popleft()


class DirectBobChannel(DirectChannel):
    """Bob's end of a `direct_pair`: each send runs Alice's responder in this thread."""

    def __init__(self, pool: KeyPool, outbox: deque, inbox: deque, alice: DirectChannel,
                 responder, mac: str = "hmac-sha256") -> None:
        super().__init__(pool, b"B->A", b"A->B", outbox, inbox, mac)
        self._alice = alice
        self._responder = responder

    def _send_frame(self, frame: bytes) -> None:
        self._outbox.append(frame)
        alice = self._alice
        for reply in self._responder.handle(alice.recv()):
            alice.send(reply)


def direct_pair(alice_pool: KeyPool, bob_pool: KeyPool, responder,
                mac: str = "hmac-sha256") -> tuple[DirectChannel, DirectBobChannel]:
    """(alice_end, bob_end) in one thread: Alice's `responder.handle(msg) -> [replies]` runs
    inside Bob's send; frames are encoded, authenticated, sequenced and counted as usual."""
    a_to_b: deque = deque()
    b_to_a: deque = deque()
    alice = DirectChannel(alice_pool, b"A->B", b"B->A", a_to_b, b_to_a, mac)
    bob = DirectBobChannel(bob_pool, b_to_a, a_to_b, alice, responder, mac)
    return alice, bob


def in_process_pair(alice_pool: KeyPool, bob_pool: KeyPool,
                    mac: str = "hmac-sha256") -> tuple[InProcessChannel, InProcessChannel]:
    """(alice_end, bob_end) of an in-process channel; the pools hold the same pre-shared key;
    mac: "hmac-sha256" or "wegman-carter" (see `qkdctl.protocol.auth`)."""
    a_to_b: queue.SimpleQueue = queue.SimpleQueue()
    b_to_a: queue.SimpleQueue = queue.SimpleQueue()
    alice = InProcessChannel(alice_pool, b"A->B", b"B->A", a_to_b, b_to_a, mac)
    bob = InProcessChannel(bob_pool, b"B->A", b"A->B", b_to_a, a_to_b, mac)
    return alice, bob
