"""Raw socket client for firmware protocol tests (exact bytes, explicit timeouts)."""

from __future__ import annotations

import socket


class WireClient:
    """A TCP client that reads lines or exact byte counts with a timeout."""

    def __init__(self, host: str, port: int, timeout_s: float = 2.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout_s)
        self.timeout_s = timeout_s
        self.buffer = bytearray()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, timeout_s: float | None) -> bool:
        self.sock.settimeout(self.timeout_s if timeout_s is None else timeout_s)
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        self.buffer += chunk
        return True

    def readline(self, terminator: bytes = b"\n", timeout_s: float | None = None) -> bytes:
        """One line including its terminator; b"" at end of stream; socket.timeout if silent."""
        while terminator not in self.buffer:
            if not self._fill(timeout_s):
                data = bytes(self.buffer)
                self.buffer.clear()
                return data
        idx = self.buffer.index(terminator) + len(terminator)
        line = bytes(self.buffer[:idx])
        del self.buffer[:idx]
        return line

    def read_exact(self, n_bytes: int, timeout_s: float | None = None) -> bytes:
        """Exactly n_bytes (fewer only at end of stream)."""
        while len(self.buffer) < n_bytes:
            if not self._fill(timeout_s):
                break
        data = bytes(self.buffer[:n_bytes])
        del self.buffer[:n_bytes]
        return data

    def read_all(self, timeout_s: float | None = None) -> bytes:
        """Everything until the server closes the connection."""
        while self._fill(timeout_s):
            pass
        data = bytes(self.buffer)
        self.buffer.clear()
        return data

    def close(self) -> None:
        self.sock.close()
