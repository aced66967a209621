"""Alice's choices from random words: exact integer weights, alias table, kernel vs reference."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_sim.physics.alice import (
    COLUMN_SIZE,
    ChoiceTable,
    alias_table,
    alice_choices,
    choice_weights,
    words_needed,
)
from qkdctl.core.errors import QkdInputError
from tests.naive import sim as naive


def _outcome_mass(thr, alias):
    """Number of 32-bit values that map to each outcome (exact, from the table)."""
    mass = np.zeros(16, dtype=np.int64)
    for k in range(16):
        mass[k] += thr[k]
        mass[alias[k]] += COLUMN_SIZE - thr[k]
    return mass


def test_weights_tiny_hand_case():
    # p_z = 1/2, p_bit_one = 1/2, classes 1/2, 1/4, 1/4: every weight is an exact power of two
    w = choice_weights((0.5, 0.25, 0.25), 0.5, 0.5)
    assert w.tolist() == [2**29] * 4 + [2**28] * 8
    assert np.array_equal(_outcome_mass(*alias_table(w))[:12], w)


@settings(max_examples=40, deadline=None)
@given(p0=st.floats(0.0, 1.0), p1=st.floats(0.0, 1.0), p_z=st.floats(0.0, 1.0), p_one=st.floats(0.0, 1.0))
def test_weights_and_table_are_exact(p0, p1, p_z, p_one):
    p1 = (1 - p0) * p1
    p_int = (p0, p1, 1.0 - p0 - p1)
    w = choice_weights(p_int, p_z, p_one)
    assert w.tolist() == naive.choice_weights(p_int, p_z, p_one)
    assert int(w.sum()) == 2**32 and np.all(w >= 0)
    joint = np.outer(np.outer(p_int, [p_z, 1 - p_z]).ravel(), [1 - p_one, p_one]).ravel()
    assert np.all(np.abs(w / 2.0**32 - joint) < 2.0**-31)
    mass = _outcome_mass(*alias_table(w))
    assert np.array_equal(mass[:12], w) and not mass[12:].any()


def test_choices_match_naive_on_hand_words():
    table = ChoiceTable.build((0.7, 0.2, 0.1), 0.6, 0.4)
    halves = [0, 2**32 - 1, 2**28 - 1, 2**28, 5 * 2**28 + 12345, 11 * 2**28 + 2**27, 15 * 2**28 + 7]
    halves.append(0)  # even count: pairs of halves form words
    words = np.array([halves[k] | halves[k + 1] << 32 for k in range(0, len(halves), 2)], dtype=np.uint64)
    n = len(halves) - 1  # odd slot count: the last word's high half is unused
    out = [np.empty(n, np.uint8) for _ in range(3)]
    alice_choices(words, table, *out)
    want = [naive.alice_choice(h, table.thr, table.alias) for h in halves[:n]]
    assert list(zip(out[2].tolist(), out[0].tolist(), out[1].tolist())) == want


def test_choices_match_naive_random(rng):
    table = ChoiceTable.build((0.55, 0.3, 0.15), 0.8, 0.5)
    n = 2001
    words = rng.integers(0, 2**64, words_needed(n), dtype=np.uint64, endpoint=False)
    out = [np.empty(n, np.uint8) for _ in range(3)]
    alice_choices(words, table, *out)
    halves = [(int(words[i // 2]) >> (32 * (i % 2))) & 0xFFFFFFFF for i in range(n)]
    want = [naive.alice_choice(h, table.thr, table.alias) for h in halves]
    assert list(zip(out[2].tolist(), out[0].tolist(), out[1].tolist())) == want


def test_choice_frequencies(rng):
    n = 300_000
    table = ChoiceTable.build((0.6, 0.3, 0.1), 0.8, 0.4)
    basis, bit, inten = (np.empty(n, np.uint8) for _ in range(3))
    alice_choices(rng.bit_generator.random_raw(words_needed(n)), table, basis, bit, inten)
    assert abs(np.mean(basis == 0) - 0.8) < 5 * np.sqrt(0.16 / n)
    assert abs(np.mean(bit) - 0.4) < 5 * np.sqrt(0.24 / n)
    assert abs(np.mean(inten == 1) - 0.3) < 5 * np.sqrt(0.21 / n)
    # independence: P(Z and bit 1 and decoy)
    both = np.mean((basis == 0) & (bit == 1) & (inten == 1))
    assert abs(both - 0.8 * 0.4 * 0.3) < 5 * np.sqrt(0.1 / n)


def test_bad_input_is_named():
    with pytest.raises(QkdInputError, match="p_intensity"):
        choice_weights((0.5, 0.4, 0.2), 0.5, 0.5)
    with pytest.raises(QkdInputError, match="p_z"):
        choice_weights((0.5, 0.3, 0.2), 1.5, 0.5)
    table = ChoiceTable.build((0.5, 0.3, 0.2), 0.5, 0.5)
    with pytest.raises(QkdInputError, match="words"):
        alice_choices(np.zeros(1, np.uint64), table, *(np.empty(3, np.uint8) for _ in range(3)))
    with pytest.raises(QkdInputError, match="uint8"):
        alice_choices(np.zeros(2, np.uint64), table, *(np.empty(3, np.int64) for _ in range(3)))
