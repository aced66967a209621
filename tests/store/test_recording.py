"""HDF5 recordings: round trip, append, cut-off files (killed writer), bad files, record_to_hdf5."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from qkdctl.core.errors import QkdInputError
from qkdctl.core.records import AliceRecord
from qkdctl.core.tags import TagBlock
from qkdctl.store.recording import RecordingReader, RecordingWriter, record_to_hdf5, recover_recording

ROOT = Path(__file__).resolve().parents[2]


def make_block(k: int, n_tags: int = 2000, n_slots: int = 5000) -> tuple[TagBlock, AliceRecord]:
    """Block k of a deterministic test stream (seeded by k)."""
    rng = np.random.default_rng(1000 + k)
    t = np.sort(rng.integers(k * 10**9, (k + 1) * 10**9, n_tags))
    tags = TagBlock(t, rng.integers(0, 5, n_tags), start_ps=k * 10**9, stop_ps=(k + 1) * 10**9,
                    overflow=k % 3 == 2, missed_events=7 * k, meta={"block_id": 100 + k})
    alice = AliceRecord(rng.integers(0, 2, n_slots), rng.integers(0, 2, n_slots), rng.integers(0, 3, n_slots),
                        first_slot=k * n_slots)
    return tags, alice


def assert_same(got, want):
    (gt, ga), (wt, wa) = got, want
    np.testing.assert_array_equal(gt.t_ps, wt.t_ps)
    np.testing.assert_array_equal(gt.channel, wt.channel)
    assert (gt.start_ps, gt.stop_ps, gt.overflow, gt.missed_events) == (wt.start_ps, wt.stop_ps, wt.overflow, wt.missed_events)
    assert gt.meta["block_id"] == wt.meta["block_id"]
    for name in ("basis", "bit", "intensity"):
        np.testing.assert_array_equal(getattr(ga, name), getattr(wa, name))
    assert ga.first_slot == wa.first_slot


@pytest.mark.parametrize("compression", ["gzip", "lzf", None])
def test_round_trip_and_attributes(tmp_path, compression):
    path = tmp_path / "rec.h5"
    with RecordingWriter(path, config_text="[link]\ndistance_km = 25\n", seeds={"bench": 7, "rng": [1, 2]},
                         compression=compression) as w:
        for k in range(3):
            assert w.append(*make_block(k)) == k
    with RecordingReader(path) as r:
        assert len(r) == 3 and r.config_text == "[link]\ndistance_km = 25\n" and r.seeds == {"bench": 7, "rng": [1, 2]}
        for k, got in enumerate(r):
            assert_same(got, make_block(k))


def test_append_to_a_closed_recording(tmp_path):
    path = tmp_path / "rec.h5"
    with RecordingWriter(path, config_text="c", seeds=[1]) as w:
        w.append(*make_block(0))
    with RecordingWriter(path, mode="a") as w:
        assert w.n_blocks == 1
        w.append(*make_block(1))
    with RecordingReader(path) as r:
        assert len(r) == 2 and r.seeds == [1]
        assert_same(r.block(1), make_block(1))
        with pytest.raises(QkdInputError, match="block 2 not in 0..1"):
            r.block(2)


WRITER = """
import sys
sys.path.insert(0, {root!r})
from tests.store.test_recording import make_block
from qkdctl.store.recording import RecordingWriter
w = RecordingWriter({path!r}, config_text="cfg", seeds=[3])
k = 0
while True:
    w.append(*make_block(k, n_tags=100000, n_slots=200000))
    print(k, flush=True)
    k += 1
"""


def test_writer_killed_mid_write_leaves_complete_blocks(tmp_path):
    path = tmp_path / "cut.h5"
    proc = subprocess.Popen([sys.executable, "-c", WRITER.format(root=str(ROOT), path=str(path))],
                            stdout=subprocess.PIPE, text=True)
    try:
        done = [int(proc.stdout.readline()) for _ in range(3)]
        assert done == [0, 1, 2]
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    with RecordingReader(path) as r:
        n = len(r)
        assert n >= 3 and r.config_text == "cfg"
        for k in range(n):
            assert_same(r.block(k), make_block(k, n_tags=100000, n_slots=200000))
    with pytest.raises(QkdInputError, match="cannot open for appending.*recover_recording"):
        RecordingWriter(path, mode="a")
    fixed = tmp_path / "fixed.h5"
    assert recover_recording(path, fixed) == n
    with RecordingWriter(fixed, mode="a") as w:
        w.append(*make_block(n))
    with RecordingReader(fixed) as r:
        assert len(r) == n + 1 and r.seeds == [3]


def test_rows_pointing_past_the_data_are_ignored(tmp_path):
    path = tmp_path / "rec.h5"
    with RecordingWriter(path) as w:
        w.append(*make_block(0))
        w.append(*make_block(1))
    with h5py.File(path, "a") as f:  # a row written without its data: as if the data flush was lost
        rows = f["blocks"]
        rows.resize((3,))
        bogus = rows[1].copy()
        bogus["tag_start"], bogus["tag_stop"] = bogus["tag_stop"], bogus["tag_stop"] + 10
        rows[2] = bogus
    with RecordingReader(path) as r:
        assert len(r) == 2


def test_bad_files_are_named(tmp_path):
    with pytest.raises(QkdInputError, match=r"nope\.h5'.*no such file"):
        RecordingReader(tmp_path / "nope.h5")
    text = tmp_path / "text.h5"
    text.write_text("hello")
    with pytest.raises(QkdInputError, match=r"text\.h5'.*not a readable HDF5 file"):
        RecordingReader(text)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.attrs["format"] = "something-else"
    with pytest.raises(QkdInputError, match="not a qkdctl recording.*something-else"):
        RecordingReader(other)
    with pytest.raises(QkdInputError, match="compression 'zstd'"):
        RecordingWriter(tmp_path / "x.h5", compression="zstd")
    with pytest.raises(QkdInputError, match="not JSON-serialisable"):
        RecordingWriter(tmp_path / "y.h5", seeds=object())


class _Tagger:
    def __init__(self):
        self.durations = []

    def read_block(self, duration_s):
        self.durations.append(duration_s)
        return make_block(len(self.durations) - 1)[0]


class _Alice:
    def record_for(self, block):
        return make_block(block.meta["block_id"] - 100)[1]


def test_record_to_hdf5_splits_seconds_into_blocks(tmp_path):
    tagger = _Tagger()
    n = record_to_hdf5((tagger, _Alice()), 0.25, tmp_path / "r.h5", "cfg", {"seed": 1}, block_s=0.1)
    assert n == 3 and tagger.durations == pytest.approx([0.1, 0.1, 0.05])
    with RecordingReader(tmp_path / "r.h5") as r:
        assert [t.meta["block_id"] for t, _ in r] == [100, 101, 102]
        assert_same(r.block(2), make_block(2))
    with pytest.raises(QkdInputError, match="seconds must be > 0"):
        record_to_hdf5((tagger, _Alice()), 0, tmp_path / "z.h5", "", None)
