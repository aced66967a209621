import numpy as np
from hypothesis import given, settings, strategies as st

from qkdctl.core.tags import Gated, GateStats
from qkdctl.select.features import NO_PREVIOUS_SLOTS, _per_slot, event_features
from tests.naive.select import NONE, slot_features


def _gated(slots, roles, dts):
    roles = np.asarray(roles, dtype=np.uint8)
    return Gated(np.asarray(slots, dtype=np.int64), roles, np.asarray(dts, dtype=np.float32),
                 GateStats(len(slots), len(slots), 0, 0, np.bincount(roles, minlength=4)))


def _compare(slots, roles, dts):
    got = list(zip(*[a.tolist() for a in _per_slot(_gated(slots, roles, dts))]))
    want = slot_features(slots, roles, np.asarray(dts, dtype=np.float32).tolist())
    assert got == want


def test_hand_case():
    slots = [3, 3, 7, 12, 12, 12, 40]
    roles = [0, 1, 2, 2, 3, 0, 2]
    dts = [5.0, -3.0, 10.0, 0.5, 1.0, 2.0, -7.0]
    u_slot, u_dt, u_role, u_n, u_any, u_same = _per_slot(_gated(slots, roles, dts))
    assert u_slot.tolist() == [3, 7, 12, 40]
    assert u_dt.tolist() == [5.0, 10.0, 0.5, -7.0]
    assert u_role.tolist() == [0, 2, 2, 2]
    assert u_n.tolist() == [2, 1, 3, 1]
    assert u_any.tolist() == [NO_PREVIOUS_SLOTS, 4, 5, 28]
    assert u_same.tolist() == [NONE, NONE, 5, 28]
    _compare(slots, roles, dts)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 3), st.floats(-100, 100, width=32)),
                min_size=1, max_size=80))
def test_kernel_matches_naive(events):
    events.sort(key=lambda e: e[0])
    slots, roles, dts = zip(*events)
    _compare(slots, roles, dts)


def test_seeded_random_blocks(rng):
    for _ in range(3):
        slots = np.sort(rng.integers(0, 5000, 3000))
        _compare(slots.tolist(), rng.integers(0, 4, slots.size).tolist(), rng.normal(0, 50, slots.size).tolist())


def test_event_features_align_with_sifted(block):
    gated, _, sifted = block
    fz, fx = event_features(gated, sifted)
    assert len(fz) == len(sifted.z) and len(fx) == len(sifted.x)
    first = {}
    for s, r, d in zip(gated.slot.tolist(), gated.role.tolist(), gated.dt_ps.tolist()):
        first.setdefault(s, (r, d))
    for f, key in ((fz, sifted.z), (fx, sifted.x)):
        for i in range(0, len(key), 97):
            r, d = first[int(key.slot[i])]
            assert f.detector[i] == r and f.dt_ps[i] == np.float32(d)
        np.testing.assert_array_equal(f.intensity, key.intensity)
        assert f.position.min() >= 0.0 and f.position.max() <= 1.0
