import numpy as np
import pytest

from qkdctl.core.errors import QkdInputError
from qkdctl.core.polstats import click_matrix
from qkdctl.core.records import AliceRecord
from qkdctl.core.tags import Gated, GateStats
from tests.naive import polstats as naive


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


def test_click_matrix_random_against_naive(rng):
    for n, k, first in ((500, 300, 5), (7, 40, -3), (3000, 5000, 1000)):
        alice = AliceRecord(rng.integers(0, 2, n), rng.integers(0, 2, n), rng.integers(0, 3, n),
                            first_slot=first)
        slot = np.sort(rng.integers(first - 10, first + n + 20, k))
        role = rng.integers(0, 4, k)
        expected = naive.click_matrix(slot.tolist(), role.tolist(), alice.basis, alice.bit, first)
        assert click_matrix(_gated(slot, role), alice).tolist() == expected


def test_click_matrix_bad_roles():
    alice = AliceRecord([0], [0], [0])
    with pytest.raises(QkdInputError, match="role 4"):
        click_matrix(_gated([0], [4]), alice)
