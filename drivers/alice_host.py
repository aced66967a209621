"""Client of Alice's host service (simulated bench protocol, docs/sim_protocols.md).

Binary request/response frames, header "<4sBBHqI" (20 bytes): magic (b"QALI"
requests, b"QALR" responses), version 1, message type, reserved 0, block_id,
payload length.  Requests and their replies (type | 0x80):

    0x01 GET_RECORD                  -> "<qQ" first_slot, n + basis[n] + bit[n] + intensity[n]
    0x02 GET_BASES  int64 slots[m]   -> uint8 basis[m]       (public disclosure for sifting)
    0x03 GET_INTENSITIES int64[m]    -> uint8 intensity[m]   (public disclosure, decoy analysis)
    0x04 LIST_BLOCKS                 -> int64 block_ids[k]
    0x05 GET_BITS   int64 slots[m]   -> uint8 bit[m]         (Alice's trusted side only)
    0x06 SET_CHOICE "<dddd"          -> "<dddd" in force     (P(Z), p_signal, p_decoy, p_vacuum)
    0x07 GET_CHOICE                  -> "<dddd" in force     (effective from the next block)
    error                            -> 0xFF "<H" code + UTF-8 text

Slots are absolute slot indices.  An error response raises `DeviceError`; a
garbled or short reply raises `InstrumentError` naming what came back.
"""

from __future__ import annotations

import struct
from typing import Any, ClassVar

import numpy as np

from drivers.instrument import Instrument
from drivers.transport import DeviceError
from qkdctl.core.errors import InstrumentError, QkdInputError
from qkdctl.core.records import AliceRecord
from qkdctl.core.tags import TagBlock

REQUEST_MAGIC = b"QALI"
RESPONSE_MAGIC = b"QALR"
VERSION = 1
HEADER = struct.Struct("<4sBBHqI")
RECORD_HEAD = struct.Struct("<qQ")
GET_RECORD, GET_BASES, GET_INTENSITIES, LIST_BLOCKS, GET_BITS = 0x01, 0x02, 0x03, 0x04, 0x05
SET_CHOICE, GET_CHOICE = 0x06, 0x07
CHOICE = struct.Struct("<dddd")
REPLY_FLAG = 0x80
ERROR_TYPE = 0xFF
MAX_REPLY_BYTES = 1 << 31
REPLY_BYTES_PER_S = 20e6


def block_id_of(block: TagBlock) -> int:
    """The block id a tagger put in `block.meta["block_id"]`; `QkdInputError` when absent."""
    if "block_id" not in block.meta:
        raise QkdInputError("tag block has no meta['block_id'] to ask Alice's host about")
    return int(block.meta["block_id"])


