"""Emulated Alice host: per-block disclosure for sifting and Alice's kept record, over TCP.

Binary request/response protocol (documented in docs/sim_protocols.md).
Header "<4sBBHqI" (20 bytes): magic, version 1, msg_type, reserved 0,
block_id, payload_len; requests use magic b"QALI", responses b"QALR".

    0x01 GET_RECORD                 -> 0x81 "<qQ" first_slot, n + basis[n] + bit[n] + intensity[n]
    0x02 GET_BASES  int64 slots[m]  -> 0x82 uint8 basis[m]        (public disclosure)
    0x03 GET_INTENSITIES int64[m]   -> 0x83 uint8 intensity[m]    (public disclosure, decoy analysis)
    0x04 LIST_BLOCKS                -> 0x84 int64 block_ids[k]
    0x05 GET_BITS   int64 slots[m]  -> 0x85 uint8 bit[m]          (Alice's trusted side only)
    0x06 SET_CHOICE "<dddd"         -> 0x86 "<dddd" in force      (P(Z), p_signal, p_decoy, p_vacuum)
    0x07 GET_CHOICE                 -> 0x87 "<dddd" in force      (from the next acquisition on)
    error                           -> 0xFF "<H" code + UTF-8 text

Slots are absolute slot indices (first_slot + position in the block).  A bad
magic or version is answered with error 1 and the connection is closed (a byte
stream cannot be resynchronized).
"""

from __future__ import annotations

import struct

import numpy as np

from firmware_sim.instruments.block_store import BlockStore
from firmware_sim.instruments.servers import Connection

REQUEST_MAGIC = b"QALI"
RESPONSE_MAGIC = b"QALR"
VERSION = 1
HEADER = struct.Struct("<4sBBHqI")
RECORD_HEAD = struct.Struct("<qQ")
ERROR_HEAD = struct.Struct("<H")
CHOICE = struct.Struct("<dddd")
MAX_REQUEST_PAYLOAD = 1 << 28

GET_RECORD, GET_BASES, GET_INTENSITIES, LIST_BLOCKS, GET_BITS = 0x01, 0x02, 0x03, 0x04, 0x05
SET_CHOICE, GET_CHOICE = 0x06, 0x07
REPLY_FLAG = 0x80
ERROR_TYPE = 0xFF

ERR_BAD_FRAME = 1
ERR_UNKNOWN_TYPE = 2
ERR_UNKNOWN_BLOCK = 3
ERR_SLOT_RANGE = 4
ERR_BAD_PAYLOAD = 5
ERR_BAD_CHOICE = 6
ERR_NO_SOURCE = 7


