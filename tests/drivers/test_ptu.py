"""PTU T2 reader and writer: hand-decoded records, round trips across chunks and overflows, bad files."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.tagger.ptu import (
    RT_HYDRAHARP2_T2,
    RT_HYDRAHARP_T2,
    RT_MULTIHARP_T2,
    RT_PICOHARP_T2,
    RT_TIMEHARP260N_T2,
    RT_TIMEHARP260P_T2,
    PtuReader,
    read_ptu_header,
)
from drivers.tagger.ptu_writer import PtuWriter, write_ptu
from qkdctl.core.errors import QkdInputError
from qkdctl.core.tags import TagBlock
from tests.naive import ptu as naive


def raw_ptu(path, record_type, resolution_s, words, n_records=None, magic=b"PQTTTR\0\0"):
    """A PTU file built byte by byte (independent of the writer), with a string and a float array tag."""
    def tag(name, typ, value):
        return struct.pack("<32siI", name.encode(), -1, typ) + value

    comment = b"hand made\0\0\0\0\0\0\0"
    head = magic + b"1.0.00\0\0"
    head += tag("File_Comment", 0x4001FFFF, struct.pack("<q", len(comment))) + comment
    head += tag("HWInpChan_Offs", 0x2001FFFF, struct.pack("<q", 16)) + struct.pack("<2d", 1.5, 2.5)
    head += tag("TTResultFormat_TTTRRecType", 0x10000008, struct.pack("<q", record_type))
    head += tag("MeasDesc_GlobalResolution", 0x20000008, struct.pack("<d", resolution_s))
    n = len(words) if n_records is None else n_records
    head += tag("TTResult_NumberOfRecords", 0x10000008, struct.pack("<q", n))
    head += tag("Header_End", 0xFFFF0008, bytes(8))
    path.write_bytes(head + struct.pack(f"<{len(words)}I", *words))
    return path


# HydraHarp v2 T2 words and their meaning, decoded by hand from the bit layout
# (special bit 31 | channel bits 30..25 | time bits 24..0), 1 ps resolution:
HH2_WORDS = [
    0x02000005,  # photon, channel field 1 -> channel 2, t = 5
    0xFE000002,  # overflow x2 -> +67108864
    0x80000007,  # sync, t = 67108864 + 7
    0x86000009,  # marker bits 3 at 67108864 + 9
    0xFE000000,  # overflow, time 0 counts as 1 -> 100663296
    0x00000001,  # photon, channel field 0 -> channel 1, t = 100663297
]
HH2_TAGS = [(5, 2), (67108871, 0), (100663297, 1)]
HH2_MARKERS = [(67108873, 3)]


@pytest.mark.parametrize("record_type", [RT_HYDRAHARP2_T2, RT_TIMEHARP260N_T2, RT_TIMEHARP260P_T2, RT_MULTIHARP_T2])
def test_hydraharp_v2_family_hand_decoded(tmp_path, record_type):
    path = raw_ptu(tmp_path / "a.ptu", record_type, 1e-12, HH2_WORDS)
    header = read_ptu_header(path)
    assert header.n_records == 6 and header.tags["File_Comment"] == "hand made"
    assert header.tags["HWInpChan_Offs"].tolist() == [1.5, 2.5]
    block = PtuReader(path, chunk_records=2).read_all()
    assert list(zip(block.t_ps.tolist(), block.channel.tolist())) == HH2_TAGS
    assert list(zip(block.meta["marker_t_ps"].tolist(), block.meta["marker_bits"].tolist())) == HH2_MARKERS
    assert naive.read_ptu(path) == (HH2_TAGS, HH2_MARKERS)


def test_hydraharp_v1_overflow_and_resolution(tmp_path):
    # v1: each overflow record adds 33552000 units, whatever its time field; 2 ps units.
    words = [0xFE000000, 0xFE000005, 0x0400000A, 0x80000001]
    path = raw_ptu(tmp_path / "v1.ptu", RT_HYDRAHARP_T2, 2e-12, words)
    block = PtuReader(path, sync_channel=9).read_all()
    assert block.t_ps.tolist() == [2 * (67104000 + 1), 2 * (67104000 + 10)]
    assert block.channel.tolist() == [9, 3]


def test_picoharp_hand_decoded(tmp_path):
    # PicoHarp T2: channel bits 31..28, time 27..0; 0xF = special (marker bits in the low 4 bits).
    words = [
        0x10000064,  # channel 1, t = 100 units
        0xF0000000,  # overflow: +210698240
        0x0000000A,  # channel 0 = sync input, t = 210698250
        0xF0000025,  # marker bits 5, time 0x20 (low 4 bits are the marker) -> 210698272
        0x40000003,  # channel 4, t = 210698243 (slightly out of order, sorted on read)
    ]
    path = raw_ptu(tmp_path / "ph.ptu", RT_PICOHARP_T2, 4e-12, words)
    block = PtuReader(path).read_all()
    assert block.t_ps.tolist() == [400, 842792972, 842793000]
    assert block.channel.tolist() == [1, 4, 0]
    assert block.meta["marker_t_ps"].tolist() == [842793088] and block.meta["marker_bits"].tolist() == [5]


def test_writer_emits_the_documented_words(tmp_path):
    block = TagBlock([5, 67108871, 100663297], [2, 0, 1], meta={"marker_t_ps": [67108873], "marker_bits": [3]})
    path = write_ptu(tmp_path / "w.ptu", block, record_type=RT_HYDRAHARP2_T2, resolution_s=1e-12)
    _, offset = naive.read_header(path)
    words = struct.unpack("<6I", path.read_bytes()[offset:])
    # The writer packs the two wraps before the sync tag into one v2 overflow record (time = 2)
    # and the third wrap into one more (time = 1).
    assert words == (0x02000005, 0xFE000002, 0x80000007, 0x86000009, 0xFE000001, 0x00000001)


def _random_block(rng, n, res_ps, span_ps, n_channels=4):
    t = np.sort(rng.integers(0, span_ps // res_ps, n)) * res_ps
    ch = rng.integers(0, n_channels + 1, n)
    return TagBlock(t, ch)


@pytest.mark.parametrize(
    "record_type, res_ps",
    [(RT_HYDRAHARP2_T2, 1), (RT_HYDRAHARP_T2, 1), (RT_PICOHARP_T2, 4), (RT_MULTIHARP_T2, 5), (RT_TIMEHARP260P_T2, 25)],
)
def test_round_trip_across_chunks_and_overflows(tmp_path, rng, record_type, res_ps):
    # 3e12 ps spans many wraps of every layout, including gaps of several wraps at once.
    blocks = [_random_block(rng, 3000, res_ps, 10**12) for _ in range(3)]
    path = tmp_path / "rt.ptu"
    with PtuWriter(path, record_type=record_type, resolution_s=res_ps * 1e-12) as writer:
        for k, b in enumerate(blocks):
            writer.write(b.t_ps + k * 10**12, b.channel)
    expect_t = np.concatenate([b.t_ps + k * 10**12 for k, b in enumerate(blocks)])
    expect_ch = np.concatenate([b.channel for b in blocks])
    for chunk in (1, 97, 1 << 20):
        got = PtuReader(path, chunk_records=chunk).read_all()
        np.testing.assert_array_equal(got.t_ps, expect_t)
        np.testing.assert_array_equal(got.channel, expect_ch)
    tags, markers = naive.read_ptu(path)
    assert tags == list(zip(expect_t.tolist(), expect_ch.tolist())) and markers == []


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_kernel_matches_naive_decoder_on_random_words(tmp_path_factory, data):
    record_type = data.draw(st.sampled_from([RT_HYDRAHARP2_T2, RT_HYDRAHARP_T2, RT_PICOHARP_T2, RT_MULTIHARP_T2]))
    words = data.draw(st.lists(st.integers(0, 2**32 - 1), max_size=60))
    chunk = data.draw(st.integers(1, 70))
    path = raw_ptu(tmp_path_factory.mktemp("h") / "r.ptu", record_type, 1e-12, words)
    reader = PtuReader(path, sync_channel=7, chunk_records=chunk)
    parts = list(reader.chunks())
    got_t = [(int(t), int(c)) for p in parts for t, c in zip(p.t_ps, p.channel)]
    got_m = [(int(t), int(b)) for p in parts for t, b in zip(p.marker_t_ps, p.marker_bits)]
    want_t, want_m = naive.decode_t2(words, record_type, sync_channel=7)
    assert got_t == want_t and got_m == want_m


def test_windows_split_the_stream_in_time(tmp_path, rng):
    block = _random_block(rng, 5000, 1, 10**11)
    marks = TagBlock(block.t_ps, block.channel, meta={"marker_t_ps": [5 * 10**9, 7 * 10**10], "marker_bits": [1, 2]})
    path = write_ptu(tmp_path / "w.ptu", marks)
    reader = PtuReader(path, chunk_records=333)
    window = 10**10
    got = []
    while not reader.exhausted:
        w = reader.read_window(window)
        assert w.start_ps == len(got) * window and w.stop_ps == w.start_ps + window
        assert np.all((w.t_ps >= w.start_ps) & (w.t_ps < w.stop_ps))
        got.append(w)
    np.testing.assert_array_equal(np.concatenate([w.t_ps for w in got]), block.t_ps)
    np.testing.assert_array_equal(np.concatenate([w.channel for w in got]), block.channel)
    assert got[0].meta["marker_bits"].tolist() == [1] and got[7].meta["marker_t_ps"].tolist() == [7 * 10**10]


def test_truncated_file_is_rejected_naming_file(tmp_path):
    path = raw_ptu(tmp_path / "cut.ptu", RT_HYDRAHARP2_T2, 1e-12, HH2_WORDS, n_records=10)
    with pytest.raises(QkdInputError, match=r"cut\.ptu.*truncated: header says 10 records, file holds 6"):
        PtuReader(path)
    head_only = tmp_path / "head.ptu"
    head_only.write_bytes(path.read_bytes()[:100])
    with pytest.raises(QkdInputError, match=r"head\.ptu.*truncated in the header"):
        read_ptu_header(head_only)


def test_foreign_and_t3_files_are_rejected(tmp_path):
    foreign = tmp_path / "x.h5"
    foreign.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    with pytest.raises(QkdInputError, match=r"x\.h5.*not a PicoQuant TTTR file"):
        read_ptu_header(foreign)
    t3 = raw_ptu(tmp_path / "t3.ptu", 0x01010304, 1e-12, [])
    with pytest.raises(QkdInputError, match="is T3; only T2"):
        read_ptu_header(t3)
    with pytest.raises(QkdInputError, match="cannot open"):
        read_ptu_header(tmp_path / "missing.ptu")


def test_writer_rejects_unwritable_input(tmp_path):
    with pytest.raises(QkdInputError, match="not a T2 type"):
        PtuWriter(tmp_path / "a.ptu", record_type=0x00010303)
    with PtuWriter(tmp_path / "b.ptu", record_type=RT_PICOHARP_T2, resolution_s=4e-12) as w:
        with pytest.raises(QkdInputError, match="not multiples of the 4 ps"):
            w.write([6], [1])
        with pytest.raises(QkdInputError, match="channel 15 cannot be written"):
            w.write([8], [15])
        w.write([400], [1])
        with pytest.raises(QkdInputError, match="before the last written"):
            w.write([40], [1])
