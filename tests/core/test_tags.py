"""Clock recovery and gating against hand-made cases and the naive reference."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.bench_sift import gate_config, synthetic_block
from qkdctl.core.errors import QkdInputError
from qkdctl.core.tags import GATE_CHUNK, Clock, GateConfig, TagBlock, gate, recover_clock
from tests.naive import sift as naive


def _sync_block(rng, n_sync, sync_period_ps, phase_ps, jitter_ps, missing):
    n = np.arange(n_sync)
    keep = rng.random(n_sync) >= missing
    keep[0] = True
    t = phase_ps + n[keep] * sync_period_ps + rng.normal(0, jitter_ps, keep.sum())
    return TagBlock(np.sort(np.rint(t).astype(np.int64)), np.zeros(keep.sum(), np.int32))


def test_clock_exact_hand_case():
    # sync every 4 pulses of 100 ps, tag 2 missing
    block = TagBlock([1000, 1400, 2200, 2600], [0, 0, 0, 0])
    clock = recover_clock(block, sync_channel=0, sync_divider=4)
    assert clock.period_ps == pytest.approx(100.0)
    assert clock.phase_ps == pytest.approx(1000.0)
    assert clock.n_missing_sync == 1
    assert clock.n_sync == 4
    shifted = recover_clock(block, sync_channel=0, sync_divider=4, first_sync_slot=10)
    assert shifted.phase_ps == pytest.approx(0.0)  # slot 10 is at 1000 ps


@pytest.mark.parametrize("missing", [0.0, 0.3])
def test_clock_fractional_period_with_jitter_and_gaps(rng, missing):
    period = 12_345.678  # not an integer number of ps
    block = _sync_block(rng, 20_000, period, 5e8, jitter_ps=8.0, missing=missing)
    clock = recover_clock(block, sync_channel=0, sync_divider=16)
    assert clock.sync_period_ps == pytest.approx(period, abs=0.01)
    assert clock.period_ps == pytest.approx(period / 16, abs=0.001)
    assert clock.phase_ps == pytest.approx(5e8, abs=2.0)
    assert clock.residual_rms_ps == pytest.approx(8.0, rel=0.1)
    if missing:
        assert 0.25 * 20_000 < clock.n_missing_sync < 0.35 * 20_000


def test_clock_nominal_period_when_most_syncs_missing(rng):
    period = 1000.5
    block = _sync_block(rng, 4000, period, 0.0, jitter_ps=2.0, missing=0.7)
    # the median interval is now >= 2 periods: only the nominal period numbers them right
    clock = recover_clock(block, 0, nominal_sync_period_ps=1000.0)
    assert clock.period_ps == pytest.approx(period, abs=0.01)


def test_clock_bad_inputs():
    with pytest.raises(QkdInputError, match="empty"):
        recover_clock(TagBlock([], []), 0)
    with pytest.raises(QkdInputError, match="need at least 3"):
        recover_clock(TagBlock([0, 100, 200], [0, 1, 0]), 0)
    with pytest.raises(QkdInputError, match="spurious"):
        recover_clock(TagBlock([0, 1000, 1010, 2000, 3000], [0] * 5), 0)
    with pytest.raises(QkdInputError, match="constant"):
        recover_clock(TagBlock([0, 1000, 2000, 3000, 3520, 4520, 5520, 6520], [0] * 8), 0)
    with pytest.raises(QkdInputError, match="sync_divider"):
        recover_clock(TagBlock([0, 1, 2], [0, 0, 0]), 0, sync_divider=0)


def test_gate_hand_case():
    # period 100 ps, phase 0, gate centre +10 ps, width 20 ps: kept if slot*100 + [0, 20]
    cfg = GateConfig(roles={1: 0, 2: 3}, offset_ps=10, width_ps=20, ignore_channels=(0,))
    block = TagBlock([0, 5, 19, 21, 110, 130, 320, 349, 400], [0, 1, 2, 1, 2, 1, 2, 1, 0])
    g = gate(block, Clock(period_ps=100.0, phase_ps=0.0), cfg)
    assert g.slot.tolist() == [0, 0, 1, 3]
    assert g.role.tolist() == [0, 3, 3, 3]
    assert g.dt_ps.tolist() == pytest.approx([-5, 9, 0, 10])
    s = g.stats
    assert (s.n_kept, s.n_rejected, s.n_ignored, s.n_detector_tags) == (4, 3, 2, 7)
    assert s.kept_per_role.tolist() == [1, 0, 0, 3]
    assert s.fraction_rejected == pytest.approx(3 / 7)


def _compare_gate(block, clock, cfg):
    g = gate(block, clock, cfg)
    slots, roles, dts, rejected, ignored, unknown = naive.gate(
        block.t_ps, block.channel, cfg.roles, set(cfg.ignore_channels),
        clock.phase_ps, clock.period_ps, cfg.offset_ps, cfg.width_ps)
    assert not unknown
    assert g.slot.tolist() == slots
    assert g.role.tolist() == roles
    np.testing.assert_allclose(g.dt_ps, dts, atol=1e-3)
    assert (g.stats.n_rejected, g.stats.n_ignored) == (rejected, ignored)
    assert g.stats.kept_per_role.tolist() == np.bincount(roles, minlength=4).tolist()


def test_gate_matches_naive_on_synthetic_block(rng):
    block, _ = synthetic_block(rng, 5_000)
    clock = recover_clock(block, 0, sync_divider=16)
    _compare_gate(block, clock, gate_config())


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    period=st.floats(50.0, 2000.0),
    offset_frac=st.floats(-0.5, 0.5),
    width_frac=st.floats(0.01, 1.0),
)
def test_gate_matches_naive_random(seed, period, offset_frac, width_frac):
    rng = np.random.default_rng(seed)
    n = 300
    t = np.sort(rng.integers(-10_000, 200_000, n))
    ch = rng.choice([0, 1, 2, 3, 4, 7], n).astype(np.int32)
    cfg = GateConfig(roles={1: 0, 2: 1, 3: 2, 4: 3}, offset_ps=offset_frac * period,
                     width_ps=width_frac * period, ignore_channels=(0, 7))
    clock = Clock(period_ps=period, phase_ps=float(rng.uniform(-1000, 1000)))
    _compare_gate(TagBlock(t, ch), clock, cfg)


@pytest.mark.parametrize("roles, ignore", [
    ({-3: 0, 2: 1, 5: 2, 11: 3}, (-2, 0)),  # span 15: packed 4-bit role table
    ({-3: 0, 2: 1, 5: 2, 12: 3}, (-2, 0)),  # span 16: general table lookup
    ({1: 0, 2: 1, 3: 2, 40: 3}, (-18,)),    # wide map with negative (falling-edge) channels
])
def test_gate_channel_maps_narrow_and_wide(rng, roles, ignore):
    n = 2 * GATE_CHUNK + 17  # several chunks
    channels = np.array(list(roles) + list(ignore), dtype=np.int32)
    t = np.sort(rng.integers(0, 2_000_000, n))
    cfg = GateConfig(roles=roles, offset_ps=30.0, width_ps=400.0, ignore_channels=ignore)
    clock = Clock(period_ps=800.25, phase_ps=-3.5)
    _compare_gate(TagBlock(t, rng.choice(channels, n)), clock, cfg)
    for bad in (min(channels) - 1, max(channels) + 1, 4):  # below, above, inside the map
        ch = rng.choice(channels, n)
        ch[5000], ch[9000] = bad, bad + 100
        with pytest.raises(QkdInputError, match=f"2 tags on unknown channel.*first {bad};"):
            gate(TagBlock(t, ch), clock, cfg)


def test_gate_bad_inputs():
    cfg = GateConfig(roles={1: 0}, offset_ps=0, width_ps=50, ignore_channels=(0,))
    clock = Clock(period_ps=100.0, phase_ps=0.0)
    with pytest.raises(QkdInputError, match="empty"):
        gate(TagBlock([], []), clock, cfg)
    with pytest.raises(QkdInputError, match="unknown channel.*first 9"):
        gate(TagBlock([0, 10, 20], [0, 9, 1]), clock, cfg)
    with pytest.raises(QkdInputError, match="exceeds the pulse period"):
        gate(TagBlock([0], [1]), clock, GateConfig(roles={1: 0}, offset_ps=0, width_ps=150))
    with pytest.raises(QkdInputError, match="role 5"):
        GateConfig(roles={1: 5}, offset_ps=0, width_ps=10)
    with pytest.raises(QkdInputError, match="width_ps"):
        GateConfig(roles={1: 0}, offset_ps=0, width_ps=0)
    with pytest.raises(QkdInputError, match="both detectors and ignored"):
        GateConfig(roles={1: 0}, offset_ps=0, width_ps=10, ignore_channels=(1,))
    with pytest.raises(QkdInputError, match="period_ps"):
        Clock(period_ps=0.0, phase_ps=0.0)
    with pytest.raises(QkdInputError, match="out of order"):
        TagBlock([10, 5], [1, 1])
    with pytest.raises(QkdInputError, match="beyond 2\\*\\*60 pulse periods"):
        gate(TagBlock([0, 2**62], [1, 1]), Clock(period_ps=1.0, phase_ps=0.0),
             GateConfig(roles={1: 0}, offset_ps=0, width_ps=0.5))


def test_gate_config_from_channels():
    cfg = GateConfig.from_channels({"sync": 0, "H": 5, "V": 6, "D": 7, "A": 8}, 10.0, 100.0)
    assert cfg.roles == {5: 0, 6: 1, 7: 2, 8: 3}
    assert cfg.ignore_channels == (0,)
    with pytest.raises(QkdInputError, match="lacks detectors"):
        GateConfig.from_channels({"sync": 0, "H": 1}, 0.0, 10.0)


def test_tagblock_trusted_skips_only_the_order_check():
    t = np.array([5, 3, 9], dtype=np.int64)
    ch = np.array([1, 2, 0], dtype=np.int32)
    block = TagBlock.trusted(t, ch, start_ps=1, stop_ps=10, overflow=True, missed_events=2, meta={"n_slots": 3})
    assert block.t_ps is t and block.channel is ch and len(block) == 3
    assert (block.start_ps, block.stop_ps, block.overflow, block.missed_events) == (1, 10, True, 2)
    assert block.meta == {"n_slots": 3} and TagBlock.trusted(t, ch).meta == {}
    with pytest.raises(QkdInputError, match="out of order at index 1"):
        TagBlock(t, ch)
    with pytest.raises(QkdInputError, match="3 tags but channel has 2"):
        TagBlock.trusted(t, ch[:2])
    with pytest.raises(QkdInputError, match="channel must be a contiguous 1-D int32"):
        TagBlock.trusted(t, ch.astype(np.int64))
    with pytest.raises(QkdInputError, match="t_ps must be a contiguous 1-D int64"):
        TagBlock.trusted(t.astype(np.float64), ch)
