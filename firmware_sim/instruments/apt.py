"""Thorlabs APT binary framing: message ids, encoding, and a resynchronizing parser.

Short message (6 bytes): "<HBBBB" msg_id, param1, param2, dest, source.
Long message: "<HHBB" msg_id, data_len, dest | 0x80, source, then data_len bytes.
Host address 0x01, generic USB device 0x50 (Thorlabs "APT Communications Protocol").
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

HOST = 0x01
DEVICE = 0x50
LONG_FLAG = 0x80
HEADER = struct.Struct("<HBBBB")
LONG_HEADER = struct.Struct("<HHBB")
MAX_DATA_BYTES = 255

HW_DISCONNECT = 0x0002
HW_REQ_INFO = 0x0005
HW_GET_INFO = 0x0006
HW_START_UPDATEMSGS = 0x0011
HW_STOP_UPDATEMSGS = 0x0012
HW_RICHRESPONSE = 0x0081
MOD_SET_CHANENABLESTATE = 0x0210
MOD_REQ_CHANENABLESTATE = 0x0211
MOD_GET_CHANENABLESTATE = 0x0212
MOD_IDENTIFY = 0x0223
MOT_MOVE_HOME = 0x0443
MOT_MOVE_HOMED = 0x0444
MOT_MOVE_ABSOLUTE = 0x0453
MOT_MOVE_COMPLETED = 0x0464
MOT_MOVE_STOP = 0x0465
MOT_MOVE_STOPPED = 0x0466
MOT_MOVE_JOG = 0x046A
MOT_REQ_USTATUSUPDATE = 0x0490
MOT_GET_USTATUSUPDATE = 0x0491
MOT_ACK_USTATUSUPDATE = 0x0492
POL_SET_PARAMS = 0x0530
POL_REQ_PARAMS = 0x0531
POL_GET_PARAMS = 0x0532

# Data length the host must use for each long message the device accepts.
LONG_DATA_BYTES = {MOT_MOVE_ABSOLUTE: 6, POL_SET_PARAMS: 12}
# Short messages the device accepts.
SHORT_IDS = frozenset({
    HW_DISCONNECT, HW_REQ_INFO, HW_START_UPDATEMSGS, HW_STOP_UPDATEMSGS, MOD_SET_CHANENABLESTATE, MOD_REQ_CHANENABLESTATE, MOD_IDENTIFY,
    MOT_MOVE_HOME, MOT_MOVE_JOG, MOT_MOVE_STOP, MOT_REQ_USTATUSUPDATE, MOT_ACK_USTATUSUPDATE, POL_REQ_PARAMS,
})


@dataclass(frozen=True)
class AptMessage:
    """One decoded message; data is None for a short message."""

    msg_id: int
    param1: int = 0
    param2: int = 0
    data: bytes | None = None
    dest: int = DEVICE
    source: int = HOST


def encode_short(msg_id: int, param1: int = 0, param2: int = 0, dest: int = HOST, source: int = DEVICE) -> bytes:
    """A 6-byte short message (defaults: device -> host)."""
    return HEADER.pack(msg_id, param1, param2, dest, source)


def encode_long(msg_id: int, data: bytes, dest: int = HOST, source: int = DEVICE) -> bytes:
    """A long message: header with data length, then data (defaults: device -> host)."""
    return LONG_HEADER.pack(msg_id, len(data), dest | LONG_FLAG, source) + data


class AptParser:
    """Accumulates bytes from the host and yields well-formed messages.

    A header is accepted when it is addressed to `address` from the host, and
    its id is a known short message or a known long message with the right
    data length.  Anything else is dropped one byte at a time (resync); the
    parser never raises.
    """

    def __init__(self, address: int = DEVICE, host: int = HOST) -> None:
        self.address = address
        self.host = host
        self._buffer = bytearray()
        self.dropped_bytes = 0

    def feed(self, data: bytes) -> list[AptMessage]:
        """Add bytes; return the complete messages now available."""
        self._buffer += data
        messages = []
        while len(self._buffer) >= HEADER.size:
            msg_id, p1, p2, dest, source = HEADER.unpack_from(self._buffer)
            if source == self.host and dest == self.address and msg_id in SHORT_IDS:
                messages.append(AptMessage(msg_id, p1, p2, None, dest, source))
                del self._buffer[: HEADER.size]
                continue
            _, data_len, _, _ = LONG_HEADER.unpack_from(self._buffer)
            if (
                source == self.host
                and dest == self.address | LONG_FLAG
                and LONG_DATA_BYTES.get(msg_id) == data_len
            ):
                total = LONG_HEADER.size + data_len
                if len(self._buffer) < total:
                    break
                payload = bytes(self._buffer[LONG_HEADER.size:total])
                messages.append(AptMessage(msg_id, 0, 0, payload, dest, source))
                del self._buffer[:total]
                continue
            del self._buffer[0]
            self.dropped_bytes += 1
        return messages
