"""Links and transports: how bytes reach an instrument and how replies come back.

Two layers:

* a `Link` moves bytes with an explicit timeout per read (`SerialLink` through
  pyserial, `VisaLink` through pyvisa with the pyvisa-py backend by default);
  a link raises `LinkTimeout` (carrying the bytes received so far) or `LinkError`;
* a `Transport` owns one link for one instrument: terminations, a re-entrant lock
  shared by every thread that talks to the instrument, retries for idempotent
  queries only, optional SCPI error-queue checks after writes, and
  `InstrumentError` messages naming the instrument, the command and what came back.

Timeouts are in seconds (`timeout_s`); every read is bounded by one, so nothing
hangs past its timeout.
"""

from __future__ import annotations

import re
import threading
import time
from abc import ABC, abstractmethod
from typing import Any, Callable, TypeVar

from qkdctl.core.errors import InstrumentError, QkdInputError

T = TypeVar("T")

_ERROR_REPLY = re.compile(r"^\s*([+-]?\d+)\s*,\s*(.*?)\s*$")
_MAX_ERROR_DRAIN = 32
#: consecutive read timeouts after which the link is reopened (a VISA SOCKET whose peer
#: closed only times out; pyserial reports the disconnect at once)
_TIMEOUTS_BEFORE_REOPEN = 2


class DeviceError(InstrumentError):
    """The instrument itself reported an error (SCPI error queue, an "Error-N" reply line)."""


class LinkError(OSError):
    """The link itself failed (closed port, refused connection, I/O error)."""


class LinkTimeout(TimeoutError):
    """A read did not complete within its timeout; `received` holds the partial bytes."""

    def __init__(self, message: str, received: bytes = b"") -> None:
        super().__init__(message)
        self.received = received


class Link(ABC):
    """A byte link to one instrument; every read takes its own timeout in seconds."""

    description: str = "link"

    @abstractmethod
    def write(self, data: bytes) -> None:
        """Send `data` as is."""

    @abstractmethod
    def read_exact(self, n_bytes: int, timeout_s: float) -> bytes:
        """Read exactly `n_bytes` bytes or raise `LinkTimeout` after `timeout_s`."""

    @abstractmethod
    def read_until(self, terminator: bytes, timeout_s: float) -> bytes:
        """Read up to and including `terminator` or raise `LinkTimeout` after `timeout_s`."""

    @abstractmethod
    def discard_input(self) -> None:
        """Drop bytes already received but not read (stale replies before a retry)."""

    @abstractmethod
    def reopen(self) -> None:
        """Close and open the port or session again (after a disconnect); `LinkError` if it fails."""

    @abstractmethod
    def close(self) -> None:
        """Release the port or session; closing twice is harmless."""


class SerialLink(Link):
    """A pyserial port: device path (/dev/ttyUSB0, a pty) or URL (socket://, loop://, rfc2217://)."""

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = 9600,
        rtscts: bool = False,
        write_timeout_s: float = 2.0,
    ) -> None:
        import serial

        self.description = port
        try:
            self._port = serial.serial_for_url(
                port, baudrate=baudrate, rtscts=rtscts, timeout=1.0, write_timeout=write_timeout_s
            )
        except (serial.SerialException, ValueError, OSError) as exc:
            raise LinkError(f"cannot open serial port {port!r}: {exc}") from exc
        self._serial_exception = serial.SerialException
        self._timeout_s = 1.0

    def _set_timeout(self, timeout_s: float) -> None:
        if timeout_s != self._timeout_s:
            self._port.timeout = timeout_s
            self._timeout_s = timeout_s

    def write(self, data: bytes) -> None:
        try:
            self._port.write(data)
            self._port.flush()
        except (self._serial_exception, OSError) as exc:
            raise LinkError(f"write failed on {self.description}: {exc}") from exc

    def read_exact(self, n_bytes: int, timeout_s: float) -> bytes:
        self._set_timeout(timeout_s)
        try:
            data = self._port.read(n_bytes)
        except (self._serial_exception, OSError) as exc:
            raise LinkError(f"read failed on {self.description}: {exc}") from exc
        if len(data) != n_bytes:
            raise LinkTimeout(f"{len(data)} of {n_bytes} bytes within {timeout_s} s", bytes(data))
        return bytes(data)

    def read_until(self, terminator: bytes, timeout_s: float) -> bytes:
        self._set_timeout(timeout_s)
        try:
            data = self._port.read_until(terminator)
        except (self._serial_exception, OSError) as exc:
            raise LinkError(f"read failed on {self.description}: {exc}") from exc
        if not data.endswith(terminator):
            raise LinkTimeout(f"no terminator {terminator!r} within {timeout_s} s", bytes(data))
        return bytes(data)

    def discard_input(self) -> None:
        try:
            self._port.reset_input_buffer()
        except (self._serial_exception, OSError) as exc:
            raise LinkError(f"cannot flush {self.description}: {exc}") from exc

    def reopen(self) -> None:
        self._port.close()
        try:
            self._port.open()
        except (self._serial_exception, OSError) as exc:
            raise LinkError(f"cannot reopen {self.description}: {exc}") from exc

    def close(self) -> None:
        self._port.close()