class AliceHostError(Exception):
    """A request failed: code and text for the error response."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


def response(msg_type: int, block_id: int, payload: bytes) -> bytes:
    """One response frame."""
    return HEADER.pack(RESPONSE_MAGIC, VERSION, msg_type, 0, block_id, len(payload)) + payload


def error_response(block_id: int, code: int, text: str) -> bytes:
    """An error response frame."""
    return response(ERROR_TYPE, block_id, ERROR_HEAD.pack(code) + text.encode("utf-8"))


class AliceHost:
    """Answers requests about the blocks in a `BlockStore`; sets Alice's choice probabilities
    on `bench` (a SimBench; None: a host without a settable source)."""

    def __init__(self, store: BlockStore, bench=None) -> None:
        self.store = store
        self.bench = bench

    def _choice(self, msg_type: int, payload: bytes) -> bytes:
        """The SET_CHOICE / GET_CHOICE reply payload: the probabilities in force."""
        if self.bench is None:
            raise AliceHostError(ERR_NO_SOURCE, "this host has no settable source")
        if msg_type == SET_CHOICE:
            if len(payload) != CHOICE.size:
                raise AliceHostError(ERR_BAD_PAYLOAD, f"SET_CHOICE payload of {len(payload)} bytes, expected 32")
            p_z, *p_mu = CHOICE.unpack(payload)
            if not (0.0 < p_z < 1.0):
                raise AliceHostError(ERR_BAD_CHOICE, f"P(Z) = {p_z} must lie in (0, 1)")
            if not (all(0.0 <= p <= 1.0 for p in p_mu) and abs(sum(p_mu) - 1.0) <= 1e-9):
                raise AliceHostError(ERR_BAD_CHOICE,
                                     f"intensity probabilities {p_mu} must lie in [0, 1] and sum to 1")
            self.bench.set_choice_probabilities(p_z, tuple(p_mu))
        p_z, p_mu = self.bench.choice_probabilities()
        return CHOICE.pack(p_z, *p_mu)

    def _record(self, block_id: int):
        block = self.store.get(block_id)
        if block is None:
            raise AliceHostError(ERR_UNKNOWN_BLOCK, f"block {block_id} not held; held: {self.store.ids()}")
        return block.alice

    @staticmethod
    def _record_frame(block_id: int, rec) -> bytearray:
        """The GET_RECORD response, written into one buffer (records hold ~1e8 slots)."""
        n = len(rec)
        frame = bytearray(HEADER.size + RECORD_HEAD.size + 3 * n)
        HEADER.pack_into(frame, 0, RESPONSE_MAGIC, VERSION, GET_RECORD | REPLY_FLAG, 0, block_id,
                         RECORD_HEAD.size + 3 * n)
        RECORD_HEAD.pack_into(frame, HEADER.size, rec.first_slot, n)
        start = HEADER.size + RECORD_HEAD.size
        for k, values in enumerate((rec.basis, rec.bit, rec.intensity)):
            frame[start + k * n:start + (k + 1) * n] = values.data
        return frame

    @staticmethod
    def _positions(record, payload: bytes) -> np.ndarray:
        if len(payload) % 8:
            raise AliceHostError(ERR_BAD_PAYLOAD, f"slot list of {len(payload)} bytes is not a multiple of 8")
        slots = np.frombuffer(payload, dtype="<i8")
        pos = slots - np.int64(record.first_slot)
        bad = (pos < 0) | (pos >= len(record))
        if bad.any():
            first = int(slots[np.argmax(bad)])
            raise AliceHostError(
                ERR_SLOT_RANGE,
                f"slot {first} outside block slots {record.first_slot}..{record.first_slot + len(record) - 1}",
            )
        return pos

    def answer(self, msg_type: int, block_id: int, payload: bytes) -> bytes | bytearray:
        """The response frame to one well-framed request."""
        try:
            if msg_type == LIST_BLOCKS:
                ids = np.array(self.store.ids(), dtype="<i8")
                return response(LIST_BLOCKS | REPLY_FLAG, block_id, ids.tobytes())
            if msg_type == GET_RECORD:
                return self._record_frame(block_id, self._record(block_id))
            if msg_type in (SET_CHOICE, GET_CHOICE):
                return response(msg_type | REPLY_FLAG, block_id, self._choice(msg_type, payload))
            fields = {GET_BASES: "basis", GET_INTENSITIES: "intensity", GET_BITS: "bit"}
            if msg_type in fields:
                rec = self._record(block_id)
                values = getattr(rec, fields[msg_type])[self._positions(rec, payload)]
                return response(msg_type | REPLY_FLAG, block_id, values.astype(np.uint8).tobytes())
            raise AliceHostError(ERR_UNKNOWN_TYPE, f"unknown message type 0x{msg_type:02x}")
        except AliceHostError as exc:
            return error_response(block_id, exc.code, exc.text)

    def session(self, conn: Connection) -> None:
        """Serve one TCP client until it leaves, sends a bad frame, or the link is cut."""
        while True:
            head = conn.recv_exact(HEADER.size)
            if head is None:
                return
            magic, version, msg_type, _, block_id, n_payload = HEADER.unpack(head)
            if magic != REQUEST_MAGIC or version != VERSION or n_payload > MAX_REQUEST_PAYLOAD:
                conn.reply(error_response(0, ERR_BAD_FRAME, "bad magic, version or payload length; closing"))
                conn.close()
                return
            payload = conn.recv_exact(n_payload) if n_payload else b""
            if payload is None:
                return
            if not conn.reply(self.answer(msg_type, block_id, payload)):
                return
