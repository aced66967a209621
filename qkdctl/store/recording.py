"""HDF5 recordings of a run: tags, Alice's record, the config text and the seeds in one file.

Layout (format "qkdctl-recording", version 1):

    /                attrs: format, format_version, config_text, seeds (JSON), created_utc
    /tags/t_ps       int64 ps, extensible, chunked, compressed
    /tags/channel    int32
    /alice/basis     uint8 (0 Z, 1 X)
    /alice/bit       uint8
    /alice/intensity uint8 (0 signal, 1 decoy, 2 vacuum)
    /blocks          one row per block: block_id, [tag_start, tag_stop) and
                     [alice_start, alice_stop) offsets into the arrays above,
                     first_slot, start_ps, stop_ps, overflow, missed_events

The file is written in HDF5's single-writer/multiple-reader (SWMR) mode: each
block's arrays are appended and flushed first, and its row in /blocks is appended
and flushed last.  A file cut off mid-write (killed writer, power loss) therefore
opens and yields every block up to the last complete one; rows that point past
the data are ignored.  A cleanly closed file can be appended to; a file whose
writer died must first be copied with `recover_recording` (HDF5 keeps it marked
as open for writing).
"""

from __future__ import annotations

import datetime
import json
import math
import os
from pathlib import Path
from typing import Any, Iterator

import h5py
import numpy as np

from qkdctl.core.errors import QkdInputError
from qkdctl.core.records import AliceRecord
from qkdctl.core.tags import TagBlock

FORMAT = "qkdctl-recording"
FORMAT_VERSION = 1
TAG_CHUNK = 1 << 16
ALICE_CHUNK = 1 << 18
BLOCK_CHUNK = 64
COMPRESSIONS = ("gzip", "lzf", None)
BLOCK_ROW = np.dtype([
    ("block_id", "<i8"), ("tag_start", "<i8"), ("tag_stop", "<i8"), ("alice_start", "<i8"),
    ("alice_stop", "<i8"), ("first_slot", "<i8"), ("start_ps", "<i8"), ("stop_ps", "<i8"),
    ("overflow", "u1"), ("missed_events", "<i8"),
])
_ARRAYS = {
    "tags/t_ps": (np.int64, TAG_CHUNK),
    "tags/channel": (np.int32, TAG_CHUNK),
    "alice/basis": (np.uint8, ALICE_CHUNK),
    "alice/bit": (np.uint8, ALICE_CHUNK),
    "alice/intensity": (np.uint8, ALICE_CHUNK),
}


def _bad(path: Path, problem: str) -> QkdInputError:
    return QkdInputError(f"recording {str(path)!r}: {problem}")


def _append(ds: h5py.Dataset, values: np.ndarray) -> tuple[int, int]:
    start = ds.shape[0]
    if values.size:
        ds.resize((start + values.size,))
        ds[start:] = values
    ds.flush()
    return start, start + values.size


