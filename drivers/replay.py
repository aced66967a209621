"""Mock drivers fed from recordings: the same interfaces as the live tagger and Alice's host.

* `ReplayTagger` is a `TimeTagger` whose blocks come from an open HDF5
  recording (`qkdctl.store.recording.RecordingReader`, or anything with `len()`,
  `block(i) -> (TagBlock, AliceRecord)`, `channels()` and `close()`; block
  boundaries as recorded) or from a PicoQuant T2 PTU file (consecutive windows of
  the requested duration).
* `ReplayAlice` answers like `drivers.alice_host.AliceHostClient`
  (`record_for(block)`, `get_record`, `get_bases`, `get_intensities`,
  `get_bits`) from the same recording, or from an Alice record file (.npz or
  .h5 with arrays basis, bit, intensity and optional scalars first_slot,
  slot_period_ps, slot0_t_ps; with the last two, `record_for` returns the slots
  whose pulse times fall inside the block's window, else the whole record).

Drivers do not import `qkdctl.store` (rule of the rooms), so whoever wires a
replay opens the recording and hands it in (docs/recording.md):

    reader = RecordingReader(path)
    tagger, alice = ReplayTagger.from_recording(reader), ReplayAlice(recording=reader)

Input
delays set on a `ReplayTagger` shift the replayed tags of that channel (a
software delay); trigger levels and dead times are kept but change nothing.
When the recording is used up, `read_block` raises `ReplayExhausted`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np

from drivers.tagger.base import TimeTagger, check_duration_s
from drivers.tagger.ptu import PtuReader
from qkdctl.core.errors import QkdInputError
from qkdctl.core.records import AliceRecord
from qkdctl.core.tags import TagBlock


class ReplayExhausted(QkdInputError):
    """The replayed recording has no more blocks."""


class ReplayTagger(TimeTagger):
    """A tagger replaying an HDF5 recording (`from_recording`) or a T2 PTU file (`from_ptu`)."""

    def __init__(self, source, *, channels: Sequence[int], name: str) -> None:
        self._source = source
        self._channels = tuple(sorted(int(c) for c in channels))
        self.name = name
        self.settings: dict[int, dict[str, float]] = {c: {} for c in self._channels}
        self._delay_ps: dict[int, int] = {}
        self._next = 0
        self._rates_hz: dict[int, float] = {c: 0.0 for c in self._channels}

    @classmethod
    def from_recording(cls, reader) -> "ReplayTagger":
        """Replay the blocks of an open recording (a `RecordingReader`) in order."""
        name = Path(str(getattr(reader, "path", "recording"))).name
        return cls(reader, channels=reader.channels(), name=f"ReplayTagger({name})")

    @classmethod
    def from_ptu(
        cls, path: str | os.PathLike, *, sync_channel: int = 0, channels: Sequence[int] | None = None,
        chunk_records: int = 1 << 20,
    ) -> "ReplayTagger":
        """Replay a T2 PTU file in windows of the durations asked for (channels: default those of its first chunk)."""
        reader = PtuReader(path, sync_channel=sync_channel, chunk_records=chunk_records)
        if channels is None:
            first = next(iter(reader.chunks()), None)
            channels = {sync_channel} | (set(first.channel.tolist()) if first is not None else set())
        return cls(reader, channels=channels, name=f"ReplayTagger({Path(path).name})")

    @property
    def channels(self) -> tuple[int, ...]:
        """Get the channels present in the recording."""
        return self._channels

    def set_trigger_level_v(self, channel: int, level_v: float) -> None:
        """Set a trigger level (V); kept in `settings`, no effect on recorded tags."""
        self.settings[self.check_channel(channel)]["trigger_level_v"] = float(level_v)

    def set_input_delay_ps(self, channel: int, delay_ps: int) -> None:
        """Set an input delay (ps): shifts the replayed tags of that channel."""
        channel = self.check_channel(channel)
        if int(delay_ps) != delay_ps:
            raise QkdInputError(f"{self.name}: input delay {delay_ps!r} ps is not an integer")
        self.settings[channel]["input_delay_ps"] = int(delay_ps)
        self._delay_ps[channel] = int(delay_ps)

    def set_dead_time_ps(self, channel: int, dead_time_ps: int) -> None:
        """Set a dead time (ps); kept in `settings`, no effect on recorded tags."""
        self.settings[self.check_channel(channel)]["dead_time_ps"] = int(dead_time_ps)

    @property
    def exhausted(self) -> bool:
        """True when every recorded block or every PTU record has been replayed."""
        if not isinstance(self._source, PtuReader):
            return self._next >= len(self._source)
        return self._source.exhausted

    def _shifted(self, block: TagBlock) -> TagBlock:
        if not any(self._delay_ps.values()):
            return block
        t = block.t_ps.copy()
        for ch, delay in self._delay_ps.items():
            t[block.channel == ch] += delay
        order = np.argsort(t, kind="stable")
        return TagBlock(t[order], block.channel[order], start_ps=block.start_ps, stop_ps=block.stop_ps,
                        overflow=block.overflow, missed_events=block.missed_events, meta=block.meta)

    def read_block(self, duration_s: float) -> TagBlock:
        """The next recorded block (HDF5: as recorded, `duration_s` only checked) or PTU window of `duration_s`."""
        duration_s = check_duration_s(duration_s)
        if self.exhausted:
            raise ReplayExhausted(f"{self.name}: recording exhausted after {self._next} blocks")
        if not isinstance(self._source, PtuReader):
            block, _ = self._source.block(self._next)
        else:
            raw = self._source.read_window(int(round(duration_s * 1e12)))
            block = TagBlock(raw.t_ps, raw.channel, start_ps=raw.start_ps, stop_ps=raw.stop_ps,
                             meta={**raw.meta, "block_id": self._next})
        self._next += 1
        span_s = max(block.stop_ps - block.start_ps, 1) * 1e-12
        counts = np.bincount(np.searchsorted(self._channels, block.channel), minlength=len(self._channels))
        self._rates_hz = {c: float(n) / span_s for c, n in zip(self._channels, counts)}
        return self._shifted(block)

    def count_rates_hz(self) -> dict[int, float]:
        """Get each channel's rate (Hz) in the last replayed block."""
        return dict(self._rates_hz)

    def close(self) -> None:
        """Close the recording (idempotent)."""
        close = getattr(self._source, "close", None)
        if close is not None:
            close()


