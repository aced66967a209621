"""Thorlabs APT binary framing (Kinesis controllers such as the MPC320).

Every message starts with a 6-byte little-endian header:

* short message: `<HBBBB` = message id, param1, param2, destination, source;
* long message:  `<HHBB`  = message id, data length, destination | 0x80, source,
  followed by `data length` bytes of data.

The host is address 0x01, a generic USB device 0x50.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from enum import IntEnum, IntFlag

from drivers.transport import Transport
from qkdctl.core.errors import InstrumentError

HEADER_BYTES = 6
LONG_FLAG = 0x80
MAX_DATA_BYTES = 255


class Address(IntEnum):
    """APT source/destination addresses."""

    HOST = 0x01
    GENERIC_USB = 0x50


class AptId(IntEnum):
    """APT message ids used by the MPC320 driver."""

    HW_REQ_INFO = 0x0005
    HW_GET_INFO = 0x0006
    HW_RESPONSE = 0x0080
    HW_RICHRESPONSE = 0x0081
    MOD_SET_CHANENABLESTATE = 0x0210
    MOD_IDENTIFY = 0x0223
    MOT_MOVE_HOME = 0x0443
    MOT_MOVE_HOMED = 0x0444
    MOT_MOVE_ABSOLUTE = 0x0453
    MOT_MOVE_COMPLETED = 0x0464
    MOT_REQ_USTATUSUPDATE = 0x0490
    MOT_GET_USTATUSUPDATE = 0x0491


class MotorStatus(IntFlag):
    """Status bits of a motor channel (APT status update, u32)."""

    CW_HARD_LIMIT = 0x00000001
    CCW_HARD_LIMIT = 0x00000002
    CW_SOFT_LIMIT = 0x00000004
    CCW_SOFT_LIMIT = 0x00000008
    MOVING_CW = 0x00000010
    MOVING_CCW = 0x00000020
    JOGGING_CW = 0x00000040
    JOGGING_CCW = 0x00000080
    CONNECTED = 0x00000100
    HOMING = 0x00000200
    HOMED = 0x00000400
    INITIALIZING = 0x00000800
    TRACKING = 0x00001000
    SETTLED = 0x00002000
    POSITION_ERROR = 0x00004000
    INSTRUMENT_ERROR = 0x00008000
    INTERLOCK = 0x00010000
    OVERTEMP = 0x00020000
    ACTIVE = 0x20000000
    ERROR = 0x40000000
    ENABLED = 0x80000000


@dataclass(frozen=True)
class AptMessage:
    """One APT message; `data` is None for a short message."""

    msg_id: int
    param1: int = 0
    param2: int = 0
    data: bytes | None = None
    dest: int = Address.GENERIC_USB
    source: int = Address.HOST

    def to_bytes(self) -> bytes:
        """The frame as sent on the wire."""
        if self.data is None:
            return struct.pack("<HBBBB", self.msg_id, self.param1, self.param2, self.dest, self.source)
        return struct.pack("<HHBB", self.msg_id, len(self.data), self.dest | LONG_FLAG, self.source) + self.data

    def label(self) -> str:
        """A readable name for error messages."""
        try:
            name = AptId(self.msg_id).name
        except ValueError:
            name = f"0x{self.msg_id:04X}"
        return f"APT {name}"


def describe_error(message: AptMessage) -> str:
    """Text of a HW_RESPONSE / HW_RICHRESPONSE ("<HH64s": offending message id, code, note)."""
    data = message.data or b""
    if message.msg_id == AptId.HW_RICHRESPONSE and len(data) >= 4:
        offending, code = struct.unpack_from("<HH", data)
        note = data[4:].split(b"\0")[0].decode("ascii", "replace")
        return f"HW_RICHRESPONSE for 0x{offending:04X}: code {code} {note!r}"
    return f"{message.label()} param1={message.param1} param2={message.param2} data={data!r}"


def short_message(msg_id: int, param1: int = 0, param2: int = 0) -> AptMessage:
    """A short host -> device message."""
    return AptMessage(msg_id, param1, param2)


def long_message(msg_id: int, data: bytes) -> AptMessage:
    """A long host -> device message carrying `data`."""
    return AptMessage(msg_id, data=data)


def read_message(transport: Transport, *, timeout_s: float, label: str) -> AptMessage:
    """Read one device -> host message within `timeout_s`; `InstrumentError` on timeout or a bad header."""
    deadline = time.monotonic() + timeout_s
    header = transport.read_exact(HEADER_BYTES, label=label, timeout_s=timeout_s)
    msg_id, word, dest, source = struct.unpack("<HHBB", header)
    if dest & 0x7F != Address.HOST:
        raise InstrumentError(
            f"{transport.name}: {label!r}: garbled APT header (destination 0x{dest:02X}, expected host 0x01); "
            f"received {header!r}"
        )
    if not dest & LONG_FLAG:
        return AptMessage(msg_id, header[2], header[3], None, dest, source)
    if word > MAX_DATA_BYTES:
        raise InstrumentError(
            f"{transport.name}: {label!r}: garbled APT header (data length {word} > {MAX_DATA_BYTES}); "
            f"received {header!r}"
        )
    remaining = max(deadline - time.monotonic(), 1e-3)
    data = transport.read_exact(word, label=label, timeout_s=remaining)
    return AptMessage(msg_id, 0, 0, data, dest & 0x7F, source)
