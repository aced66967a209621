"""Sifting kernels against the naive reference, the numpy baseline and hand cases."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.bench_sift import gate_config, numpy_gate_and_sift, synthetic_block
from qkdctl.core.errors import QkdInputError
from qkdctl.core.records import AliceRecord
from qkdctl.core.sift import SiftWorkspace, _splitmix64, gate_and_sift, pulses_sent, sift
from qkdctl.core.tags import (
    GATE_CHUNK,
    Clock,
    GateConfig,
    Gated,
    GateStats,
    TagBlock,
    gate,
    recover_clock,
)
from tests.naive import sift as naive

KEY_SEED = 77


def _key() -> int:
    return int(np.random.default_rng(KEY_SEED).integers(0, 2**64, dtype=np.uint64))


def _gated(slots, roles) -> Gated:
    n = len(slots)
    stats = GateStats(n, n, 0, 0, np.bincount(roles, minlength=4))
    return Gated(np.asarray(slots, np.int64), np.asarray(roles, np.uint8),
                 np.zeros(n, np.float32), stats)


def _as_lists(res):
    return {b: list(zip(k.slot.tolist(), k.alice_bit.tolist(), k.bob_bit.tolist(),
                        k.intensity.tolist()))
            for b, k in ((0, res.z), (1, res.x))}


def _assert_same(a, b):
    assert _as_lists(a) == _as_lists(b)
    assert a.counts == b.counts
    assert a.detections.tolist() == b.detections.tolist()
    assert a.pulses_sent.tolist() == b.pulses_sent.tolist()
    for k in (a.z, a.x, b.z, b.x):
        assert k.slot.dtype == np.int64 and k.bob_bit.dtype == np.uint8


def _assert_same_stats(a, b):
    assert (a.n_kept, a.n_rejected, a.n_ignored) == (b.n_kept, b.n_rejected, b.n_ignored)
    assert a.kept_per_role.tolist() == b.kept_per_role.tolist()


def _assert_matches_naive(res, slots, roles, alice):
    ref, counts, detections = naive.sift(slots, roles, alice.basis, alice.bit,
                                         alice.intensity, alice.first_slot, _key())
    assert _as_lists(res) == ref
    assert res.counts.__dict__ == counts
    assert res.detections.tolist() == detections
    assert res.pulses_sent.tolist() == naive.pulses_sent(alice.basis, alice.intensity)


def test_splitmix64_published_values():
    # SplitMix64 seeded with 0: first outputs 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4
    assert int(_splitmix64(np.uint64(0), 0)) == 0xE220A8397B1DCDAF
    assert int(_splitmix64(np.uint64(0), 1)) == 0x6E789E6AA1B965F4
    assert naive.splitmix64(0, 1) == 0x6E789E6AA1B965F4


def test_sift_hand_case():
    # slots 0..6; Alice: basis, bit, intensity
    alice = AliceRecord(basis=[0, 0, 1, 1, 0, 1, 0], bit=[1, 0, 1, 0, 1, 1, 0],
                        intensity=[0, 1, 2, 0, 0, 1, 2], first_slot=100)
    slots = [99, 100, 101, 102, 103, 103, 104, 104, 104, 106, 200]
    roles = [0, 1, 0, 3, 2, 3, 0, 1, 2, 2, 0]
    # 99, 200: outside; 100 V (Z,1) match; 101 H (Z,0) match; 102 A (X,1) match;
    # 103 D+A double same (X, random bit) match; 104 H+V+D multi (random basis);
    # 106 D (X,0) vs Alice Z: mismatch
    res = sift(_gated(slots, roles), alice, np.random.default_rng(KEY_SEED))
    c = res.counts
    assert (c.single, c.double_same, c.double_cross, c.multi) == (4, 1, 0, 1)
    assert c.outside_record == 2
    assert res.z.slot.tolist()[:2] == [100, 101]
    assert res.z.alice_bit.tolist()[:2] == [1, 0]
    assert res.z.bob_bit.tolist()[:2] == [1, 0]
    assert res.x.slot.tolist()[:2] == [102, 103]
    assert (res.x.alice_bit[0], res.x.bob_bit[0]) == (1, 1)
    assert res.detections.tolist() == [[2, 1, 1], [1, 0, 1]]
    assert res.pulses_sent.tolist() == [[2, 1, 1], [1, 1, 1]]
    assert c.basis_mismatch == 6 - len(res.z) - len(res.x)
    _assert_matches_naive(res, slots, roles, alice)


def test_squashing_is_uniform(rng):
    # 40k cross-basis double clicks: random basis and bit near 1/2 each
    n = 40_000
    slots = np.repeat(np.arange(n), 2)
    roles = np.tile([0, 2], n)
    alice = AliceRecord(basis=np.zeros(n), bit=np.zeros(n), intensity=np.zeros(n))
    res = sift(_gated(slots, roles), alice, rng)
    assert res.counts.double_cross == n
    assert len(res.z) == pytest.approx(n / 2, abs=5 * np.sqrt(n) / 2)
    assert res.z.bob_bit.mean() == pytest.approx(0.5, abs=0.02)


def test_sift_matches_naive_on_synthetic_block(rng):
    block, alice = synthetic_block(rng, 20_000, dark_prob=0.05, first_slot=7)
    clock = recover_clock(block, 0, sync_divider=16, first_sync_slot=7)
    g = gate(block, clock, gate_config())
    short = AliceRecord(alice.basis[:-50], alice.bit[:-50], alice.intensity[:-50], 7)
    res = sift(g, short, np.random.default_rng(KEY_SEED))
    _assert_matches_naive(res, g.slot.tolist(), g.role.tolist(), short)
    assert res.counts.double_cross > 0 and res.counts.multi > 0
    assert res.counts.outside_record > 0  # clicks in the 50 slots cut from the record
    assert res.z.slot.min() >= 7


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_slots=st.integers(1, 60),
       first_slot=st.integers(-5, 5))
def test_sift_matches_naive_random(seed, n_slots, first_slot):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 3 * n_slots))
    slots = np.sort(rng.integers(first_slot - 3, first_slot + n_slots + 3, n))
    roles = rng.integers(0, 4, n)
    alice = AliceRecord(rng.integers(0, 2, n_slots), rng.integers(0, 2, n_slots),
                        rng.integers(0, 3, n_slots), first_slot=first_slot)
    res = sift(_gated(slots, roles), alice, np.random.default_rng(KEY_SEED))
    _assert_matches_naive(res, slots.tolist(), roles.tolist(), alice)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fused_equals_gate_then_sift_and_numpy_baseline(seed):
    rng = np.random.default_rng(seed)
    block, alice = synthetic_block(rng, 30_000, dark_prob=0.03, first_slot=-20)
    clock = recover_clock(block, 0, sync_divider=16, first_sync_slot=-20)
    cfg = gate_config()
    stats, fused = gate_and_sift(block, clock, cfg, alice, np.random.default_rng(KEY_SEED))
    g = gate(block, clock, cfg)
    _assert_same_stats(stats, g.stats)
    _assert_same(fused, sift(g, alice, np.random.default_rng(KEY_SEED)))
    np_stats, baseline = numpy_gate_and_sift(block, clock, cfg, alice,
                                             np.random.default_rng(KEY_SEED))
    _assert_same_stats(np_stats, stats)
    _assert_same(fused, baseline)
    assert np.mean(fused.z.alice_bit != fused.z.bob_bit) < 0.2  # aligned: misaligned is 0.5


def test_sifted_bits_agree_with_generator_truth(rng):
    block, alice = synthetic_block(rng, 50_000, error_prob=0.03, dark_prob=0.0)
    clock = recover_clock(block, 0, sync_divider=16)
    _, res = gate_and_sift(block, clock, gate_config(), alice, rng)
    for k in (res.z, res.x):
        qber = np.mean(k.alice_bit != k.bob_bit)
        assert 0.02 < qber < 0.045  # 3 % flips, plus nothing from the gate
    assert res.counts.basis_mismatch == pytest.approx(res.counts.clicked / 2, rel=0.05)


def test_sift_bad_inputs(rng):
    alice = AliceRecord([0], [0], [0])
    with pytest.raises(QkdInputError, match="non-decreasing"):
        sift(_gated([3, 1], [0, 0]), alice, rng)
    with pytest.raises(QkdInputError, match="role 7"):
        sift(_gated([1, 2], [0, 7]), alice, rng)
    with pytest.raises(QkdInputError, match="Generator"):
        sift(_gated([1], [0]), alice, 5)
    with pytest.raises(QkdInputError, match="mismatched length"):
        AliceRecord([0, 1], [0], [0])
    block, alice = synthetic_block(rng, 100)
    with pytest.raises(QkdInputError, match="empty"):
        gate_and_sift(type(block)([], []), Clock(800.25, 0.0), gate_config(), alice, rng)


def test_pulses_sent_matches_naive(rng):
    alice = AliceRecord(rng.integers(0, 2, 10_001), rng.integers(0, 2, 10_001),
                        rng.integers(0, 3, 10_001))
    assert pulses_sent(alice).tolist() == naive.pulses_sent(alice.basis, alice.intensity)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 5000), skip=st.integers(0, 7))
def test_pulses_sent_matches_naive_any_length_and_alignment(seed, n, skip):
    # the kernel reads 8 slots per word: lengths not a multiple of 8, arrays not
    # starting on a word boundary, and more than 255 words per byte counter
    rng = np.random.default_rng(seed)
    raw = [rng.integers(0, top, n + skip).astype(np.uint8) for top in (2, 2, 3)]
    alice = AliceRecord(*(a[skip:] for a in raw))
    assert pulses_sent(alice).tolist() == naive.pulses_sent(alice.basis, alice.intensity)


def test_pulses_sent_byte_counters_do_not_overflow():
    n = 8 * 255 * 3 + 5  # every byte counter reaches 255 in each full group of words
    for b, k in ((1, 2), (1, 1), (0, 0), (0, 2)):
        alice = AliceRecord(np.full(n, b), np.zeros(n), np.full(n, k))
        expected = np.zeros((2, 3), np.int64)
        expected[b, k] = n
        assert pulses_sent(alice).tolist() == expected.tolist()


def test_fused_with_record_cut_at_both_ends(rng):
    # clicked slots before and after Alice's record; pulses counted chunk by chunk
    block, alice = synthetic_block(rng, 120_000, dark_prob=0.03)
    assert len(block) > 2 * GATE_CHUNK
    clock = recover_clock(block, 0, sync_divider=16)
    short = AliceRecord(alice.basis[300:-300], alice.bit[300:-300],
                        alice.intensity[300:-300], first_slot=300)
    _, fused = gate_and_sift(block, clock, gate_config(), short, np.random.default_rng(KEY_SEED))
    _assert_same(fused, sift(gate(block, clock, gate_config()), short,
                             np.random.default_rng(KEY_SEED)))
    assert fused.counts.outside_record > 0
    assert fused.pulses_sent.sum() == len(short)


def test_end_to_end_with_fractional_period_and_recovered_clock(rng):
    period = 799.9637  # sync period 12799.42 ps: not an integer
    block, alice = synthetic_block(rng, 200_000, period_ps=period, phase_ps=3.3e6,
                                   missing_sync_prob=0.2, dark_prob=0.0, error_prob=0.01)
    clock = recover_clock(block, 0, sync_divider=16)
    assert clock.period_ps == pytest.approx(period, abs=1e-4)
    stats, res = gate_and_sift(block, clock, gate_config(), alice, rng)
    # the gate (+-150 ps around +120 ps) keeps ~100 % of the 40 ps jittered signal
    assert stats.fraction_rejected < 0.001
    assert np.mean(res.z.alice_bit != res.z.bob_bit) < 0.02


def test_workspace_reused_across_blocks_gives_fresh_results(rng):
    # a small block, a larger one (the buffers grow), then a small one in the grown buffers
    cfg = gate_config()
    ws = SiftWorkspace()
    for n_slots, first in ((3_000, 0), (90_000, 5), (20_000, -3)):
        block, alice = synthetic_block(rng, n_slots, dark_prob=0.03, first_slot=first)
        clock = recover_clock(block, 0, sync_divider=16, first_sync_slot=first)
        stats, reused = gate_and_sift(block, clock, cfg, alice, np.random.default_rng(KEY_SEED), ws)
        fresh_stats, fresh = gate_and_sift(block, clock, cfg, alice,
                                           np.random.default_rng(KEY_SEED))
        _assert_same_stats(stats, fresh_stats)
        _assert_same(reused, fresh)
        g = gate(block, clock, cfg)
        _assert_same(sift(g, alice, np.random.default_rng(KEY_SEED), ws), fresh)
        _assert_matches_naive(fresh, g.slot.tolist(), g.role.tolist(), alice)
    assert ws.capacity >= 90_000 * 0.3


def test_workspace_must_be_a_workspace(rng):
    block, alice = synthetic_block(rng, 1000)
    clock = recover_clock(block, 0, sync_divider=16)
    with pytest.raises(QkdInputError, match="SiftWorkspace"):
        gate_and_sift(block, clock, gate_config(), alice, rng, workspace={})


@pytest.mark.parametrize("roles, ignore", [
    ({1: 0, 2: 1, 3: 2, 4: 3}, (0,)),       # packed 4-bit role table
    ({1: 0, 2: 1, 3: 2, 40: 3}, (-18, 0)),  # general table lookup
])
def test_fused_negative_slots_and_channel_maps(rng, roles, ignore):
    # tags before the clock phase (negative slots, packed as slot * 4 + role) and a
    # record starting at a negative slot; fused = gate + sift = naive
    n = 2 * GATE_CHUNK + 33
    channels = np.array(list(roles) + list(ignore), dtype=np.int32)
    t = np.sort(rng.integers(-3_000_000, 3_000_000, n))
    block = TagBlock(t, rng.choice(channels, n))
    cfg = GateConfig(roles=roles, offset_ps=30.0, width_ps=500.0, ignore_channels=ignore)
    clock = Clock(period_ps=800.25, phase_ps=-3.5)
    m = 6000
    alice = AliceRecord(rng.integers(0, 2, m), rng.integers(0, 2, m), rng.integers(0, 3, m),
                        first_slot=-3000)
    stats, fused = gate_and_sift(block, clock, cfg, alice, np.random.default_rng(KEY_SEED))
    g = gate(block, clock, cfg)
    assert g.slot.min() < -3000 < 0 < g.slot.max()
    _assert_same_stats(stats, g.stats)
    _assert_same(fused, sift(g, alice, np.random.default_rng(KEY_SEED)))
    _assert_matches_naive(fused, g.slot.tolist(), g.role.tolist(), alice)


def test_renumbered_record_shares_arrays_and_sifts_like_a_new_one(rng):
    block, alice = synthetic_block(rng, 20_000, dark_prob=0.03)
    clock = recover_clock(block, 0, sync_divider=16, first_sync_slot=4)
    moved = alice.renumbered(4)
    assert moved.first_slot == 4 and alice.first_slot == 0
    assert moved.basis is alice.basis and moved.intensity is alice.intensity
    rebuilt = AliceRecord(alice.basis, alice.bit, alice.intensity, first_slot=4)
    g = gate(block, clock, gate_config())
    _assert_same(sift(g, moved, np.random.default_rng(KEY_SEED)),
                 sift(g, rebuilt, np.random.default_rng(KEY_SEED)))


def test_sift_takes_pulse_counts_from_the_caller(rng):
    block, alice = synthetic_block(rng, 5_000)
    g = gate(block, recover_clock(block, 0, sync_divider=16), gate_config())
    counted = pulses_sent(alice)
    given = sift(g, alice, np.random.default_rng(KEY_SEED), pulses=counted)
    _assert_same(given, sift(g, alice, np.random.default_rng(KEY_SEED)))
    wrong = counted.copy()
    wrong[0, 0] += 1
    for bad in (wrong, counted[:1], -counted):
        with pytest.raises(QkdInputError, match="pulses must be"):
            sift(g, alice, rng, pulses=bad)
