"""Thorlabs MPC320 motorized fiber polarization controller over APT (FTDI serial, 115200 8N1, RTS/CTS).

Three paddles, APT channel idents 1, 2, 4; positions 0..1370 steps = 0..170 deg.
Exchanges used (host 0x01 -> device 0x50):

    MOD_IDENTIFY 0x0223 (short)                        flash the front LED, no reply
    MOD_SET_CHANENABLESTATE 0x0210 (p1 ident, p2 1/2)  enable/disable a paddle, no reply
    HW_REQ_INFO 0x0005 (short)                         -> HW_GET_INFO 0x0006 (long)
    MOT_MOVE_HOME 0x0443 (p1 ident)                    -> MOT_MOVE_HOMED 0x0444
    MOT_MOVE_ABSOLUTE 0x0453 (long, "<Hl" ident, steps)-> MOT_MOVE_COMPLETED 0x0464
    MOT_REQ_USTATUSUPDATE 0x0490 (p1 ident)            -> MOT_GET_USTATUSUPDATE 0x0491
                                                          ("<HlHhI": ident, position, velocity,
                                                           motor current, status bits)

Stale input is dropped before each request. Replies that complete a move may be short
(param1 = ident) or long (data starts with the ident, then the position); both are
accepted, but a long completion far from the target (a late one of an earlier,
timed-out move) is skipped. Unrelated messages that arrive while waiting are skipped;
an error report (HW_RESPONSE 0x0080, HW_RICHRESPONSE 0x0081 "<HH64s") raises `DeviceError`.
A move or home that does not complete within `move_timeout_s` raises `InstrumentError`.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from drivers.instrument import Channel
from drivers.parameters import Parameter, Range
from drivers.polarization.apt import (
    AptId, AptMessage, MotorStatus, describe_error, long_message, read_message, short_message,
)
from drivers.polarization.base import PolarizationController
from drivers.transport import DeviceError, Transport
from qkdctl.core.errors import InstrumentError, QkdInputError

STEPS_FULL_RANGE = 1370
DEG_FULL_RANGE = 170.0
PADDLE_IDENTS = (1, 2, 4)
COMPLETION_TOLERANCE_STEPS = 2
_STATUS = struct.Struct("<HlHhI")


def deg_to_steps(angle_deg: float) -> int:
    """Paddle angle (deg) -> motor position (steps), rounded to the nearest step."""
    return int(round(angle_deg * STEPS_FULL_RANGE / DEG_FULL_RANGE))


def steps_to_deg(steps: int) -> float:
    """Motor position (steps) -> paddle angle (deg)."""
    return steps * DEG_FULL_RANGE / STEPS_FULL_RANGE


@dataclass(frozen=True)
class PaddleStatus:
    """One status update of a paddle: position (steps), velocity, motor current and status flags."""

    ident: int
    position_steps: int
    velocity: int
    motor_current: int
    flags: MotorStatus

    @property
    def angle_deg(self) -> float:
        """Paddle angle (deg)."""
        return steps_to_deg(self.position_steps)


@dataclass(frozen=True)
class HardwareInfo:
    """HW_GET_INFO fields: serial number, model, firmware version, hardware version, channel count."""

    serial_number: int
    model: str
    firmware_version: str
    hardware_version: int | None
    n_channels: int | None


def parse_hardware_info(data: bytes) -> HardwareInfo:
    """Decode HW_GET_INFO data (84 bytes: u32 serial, 8-char model, u16 type, 4-byte firmware,
    48-char notes, 12 empty, u16 hw version, u16 mod state, u16 n channels); shorter data
    yields what is present (at least serial and model)."""
    if len(data) < 12:
        raise ValueError(f"HW_GET_INFO data too short ({len(data)} bytes, need >= 12)")
    serial, model = struct.unpack_from("<I8s", data)
    firmware = ""
    if len(data) >= 18:
        minor, interim, major = data[14], data[15], data[16]
        firmware = f"{major}.{interim}.{minor}"
    hw_version = n_channels = None
    if len(data) >= 84:
        hw_version, _, n_channels = struct.unpack_from("<HHH", data, 78)
    return HardwareInfo(serial, model.split(b"\0")[0].decode("ascii", "replace"), firmware, hw_version, n_channels)


def _read_angle(paddle: "Paddle") -> float:
    return paddle.parent.status(paddle.number).angle_deg


def _move_angle(paddle: "Paddle", angle_deg: float) -> None:
    paddle.parent.move_to_deg(paddle.number, angle_deg)


class Paddle(Channel):
    """One paddle (1..3); `ident` is its APT channel ident (1, 2, 4)."""

    parent: "Mpc320"

    angle_deg = Parameter(
        _read_angle, _move_angle,
        unit="deg", doc="Control the paddle angle (deg, 0..170; a set waits for MOVE_COMPLETED).",
        validator=Range(0.0, DEG_FULL_RANGE),
    )

    @property
    def ident(self) -> int:
        """The APT channel ident of this paddle."""
        return PADDLE_IDENTS[self.number - 1]


class Mpc320(PolarizationController):
    """Thorlabs MPC320: three motorized fiber paddles (lambda/4, lambda/2, lambda/4)."""

    default_link = {"baudrate": 115200, "rtscts": True}
    setting_unit = "deg"
    setting_limits = (0.0, DEG_FULL_RANGE)
    n_settings = 3

    def __init__(self, transport: Transport, *, name: str | None = None, move_timeout_s: float = 10.0) -> None:
        super().__init__(transport, name=name)
        if not move_timeout_s > 0:
            raise QkdInputError(f"move_timeout_s must be > 0, got {move_timeout_s}")
        self.move_timeout_s = move_timeout_s
        self.paddles = tuple(Paddle(self, n) for n in (1, 2, 3))

    # -- framing --------------------------------------------------------------
    def _paddle(self, paddle: int) -> Paddle:
        if paddle not in (1, 2, 3):
            raise QkdInputError(f"paddle {paddle!r} out of range; allowed paddles are 1, 2, 3")
        return self.paddles[paddle - 1]

    def _send(self, message: AptMessage) -> None:
        self.transport.write_raw(message.to_bytes(), label=message.label())

    def _await(self, label: str, matches: Callable[[AptMessage], bool], timeout_s: float) -> AptMessage:
        """Read messages until one `matches`; skip others; `InstrumentError` after `timeout_s`.

        A HW_RESPONSE / HW_RICHRESPONSE (the controller reporting an error) raises `DeviceError`.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise InstrumentError(f"{self.name}: {label!r}: no reply within {timeout_s} s")
            message = read_message(self.transport, timeout_s=remaining, label=label)
            if message.msg_id in (AptId.HW_RESPONSE, AptId.HW_RICHRESPONSE):
                raise DeviceError(f"{self.name}: {label!r}: instrument error: {describe_error(message)}")
            if matches(message):
                return message

    def _exchange(
        self, request: AptMessage, reply_id: int, ident: int | None, timeout_s: float, target_steps: int | None = None
    ) -> AptMessage:
        """Send `request` (after dropping stale input) and await `reply_id` for `ident`.

        With `target_steps`, a long completion whose position is more than
        `COMPLETION_TOLERANCE_STEPS` from the target is a stale one (an earlier move) and is skipped.
        """
        label = request.label()

        def matches(msg: AptMessage) -> bool:
            if msg.msg_id != reply_id:
                return False
            if ident is None:
                return True
            if msg.data is None:
                return msg.param1 == ident
            if len(msg.data) < 2 or struct.unpack_from("<H", msg.data)[0] != ident:
                return False
            if target_steps is not None and len(msg.data) >= 6:
                position = struct.unpack_from("<l", msg.data, 2)[0]
                return abs(position - target_steps) <= COMPLETION_TOLERANCE_STEPS
            return True

        with self.lock:
            self.transport.discard_input()
            self._send(request)
            return self._await(label, matches, timeout_s)

    # -- commands ---------------------------------------------------------------
    def identify(self) -> None:
        """Flash the front-panel LED (MOD_IDENTIFY)."""
        with self.lock:
            self._send(short_message(AptId.MOD_IDENTIFY))

    def hardware_info(self) -> HardwareInfo:
        """Get serial number, model and firmware (HW_REQ_INFO -> HW_GET_INFO)."""
        reply = self._exchange(short_message(AptId.HW_REQ_INFO), AptId.HW_GET_INFO, None, self.transport.timeout_s)
        try:
            return parse_hardware_info(reply.data or b"")
        except ValueError as exc:
            raise InstrumentError(f"{self.name}: 'APT HW_REQ_INFO': garbled reply ({exc}); received {reply!r}") from exc

    def set_enabled(self, paddle: int, enabled: bool = True) -> None:
        """Enable or disable a paddle's motor (MOD_SET_CHANENABLESTATE)."""
        ident = self._paddle(paddle).ident
        with self.lock:
            self._send(short_message(AptId.MOD_SET_CHANENABLESTATE, ident, 0x01 if enabled else 0x02))

    def home(self, paddle: int) -> None:
        """Home a paddle and wait for MOVE_HOMED (at most `move_timeout_s`)."""
        ident = self._paddle(paddle).ident
        self._exchange(short_message(AptId.MOT_MOVE_HOME, ident), AptId.MOT_MOVE_HOMED, ident, self.move_timeout_s)

    def move_to_deg(self, paddle: int, angle_deg: float) -> None:
        """Move a paddle to `angle_deg` (0..170 deg) and wait for MOVE_COMPLETED (at most `move_timeout_s`)."""
        ident = self._paddle(paddle).ident
        angle_deg = Range(0.0, DEG_FULL_RANGE)(angle_deg, self)
        steps = deg_to_steps(angle_deg)
        request = long_message(AptId.MOT_MOVE_ABSOLUTE, struct.pack("<Hl", ident, steps))
        self._exchange(request, AptId.MOT_MOVE_COMPLETED, ident, self.move_timeout_s, target_steps=steps)

    def status(self, paddle: int) -> PaddleStatus:
        """Get a paddle's position and status flags (REQ_USTATUSUPDATE -> GET_USTATUSUPDATE)."""
        ident = self._paddle(paddle).ident
        request = short_message(AptId.MOT_REQ_USTATUSUPDATE, ident)
        with self.lock:
            for attempt in range(1 + self.transport.retries):
                try:
                    reply = self._exchange(request, AptId.MOT_GET_USTATUSUPDATE, ident, self.transport.timeout_s)
                    break
                except InstrumentError:
                    if attempt == self.transport.retries:
                        raise
                    self.transport.discard_input()
        data = reply.data or b""
        if len(data) < _STATUS.size:
            raise InstrumentError(
                f"{self.name}: {request.label()!r}: garbled reply (status data {len(data)} bytes, "
                f"expected {_STATUS.size}); received {data!r}"
            )
        chan, position, velocity, current, bits = _STATUS.unpack_from(data)
        return PaddleStatus(chan, position, velocity, current, MotorStatus(bits))

    # -- common interface ---------------------------------------------------------
    def get_settings(self) -> tuple[float, ...]:
        """The three paddle angles (deg)."""
        with self.lock:
            return tuple(self.status(p).angle_deg for p in (1, 2, 3))

    def set_settings(self, values: Sequence[float]) -> None:
        """Move the three paddles to `values` (deg), one after the other."""
        values = self.check_settings(values)
        with self.lock:
            for paddle, value in zip((1, 2, 3), values):
                self.move_to_deg(paddle, value)
