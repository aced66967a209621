"""Tiny TCP servers on 127.0.0.1 for transport tests: one that never answers, one that echoes lines."""

from __future__ import annotations

import socket
import threading


class TcpServer:
    """Accept connections on an ephemeral port; `mode` 'silent' records input, 'echo' echoes each line."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.received = b""
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self._sock.settimeout(0.05)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self._conns.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(0.05)
        pending = b""
        while not self._stop.is_set():
            try:
                chunk = conn.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            if not chunk:
                return
            self.received += chunk
            pending += chunk
            while self.mode == "echo" and b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                conn.sendall(line + b"\n")

    def close(self) -> None:
        self._stop.set()
        for conn in self._conns:
            conn.close()
        self._sock.close()
        self._thread.join(timeout=1)

    def __enter__(self) -> TcpServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
