"""Threaded TCP service on a free loopback port, one session thread per client.

A session is a function taking a `Connection`; it reads commands and answers
through `Connection.reply`, which applies the instrument's injected faults.
`TcpService.stop()` closes every client socket and joins every thread.
"""

from __future__ import annotations

import select
import socket
import socketserver
import threading
from typing import Callable

from firmware_sim.faults import InstrumentFaults, corrupt_bytes

RECV_CHUNK = 65536
MAX_LINE_BYTES = 1 << 20


class Connection:
    """One client connection as a firmware session sees it."""

    def __init__(self, sock: socket.socket, faults: InstrumentFaults, stop_event: threading.Event) -> None:
        self.sock = sock
        self.faults = faults
        self.stop_event = stop_event
        self._buffer = bytearray()
        self.closed = False

    def _fill(self) -> bool:
        """Read more bytes into the buffer; False at end of stream."""
        try:
            chunk = self.sock.recv(RECV_CHUNK)
        except OSError:
            chunk = b""
        if not chunk:
            self.closed = True
            return False
        self._buffer += chunk
        return True

    def recv_line(self, terminator: bytes = b"\n") -> bytes | None:
        """The next line without its terminator, or None when the client left."""
        while True:
            idx = self._buffer.find(terminator)
            if idx >= 0:
                line = bytes(self._buffer[:idx])
                del self._buffer[: idx + len(terminator)]
                return line
            if len(self._buffer) > MAX_LINE_BYTES:
                self._buffer.clear()
            if self.closed or not self._fill():
                return None

    def recv_exact(self, n_bytes: int) -> bytes | None:
        """Exactly n_bytes, or None when the client left first."""
        while len(self._buffer) < n_bytes:
            if self.closed or not self._fill():
                return None
        data = bytes(self._buffer[:n_bytes])
        del self._buffer[:n_bytes]
        return data

    def line_waiting(self, terminator: bytes = b"\n") -> bool:
        """True when a complete line can be read without blocking (or the client left)."""
        if terminator in self._buffer or self.closed:
            return True
        readable, _, _ = select.select([self.sock], [], [], 0)
        if readable:
            self._fill()
        return terminator in self._buffer or self.closed

    def _send(self, payload: bytes) -> bool:
        try:
            self.sock.sendall(payload)
        except OSError:
            self.closed = True
            return False
        return True

    def close(self) -> None:
        """Cut the connection (the client sees end of stream)."""
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def reply(self, payload: bytes, terminator: bytes = b"") -> bool:
        """Send one reply through the active faults; False when the link is gone.

        Call it for every command, with b"" when the command has no reply, so a
        disconnect fault cuts the link mid-command even then.
        """
        state = self.faults.snapshot()
        if state.disconnect:
            if payload:
                self._send(payload[: len(payload) // 2])
            self.close()
            return False
        if not payload or state.drop_replies:
            return not self.closed
        if state.delay_s > 0.0 and self.stop_event.wait(state.delay_s):
            return False
        if state.corrupt:
            payload = corrupt_bytes(payload, terminator)
        return self._send(payload)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        service: TcpService = self.server.service  # type: ignore[attr-defined]
        conn = Connection(self.request, service.faults, service.stop_event)
        service._track(conn, True)
        try:
            if not service.stop_event.is_set():
                service.session(conn)
        except OSError:
            pass
        finally:
            service._track(conn, False)


class TcpService:
    """A TCP server on 127.0.0.1 (free port unless given) running `session` per client."""

    def __init__(
        self,
        name: str,
        session: Callable[[Connection], None],
        faults: InstrumentFaults,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.name = name
        self.session = session
        self.faults = faults
        self.stop_event = threading.Event()
        self._conns: set[Connection] = set()
        self._lock = threading.Lock()
        self._server = _Server((host, port), _Handler, bind_and_activate=True)
        self._server.service = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        """Host the service listens on."""
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        """TCP port the service listens on."""
        return int(self._server.server_address[1])

    def _track(self, conn: Connection, add: bool) -> None:
        with self._lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def start(self) -> None:
        """Start accepting clients in a background thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"sim-{self.name}", daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, close every client connection, join every thread."""
        self.stop_event.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            conn.close()
        self._server.server_close()
