"""Typed protocol messages and their compact binary encoding.

A `Message` has a `kind` (ASCII, e.g. ``"cascade/parities"``) and named fields, each an
int (int64), a float (float64), bytes, or a 1-D numpy array of a fixed numeric dtype.
`encode` / `decode` turn the kind and fields into bytes; the channel adds the sequence
number and the MAC around them (see `qkdctl.protocol.channel`).  Decoding is strict:
anything truncated, trailing or of an unknown field type raises `ProtocolError`.

Two wire forms.  The generic one is self-describing (kind name, field count, per field
its name, a type tag and the value).  The hot messages of the protocol (Cascade's, the
confirmation's) have a fixed `Layout` in `LAYOUTS`: ``0x00 | code | int64 fields | per
array/bytes field: u32 count + raw little-endian bytes`` — no names, no type tags, one
struct call for the ints.  `encode` uses the fixed form when the message's fields match
its kind's layout exactly (names, int type, array dtype), otherwise the generic form, so
a malformed message still reaches the receiver's checks.  The leading 0x00 cannot start a
generic body (kind names are 1..255 bytes long).
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
_COMPACT = 0
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


@dataclass(frozen=True)
class Layout:
    """Fixed wire layout of one message kind: int64 fields, then 1-D arrays of fixed dtype
    codes (see `_DTYPES`) or ``"bytes"``, each as u32 count + raw little-endian data."""

    kind: str
    code: int
    ints: tuple[str, ...] = ()
    arrays: tuple[tuple[str, str], ...] = ()

    @property
    def names(self) -> frozenset:
        """All field names of the layout."""
        return frozenset(self.ints) | frozenset(name for name, _ in self.arrays)


LAYOUTS: tuple[Layout, ...] = (
    Layout("cascade/start", 1, ("n", "seed", "slots")),
    Layout("cascade/pass", 2, ("index", "slot", "halves", "k", "blocks")),
    Layout("cascade/ask", 3, (), (("ranges", "i4"),)),
    Layout("cascade/parities", 4, ("count",), (("bits", "u1"),)),
    Layout("cascade/done", 5),
    Layout("confirm/request", 6),
    Layout("confirm/tag", 7, (), (("salt", "bytes"), ("tag", "bytes"))),
    Layout("confirm/result", 8, ("ok",)),
)


class _Compiled:
    """A Layout prepared for fast encoding/decoding."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.kind = layout.kind
        self.head = bytes([_COMPACT, layout.code])
        self.ints = layout.ints
        self.names = layout.names
        self.int_struct = struct.Struct("<" + "q" * len(layout.ints))
        self.arrays = tuple((name, None if code == "bytes" else _DTYPES[code],
                             None if code == "bytes" else _LE_OF[code])
                            for name, code in layout.arrays)


_BY_KIND = {lay.kind: _Compiled(lay) for lay in LAYOUTS}
_BY_CODE = {lay.code: _BY_KIND[lay.kind] for lay in LAYOUTS}


def _encode_compact(comp: _Compiled, fields: dict) -> bytes | None:
    """Fixed-layout body, or None when the fields do not match the layout exactly."""
    if fields.keys() != comp.names:
        return None
    ints = []
    for name in comp.ints:
        value = fields[name]
        if type(value) is not int:
            return None
        ints.append(value)
    try:
        parts = [comp.head, comp.int_struct.pack(*ints)]
    except struct.error:
        return None
    for name, dtype, le in comp.arrays:
        value = fields[name]
        if dtype is None:
            if type(value) is not bytes:
                return None
            parts.append(_U32.pack(len(value)))
            parts.append(value)
        else:
            if type(value) is not np.ndarray or value.dtype != dtype or value.ndim != 1:
                return None
            parts.append(_U32.pack(value.shape[0]))
            parts.append(value.astype(le, copy=False).tobytes())
    return b"".join(parts)


def _decode_compact(data: bytes) -> Message:
    size = len(data)
    if size < 2:
        raise ProtocolError("truncated message")
    comp = _BY_CODE.get(data[1])
    if comp is None:
        raise ProtocolError(f"unknown message layout code {data[1]}")
    pos = 2 + comp.int_struct.size
    if pos > size:
        raise ProtocolError("truncated message")
    fields = dict(zip(comp.ints, comp.int_struct.unpack_from(data, 2)))
    for name, dtype, le in comp.arrays:
        if pos + 4 > size:
            raise ProtocolError("truncated message")
        count = _U32.unpack_from(data, pos)[0]
        pos += 4
        nbytes = count * (1 if dtype is None else dtype.itemsize)
        if pos + nbytes > size:
            raise ProtocolError("truncated message")
        if dtype is None:
            fields[name] = data[pos:pos + nbytes]
        else:
            fields[name] = np.frombuffer(data, dtype=le, count=count, offset=pos).astype(dtype)
        pos += nbytes
    if pos != size:
        raise ProtocolError(f"{size - pos} trailing bytes after message")
    return Message(comp.kind, fields)


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
    """Encode kind and fields (little-endian) into bytes (fixed layout when one fits)."""
    comp = _BY_KIND.get(msg.kind)
    if comp is not None:
        body = _encode_compact(comp, msg.fields)
        if body is not None:
            return body
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
    if data[:1] == b"\x00":
        return _decode_compact(data)
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
