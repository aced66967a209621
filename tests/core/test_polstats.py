import numpy as np

from qkdctl.core.polstats import click_matrix
from qkdctl.core.records import AliceRecord
from qkdctl.core.tags import Gated, GateStats


def _gated(slot, role):
    stats = GateStats(len(slot), len(slot), 0, 0, np.zeros(4, dtype=np.int64))
    return Gated(np.array(slot, dtype=np.int64), np.array(role, dtype=np.uint8),
                 np.zeros(len(slot)), stats)


def test_click_matrix_by_hand():
    alice = AliceRecord(basis=[0, 0, 1, 1], bit=[0, 1, 0, 1], intensity=[0, 0, 0, 0], first_slot=10)
    # slot 10 (H sent) clicks H; slot 11 (V) clicks H and V; slot 13 (A) clicks D; slot 20 outside.
    m = click_matrix(_gated([10, 11, 11, 13, 20], [0, 0, 1, 2, 3]), alice)
    expected = np.zeros((4, 4), dtype=np.int64)
    expected[0, 0] = 1
    expected[1, 0] = expected[1, 1] = 1
    expected[3, 2] = 1
    np.testing.assert_array_equal(m, expected)


def test_click_matrix_random_against_loop(rng):
    n = 500
    alice = AliceRecord(rng.integers(0, 2, n), rng.integers(0, 2, n), rng.integers(0, 3, n), first_slot=5)
    slot = np.sort(rng.integers(0, n + 20, 300))
    role = rng.integers(0, 4, 300)
    expected = np.zeros((4, 4), dtype=np.int64)
    for s, r in zip(slot, role):
        i = s - 5
        if 0 <= i < n:
            expected[2 * alice.basis[i] + alice.bit[i], r] += 1
    np.testing.assert_array_equal(click_matrix(_gated(slot, role), alice), expected)
