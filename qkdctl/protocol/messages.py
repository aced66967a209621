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
_LE_OF = {code: dt.newbyteorder("<") for code, dt in _DTYPES.items()}  # wire byte order
_NAMES: dict[str, bytes] = {}
_I64 = struct.Struct("<q")
_F64 = struct.Struct("<d")
_U32 = struct.Struct("<I")


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
    """Length-prefixed ASCII name (cached)."""
    raw = _NAMES.get(name)
    if raw is None:
        try:
            encoded = name.encode("ascii")
        except UnicodeEncodeError:
            raise ProtocolError(f"name {name!r} is not ASCII") from None
        if not 0 < len(encoded) < 256:
            raise ProtocolError(f"name {name!r} must be 1..255 ASCII characters")
        raw = bytes([len(encoded)]) + encoded
        if len(_NAMES) < 4096:
            _NAMES[name] = raw
    return raw


def encode(msg: Message) -> bytes:
    """Encode kind and fields (little-endian) into bytes."""
    if len(msg.fields) > 255:
        raise ProtocolError("a message holds at most 255 fields")
    parts = [_name_bytes(msg.kind), bytes([len(msg.fields)])]
    for name, value in msg.fields.items():
        parts.append(_name_bytes(name))
        if isinstance(value, np.ndarray):
            code = _CODE_OF.get(value.dtype)
            if code is None or value.ndim != 1:
                raise ProtocolError(f"field {name!r}: unsupported array {value.dtype} {value.shape}")
            parts.append(b"a" + code.encode() + _U32.pack(value.shape[0]))
            parts.append(value.astype(_LE_OF[code], copy=False).tobytes())
        elif isinstance(value, (bool, np.bool_)):
            raise ProtocolError(f"field {name!r}: send booleans as int")
        elif isinstance(value, (int, np.integer)):
            parts.append(b"i" + _I64.pack(int(value)))
        elif isinstance(value, (float, np.floating)):
            parts.append(b"f" + _F64.pack(float(value)))
        elif isinstance(value, (bytes, bytearray)):
            parts.append(b"b" + _U32.pack(len(value)) + bytes(value))
        else:
            raise ProtocolError(f"field {name!r} has unsupported type {type(value).__name__}")
    return b"".join(parts)


def decode(data: bytes) -> Message:
    """Decode bytes made by `encode`; raise ProtocolError on any malformation."""
    size = len(data)
    try:
        kind_len = data[0]
        pos = 1 + kind_len
        if pos + 1 > size:
            raise ProtocolError("truncated message")
        kind = data[1:pos].decode("ascii")
        n_fields = data[pos]
        pos += 1
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
                code = data[pos:pos + 2].decode("ascii")
                dtype = _DTYPES.get(code)
                if dtype is None:
                    raise ProtocolError(f"field {name!r}: unknown array dtype")
                count = _U32.unpack_from(data, pos + 2)[0]
                pos += 6
                nbytes = count * dtype.itemsize
                if pos + nbytes > size:
                    raise ProtocolError("truncated message")
                fields[name] = np.frombuffer(data, dtype=_LE_OF[code], count=count,
                                             offset=pos).astype(dtype)
                pos += nbytes
            else:
                raise ProtocolError(f"field {name!r}: unknown type tag {tag!r}")
    except (UnicodeDecodeError, struct.error, IndexError) as exc:
        raise ProtocolError(f"malformed message: {exc}") from None
    if pos != size:
        raise ProtocolError(f"{size - pos} trailing bytes after message")
    return Message(kind, fields)
