"""Alice's choices: exact integer weights, threshold mapping and counter generator vs reference."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chi2

from firmware_sim.physics.alice import (
    ChoiceThresholds,
    alice_choices,
    choice_thresholds,
    choice_weights,
    counter_key,
    words_needed,
)
from qkdctl.core.errors import QkdInputError
from tests.naive import sim as naive


def _choices(key, slot0, n, p, words=None, level=0):
    levels = level if isinstance(level, tuple) else (level,) * 3
    out = [np.empty(n, np.uint8) for _ in range(4)]
    alice_choices(key, slot0, choice_thresholds(*p), *out[:3], words=words, flag=out[3], levels=levels)
    return out


def _numpy_hash(key, slots):
    """SplitMix64 of key + slot * GAMMA in numpy uint64 arithmetic (wraps mod 2**64)."""
    with np.errstate(over="ignore"):
        z = np.uint64(key) + slots.astype(np.uint64) * np.uint64(naive.GAMMA)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def test_weights_tiny_hand_case():
    # p_z = 1/2, p_bit_one = 1/2, classes 1/2, 1/4, 1/4: every weight is an exact power of two
    w = choice_weights((0.5, 0.25, 0.25), 0.5, 0.5)
    assert w.tolist() == [2**29] * 4 + [2**28] * 8
    th = ChoiceThresholds.from_weights(w)
    assert th.base == 0 and th.above.tolist() == [k * 2**29 - 1 for k in range(1, 5)] + [
        2**31 + k * 2**28 - 1 for k in range(1, 8)]


def test_published_splitmix64_vector_and_hand_choice():
    # SplitMix64 seeded with 0: first output 0xE220A8397B1DCDAF (state GAMMA = slot 1 of key 0)
    assert naive.slot_hash(0, 1) == 0xE220A8397B1DCDAF
    assert int(_numpy_hash(0, np.array([1]))[0]) == 0xE220A8397B1DCDAF
    # u = 0x7B1DCDAF = 7.69 * 2**28: three cumulative weights (2, 4, 6) * 2**28 lie below -> outcome 3
    basis, bit, inten, flag = _choices(0, 1, 1, ((0.5, 0.25, 0.25), 0.5, 0.5), level=0xE220A83A)
    assert (inten[0], basis[0], bit[0], flag[0]) == (0, 1, 1, 1)
    assert _choices(0, 1, 1, ((0.5, 0.25, 0.25), 0.5, 0.5), level=0xE220A839)[3][0] == 0
    # the level is per intensity class: the signal class's (0) decides here
    assert _choices(0, 1, 1, ((0.5, 0.25, 0.25), 0.5, 0.5), level=(0xE220A83A, 0, 0))[3][0] == 1
    assert _choices(0, 1, 1, ((0.5, 0.25, 0.25), 0.5, 0.5), level=(0, 2**32, 2**32))[3][0] == 0


@settings(max_examples=40, deadline=None)
@given(p0=st.sampled_from([0.0, 1.0, 0.3]) | st.floats(0.0, 1.0), p1=st.floats(0.0, 1.0),
       p_z=st.sampled_from([0.0, 1.0]) | st.floats(0.0, 1.0), p_one=st.sampled_from([0.0, 1.0]) | st.floats(0.0, 1.0))
def test_weights_and_thresholds_are_exact(p0, p1, p_z, p_one):
    p1 = (1 - p0) * p1
    p_int = (p0, p1, 1.0 - p0 - p1)
    w = choice_weights(p_int, p_z, p_one)
    assert w.tolist() == naive.choice_weights(p_int, p_z, p_one)
    assert int(w.sum()) == 2**32 and np.all(w >= 0)
    joint = np.outer(np.outer(p_int, [p_z, 1 - p_z]).ravel(), [1 - p_one, p_one]).ravel()
    assert np.all(np.abs(w / 2.0**32 - joint) < 2.0**-31)
    # the mapping is monotone in u: agreeing with the reference at every interval edge
    # gives every outcome exactly its weight's share of the 2**32 values
    cum = np.cumsum(w)
    edges = sorted({0, 2**32 - 1} | {int(c) + d for c in cum for d in (-1, 0) if 0 <= int(c) + d < 2**32})
    words = np.array(edges + [0] * (len(edges) % 2), dtype=np.uint64)
    words = words[0::2] | (words[1::2] << np.uint64(32))
    basis, bit, inten, _ = _choices(1, 0, len(edges), (p_int, p_z, p_one), words=words)
    want = [naive.alice_choice(u, w.tolist()) for u in edges]
    assert list(zip(inten.tolist(), basis.tolist(), bit.tolist())) == want


def test_counter_choices_match_naive_random(rng):
    p = ((0.55, 0.3, 0.15), 0.8, 0.5)
    w = choice_weights(*p).tolist()
    key, slot0, n = int(rng.integers(0, 2**63)) * 2 + 1, int(rng.integers(0, 2**40)), 2001
    levels = (2**30, 2**28, 0)
    basis, bit, inten, flag = _choices(key, slot0, n, p, level=levels)
    hashes = [naive.slot_hash(key, slot0 + i) for i in range(n)]
    want = [naive.alice_choice(h & 0xFFFFFFFF, w) for h in hashes]
    assert list(zip(inten.tolist(), basis.tolist(), bit.tolist())) == want
    assert flag.tolist() == [int(h >> 32 < levels[c]) for h, (c, _, _) in zip(hashes, want)]
    assert flag[inten == 0].any() and flag[inten == 1].any()


def test_word_choices_match_naive_random(rng):
    p = ((0.55, 0.3, 0.15), 0.8, 0.5)
    w = choice_weights(*p).tolist()
    n = 2001
    words = rng.integers(0, 2**64, words_needed(n), dtype=np.uint64, endpoint=False)
    basis, bit, inten, _ = _choices(3, 0, n, p, words=words)
    halves = [(int(words[i // 2]) >> (32 * (i % 2))) & 0xFFFFFFFF for i in range(n)]
    assert list(zip(inten.tolist(), basis.tolist(), bit.tolist())) == [naive.alice_choice(h, w) for h in halves]


def test_choices_do_not_depend_on_chunking():
    p = ((0.6, 0.3, 0.1), 0.7, 0.5)
    key = counter_key(11)
    whole = _choices(key, 1000, 5000, p, level=2**31)
    for cut in (1, 37, 4096):
        parts = [_choices(key, 1000, cut, p, level=2**31), _choices(key, 1000 + cut, 5000 - cut, p, level=2**31)]
        for a, b, c in zip(whole, *parts):
            np.testing.assert_array_equal(a, np.concatenate((b, c)))
    assert counter_key(11) == key and counter_key(12) != key


def test_counter_generator_bytes_and_neighbours_are_uniform():
    h = _numpy_hash(counter_key(1), np.arange(10**7, dtype=np.uint64))
    # every byte of the 64-bit output: 256 cells, 1e7 draws
    by = h.view(np.uint8).reshape(-1, 8)
    for j in range(8):
        counts = np.bincount(by[:, j], minlength=256)
        assert chi2.sf(((counts - 1e7 / 256) ** 2 / (1e7 / 256)).sum(), 255) > 1e-4, f"byte {j}"
    # neighbouring slots: top 4 bits of Alice's half of slot i and slot i + 1, 256 joint cells
    top = (h & np.uint64(0xFFFFFFFF)) >> np.uint64(28)
    joint = np.bincount((top[:-1] * 16 + top[1:]).astype(np.int64), minlength=256)
    e = (h.size - 1) / 256
    assert chi2.sf(((joint - e) ** 2 / e).sum(), 255) > 1e-4


def test_outcome_frequencies_chi_square():
    n = 10**7
    p = ((0.6, 0.3, 0.1), 0.7, 0.4)
    basis, bit, inten, _ = _choices(counter_key(2), 0, n, p)
    counts = np.bincount(4 * inten.astype(np.int64) + 2 * basis + bit, minlength=12)
    expected = choice_weights(*p) / 2.0**32 * n
    assert chi2.sf(((counts - expected) ** 2 / expected).sum(), 11) > 1e-4


def test_bad_input_is_named():
    with pytest.raises(QkdInputError, match="p_intensity"):
        choice_weights((0.5, 0.4, 0.2), 0.5, 0.5)
    with pytest.raises(QkdInputError, match="p_z"):
        choice_weights((0.5, 0.3, 0.2), 1.5, 0.5)
    with pytest.raises(QkdInputError, match="weights"):
        ChoiceThresholds.from_weights(np.ones(12, dtype=np.int64))
    th = choice_thresholds((0.5, 0.3, 0.2), 0.5, 0.5)
    with pytest.raises(QkdInputError, match="words"):
        alice_choices(1, 0, th, *(np.empty(3, np.uint8) for _ in range(3)), words=np.zeros(1, np.uint64))
    with pytest.raises(QkdInputError, match="uint8"):
        alice_choices(1, 0, th, *(np.empty(3, np.int64) for _ in range(3)))
    with pytest.raises(QkdInputError, match="slot0"):
        alice_choices(1, -1, th, *(np.empty(3, np.uint8) for _ in range(3)))
    with pytest.raises(QkdInputError, match="levels"):
        alice_choices(1, 0, th, *(np.empty(3, np.uint8) for _ in range(3)), levels=(0, 2**32 + 1, 0))


@pytest.mark.skipif("+avx2" not in __import__("llvmlite.binding").binding.get_host_cpu_features().flatten(),
                    reason="vector registers are checked on AVX2/AVX-512 hosts")
def test_choice_loop_is_vectorized():
    # a fresh (uncached) compile, whose assembly numba can show: the counter hash and the
    # eleven compares must run in ymm/zmm registers, or the per-slot cost triples
    from numba import njit

    from firmware_sim.physics import alice

    kernel = njit(cache=False)(alice._choices_kernel.py_func)
    n = 64
    out = [np.empty(n, np.uint8) for _ in range(4)]
    th = choice_thresholds((0.7, 0.2, 0.1), 0.7, 0.5)
    kernel(np.uint64(1), np.int64(0), np.empty(0, np.uint32), False, th.above, np.uint8(th.base),
           np.zeros(3, np.uint32), *out)
    asm = kernel.inspect_asm(kernel.signatures[0])
    assert asm.count("vpmullq") >= 4 and ("zmm" in asm or "ymm" in asm)