class VisaLink(Link):
    """A pyvisa resource (TCPIP SOCKET/INSTR, ASRL, USB, GPIB); pyvisa-py ("@py") unless a backend is given.

    The transport adds write terminations itself (byte-exact); the read termination
    is set on the resource so SOCKET sessions, which have no framing, stop at it.
    """

    def __init__(self, resource: str, *, backend: str = "@py", baudrate: int | None = None) -> None:
        import pyvisa

        self.description = resource
        self._errors = (pyvisa.errors.VisaIOError, pyvisa.errors.InvalidSession, OSError)
        self._open_errors = (*self._errors, ValueError, pyvisa.errors.Error)
        self._tmo_error = pyvisa.constants.StatusCode.error_timeout
        self._baudrate = baudrate
        try:
            self._rm = pyvisa.ResourceManager(backend)
        except self._open_errors as exc:
            raise LinkError(f"cannot open VISA backend {backend!r}: {exc}") from exc
        self._open()

    def _open(self) -> None:
        try:
            self._res = self._rm.open_resource(self.description)
        except self._open_errors as exc:
            raise LinkError(f"cannot open VISA resource {self.description!r}: {exc}") from exc
        self._res.write_termination = ""
        self._res.read_termination = None
        if self._baudrate is not None and hasattr(self._res, "baud_rate"):
            self._res.baud_rate = self._baudrate
        self._terminator: bytes | None = None
        self._timeout_s = -1.0

    def _set_timeout(self, timeout_s: float) -> None:
        if timeout_s != self._timeout_s:
            self._res.timeout = max(1, int(round(timeout_s * 1000)))
            self._timeout_s = timeout_s

    def _wrap(self, exc: Exception, received: bytes, what: str) -> OSError:
        if getattr(exc, "error_code", None) == self._tmo_error:
            return LinkTimeout(f"{what} timed out after {self._timeout_s} s", received)
        return LinkError(f"{what} failed on {self.description}: {exc}")

    def write(self, data: bytes) -> None:
        try:
            self._res.write_raw(data)
        except self._errors as exc:
            raise self._wrap(exc, b"", "write") from exc

    def read_exact(self, n_bytes: int, timeout_s: float) -> bytes:
        self._set_timeout(timeout_s)
        try:
            return bytes(self._res.read_bytes(n_bytes))
        except self._errors as exc:
            raise self._wrap(exc, b"", f"read of {n_bytes} bytes") from exc

    def read_until(self, terminator: bytes, timeout_s: float) -> bytes:
        if terminator != self._terminator:
            self._res.read_termination = terminator.decode("latin-1")
            self._terminator = terminator
        deadline = time.monotonic() + timeout_s
        data = b""
        while not data.endswith(terminator):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LinkTimeout(f"no terminator {terminator!r} within {timeout_s} s", data)
            self._set_timeout(remaining)
            try:
                data += bytes(self._res.read_raw())
            except self._errors as exc:
                raise self._wrap(exc, data, "read") from exc
        return data

    def discard_input(self) -> None:
        self._set_timeout(0.01)
        for _ in range(64):
            try:
                self._res.read_bytes(1)
            except self._errors:
                return

    def reopen(self) -> None:
        try:
            self._res.close()
        except self._errors:
            pass
        self._open()

    def close(self) -> None:
        try:
            self._res.close()
        except self._errors:
            pass
        self._rm.close()


_VISA_PREFIXES = ("ASRL", "TCPIP", "USB", "GPIB", "VXI", "PXI")