class RecordingWriter:
    """Append (TagBlock, AliceRecord) pairs to an HDF5 recording.

    mode "w" creates (or overwrites) the file with `config_text` and `seeds`;
    mode "a" appends to a cleanly closed recording (its config and seeds are kept).
    compression: "gzip" (level 1, with shuffle), "lzf" or None.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        config_text: str = "",
        seeds: Any = None,
        mode: str = "w",
        compression: str | None = "gzip",
    ) -> None:
        self.path = Path(path)
        if mode not in ("w", "a"):
            raise QkdInputError(f"recording mode {mode!r} not allowed; use 'w' (create) or 'a' (append)")
        if compression not in COMPRESSIONS:
            raise QkdInputError(f"recording compression {compression!r} not in {list(COMPRESSIONS)}")
        try:
            seeds_json = json.dumps(seeds)
        except (TypeError, ValueError) as exc:
            raise QkdInputError(f"recording seeds are not JSON-serialisable: {exc}") from None
        if mode == "w":
            self._file = self._create(config_text, seeds_json, compression)
        else:
            self._file = self._open_append()
        self._file.swmr_mode = True
        self._ds = {name: self._file[name] for name in _ARRAYS}
        self._blocks = self._file["blocks"]

    def _create(self, config_text: str, seeds_json: str, compression: str | None) -> h5py.File:
        try:
            f = h5py.File(self.path, "w", libver="latest")
        except OSError as exc:
            raise _bad(self.path, f"cannot create ({exc})") from None
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["config_text"] = str(config_text)
        f.attrs["seeds"] = seeds_json
        f.attrs["created_utc"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
        filters = {"compression": compression}
        if compression == "gzip":
            filters.update(compression_opts=1, shuffle=True)
        for name, (dtype, chunk) in _ARRAYS.items():
            f.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(chunk,), **filters)
        f.create_dataset("blocks", shape=(0,), maxshape=(None,), dtype=BLOCK_ROW, chunks=(BLOCK_CHUNK,))
        return f

    def _open_append(self) -> h5py.File:
        try:
            f = h5py.File(self.path, "a", libver="latest")
        except OSError as exc:
            raise _bad(
                self.path,
                f"cannot open for appending ({exc}); if its writer died, copy its complete blocks "
                "with qkdctl.store.recording.recover_recording(src, dst) and append to the copy",
            ) from None
        if f.attrs.get("format") != FORMAT:
            f.close()
            raise _bad(self.path, f"not a qkdctl recording (format attribute {f.attrs.get('format')!r})")
        return f

    @property
    def n_blocks(self) -> int:
        """Get the number of blocks in the file."""
        return int(self._blocks.shape[0])

    def append(self, tags: TagBlock, alice: AliceRecord) -> int:
        """Write one block (arrays first, then its /blocks row, each flushed); return its index."""
        if not isinstance(tags, TagBlock) or not isinstance(alice, AliceRecord):
            raise QkdInputError("recording: append takes a TagBlock and an AliceRecord")
        tag_start, tag_stop = _append(self._ds["tags/t_ps"], tags.t_ps)
        _append(self._ds["tags/channel"], tags.channel)
        alice_start, alice_stop = _append(self._ds["alice/basis"], alice.basis)
        _append(self._ds["alice/bit"], alice.bit)
        _append(self._ds["alice/intensity"], alice.intensity)
        index = self.n_blocks
        row = np.array([(
            int(tags.meta.get("block_id", index)), tag_start, tag_stop, alice_start, alice_stop,
            alice.first_slot, tags.start_ps, tags.stop_ps, tags.overflow, tags.missed_events,
        )], dtype=BLOCK_ROW)
        _append(self._blocks, row)
        return index

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._file.id.valid:
            self._file.close()

    def __enter__(self) -> "RecordingWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RecordingReader:
    """Read an HDF5 recording block by block: `for tags, alice in reader`."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise _bad(self.path, "no such file")
        try:
            self._file = h5py.File(self.path, "r", swmr=True)
        except OSError:
            try:
                self._file = h5py.File(self.path, "r")
            except OSError as exc:
                raise _bad(self.path, f"not a readable HDF5 file ({exc})") from None
        if self._file.attrs.get("format") != FORMAT:
            found = self._file.attrs.get("format")
            self._file.close()
            raise _bad(self.path, f"not a qkdctl recording (format attribute {found!r})")
        version = int(self._file.attrs.get("format_version", -1))
        if version != FORMAT_VERSION:
            self._file.close()
            raise _bad(self.path, f"format version {version} not supported (this reader reads {FORMAT_VERSION})")
        try:
            self._ds = {name: self._file[name] for name in _ARRAYS}
            rows = self._file["blocks"][:]
        except KeyError as exc:
            self._file.close()
            raise _bad(self.path, f"missing dataset {exc}") from None
        self.rows = rows[: self._complete(rows)]

    def _complete(self, rows: np.ndarray) -> int:
        """Number of leading rows whose data lies inside the arrays (the rest were cut off)."""
        n_tags = min(self._ds["tags/t_ps"].shape[0], self._ds["tags/channel"].shape[0])
        n_alice = min(self._ds[k].shape[0] for k in ("alice/basis", "alice/bit", "alice/intensity"))
        ok = (rows["tag_stop"] <= n_tags) & (rows["alice_stop"] <= n_alice)
        ok &= (rows["tag_start"] <= rows["tag_stop"]) & (rows["alice_start"] <= rows["alice_stop"])
        return int(np.argmin(ok)) if not ok.all() else rows.size

    @property
    def config_text(self) -> str:
        """Get the run's config text."""
        return str(self._file.attrs.get("config_text", ""))

    @property
    def seeds(self) -> Any:
        """Get the run's seeds (as recorded, JSON-decoded)."""
        return json.loads(self._file.attrs.get("seeds", "null"))

    def __len__(self) -> int:
        return int(self.rows.size)

    def channels(self) -> list[int]:
        """The distinct tag channels of the complete blocks, read chunk by chunk."""
        ds = self._ds["tags/channel"]
        stop = int(self.rows["tag_stop"].max()) if len(self) else 0
        found: set[int] = set()
        for lo in range(0, stop, 16 * TAG_CHUNK):
            found.update(np.unique(ds[lo : min(lo + 16 * TAG_CHUNK, stop)]).tolist())
        return sorted(found)

    def block(self, index: int) -> tuple[TagBlock, AliceRecord]:
        """The tags and Alice's record of block `index` (0-based position in the file)."""
        if not 0 <= index < len(self):
            raise QkdInputError(f"recording {str(self.path)!r}: block {index} not in 0..{len(self) - 1}")
        r = self.rows[index]
        ts, te, a_s, a_e = (int(r[k]) for k in ("tag_start", "tag_stop", "alice_start", "alice_stop"))
        try:
            tags = TagBlock(
                self._ds["tags/t_ps"][ts:te], self._ds["tags/channel"][ts:te],
                start_ps=int(r["start_ps"]), stop_ps=int(r["stop_ps"]), overflow=bool(r["overflow"]),
                missed_events=int(r["missed_events"]), meta={"block_id": int(r["block_id"]), "source": str(self.path)},
            )
            alice = AliceRecord(
                self._ds["alice/basis"][a_s:a_e], self._ds["alice/bit"][a_s:a_e],
                self._ds["alice/intensity"][a_s:a_e], first_slot=int(r["first_slot"]),
            )
        except QkdInputError as exc:
            raise _bad(self.path, f"block {index} is corrupt: {exc}") from None
        return tags, alice

    def __iter__(self) -> Iterator[tuple[TagBlock, AliceRecord]]:
        for i in range(len(self)):
            yield self.block(i)

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._file.id.valid:
            self._file.close()

    def __enter__(self) -> "RecordingReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def recover_recording(src: str | os.PathLike, dst: str | os.PathLike) -> int:
    """Copy the complete blocks of a cut-off recording into a new, appendable file; return their number."""
    with RecordingReader(src) as reader, RecordingWriter(dst, config_text=reader.config_text, seeds=reader.seeds) as w:
        for tags, alice in reader:
            w.append(tags, alice)
        return len(reader)


