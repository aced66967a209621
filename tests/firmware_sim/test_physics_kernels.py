"""Simulator kernels against the plain references in tests/naive/sim.py."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_sim.physics import clicks, detectors
from firmware_sim.physics.detectors import DetectorState, apply_dead_time, sort_nearly_sorted
from firmware_sim.physics.tagger import TaggerState, tag_stream
from qkdctl.core.errors import QkdInputError
from tests.naive import sim as naive


KEY = 0x5EED5EED12345


def _run_slots(seed, n, p_int, p_z, p_one, lam, jitter, slot0=7):
    rng = np.random.default_rng(seed)
    out = clicks.simulate_slots(rng, KEY, slot0, n, p_int, p_z, p_one, lam, 800.0, 5000.0, jitter)
    ref = naive.slots(np.random.default_rng(seed), KEY, n, slot0, naive.choice_weights(p_int, p_z, p_one), lam,
                      800.0, 5000.0, jitter)
    return out, ref


def test_slots_tiny_hand_case():
    # lam only on detector H for state H: every click of an H pulse is on det 0
    lam = np.zeros((3, 4, 4))
    lam[0, 0, 0] = 50.0  # signal H pulses always click on H
    out, ref = _run_slots(3, 200, (0.5, 0.3, 0.2), 0.5, 0.5, lam, np.zeros(4))
    basis, bit, inten, t, det = out
    is_sig_h = (inten == 0) & (basis == 0) & (bit == 0)
    assert np.all(det == 0)
    assert t.size == int(is_sig_h.sum()) > 0
    assert np.array_equal((t - 5000) // 800 - 7, np.flatnonzero(is_sig_h))
    for a, b in zip(out, ref):
        assert np.array_equal(np.asarray(a), np.asarray(b))


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 400),
    p0=st.floats(0.0, 1.0),
    p1=st.floats(0.0, 1.0),
    p_z=st.floats(0.05, 0.95),
    p_one=st.floats(0.05, 0.95),
    scale=st.sampled_from([1e-3, 0.02, 0.1, 3.0]),
)
def test_slots_match_naive(seed, n, p0, p1, p_z, p_one, scale):
    p1 = (1 - p0) * p1
    p_int = (p0, p1, 1.0 - p0 - p1)
    lam = np.random.default_rng(seed).random((3, 4, 4)) * scale
    out, ref = _run_slots(seed, n, p_int, p_z, p_one, lam, np.array([10.0, 20.0, 0.0, 5.0]))
    for a, b in zip(out, ref):
        assert np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("scale", [0.003, 1.0])
def test_slots_do_not_depend_on_chunking(monkeypatch, scale):
    # odd chunk size (flags padded to 40): same slots, same candidates, same draws
    lam = np.random.default_rng(5).random((3, 4, 4)) * scale
    # 20000 slots: ~110 clicks expected at the low scale, so the > 20 below holds for any stream
    whole, ref = _run_slots(5, 20000, (0.6, 0.3, 0.1), 0.7, 0.5, lam, np.array([10.0, 20.0, 0.0, 5.0]), slot0=2**33)
    monkeypatch.setattr(clicks, "CHUNK_SLOTS", 37)
    chunked, _ = _run_slots(5, 20000, (0.6, 0.3, 0.1), 0.7, 0.5, lam, np.array([10.0, 20.0, 0.0, 5.0]), slot0=2**33)
    assert len(ref[3]) > 20
    for a, b, c in zip(whole, chunked, ref):
        assert np.array_equal(np.asarray(a), np.asarray(c)) and np.array_equal(np.asarray(b), np.asarray(c))


def test_slots_grow_the_click_buffer(monkeypatch):
    # every slot clicks on all four detectors: 4 clicks per slot, far above the initial room
    lam = np.full((3, 4, 4), 50.0)
    monkeypatch.setattr(clicks, "CHUNK_SLOTS", 64)
    out, ref = _run_slots(2, 3000, (0.6, 0.3, 0.1), 0.7, 0.5, lam, np.zeros(4))
    assert out[3].size == 4 * 3000
    for a, b in zip(out, ref):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_slots_no_light_no_clicks(rng):
    basis, _, _, t, _ = clicks.simulate_slots(rng, KEY, 0, 1000, (0.5, 0.3, 0.2), 0.5, 0.5, np.zeros((3, 4, 4)),
                                              1000.0, 0.0, np.zeros(4))
    assert basis.size == 1000 and t.size == 0


def test_slots_statistics(rng):
    # per-detector click probability of a coherent pulse is 1 - exp(-lam)
    lam = np.zeros((3, 4, 4))
    lam[:, :, :] = [0.05, 0.2, 0.01, 0.0]
    n = 400_000
    _, _, _, _, det = clicks.simulate_slots(rng, KEY, 0, n, (0.7, 0.2, 0.1), 0.5, 0.5, lam, 1000.0, 0.0, np.zeros(4))
    counts = np.bincount(det, minlength=4)
    expected = n * -np.expm1(-np.array([0.05, 0.2, 0.01, 0.0]))
    assert counts[3] == 0
    assert np.all(np.abs(counts[:3] - expected[:3]) < 5 * np.sqrt(expected[:3]))


def test_slots_choice_frequencies(rng):
    n = 300_000
    basis, bit, inten, _, _ = clicks.simulate_slots(
        rng, KEY, 0, n, (0.6, 0.3, 0.1), 0.8, 0.4, np.zeros((3, 4, 4)), 1000.0, 0.0, np.zeros(4)
    )
    assert abs(np.mean(basis == 0) - 0.8) < 5 * np.sqrt(0.16 / n)
    assert abs(np.mean(bit) - 0.4) < 5 * np.sqrt(0.24 / n)
    assert abs(np.mean(inten == 1) - 0.3) < 5 * np.sqrt(0.21 / n)


def test_slots_reject_bad_lam(rng):
    with pytest.raises(QkdInputError, match="lam"):
        clicks.simulate_slots(rng, KEY, 0, 10, (1, 0, 0), 0.5, 0.5, -np.ones((3, 4, 4)), 1000.0, 0.0, np.zeros(4))


def _dead_time_pair(seed, n_clicks, n_dark, dead, ap, t_end):
    rng = np.random.default_rng(seed)
    t1 = np.sort(rng.integers(0, t_end, n_clicks))
    d1 = rng.integers(0, 4, n_clicks).astype(np.uint8)
    t2 = np.sort(rng.integers(0, t_end, n_dark))
    d2 = rng.integers(0, 4, n_dark).astype(np.uint8)
    dead_ps = np.array(dead, dtype=np.int64)
    ap_prob = np.array(ap)
    ap_mean = np.array([300.0, 50.0, 1000.0, 10.0])
    state = DetectorState()
    k_rng = np.random.default_rng(seed + 1)
    got_blocks, ref_blocks = [], []
    last = [int(x) for x in state.last_click_ps]
    pending = [[], [], [], []]
    n_rng = np.random.default_rng(seed + 1)
    # two consecutive blocks: pending afterpulses carry over
    for lo, hi in ((0, t_end // 2), (t_end // 2, t_end)):
        m1 = (t1 >= lo) & (t1 < hi)
        m2 = (t2 >= lo) & (t2 < hi)
        t, d, isap, _ = apply_dead_time(k_rng, (t1[m1], d1[m1]), (t2[m2], d2[m2]), dead_ps, ap_prob, ap_mean, state, hi)
        got_blocks.append(list(zip(t.tolist(), d.tolist(), isap.tolist())))
        ref_blocks.append(naive.dead_time(n_rng, (t1[m1], d1[m1]), (t2[m2], d2[m2]), dead_ps, ap_prob, ap_mean, last, pending, hi))
    return got_blocks, ref_blocks


def test_dead_time_tiny_hand_case():
    rng = np.random.default_rng(0)
    state = DetectorState()
    t = np.array([0, 50, 99, 100, 150, 260], dtype=np.int64)
    d = np.array([0, 0, 0, 0, 1, 0], dtype=np.uint8)
    out_t, out_d, out_ap, lost = apply_dead_time(
        rng, (t, d), (np.array([120], dtype=np.int64), np.array([1], dtype=np.uint8)),
        np.full(4, 100), np.zeros(4), np.ones(4), state, 1000,
    )
    # det 0: 0 counts, 50 and 99 dead, 100 counts, 260 counts; det 1: 120 counts, 150 dead
    assert out_t.tolist() == [0, 100, 120, 260]
    assert out_d.tolist() == [0, 0, 1, 0]
    assert not out_ap.any() and lost == 0


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    n_clicks=st.integers(0, 300),
    n_dark=st.integers(0, 30),
    dead=st.lists(st.integers(0, 400), min_size=4, max_size=4),
    ap=st.lists(st.floats(0.0, 0.6), min_size=4, max_size=4),
)
def test_dead_time_matches_naive(seed, n_clicks, n_dark, dead, ap):
    got, ref = _dead_time_pair(seed, n_clicks, n_dark, dead, ap, 20_000)
    assert got == ref


def test_dead_time_matches_naive_when_every_click_afterpulses():
    got, ref = _dead_time_pair(4, 20, 3, [100, 50, 200, 0], [1.0, 0.0, 0.2, 0.0], 20_000)
    assert got == ref
    assert sum(ap for _, d, ap in got[0] + got[1] if d == 0) > 10


def test_afterpulse_rate(rng):
    # isolated clicks: each leaves an afterpulse with probability p, after the dead time
    n = 20_000
    t = np.arange(n, dtype=np.int64) * 10_000_000
    d = np.zeros(n, dtype=np.uint8)
    out_t, out_d, out_ap, _ = apply_dead_time(
        rng, (t, d), (np.empty(0, np.int64), np.empty(0, np.uint8)),
        np.full(4, 1000), np.full(4, 0.1), np.full(4, 5000.0), DetectorState(), int(t[-1]) + 10_000_000,
    )
    n_ap = int(out_ap.sum())
    assert abs(n_ap - n * 0.1 / 0.9) < 5 * np.sqrt(n * 0.1)  # cascade: p + p^2 + ...
    assert np.all(np.diff(out_t) >= 0)
    gaps = out_t[1:][out_ap[1:]] - out_t[:-1][out_ap[1:]]
    assert gaps.min() >= 1000 and abs(gaps.mean() - 6000) < 300


def test_sort_nearly_sorted(rng):
    t = np.arange(1000, dtype=np.int64) * 10 + rng.integers(-25, 25, 1000)
    d = rng.integers(0, 4, 1000).astype(np.uint8)
    order = np.argsort(t, kind="stable")
    want_t, want_d = t[order], d[order]
    sort_nearly_sorted(t, d)
    assert np.array_equal(t, want_t) and np.array_equal(d, want_d)


def _tag_pair(seed, n, res, rate, cap, visible, equal_delays=False):
    rng = np.random.default_rng(seed)
    clk_t = np.sort(rng.integers(0, 200_000, n))
    clk_det = rng.integers(0, 4, n).astype(np.uint8)
    extra = [np.sort(rng.integers(0, 200_000, rng.integers(0, 40))) for _ in range(5)]
    delay = rng.integers(-500, 500, 5)
    if equal_delays:  # the on-the-fly path: detector inputs share one delay
        delay[1:] = delay[1]
    dead = rng.integers(0, 300, 5)
    chn = np.array([0, 1, 2, 3, 4], dtype=np.int32) + 1
    state = TaggerState()
    t, ch, missed = tag_stream(clk_t, clk_det, extra, delay, visible, dead, res, chn, rate, cap, state)
    last = [int(x) for x in TaggerState().last_tag_ps]
    bucket = [0.0, 0.0]
    ref = naive.tagger(clk_t, clk_det, extra, delay, visible, dead, res, chn, last, bucket, rate * 1e-12, float(cap))
    assert state.counts.tolist() == [ref[1].count(c) for c in chn]  # tags per role of this call
    return (t.tolist(), ch.tolist(), missed), ref, state


def test_tagger_tiny_hand_case():
    clk_t = np.array([100, 105, 300], dtype=np.int64)
    clk_det = np.array([0, 0, 2], dtype=np.uint8)
    extra = [np.array([50, 250], dtype=np.int64)] + [np.empty(0, dtype=np.int64)] * 4
    delay = np.array([0, 1000, 0, 0, 0])
    t, ch, missed = tag_stream(
        clk_t, clk_det, extra, delay, np.ones(5, bool), np.array([0, 10, 0, 0, 0]), 1,
        np.array([9, 1, 2, 3, 4]), 1e12, 100, TaggerState(),
    )
    # H tags moved by +1000 ps; the second H tag is inside the 10 ps dead time
    assert t.tolist() == [50, 250, 300, 1100]
    assert ch.tolist() == [9, 9, 3, 1]
    assert missed == 0


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    n=st.integers(0, 300),
    res=st.sampled_from([1, 7, 100]),
    rate=st.sampled_from([1e12, 1e9, 2e8]),
    cap=st.integers(1, 20),
    visible=st.lists(st.booleans(), min_size=5, max_size=5),
    equal_delays=st.booleans(),
)
def test_tagger_matches_naive(seed, n, res, rate, cap, visible, equal_delays):
    got, ref, _ = _tag_pair(seed, n, res, rate, cap, np.array(visible), equal_delays)
    assert got == (ref[0], ref[1], ref[2])


def test_tagger_overflow_counts_missed():
    clk_t = np.arange(1000, dtype=np.int64) * 10  # 1e11 tags/s for 10 ns
    t, _, missed = tag_stream(
        clk_t, np.zeros(1000, np.uint8), [np.empty(0, np.int64)] * 5, np.zeros(5), np.ones(5, bool),
        np.zeros(5), 1, np.arange(5), 1e9, 50, TaggerState(),
    )
    assert missed > 0 and t.size + missed == 1000
    assert 50 <= t.size <= 50 + 10_000 * 1e-3 + 2


def test_tagger_rejects_unsorted():
    with pytest.raises(QkdInputError, match="sorted"):
        tag_stream(np.array([5, 1]), np.zeros(2, np.uint8), [np.empty(0, np.int64)] * 5, np.zeros(5),
                   np.ones(5, bool), np.zeros(5), 1, np.arange(5), 1e9, 10, TaggerState())
    with pytest.raises(QkdInputError, match="sorted"):
        detectors.apply_dead_time(np.random.default_rng(0), (np.array([5, 1]), np.zeros(2)), (np.empty(0), np.empty(0)),
                                  np.zeros(4), np.zeros(4), np.ones(4), DetectorState(), 10)


def test_is_sorted(rng):
    from firmware_sim.physics.detectors import is_sorted

    for n in (0, 1, 2, 50):
        t = np.sort(rng.integers(0, 20, n))
        assert is_sorted(t)
        if n > 1 and t[0] != t[-1]:
            assert not is_sorted(t[::-1].copy())
    assert is_sorted(np.array([3, 3, 3]))