class AliceHostClient(Instrument):
    """Alice's host over TCP ("host:port" or socket://host:port): her record and the public disclosures."""

    default_transport: ClassVar[dict[str, Any]] = {"timeout_s": 5.0, "retries": 0}

    def __init__(self, transport, *, name: str | None = None) -> None:
        super().__init__(transport, name=name)

    @classmethod
    def open(cls, resource: str, **kwargs: Any) -> "AliceHostClient":
        """Open "host:port" (as printed by the simulated bench) or a socket:// URL."""
        if "://" not in resource and not resource.startswith("/") and resource.count(":") == 1:
            resource = f"socket://{resource}"
        return super().open(resource, **kwargs)

    def _garbled(self, label: str, problem: str, received: bytes) -> InstrumentError:
        try:
            self.transport.discard_input()
        except InstrumentError:
            pass
        return InstrumentError(f"{self.name}: {label}: garbled reply ({problem}); received {received[:80]!r}")

    def _request(self, msg_type: int, block_id: int, payload: bytes = b"") -> bytes:
        label = f"request 0x{msg_type:02x} block {block_id}"
        frame = HEADER.pack(REQUEST_MAGIC, VERSION, msg_type, 0, block_id, len(payload)) + payload
        with self.lock:
            self.transport.write_raw(frame, label=label)
            head = self.transport.read_exact(HEADER.size, label=label)
            magic, version, reply_type, _, reply_block, n = HEADER.unpack(head)
            if magic != RESPONSE_MAGIC or version != VERSION or n > MAX_REPLY_BYTES:
                raise self._garbled(label, "bad magic, version or length", head)
            timeout = self.transport.timeout_s + n / REPLY_BYTES_PER_S
            body = self.transport.read_exact(n, label=label, timeout_s=timeout) if n else b""
        if reply_type == ERROR_TYPE:
            if n < 2:
                raise self._garbled(label, "error reply without a code", head + body)
            code = struct.unpack_from("<H", body)[0]
            text = body[2:].decode("utf-8", "replace")
            raise DeviceError(f"{self.name}: {label}: Alice host error {code}: {text}")
        if reply_type != msg_type | REPLY_FLAG or (msg_type != LIST_BLOCKS and reply_block != block_id):
            raise self._garbled(label, f"reply type 0x{reply_type:02x} for block {reply_block}", head)
        return body

    def list_blocks(self) -> list[int]:
        """Get the ids of the blocks Alice's host holds."""
        body = self._request(LIST_BLOCKS, 0)
        if len(body) % 8:
            raise self._garbled("LIST_BLOCKS", f"{len(body)} bytes is not a list of int64", body)
        return np.frombuffer(body, dtype="<i8").tolist()

    def get_record(self, block_id: int) -> AliceRecord:
        """Get Alice's full record of a block (trusted side: basis, bit, intensity per slot)."""
        body = self._request(GET_RECORD, int(block_id))
        label = f"GET_RECORD block {block_id}"
        if len(body) < RECORD_HEAD.size:
            raise self._garbled(label, "record shorter than its head", body)
        first_slot, n = RECORD_HEAD.unpack_from(body)
        if len(body) != RECORD_HEAD.size + 3 * n:
            raise self._garbled(label, f"{len(body)} bytes for {n} slots", body[:RECORD_HEAD.size])
        data = np.frombuffer(body, dtype=np.uint8, offset=RECORD_HEAD.size)
        try:
            return AliceRecord(data[:n], data[n : 2 * n], data[2 * n :], first_slot=first_slot)
        except QkdInputError as exc:
            raise self._garbled(label, str(exc), body[:RECORD_HEAD.size]) from exc

    def record_for(self, block: TagBlock) -> AliceRecord:
        """Get Alice's record of the block a tagger returned (by its meta["block_id"])."""
        return self.get_record(block_id_of(block))

    def _per_slot(self, msg_type: int, block_id: int, slots: np.ndarray, what: str) -> np.ndarray:
        slots = np.ascontiguousarray(slots, dtype="<i8")
        if slots.ndim != 1:
            raise QkdInputError(f"{what}: slots must be a 1-D array of slot indices")
        body = self._request(msg_type, int(block_id), slots.tobytes())
        if len(body) != slots.size:
            raise self._garbled(f"{what} block {block_id}", f"{len(body)} values for {slots.size} slots", body)
        return np.frombuffer(body, dtype=np.uint8).copy()

    def get_bases(self, block_id: int, slots: np.ndarray) -> np.ndarray:
        """Get Alice's basis (0 Z, 1 X) in the given absolute slots: the public sifting disclosure."""
        return self._per_slot(GET_BASES, block_id, slots, "GET_BASES")

    def get_intensities(self, block_id: int, slots: np.ndarray) -> np.ndarray:
        """Get Alice's intensity class in the given absolute slots (public, for decoy analysis)."""
        return self._per_slot(GET_INTENSITIES, block_id, slots, "GET_INTENSITIES")

    def get_bits(self, block_id: int, slots: np.ndarray) -> np.ndarray:
        """Get Alice's bits in the given absolute slots (trusted side only: never disclose them)."""
        return self._per_slot(GET_BITS, block_id, slots, "GET_BITS")

    def _choice_reply(self, body: bytes, label: str) -> tuple[float, tuple[float, float, float]]:
        if len(body) != CHOICE.size:
            raise self._garbled(label, f"{len(body)} bytes, expected {CHOICE.size}", body)
        p_z, *p_mu = CHOICE.unpack(body)
        return p_z, tuple(p_mu)

    def get_choice(self) -> tuple[float, tuple[float, float, float]]:
        """Get Alice's choice probabilities in force: (P(Z), (p_signal, p_decoy, p_vacuum))."""
        return self._choice_reply(self._request(GET_CHOICE, 0), "GET_CHOICE")

    def set_choice(self, p_z: float, p_mu: tuple[float, float, float]) -> tuple[float, tuple[float, float, float]]:
        """Set Alice's P(Z) in (0, 1) and intensity probabilities (signal, decoy, vacuum; sum 1),
        effective from the next acquired block; returns the values in force."""
        p_mu = tuple(float(p) for p in p_mu)
        if len(p_mu) != 3 or not all(0.0 <= p <= 1.0 for p in p_mu) or abs(sum(p_mu) - 1.0) > 1e-9:
            raise QkdInputError(f"intensity probabilities {p_mu} must be three values in [0, 1] summing to 1")
        if not 0.0 < float(p_z) < 1.0:
            raise QkdInputError(f"P(Z) = {p_z} must lie in (0, 1)")
        return self._choice_reply(self._request(SET_CHOICE, 0, CHOICE.pack(float(p_z), *p_mu)), "SET_CHOICE")
