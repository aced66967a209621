"""A serial instrument on a pseudo-terminal: the client opens `PtyPort.path` with pyserial.

The firmware is a `SerialFirmware`: it is fed the bytes the client wrote and
returns its replies; it may also schedule timed events (a motor finishing a
move).  One thread serves the pty master; the slave stays open on our side so
the pty survives clients opening and closing it.  Faults: drop, delay and
corrupt act per reply; ``disconnect`` makes the line dead (input discarded,
nothing sent) until cleared.
"""

from __future__ import annotations

import os
import select
import threading
import time
import tty
from typing import Protocol

from firmware_sim.faults import InstrumentFaults, corrupt_bytes


class SerialFirmware(Protocol):
    """What a pty-served instrument implements."""

    terminator: bytes

    def feed(self, data: bytes, now_s: float) -> list[bytes]:
        """Consume bytes from the host at monotonic time now_s; return replies to send."""

    def next_event_s(self) -> float | None:
        """Monotonic time of the next timed event, or None."""

    def tick(self, now_s: float) -> list[bytes]:
        """Run the timed events due at now_s; return replies to send."""


class PtyPort:
    """Serves one `SerialFirmware` on a fresh pty pair in a background thread."""

    def __init__(self, name: str, firmware: SerialFirmware, faults: InstrumentFaults) -> None:
        self.name = name
        self.firmware = firmware
        self.faults = faults
        self._master, self._slave = os.openpty()
        tty.setraw(self._master)
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self._wake_r, self._wake_w = os.pipe()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start serving the pty."""
        self._thread = threading.Thread(target=self._run, name=f"sim-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and close the pty pair."""
        self._stop.set()
        os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        for fd in (self._master, self._slave, self._wake_r, self._wake_w):
            os.close(fd)

    def _send(self, payload: bytes) -> None:
        view = memoryview(payload)
        while view and not self._stop.is_set():
            _, writable, _ = select.select([], [self._master], [], 0.05)
            if writable:
                written = os.write(self._master, view)
                view = view[written:]

    def _emit(self, replies: list[bytes]) -> None:
        for payload in replies:
            state = self.faults.snapshot()
            if state.disconnect or state.drop_replies or not payload:
                continue
            if state.delay_s > 0.0 and self._stop.wait(state.delay_s):
                return
            if state.corrupt:
                payload = corrupt_bytes(payload, self.firmware.terminator)
            self._send(payload)

    def _run(self) -> None:
        while not self._stop.is_set():
            due = self.firmware.next_event_s()
            timeout = None if due is None else max(0.0, due - time.monotonic())
            readable, _, _ = select.select([self._master, self._wake_r], [], [], timeout)
            if self._wake_r in readable:
                break
            now_s = time.monotonic()
            if self._master in readable:
                try:
                    data = os.read(self._master, 4096)
                except OSError:
                    data = b""
                if data and not self.faults.snapshot().disconnect:
                    self._emit(self.firmware.feed(data, now_s))
            if due is not None and now_s >= due:
                self._emit(self.firmware.tick(now_s))