def open_link(resource: str, *, baudrate: int = 9600, rtscts: bool = False, backend: str = "@py") -> Link:
    """Open a link from a resource string.

    VISA resource names (TCPIP0::host::port::SOCKET, ASRL/dev/ttyS0::INSTR, USB...)
    go through pyvisa; device paths and pyserial URLs (socket://host:port,
    loop://, rfc2217://) through pyserial. A resource that cannot be opened raises
    `InstrumentError`; one that is not recognised, `QkdInputError`.
    """
    if not isinstance(resource, str) or not resource.strip():
        raise QkdInputError(f"instrument resource must be a non-empty string, got {resource!r}")
    try:
        if resource.upper().startswith(_VISA_PREFIXES):
            return VisaLink(resource, backend=backend, baudrate=baudrate)
        if "://" in resource or resource.startswith("/") or resource.upper().startswith("COM"):
            return SerialLink(resource, baudrate=baudrate, rtscts=rtscts)
    except LinkError as exc:
        raise InstrumentError(str(exc)) from exc
    raise QkdInputError(
        f"unrecognised instrument resource {resource!r}: expected a VISA name "
        "(TCPIP0::host::port::SOCKET, ASRL...::INSTR), a device path or a socket:// URL"
    )


class Transport:
    """One instrument's conversation over a `Link`.

    Text commands get `write_termination` appended; replies end at
    `read_termination`. `query` retries (after discarding stale input) only when
    called with `idempotent=True`, the default for reads of settings; writes are
    never retried, so one exchange takes at most `timeout_s` and a query at most
    `(1 + retries) * timeout_s`. `check_errors` drains a SCPI error queue
    (":SYST:ERR?") and raises `DeviceError` listing the codes. `lock` is a re-entrant lock: hold it to
    make several exchanges atomic with respect to other threads.
    """

    def __init__(
        self,
        link: Link,
        *,
        name: str,
        timeout_s: float = 2.0,
        write_termination: str = "\n",
        read_termination: str = "\n",
        retries: int = 2,
        encoding: str = "ascii",
    ) -> None:
        if timeout_s <= 0:
            raise QkdInputError(f"timeout_s must be > 0, got {timeout_s}")
        if retries < 0:
            raise QkdInputError(f"retries must be >= 0, got {retries}")
        if not read_termination:
            raise QkdInputError("read_termination must not be empty")
        self.link = link
        self.name = name
        self.timeout_s = float(timeout_s)
        self.write_termination = write_termination
        self.read_termination = read_termination
        self.retries = retries
        self.encoding = encoding
        self.lock = threading.RLock()
        self.closed = False
        self._stale = False
        self._broken = False
        self._timeouts_in_row = 0

    # -- errors ---------------------------------------------------------------
    def _fail(
        self, command: str, problem: str, received: bytes | str | None = None, cls: type = InstrumentError
    ) -> InstrumentError:
        got = "" if received is None else f"; received {received!r}"
        return cls(f"{self.name}: {command!r}: {problem}{got}")

    def _check_open(self, command: str) -> None:
        if self.closed:
            raise self._fail(command, "transport is closed")
        if self._broken or self._timeouts_in_row >= _TIMEOUTS_BEFORE_REOPEN:
            self._broken = False
            self._timeouts_in_row = 0
            self._io(command, self.link.reopen)
            self._stale = False

    def _io(self, command: str, fn: Callable[[], T], *, reading: bool = False) -> T:
        try:
            result = fn()
        except LinkTimeout as exc:
            self._stale = True
            self._timeouts_in_row += 1
            raise self._fail(command, f"timeout ({exc})", exc.received) from exc
        except LinkError as exc:
            self._broken = True
            raise self._fail(command, f"link failure ({exc})") from exc
        if reading:
            self._timeouts_in_row = 0
        return result

    # -- bytes ----------------------------------------------------------------
    def write_raw(self, data: bytes, *, label: str | None = None) -> None:
        """Send bytes as is (binary protocols); `label` names the command in errors.

        After a timeout, input is discarded before the next send (a late reply to the
        timed-out command must not answer the next one); after a link failure, or
        two timeouts in a row, the link is reopened first.
        """
        label = label or data.hex(" ")
        with self.lock:
            self._check_open(label)
            if self._stale:
                self._stale = False
                self._io(label, self.link.discard_input)
            self._io(label, lambda: self.link.write(data))

    def read_exact(self, n_bytes: int, *, label: str, timeout_s: float | None = None) -> bytes:
        """Read exactly `n_bytes` bytes within `timeout_s` (default: the transport's timeout)."""
        with self.lock:
            self._check_open(label)
            tmo = self.timeout_s if timeout_s is None else timeout_s
            return self._io(label, lambda: self.link.read_exact(n_bytes, tmo), reading=True)

    def read_line(self, *, label: str, timeout_s: float | None = None) -> str:
        """Read one reply line within `timeout_s`, decoded and without its termination."""
        term = self.read_termination.encode(self.encoding)
        with self.lock:
            self._check_open(label)
            tmo = self.timeout_s if timeout_s is None else timeout_s
            raw = self._io(label, lambda: self.link.read_until(term, tmo), reading=True)
        try:
            return raw[: -len(term)].decode(self.encoding)
        except UnicodeDecodeError as exc:
            raise self._fail(label, "garbled reply (not text)", raw) from exc

    def discard_input(self) -> None:
        """Drop stale input (late replies of an earlier timed-out query)."""
        with self.lock:
            self._check_open("discard input")
            self._stale = False
            self._io("discard input", self.link.discard_input)

    # -- text commands ----------------------------------------------------------
    def _send(self, command: str) -> None:
        self.write_raw((command + self.write_termination).encode(self.encoding), label=command)

    def write(self, command: str) -> None:
        """Send one command (never retried)."""
        with self.lock:
            self._send(command)

    def query(
        self,
        command: str,
        parse: Callable[[str], Any] = str,
        *,
        idempotent: bool = True,
    ) -> Any:
        """Send `command`, read one line, return `parse(line)`.

        A timeout or a reply `parse` rejects (ValueError) is retried up to
        `retries` times only if `idempotent`; then it raises `InstrumentError`.
        """
        def once() -> Any:
            self._send(command)
            line = self.read_line(label=command)
            try:
                return parse(line)
            except (ValueError, IndexError, KeyError) as exc:
                raise self._fail(command, f"garbled reply ({exc})", line) from exc

        return self._retrying(once, idempotent)

    def query_lines(
        self,
        command: str,
        parse: Callable[[list[str]], Any] = list,
        *,
        done: str = "Done",
        error_prefix: str = "Error",
        max_lines: int = 16,
        idempotent: bool = False,
    ) -> Any:
        """Send `command`, collect reply lines up to a line equal to `done`, return `parse(lines)`.

        For instruments that acknowledge every command with a final line (OZ Optics:
        content lines then "Done"); a line starting with `error_prefix` raises
        `DeviceError`. Each attempt is bounded by the timeout; a timeout or a reply
        `parse` rejects is retried only if `idempotent`.
        """
        def once() -> Any:
            lines = self._collect_lines(command, done, error_prefix, max_lines)
            try:
                return parse(lines)
            except (ValueError, IndexError, KeyError) as exc:
                raise self._fail(command, f"garbled reply ({exc})", "\n".join(lines)) from exc

        return self._retrying(once, idempotent)

    def _retrying(self, once: Callable[[], T], idempotent: bool) -> T:
        """Run one exchange; if idempotent, retry a failed one (not a device-reported error)."""
        with self.lock:
            for _ in range(self.retries if idempotent else 0):
                try:
                    return once()
                except DeviceError:
                    raise
                except InstrumentError:
                    if self.closed:
                        raise
                    self.discard_input()
            return once()

    def _collect_lines(self, command: str, done: str, error_prefix: str, max_lines: int) -> list[str]:
        self._send(command)
        deadline = time.monotonic() + self.timeout_s
        lines: list[str] = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._fail(command, f"no {done!r} within {self.timeout_s} s", "\n".join(lines))
            line = self.read_line(label=command, timeout_s=remaining).strip()
            if line == done:
                return lines
            if line.startswith(error_prefix):
                raise self._fail(command, "instrument error", line, DeviceError)
            lines.append(line)
            if len(lines) > max_lines:
                raise self._fail(command, f"garbled reply (more than {max_lines} lines before {done!r})", "\n".join(lines))

    def check_errors(self, error_query: str = ":SYST:ERR?", after: str = "") -> None:
        """Drain a SCPI error queue; raise `DeviceError` naming `after` and every non-zero code."""
        found: list[str] = []
        with self.lock:
            for _ in range(_MAX_ERROR_DRAIN):
                code, message = self.query(error_query, parse_scpi_error, idempotent=False)
                if code == 0:
                    break
                found.append(f"{code},{message}")
            else:
                raise self._fail(after or error_query, f"error queue not empty after {_MAX_ERROR_DRAIN} reads", cls=DeviceError)
        if found:
            raise self._fail(after or error_query, "instrument errors: " + "; ".join(found), cls=DeviceError)

    def close(self) -> None:
        """Close the link; later calls raise `InstrumentError` (closing twice is harmless)."""
        with self.lock:
            if not self.closed:
                self.closed = True
                self.link.close()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def parse_scpi_error(line: str) -> tuple[int, str]:
    """Parse a `:SYST:ERR?` reply such as '+0,"No error"' into (code, message)."""
    match = _ERROR_REPLY.match(line)
    if match is None:
        raise ValueError(f"not an error-queue reply: {line!r}")
    return int(match.group(1)), match.group(2).strip('"')
