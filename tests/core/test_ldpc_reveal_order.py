"""The partition-based choice of least values equals the stable full sort (reveal order)."""

import numpy as np
from hypothesis import given, settings, strategies as st

from qkdctl.core.reconcile import ldpc as L


def test_least_first_on_hand_case_with_ties():
    values = np.array([3.0, 1.0, 2.0, 1.0, 0.5, 2.0, 2.0])
    # stable order: 4 (0.5), 1, 3 (1.0), 2, 5, 6 (2.0), 0 (3.0)
    assert L._least_first(values, 4).tolist() == [4, 1, 3, 2]
    assert L._least_first(values, 5).tolist() == [4, 1, 3, 2, 5]
    assert L._least_first(values, 9).tolist() == [4, 1, 3, 2, 5, 6, 0]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(1, 60), levels=st.integers(1, 8),
       count=st.integers(1, 70))
def test_least_first_matches_stable_argsort_random(seed, size, levels, count):
    rng = np.random.default_rng(seed)
    values = rng.integers(0, levels, size).astype(np.float64) / 4  # few levels: many ties
    want = np.argsort(values, kind="stable")[:count]
    assert L._least_first(values, count).tolist() == want.tolist()
