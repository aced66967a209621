"""TCP transport of the protocol channel: length-prefixed frames between two processes.

Wire format per frame: 4-byte big-endian length, then the authenticated frame of
`qkdctl.protocol.channel` (seq | body | MAC).  Frames longer than `MAX_FRAME_BYTES`, a
connection closed mid-frame and a receive timeout raise `ProtocolError`.
By convention the side that listens plays Alice and the side that connects plays Bob.
"""

from __future__ import annotations

import socket

from qkdctl.core.errors import ProtocolError
from qkdctl.protocol.auth import KeyPool
from qkdctl.protocol.channel import Channel

MAX_FRAME_BYTES = 64 * 1024 * 1024
_LEN_BYTES = 4


class TcpChannel(Channel):
    """Channel over a connected TCP socket (role 'alice' or 'bob' sets the MAC directions)."""

    def __init__(self, sock: socket.socket, pool: KeyPool, role: str,
                 mac: str = "hmac-sha256") -> None:
        if role not in ("alice", "bob"):
            raise ProtocolError(f"TCP channel role must be 'alice' or 'bob', got {role!r}")
        out, inn = (b"A->B", b"B->A") if role == "alice" else (b"B->A", b"A->B")
        super().__init__(pool, out, inn, mac)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock

    def _send_frame(self, frame: bytes) -> None:
        try:
            self._sock.sendall(len(frame).to_bytes(_LEN_BYTES, "big") + frame)
        except OSError as exc:
            raise ProtocolError(f"TCP send failed: {exc}") from None

    def _read_exact(self, count: int) -> bytes:
        chunks = []
        while count:
            chunk = self._sock.recv(min(count, 1 << 20))
            if not chunk:
                raise ProtocolError("TCP peer closed the connection mid-frame" if chunks
                                    else "TCP peer closed the connection")
            chunks.append(chunk)
            count -= len(chunk)
        return b"".join(chunks)

    def _recv_frame(self, timeout_s: float | None) -> bytes:
        self._sock.settimeout(timeout_s)
        try:
            length = int.from_bytes(self._read_exact(_LEN_BYTES), "big")
            if length > MAX_FRAME_BYTES:
                raise ProtocolError(f"frame of {length} bytes exceeds {MAX_FRAME_BYTES}")
            return self._read_exact(length)
        except socket.timeout:
            raise ProtocolError(f"no TCP frame from peer within {timeout_s} s") from None
        except OSError as exc:
            raise ProtocolError(f"TCP receive failed: {exc}") from None

    def close(self) -> None:
        """Close the socket."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()


def listen(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening socket (port 0 picks a free port: read it with getsockname())."""
    server = socket.create_server((host, port))
    return server


def accept(server: socket.socket, pool: KeyPool, timeout_s: float = 30.0,
           mac: str = "hmac-sha256") -> TcpChannel:
    """Accept one peer on `server`; the listening side plays Alice."""
    server.settimeout(timeout_s)
    try:
        conn, _ = server.accept()
    except socket.timeout:
        raise ProtocolError(f"no TCP peer connected within {timeout_s} s") from None
    return TcpChannel(conn, pool, "alice", mac)


def connect(host: str, port: int, pool: KeyPool, timeout_s: float = 30.0,
            mac: str = "hmac-sha256") -> TcpChannel:
    """Connect to Alice at host:port; the connecting side plays Bob."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout_s)
    except OSError as exc:
        raise ProtocolError(f"cannot connect to {host}:{port}: {exc}") from None
    return TcpChannel(sock, pool, "bob", mac)
