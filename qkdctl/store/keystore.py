"""Append-only secret-key store.

Layout of a store directory (created 0700):
  keys.bin    key material, records appended back to back (0600)
  index.log   one line per event, appended and fsynced (0600):
              ``add <key_id> <offset_bytes> <n_bits>``, ``use <key_id> <purpose>``,
              ``drop <key_id> <reason>``

Writes are ordered key bytes -> fsync -> index line -> fsync, so a crash leaves
at most trailing bytes in keys.bin that no index line names; `KeyStore` opens
past them.  Key bits never appear in the index, in logs or in exceptions.  The
interface (`get_key(n_bits)`, `get_key_with_ids(ids)`) is shaped after ETSI GS
QKD 014 key delivery so such a service can sit on it later.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qkdctl.core.errors import QkdInputError

_KEYS = "keys.bin"
_INDEX = "index.log"


class KeyStoreError(QkdInputError):
    """The key store was asked for something it cannot give (unknown id, not enough key)."""


@dataclass(frozen=True)
class KeyEntry:
    """Where one key lives: id, byte offset in keys.bin, length in bits, state."""

    key_id: str
    offset: int
    n_bits: int
    used_for: str | None = None
    dropped: bool = False

    @property
    def available(self) -> bool:
        return self.used_for is None and not self.dropped


def _append_line(path: Path, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


class KeyStore:
    """Append-only store of secret keys in one directory (0700, files 0600)."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.dir, 0o700)
        self._entries: dict[str, KeyEntry] = {}
        self._load()

    def _load(self) -> None:
        index = self.dir / _INDEX
        if not index.exists():
            return
        raw = index.read_bytes()
        # A crash may leave a partial last line: ignore anything after the last newline.
        keep = raw.rfind(b"\n") + 1
        if keep < len(raw):
            os.truncate(index, keep)  # drop the torn line so later appends stay parseable
        complete = raw[:keep].decode()
        for lineno, line in enumerate(complete.splitlines(), start=1):
            parts = line.split(" ", 3)
            op = parts[0]
            if op == "add" and len(parts) == 4:
                self._entries[parts[1]] = KeyEntry(parts[1], int(parts[2]), int(parts[3]))
            elif op in ("use", "drop") and len(parts) >= 3 and parts[1] in self._entries:
                e = self._entries[parts[1]]
                reason = line.split(" ", 2)[2]
                self._entries[parts[1]] = (
                    KeyEntry(e.key_id, e.offset, e.n_bits, used_for=reason, dropped=e.dropped)
                    if op == "use"
                    else KeyEntry(e.key_id, e.offset, e.n_bits, e.used_for, dropped=True)
                )
            else:
                raise KeyStoreError(f"{index}: line {lineno} is not a key-store record")

    def _end_of_indexed_data(self) -> int:
        return max((e.offset + (e.n_bits + 7) // 8 for e in self._entries.values()), default=0)

    def add(self, bits: np.ndarray, key_id: str | None = None) -> str:
        """Append a key (uint8 array of 0/1, fsynced) and return its id.

        key_id: the id to file it under (e.g. the peer's id for the same key);
        a new UUID when None.
        """
        bits = np.ascontiguousarray(bits, dtype=np.uint8)
        if bits.ndim != 1 or bits.size == 0:
            raise KeyStoreError("a key must be a non-empty 1-D bit array")
        if bits.max() > 1:
            raise KeyStoreError("a key must hold only bits 0/1")
        if key_id is None:
            key_id = str(uuid.uuid4())
        elif not key_id or any(c.isspace() for c in key_id) or key_id in self._entries:
            raise KeyStoreError(f"key id {key_id!r} is empty, has blanks or exists already")
        offset = self._end_of_indexed_data()
        path = self.dir / _KEYS
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            # Trailing bytes past the indexed data come from a crash: overwrite them.
            os.ftruncate(fd, offset)
            os.lseek(fd, offset, os.SEEK_SET)
            os.write(fd, np.packbits(bits).tobytes())
            os.fsync(fd)
        finally:
            os.close(fd)
        _append_line(self.dir / _INDEX, f"add {key_id} {offset} {bits.size}")
        self._entries[key_id] = KeyEntry(key_id, offset, int(bits.size))
        return key_id

    def entries(self) -> list[KeyEntry]:
        """Every key ever added, in order of addition (no key material)."""
        return list(self._entries.values())

    def ids(self, available_only: bool = False) -> list[str]:
        """Key ids in order of addition."""
        return [e.key_id for e in self._entries.values() if e.available or not available_only]

    def available_bits(self) -> int:
        """Total bits of keys neither used nor dropped."""
        return sum(e.n_bits for e in self._entries.values() if e.available)

    def read(self, key_id: str) -> np.ndarray:
        """Key bits of one id (uint8 0/1), without marking it used."""
        e = self._entry(key_id)
        with open(self.dir / _KEYS, "rb") as f:
            f.seek(e.offset)
            packed = np.frombuffer(f.read((e.n_bits + 7) // 8), dtype=np.uint8)
        return np.unpackbits(packed)[: e.n_bits]

    def mark_used(self, key_id: str, purpose: str) -> None:
        """Record that a key was consumed (by authentication, export, delivery...)."""
        e = self._entry(key_id)
        if not e.available:
            raise KeyStoreError(f"key {key_id} is not available (used or dropped)")
        purpose = purpose.replace("\n", " ").strip() or "unspecified"
        _append_line(self.dir / _INDEX, f"use {key_id} {purpose}")
        self._entries[key_id] = KeyEntry(e.key_id, e.offset, e.n_bits, used_for=purpose)

    def drop(self, key_id: str, reason: str) -> None:
        """Tombstone a key (e.g. its block never reached the run database)."""
        e = self._entry(key_id)
        reason = reason.replace("\n", " ").strip() or "unspecified"
        _append_line(self.dir / _INDEX, f"drop {key_id} {reason}")
        self._entries[key_id] = KeyEntry(e.key_id, e.offset, e.n_bits, e.used_for, dropped=True)

    def get_key(self, n_bits: int, purpose: str) -> tuple[list[str], np.ndarray]:
        """Take whole available keys, oldest first, until n_bits are covered.

        Returns the ids consumed and exactly n_bits of key (ETSI 014 "get key").
        """
        if n_bits <= 0:
            raise KeyStoreError(f"requested {n_bits} bits; must be > 0")
        if n_bits > self.available_bits():
            raise KeyStoreError(
                f"requested {n_bits} bits but only {self.available_bits()} are available"
            )
        ids, chunks, have = [], [], 0
        for e in list(self._entries.values()):
            if have >= n_bits:
                break
            if e.available:
                ids.append(e.key_id)
                chunks.append(self.read(e.key_id))
                have += e.n_bits
        for key_id in ids:
            self.mark_used(key_id, purpose)
        return ids, np.concatenate(chunks)[:n_bits]

    def get_key_with_ids(self, ids: list[str], purpose: str) -> np.ndarray:
        """Keys named by id, concatenated, and marked used (ETSI 014 "get key with ids")."""
        for key_id in ids:
            if not self._entry(key_id).available:
                raise KeyStoreError(f"key {key_id} is not available (used or dropped)")
        bits = np.concatenate([self.read(k) for k in ids])
        for key_id in ids:
            self.mark_used(key_id, purpose)
        return bits

    def _entry(self, key_id: str) -> KeyEntry:
        try:
            return self._entries[key_id]
        except KeyError:
            raise KeyStoreError(f"unknown key id {key_id}") from None