def record_to_hdf5(
    source: tuple[Any, Any],
    seconds: float,
    path: str | os.PathLike,
    config_text: str,
    seeds: Any,
    *,
    block_s: float = 0.1,
    compression: str | None = "gzip",
) -> int:
    """Record `seconds` of acquisition into a new HDF5 file; return the number of blocks.

    source: (tagger, alice): a tagger with `read_block(duration_s) -> TagBlock` and
    an Alice side with `record_for(block) -> AliceRecord` (the live or simulated
    Alice host client, or a replay).  Blocks last `block_s` seconds (the last one
    may be shorter).
    """
    tagger, alice = source
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
        raise QkdInputError(f"record: seconds must be > 0, got {seconds!r}")
    if not (isinstance(block_s, (int, float)) and math.isfinite(block_s) and block_s > 0):
        raise QkdInputError(f"record: block_s must be > 0, got {block_s!r}")
    n_full, rest = divmod(float(seconds), float(block_s))
    durations = [float(block_s)] * int(n_full) + ([rest] if rest > 1e-9 * block_s else [])
    with RecordingWriter(path, config_text=config_text, seeds=seeds, compression=compression) as writer:
        for duration in durations:
            tags = tagger.read_block(duration)
            writer.append(tags, alice.record_for(tags))
        return writer.n_blocks
