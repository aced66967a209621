import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qkdctl.core.errors import QkdInputError
from qkdctl.core.tags import Gated, GateStats
from qkdctl.core.telemetry import block_telemetry
from tests.naive.telemetry import moments, telemetry


def _gated(slot, role, dt, rejected=0):
    slot = np.asarray(slot, dtype=np.int64)
    role = np.asarray(role, dtype=np.uint8)
    kept = np.bincount(role, minlength=4).astype(np.int64)
    stats = GateStats(n_detector_tags=slot.size + rejected, n_kept=slot.size, n_rejected=rejected,
                      n_ignored=0, kept_per_role=kept)
    return Gated(slot=slot, role=role, dt_ps=np.asarray(dt, dtype=np.float32), stats=stats)


def test_hand_written_case():
    # 8 slots from slot 10, two windows; slot 12 double click (H and V), slot 17 vacuum click on D
    intensity = np.array([0, 1, 0, 0, 0, 0, 0, 2], dtype=np.uint8)
    g = _gated([9, 11, 12, 12, 14, 17, 30], [0, 0, 0, 1, 0, 2, 3], [5, -10, 10, 0, 30, 4, 1], rejected=3)
    t = block_telemetry(g, intensity, first_slot=10, n_windows=2)
    assert t["clicks_per_detector"] == [3, 1, 1, 0]
    assert t["click_prob_per_detector"] == pytest.approx([3 / 8, 1 / 8, 1 / 8, 0])
    assert t["dt_mean_ps"][0] == pytest.approx(10.0)
    assert t["dt_std_ps"][0] == pytest.approx(np.std([-10, 10, 30]))
    assert t["dt_skew"][0] == pytest.approx(0.0, abs=1e-9)
    assert np.isnan(t["dt_std_ps"][1]) and np.isnan(t["dt_mean_ps"][3])
    assert t["double_click_fraction"] == pytest.approx(1 / 4)
    assert t["offgate_fraction"] == pytest.approx(3 / 10)
    assert t["vacuum_click_prob"] == pytest.approx([0, 0, 1.0, 0])
    w = t["windows"]
    assert w["slots"] == [4, 4]
    assert w["clicks"] == [[2, 1, 0, 0], [1, 0, 1, 0]]
    assert w["double_click_fraction"] == pytest.approx([0.5, 0.0])
    assert w["dt_mean_ps"][0][0] == pytest.approx(0.0)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_windows=st.integers(1, 7))
def test_matches_reference(seed, n_windows):
    rng = np.random.default_rng(seed)
    n_slots = int(rng.integers(n_windows, 60))
    intensity = rng.integers(0, 3, n_slots).astype(np.uint8)
    k = int(rng.integers(0, 80))
    slot = np.sort(rng.integers(-3, n_slots + 3, k))
    role = rng.integers(0, 4, k)
    dt = rng.normal(0, 40, k).astype(np.float32)
    t = block_telemetry(_gated(slot, role, dt), intensity, 0, n_windows)
    clicks, dt_by_role, doubles, clicked, vac = telemetry(slot.tolist(), role.tolist(), dt.tolist(),
                                                          intensity.tolist(), 0, n_windows)
    assert t["windows"]["clicks"] == clicks
    assert t["clicks_per_detector"] == [sum(c[r] for c in clicks) for r in range(4)]
    assert t["vacuum_click_prob"] == pytest.approx(
        [v / max(1, int(np.sum(intensity == 2))) for v in vac] if np.any(intensity == 2) else [np.nan] * 4,
        nan_ok=True)
    for r in range(4):
        if len(dt_by_role[r]) >= 2:
            m, s, sk = moments(dt_by_role[r])
            assert t["dt_mean_ps"][r] == pytest.approx(m, abs=1e-6)
            assert t["dt_std_ps"][r] == pytest.approx(s, rel=1e-6, abs=1e-4)
            if s > 1e-3:
                assert t["dt_skew"][r] == pytest.approx(sk, rel=1e-5, abs=1e-5)
    exp = sum(doubles) / sum(clicked) if sum(clicked) else np.nan
    assert t["double_click_fraction"] == pytest.approx(exp, nan_ok=True)
    assert sum(t["windows"]["slots"]) == n_slots
    counted = block_telemetry(_gated(slot, role, dt), intensity, 0, n_windows,
                              n_vacuum=int(np.sum(intensity == 2)))
    np.testing.assert_equal(counted, t)


def test_windows_of_a_long_record_with_unsorted_slots(rng):
    # windows found by boundary tracking; slots going back in time fall back to division
    n_slots, n_windows = 10_007, 7
    intensity = rng.integers(0, 3, n_slots).astype(np.uint8)
    slot = np.concatenate([np.sort(rng.integers(-5, n_slots + 5, 3000)),
                           rng.integers(0, n_slots, 200)])
    role = rng.integers(0, 4, slot.size)
    dt = rng.normal(0, 40, slot.size).astype(np.float32)
    t = block_telemetry(_gated(slot, role, dt), intensity, -2, n_windows)
    clicks, _, _, _, _ = telemetry(slot.tolist(), role.tolist(), dt.tolist(), intensity.tolist(),
                                   -2, n_windows)
    assert t["windows"]["clicks"] == clicks


def test_bad_input_names_the_problem():
    g = _gated([0], [0], [0.0])
    with pytest.raises(QkdInputError, match="n_windows"):
        block_telemetry(g, np.zeros(4, dtype=np.uint8), 0, n_windows=5)
    with pytest.raises(QkdInputError, match="intensity"):
        block_telemetry(g, np.zeros(0, dtype=np.uint8), 0)
    with pytest.raises(QkdInputError, match="n_vacuum"):
        block_telemetry(g, np.zeros(4, dtype=np.uint8), 0, n_windows=2, n_vacuum=5)