def _scalar(value, name: str, path: Path) -> float | None:
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.size != 1:
        raise QkdInputError(f"Alice record {str(path)!r}: {name} must be a scalar")
    return float(arr.reshape(()))


class ReplayAlice:
    """Alice's side of a replay: her record per block, and the public disclosures by absolute slot.

    recording: an open recording (records by block id); or record: one Alice
    record for the whole replay, cut per block by slot time when slot_period_ps
    and slot0_t_ps (time of slot `first_slot`, ps) are given.
    """

    def __init__(
        self, *, recording=None, record: AliceRecord | None = None,
        slot_period_ps: float | None = None, slot0_t_ps: float | None = None, name: str = "ReplayAlice",
    ) -> None:
        if (recording is None) == (record is None):
            raise QkdInputError("ReplayAlice needs exactly one of a recording or an Alice record")
        if (slot_period_ps is None) != (slot0_t_ps is None):
            raise QkdInputError("ReplayAlice: give both slot_period_ps and slot0_t_ps, or neither")
        if slot_period_ps is not None and not (math.isfinite(slot_period_ps) and slot_period_ps > 0):
            raise QkdInputError(f"ReplayAlice: slot_period_ps must be > 0, got {slot_period_ps!r}")
        self._recording = recording
        self._record = record
        self._period_ps = slot_period_ps
        self._t0_ps = slot0_t_ps
        self.name = name
        self._index: dict[int, int] = {}
        if recording is not None:
            self._index = {int(b): i for i, b in enumerate(recording.rows["block_id"])}

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "ReplayAlice":
        """Alice's record from an .npz or .h5 file (arrays basis, bit, intensity at the top level)."""
        path = Path(path)
        if not path.exists():
            raise QkdInputError(f"Alice record {str(path)!r}: no such file")
        if path.suffix == ".npz":
            try:
                with np.load(path) as data:
                    fields = {k: data[k] for k in data.files}
            except (OSError, ValueError) as exc:
                raise QkdInputError(f"Alice record {str(path)!r}: not a readable .npz ({exc})") from None
        else:
            try:
                with h5py.File(path, "r") as f:
                    fields = {k: f[k][()] for k in f.keys() if isinstance(f[k], h5py.Dataset)}
                    fields.update({k: f.attrs[k] for k in f.attrs})
            except OSError as exc:
                raise QkdInputError(f"Alice record {str(path)!r}: not a readable HDF5 file ({exc})") from None
        missing = [k for k in ("basis", "bit", "intensity") if k not in fields]
        if missing:
            raise QkdInputError(f"Alice record {str(path)!r}: lacks arrays {missing}")
        record = AliceRecord(fields["basis"], fields["bit"], fields["intensity"],
                             first_slot=int(_scalar(fields.get("first_slot", 0), "first_slot", path)))
        return cls(record=record, slot_period_ps=_scalar(fields.get("slot_period_ps"), "slot_period_ps", path),
                   slot0_t_ps=_scalar(fields.get("slot0_t_ps"), "slot0_t_ps", path), name=f"ReplayAlice({path.name})")

    def get_record(self, block_id: int) -> AliceRecord:
        """Alice's record of a recorded block (by block id); with a record file, the whole record."""
        if self._recording is None:
            return self._record
        if int(block_id) not in self._index:
            raise QkdInputError(f"{self.name}: block {block_id} not in the recording")
        return self._recording.block(self._index[int(block_id)])[1]

    def record_for(self, block: TagBlock) -> AliceRecord:
        """Alice's record of the slots of a replayed block."""
        if self._recording is not None:
            return self.get_record(int(block.meta.get("block_id", -1)))
        rec = self._record
        if self._period_ps is None:
            return rec
        lo = math.ceil((block.start_ps - self._t0_ps) / self._period_ps) - rec.first_slot
        hi = math.ceil((block.stop_ps - self._t0_ps) / self._period_ps) - rec.first_slot
        lo, hi = min(max(lo, 0), len(rec)), min(max(hi, 0), len(rec))
        return AliceRecord(rec.basis[lo:hi], rec.bit[lo:hi], rec.intensity[lo:hi], first_slot=rec.first_slot + lo)

    def _values(self, block_id: int, slots, field: str) -> np.ndarray:
        rec = self.get_record(block_id)
        pos = np.asarray(slots, dtype=np.int64) - rec.first_slot
        bad = (pos < 0) | (pos >= len(rec))
        if np.any(bad):
            raise QkdInputError(
                f"{self.name}: slot {int(np.asarray(slots)[np.argmax(bad)])} outside "
                f"{rec.first_slot}..{rec.first_slot + len(rec) - 1}"
            )
        return getattr(rec, field)[pos]

    def get_bases(self, block_id: int, slots) -> np.ndarray:
        """Alice's bases (0 Z, 1 X) in the given absolute slots: the public sifting disclosure."""
        return self._values(block_id, slots, "basis")

    def get_intensities(self, block_id: int, slots) -> np.ndarray:
        """Alice's intensity classes in the given absolute slots (public, for decoy analysis)."""
        return self._values(block_id, slots, "intensity")

    def get_bits(self, block_id: int, slots) -> np.ndarray:
        """Alice's bits in the given absolute slots (trusted side only)."""
        return self._values(block_id, slots, "bit")

    def close(self) -> None:
        """Close the recording, if any (idempotent)."""
        if self._recording is not None:
            self._recording.close()

    def __enter__(self) -> "ReplayAlice":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
