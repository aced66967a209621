"""Typed protocol messages and their compact binary encoding.

A `Message` has a `kind` (ASCII, e.g. ``"cascade/parities"``) and named fields, each an
int (int64), a float (float64), bytes, or a 1-D numpy array of a fixed numeric dtype.
`encode` / `decode` turn the kind and fields into bytes; the channel adds the sequence
number and the MAC around them (see `qkdctl.protocol.channel`).  Decoding is strict:
anything truncated, trailing or of an unknown field type raises `ProtocolError`.
Accessors (`expect`, `int`, `array`, ...) raise `ProtocolError` when the peer sent the wrong
kind, a missing field or a wrong dtype, so a role never acts on a malformed message.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from qkdctl.core.errors import ProtocolError

_DTYPES = {
    "u1": np.dtype(np.uint8),
    "i4": np.dtype(np.int32),
    "u4": np.dtype(np.uint32),
    "i8": np.dtype(np.int64),
    "u8": np.dtype(np.uint64),
    "f8": np.dtype(np.float64),
}
_CODE_OF = {dt: code for code, dt in _DTYPES.items()}
_HDR = struct.Struct("<BB")  # kind length, field count


@dataclass(frozen=True)
class Message:
    """One typed message: kind plus named fields (int, float, bytes or 1-D numeric array)."""

    kind: str
    fields: dict = field(default_factory=dict)

    def expect(self, *kinds: str) -> "Message":
        """Return self if its kind is one of `kinds`, else raise ProtocolError."""
        if self.kind not in kinds:
            raise ProtocolError(f"unexpected message kind {self.kind!r}; expected one of {kinds}")
        return self

    def _get(self, name: str, typ: type) -> object:
        if name not in self.fields:
            raise ProtocolError(f"message {self.kind!r} lacks field {name!r}")
        value = self.fields[name]
        if not isinstance(value, typ):
            raise ProtocolError(f"field {name!r} of {self.kind!r} has type {type(value).__name__}")
        return value

    def int(self, name: str, lo: int | None = None, hi: int | None = None) -> int:
        """Integer field `name`, checked to lie in [lo, hi] when bounds are given."""
        value = self._get(name, int)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ProtocolError(f"field {name!r} of {self.kind!r} = {value} outside [{lo}, {hi}]")
        return value

    def float(self, name: str) -> float:
        """Float field `name`."""
        return self._get(name, float)

    def bytes(self, name: str) -> bytes:
        """Bytes field `name`."""
        return self._get(name, bytes)

    def array(self, name: str, dtype: object, length: int | None = None) -> np.ndarray:
        """Array field `name` of exactly `dtype` (and `length`, when given)."""
        value = self._get(name, np.ndarray)
        if value.dtype != np.dtype(dtype):
            raise ProtocolError(f"field {name!r} of {self.kind!r} has dtype {value.dtype}")
        if length is not None and value.shape[0] != length:
            raise ProtocolError(
                f"field {name!r} of {self.kind!r} has length {value.shape[0]}, expected {length}"
            )
        return value


def _name_bytes(name: str) -> bytes:
    raw = name.encode("ascii")
    if not 0 < len(raw) < 256:
        raise ProtocolError(f"name {name!r} must be 1..255 ASCII characters")
    return raw


def encode(msg: Message) -> bytes:
    """Encode kind and fields (little-endian) into bytes."""
    parts = [_HDR.pack(len(_name_bytes(msg.kind)), len(msg.fields)), msg.kind.encode("ascii")]
    if len(msg.fields) > 255:
        raise ProtocolError("a message holds at most 255 fields")
    for name, value in msg.fields.items():
        raw = _name_bytes(name)
        parts.append(bytes([len(raw)]) + raw)
        if isinstance(value, (bool, np.bool_)):
            raise ProtocolError(f"field {name!r}: send booleans as int")
        if isinstance(value, (int, np.integer)):
            parts.append(b"i" + struct.pack("<q", int(value)))
        elif isinstance(value, (float, np.floating)):
            parts.append(b"f" + struct.pack("<d", float(value)))
        elif isinstance(value, (bytes, bytearray)):
            parts.append(b"b" + struct.pack("<I", len(value)) + bytes(value))
        elif isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype in _CODE_OF:
            data = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<")).tobytes()
            parts.append(b"a" + _CODE_OF[value.dtype].encode() + struct.pack("<I", value.shape[0]))
            parts.append(data)
        else:
            raise ProtocolError(f"field {name!r} has unsupported type {type(value).__name__}")
    return b"".join(parts)


_I64 = struct.Struct("<q")
_F64 = struct.Struct("<d")
_U32 = struct.Struct("<I")


def decode(data: bytes) -> Message:
    """Decode bytes made by `encode`; raise ProtocolError on any malformation."""
    size = len(data)
    try:
        kind_len, n_fields = _HDR.unpack_from(data, 0)
        pos = _HDR.size + kind_len
        if pos > size:
            raise ProtocolError("truncated message")
        kind = data[_HDR.size:pos].decode("ascii")
        fields: dict = {}
        for _ in range(n_fields):
            end = pos + 1 + data[pos]
            if end + 1 > size:
                raise ProtocolError("truncated message")
            name = data[pos + 1:end].decode("ascii")
            tag = data[end:end + 1]
            pos = end + 1
            if tag == b"i":
                fields[name] = _I64.unpack_from(data, pos)[0]
                pos += 8
            elif tag == b"f":
                fields[name] = _F64.unpack_from(data, pos)[0]
                pos += 8
            elif tag == b"b":
                count = _U32.unpack_from(data, pos)[0]
                pos += 4
                if pos + count > size:
                    raise ProtocolError("truncated message")
                fields[name] = data[pos:pos + count]
                pos += count
            elif tag == b"a":
                dtype = _DTYPES.get(data[pos:pos + 2].decode("ascii"))
                if dtype is None:
                    raise ProtocolError(f"field {name!r}: unknown array dtype")
                count = _U32.unpack_from(data, pos + 2)[0]
                pos += 6
                nbytes = count * dtype.itemsize
                if pos + nbytes > size:
                    raise ProtocolError("truncated message")
                fields[name] = np.frombuffer(data, dtype=dtype.newbyteorder("<"), count=count,
                                             offset=pos).astype(dtype)
                pos += nbytes
            else:
                raise ProtocolError(f"field {name!r}: unknown type tag {tag!r}")
    except (UnicodeDecodeError, struct.error, IndexError) as exc:
        raise ProtocolError(f"malformed message: {exc}") from None
    if pos != size:
        raise ProtocolError(f"{size - pos} trailing bytes after message")
    return Message(kind, fields)
