"""Replay drivers: HDF5 recordings (incl. one recorded from the simulated bench) and PTU + Alice record files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from drivers.alice_host import AliceHostClient
from drivers.replay import ReplayAlice, ReplayExhausted, ReplayTagger
from drivers.tagger.base import TimeTagger
from drivers.tagger.ptu_writer import PtuWriter
from drivers.tagger.sim_client import SimTagger
from firmware_sim.bench import SimBench
from firmware_sim.config import SimConfig
from firmware_sim.serve import SimServer
from qkdctl.core.errors import QkdInputError
from qkdctl.core.tags import TagBlock
from qkdctl.store.recording import RecordingReader, RecordingWriter, record_to_hdf5
from tests.store.test_recording import make_block


@pytest.fixture
def recording(tmp_path):
    path = tmp_path / "rec.h5"
    with RecordingWriter(path, config_text="cfg", seeds=[1]) as w:
        for k in range(3):
            w.append(*make_block(k))
    reader = RecordingReader(path)
    yield reader
    reader.close()


def test_replay_tagger_from_recording(recording):
    tagger = ReplayTagger.from_recording(recording)
    alice = ReplayAlice(recording=recording)
    assert isinstance(tagger, TimeTagger) and tagger.channels == (0, 1, 2, 3, 4)
    blocks = []
    while not tagger.exhausted:
        blocks.append(tagger.read_block(0.001))
    assert [b.meta["block_id"] for b in blocks] == [100, 101, 102]
    want_tags, want_alice = make_block(1)
    np.testing.assert_array_equal(blocks[1].t_ps, want_tags.t_ps)
    assert blocks[2].overflow and blocks[2].missed_events == 14
    rec = alice.record_for(blocks[1])
    np.testing.assert_array_equal(rec.bit, want_alice.bit)
    slots = want_alice.first_slot + np.array([0, 17, len(want_alice) - 1])
    np.testing.assert_array_equal(alice.get_bases(101, slots), want_alice.basis[[0, 17, -1]])
    np.testing.assert_array_equal(alice.get_intensities(101, slots), want_alice.intensity[[0, 17, -1]])
    with pytest.raises(QkdInputError, match="slot 4999 outside 5000..9999"):
        alice.get_bits(101, [4999])
    with pytest.raises(ReplayExhausted, match="exhausted after 3 blocks"):
        tagger.read_block(0.001)
    rate = tagger.count_rates_hz()
    assert sum(rate.values()) == pytest.approx(len(blocks[2]) / 1e-3)


def test_input_delay_shifts_replayed_tags(recording):
    tagger = ReplayTagger.from_recording(recording)
    tagger.configure(3, input_delay_ps=-500, trigger_level_v=0.1, dead_time_ps=1000)
    block = tagger.read_block(0.001)
    want, _ = make_block(0)
    expect = np.sort(np.where(want.channel == 3, want.t_ps - 500, want.t_ps))
    np.testing.assert_array_equal(block.t_ps, expect)
    assert tagger.settings[3] == {"input_delay_ps": -500, "trigger_level_v": 0.1, "dead_time_ps": 1000}
    with pytest.raises(QkdInputError, match=r"channel 9 not in \[0, 1, 2, 3, 4\]"):
        tagger.set_input_delay_ps(9, 1)


def test_ptu_with_alice_npz(tmp_path, rng):
    period_ps, n_slots, t0_ps = 10_000, 2000, 3_000
    slot_t = t0_ps + period_ps * np.arange(n_slots)
    sync = slot_t[::10]
    det = np.sort(rng.choice(slot_t, 300, replace=False) + 700)
    t = np.concatenate([sync, det])
    ch = np.concatenate([np.zeros(sync.size, int), rng.integers(1, 5, det.size)])
    order = np.argsort(t, kind="stable")
    with PtuWriter(tmp_path / "run.ptu") as w:
        w.write(t[order], ch[order])
    basis, bit, inten = rng.integers(0, 2, n_slots), rng.integers(0, 2, n_slots), rng.integers(0, 3, n_slots)
    np.savez(tmp_path / "alice.npz", basis=basis, bit=bit, intensity=inten, first_slot=0,
             slot_period_ps=period_ps, slot0_t_ps=t0_ps)
    tagger = ReplayTagger.from_ptu(tmp_path / "run.ptu", chunk_records=64)
    alice = ReplayAlice.from_file(tmp_path / "alice.npz")
    assert tagger.channels == (0, 1, 2, 3, 4)
    got_t, got_slots = [], []
    while not tagger.exhausted:
        block = tagger.read_block(5e-6)  # 500 slots per window
        rec = alice.record_for(block)
        assert rec.first_slot == 500 * block.meta["block_id"] and len(rec) == 500
        np.testing.assert_array_equal(rec.basis, basis[rec.first_slot : rec.first_slot + 500])
        got_t.append(block.t_ps)
        got_slots.append(len(rec))
    np.testing.assert_array_equal(np.concatenate(got_t), t[order])
    assert sum(got_slots) == n_slots


def test_alice_h5_file_and_bad_inputs(tmp_path):
    path = tmp_path / "alice.h5"
    with h5py.File(path, "w") as f:
        f["basis"], f["bit"], f["intensity"] = [0, 1, 1], [1, 0, 0], [2, 0, 1]
        f.attrs["first_slot"] = 40
    alice = ReplayAlice.from_file(path)
    assert alice.record_for(TagBlock([], [])).first_slot == 40
    assert alice.get_bases(0, [41, 42]).tolist() == [1, 1]
    bad = tmp_path / "bad.npz"
    np.savez(bad, basis=[0], bit=[0])
    with pytest.raises(QkdInputError, match=r"bad\.npz'.*lacks arrays \['intensity'\]"):
        ReplayAlice.from_file(bad)
    with pytest.raises(QkdInputError, match="no such file"):
        ReplayAlice.from_file(tmp_path / "none.npz")
    with pytest.raises(QkdInputError, match="exactly one"):
        ReplayAlice()


def test_record_from_the_simulated_bench_then_replay(tmp_path):
    with SimServer(SimBench(SimConfig(), seed=5)) as sim:
        with SimTagger.open(sim.resources.tagger) as tagger, AliceHostClient.open(sim.resources.alice) as host:
            n = record_to_hdf5((tagger, host), 0.003, tmp_path / "sim.h5", "[bench]", {"bench": 5}, block_s=0.001)
        stored = {i: sim.store.get(i) for i in sim.store.ids()}
    assert n == 3
    with RecordingReader(tmp_path / "sim.h5") as reader:
        replay, alice = ReplayTagger.from_recording(reader), ReplayAlice(recording=reader)
        for _ in range(n):
            block = replay.read_block(0.001)
            truth = stored[block.meta["block_id"]]
            np.testing.assert_array_equal(block.t_ps, truth.tags.t_ps)
            np.testing.assert_array_equal(alice.record_for(block).basis, truth.alice.basis)
        assert replay.exhausted and reader.seeds == {"bench": 5}
