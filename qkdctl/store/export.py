"""List a run's keys and export them to a file (`qkdctl keys list|export`).

Only keys that a committed block of the run database names are listed as
exportable: a key a crash left in the store without its block row is never
handed out.  Export consumes keys in one side's store (alice or bob: each end
of a link exports its own copy of the same key) and marks them used with the
purpose ``export:<path>``.

File format: the key bits packed MSB first (`numpy.packbits`), ceil(bits/8)
bytes, the last byte zero-padded.  The file is created exclusively (an
existing file is never overwritten) with mode 0600 and fsynced.  Keys are
marked used before their bits are written, so a failed write loses the keys
rather than risking their reuse.  Key bits never reach a message or a log.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qkdctl.core.errors import QkdInputError
from qkdctl.store.keystore import KeyStore
from qkdctl.store.rundb import RunDB

SIDES = ("alice", "bob")


@dataclass(frozen=True)
class KeyInfo:
    """One key of a store as listed: no key material."""

    key_id: str
    n_bits: int
    state: str
    run_id: str | None
    block_id: int | None


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote: key ids consumed, bits written, file path."""

    key_ids: list[str]
    n_bits: int
    path: str


def _open(run_dir: str | os.PathLike, side: str) -> tuple[KeyStore, dict[str, tuple[str, int]]]:
    """The side's key store and {key_id: (run_id, block_id)} of the committed blocks."""
    if side not in SIDES:
        raise QkdInputError(f"side {side!r} is not one of {list(SIDES)}")
    run_dir = Path(run_dir)
    store_dir = run_dir / "keys" / side
    if not (run_dir / RunDB.FILENAME).is_file() or not store_dir.is_dir():
        raise QkdInputError(f"{run_dir}: not a run directory (needs {RunDB.FILENAME} and keys/{side}/)")
    try:
        with RunDB(run_dir) as db:
            rows = db.conn.execute("SELECT key_id, run_id, block_id FROM blocks WHERE key_id IS NOT NULL").fetchall()
    except sqlite3.DatabaseError as exc:
        raise QkdInputError(f"{run_dir / RunDB.FILENAME}: not a readable run database ({exc})") from None
    return KeyStore(store_dir), {k: (r, int(b)) for k, r, b in rows}


def list_keys(run_dir: str | os.PathLike, side: str = "alice") -> list[KeyInfo]:
    """Every key of a side's store, in order of addition, with its state and block.

    state: 'available', 'used: <purpose>', 'dropped', or 'uncommitted' (no block
    row names it: never exportable).
    """
    store, named = _open(run_dir, side)
    out = []
    for e in store.entries():
        if e.dropped:
            state = "dropped"
        elif e.used_for is not None:
            state = f"used: {e.used_for}"
        else:
            state = "available" if e.key_id in named else "uncommitted"
        run_id, block_id = named.get(e.key_id, (None, None))
        out.append(KeyInfo(e.key_id, e.n_bits, state, run_id, block_id))
    return out


def _select(store: KeyStore, named: dict, ids: list[str] | None, n_bits: int | None) -> list[str]:
    if (ids is None) == (n_bits is None):
        raise QkdInputError("give exactly one of --ids or --bits")
    available = [e for e in store.entries() if e.available and e.key_id in named]
    if ids is not None:
        if not ids:
            raise QkdInputError("--ids names no key")
        if len(set(ids)) != len(ids):
            raise QkdInputError("--ids names a key twice")
        usable = {e.key_id for e in available}
        for key_id in ids:
            if key_id not in usable:
                known = key_id in {e.key_id for e in store.entries()}
                raise QkdInputError(f"key {key_id} is {'not available (used, dropped or uncommitted)' if known else 'unknown'}")
        return list(ids)
    if n_bits <= 0:
        raise QkdInputError(f"--bits must be > 0, got {n_bits}")
    have = sum(e.n_bits for e in available)
    if n_bits > have:
        raise QkdInputError(f"asked for {n_bits} bits but only {have} are available")
    chosen, total = [], 0
    for e in available:
        if total >= n_bits:
            break
        chosen.append(e.key_id)
        total += e.n_bits
    return chosen


def export_keys(run_dir: str | os.PathLike, to: str | os.PathLike, *, ids: list[str] | None = None,
                n_bits: int | None = None, side: str = "alice") -> ExportResult:
    """Write keys named by id, or the oldest whole keys covering n_bits (cut to n_bits), to `to`.

    The keys are marked used in the side's store.  Raises QkdInputError (nothing
    consumed) when the file exists, the ids are not available or too few bits are.
    """
    store, named = _open(run_dir, side)
    chosen = _select(store, named, ids, n_bits)
    path = Path(to)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise QkdInputError(f"{path} exists; export never overwrites a file") from None
    except OSError as exc:
        raise QkdInputError(f"cannot create {path}: {exc.strerror}") from None
    try:
        os.fchmod(fd, 0o600)
        try:
            bits = store.get_key_with_ids(chosen, f"export:{path.resolve()}")
        except BaseException:
            os.unlink(path)
            raise
        if n_bits is not None:
            bits = bits[:n_bits]
        try:
            data = memoryview(np.packbits(bits).tobytes())
            while data:
                data = data[os.write(fd, data):]
            os.fsync(fd)
        except OSError as exc:
            os.unlink(path)
            raise QkdInputError(f"writing {path} failed ({exc.strerror}); keys {chosen} were consumed") from None
    finally:
        os.close(fd)
    return ExportResult(chosen, int(bits.size), str(path))
