"""Cascade kernels against the naive references; Bob's state against the true errors."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from qkdctl.core.errors import QkdInputError
from qkdctl.core.reconcile.cascade import (
    CascadeBobState, block_parities, half_split, pack_permuted, pack_shuffled,
    packed_range_parities, pass_seed, permutation, range_parities, words_for,
)
from qkdctl.core.reconcile.cascade_variants import VARIANTS, CascadeVariant
from tests.naive import cascade as naive


def test_permutation_tiny_case_matches_reference():
    assert permutation(12345, 6).tolist() == naive.permutation(12345, 6)
    assert sorted(permutation(12345, 6).tolist()) == list(range(6))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**64 - 1), n=st.integers(1, 300))
def test_permutation_matches_reference(seed, n):
    assert permutation(seed, n).tolist() == naive.permutation(seed, n)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**64 - 1), n=st.integers(2, 300))
def test_half_split_matches_reference(seed, n):
    order, k = half_split(seed, n)
    ref_order, ref_k = naive.half_split(seed, n)
    assert (order.tolist(), k) == (ref_order, ref_k)
    assert k >= n // 2


def test_half_split_tiny_case():
    order, k = half_split(99, 5)
    assert sorted(order.tolist()) == [0, 1, 2, 3, 4] and k >= 3
    assert order[:k].tolist() == sorted(order[:k].tolist())


def test_pass_seeds_differ_per_pass():
    assert len({pass_seed(7, i) for i in range(50)}) == 50


def test_pack_and_parities_tiny_case():
    bits = np.array([1, 0, 1, 1, 0], dtype=np.uint8)
    perm = np.array([4, 3, 2, 1, 0], dtype=np.int32)
    words = pack_permuted(bits, perm)
    assert words.tolist() == [0b10110]  # shuffled order 0, 1, 1, 0, 1
    assert block_parities(words, 5, 2, 3).tolist() == [1, 1, 1]
    ranges = np.array([0, 0, 5, 0, 1, 3], np.int32)
    assert range_parities(words[None, :], ranges).tolist() == [1, 0]
    begun = np.ones(1, bool)
    assert packed_range_parities(words[None, :], 5, begun, ranges).tolist() == [0b10000000]
    with pytest.raises(QkdInputError, match=r"request 1: slot 0 range \[2, 6\)"):
        packed_range_parities(words[None, :], 5, begun, np.array([0, 0, 5, 0, 2, 6], np.int32))
    with pytest.raises(QkdInputError, match="not a"):
        packed_range_parities(words[None, :], 5, ~begun, ranges)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(2, 400), k=st.integers(1, 400))
def test_pack_block_and_range_parities_match_reference(seed, n, k):
    rng = np.random.default_rng(seed)
    k = min(k, n)
    bits = rng.integers(0, 2, n, dtype=np.uint8)
    perm = permutation(seed, n)
    ordered = [int(bits[i]) for i in perm]
    words = pack_permuted(bits, perm)
    assert [int(w) for w in words] == naive.pack(ordered)
    nb = -(-n // k)
    ref = [naive.range_parity(ordered, b * k, min(n, b * k + k)) for b in range(nb)]
    assert block_parities(words, n, k, nb).tolist() == ref
    starts = rng.integers(0, n, 30).astype(np.int32)
    ends = (starts + rng.integers(1, n + 1, 30)).clip(max=n).astype(np.int32)
    ranges = np.stack([np.zeros(30, np.int32), starts, ends], axis=1).ravel()
    ref = [naive.range_parity(ordered, s, e) for s, e in zip(starts, ends)]
    assert range_parities(words[None, :], ranges).tolist() == ref
    packed = packed_range_parities(words[None, :], n, np.ones(1, bool), ranges)
    assert np.unpackbits(packed, count=30).tolist() == ref


def test_block_parities_rejects_bad_request():
    with pytest.raises(QkdInputError, match="bad block request"):
        block_parities(np.zeros(1, np.uint64), 10, 20, 1)


def _run_frame(alice, bob, variant, qber, seed, check_each_round):
    """Drive Bob's state with Alice's true parities (no channel); check invariants."""
    n = alice.size
    sizes = variant.block_sizes(qber, n)
    halves = [i >= 2 and variant.later == "half" for i in range(len(sizes))]
    state = CascadeBobState(bob, sizes, variant.block_reuse, halves)
    errors = set(naive.errors(alice, bob).tolist())
    alice_words = np.zeros((len(sizes), words_for(n)), np.uint64)
    perms = []
    for slot in range(len(sizes)):
        if halves[slot]:
            perm, k = half_split(pass_seed(seed, slot), n)
        else:
            perm, k = permutation(pass_seed(seed, slot), n), sizes[slot]
        perms.append(perm)
        pack_permuted(alice, perm, alice_words[slot])
        assert state.begin_pass(slot, pass_seed(seed, slot), halves[slot]) == k
        divisor = variant.wave_divisor if slot > 0 else 1
        state.start_pass(slot, block_parities(alice_words[slot], n, k, -(-n // k)),
                         -1 if divisor == 1 else 0)
        while True:
            if not state.active_searches:
                waiting = state.waiting_blocks(slot)
                if waiting == 0:
                    break
                assert divisor > 1, "lockstep pass left odd blocks without a search"
                assert state.resume_pass(slot, -(-waiting // divisor)) >= 1
                continue
            state.apply_replies(np.packbits(range_parities(alice_words, state.requests())))
            if check_each_round:
                current = state.corrected_bits()
                assert set(naive.errors(current, bob).tolist()) <= errors, "flipped a correct bit"
                for p in range(slot + 1):
                    lo = state.tree_off[p]
                    naive.check_error_tree(alice, current, perms[p], int(state.ksize[p]),
                                           state.tree[lo:lo + state.nblocks[p] * state.tsize[p]],
                                           int(state.tsize[p]))
                for p in range(slot + 1):
                    ref = naive.pack([int(current[i]) for i in perms[p]])
                    assert [int(w) for w in state.words[p]] == ref
    assert not state.overflowed
    return state


def test_bob_state_tiny_case_corrects_single_error():
    alice = np.array([0, 1, 1, 0, 1, 0, 0, 1], dtype=np.uint8)
    bob = alice.copy()
    bob[5] ^= 1
    variant = CascadeVariant("tiny", passes=2, k1_factor=0.5)
    state = _run_frame(alice, bob, variant, 0.125, seed=3, check_each_round=True)
    assert state.corrected_bits().tolist() == alice.tolist()
    assert state.flips == 1


@pytest.mark.parametrize("name", sorted(VARIANTS))
@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(50, 700), qber=st.sampled_from([0.01, 0.03, 0.08]))
def test_bob_state_invariants_against_reference(name, seed, n, qber):
    rng = np.random.default_rng(seed)
    alice = rng.integers(0, 2, n, dtype=np.uint8)
    bob = alice ^ (rng.random(n) < qber).astype(np.uint8)
    variant = VARIANTS[name]
    if variant.biconf_streak:
        variant = CascadeVariant(name, variant.passes, variant.k1_factor, k2_factor=variant.k2_factor)
    _run_frame(alice, bob, variant, qber, seed, check_each_round=True)


def test_block_sizes_of_published_schedules():
    assert VARIANTS["original"].block_sizes(0.02, 10**5) == [37, 74, 148, 296]
    assert VARIANTS["biconf"].block_sizes(0.02, 10**5) == [46, 138]
    assert VARIANTS["yanetal"].block_sizes(0.02, 10**4) == [40, 200] + [5000] * 8
    assert VARIANTS["option7"].block_sizes(0.02, 10**4) == [64, 256] + [5000] * 12
    assert VARIANTS["option3"].block_sizes(0.05, 1000) == [20, 40] + [500] * 14
    assert VARIANTS["tuned"].block_sizes(0.02, 10**4) == [60, 120] + [5000] * 12
    assert VARIANTS["efficient"].block_sizes(0.02, 10**4) == [65, 136]


@pytest.mark.parametrize("qber", [0.0, 0.5, -0.1])
def test_block_sizes_reject_bad_qber(qber):
    with pytest.raises(QkdInputError, match="qber_estimate"):
        VARIANTS["original"].block_sizes(qber, 1000)


def test_state_rejects_bad_input():
    with pytest.raises(QkdInputError, match="0/1"):
        CascadeBobState(np.array([0, 2, 1]), [2], False)
    with pytest.raises(QkdInputError, match="block sizes"):
        CascadeBobState(np.zeros(10, np.uint8), [11], False)


def _bob_set_up(bits, seed, halves):
    from qkdctl.core.reconcile.cascade import (
        _half_inverse_pack_kernel, _shuffle_inverse_pack_kernel,
    )
    perm = np.full(bits.size, -1, np.int32)
    pos = np.full(bits.size, -1, np.int32)
    words = np.full(words_for(bits.size), 7, np.uint64)
    k = bits.size
    if halves:
        k = int(_half_inverse_pack_kernel(np.uint64(seed), bits, perm, pos, words))
    else:
        _shuffle_inverse_pack_kernel(np.uint64(seed), bits, perm, pos, words)
    return perm, pos, words, k


def test_fused_pass_set_up_tiny_case():
    bits = np.array([1, 0, 1, 1, 0], np.uint8)
    ref = naive.permutation(12345, 5)
    perm, pos, words, _ = _bob_set_up(bits, 12345, False)
    assert perm.tolist() == ref and pos[perm].tolist() == [0, 1, 2, 3, 4]
    assert words.tolist() == naive.pack([int(bits[i]) for i in ref])
    alice_words, k = pack_shuffled(bits, 12345)
    assert alice_words.tolist() == words.tolist() and k == 5


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**64 - 1), n=st.integers(2, 300), halves=st.booleans())
def test_fused_pass_set_up_matches_reference(seed, n, halves):
    """Bob's shuffle+inverse+pack and Alice's shuffle+pack in one kernel each give the
    reference shuffle (or halving), its inverse and the packed shuffled key."""
    bits = np.random.default_rng(seed % 2**32).integers(0, 2, n, dtype=np.uint8)
    ref, ref_k = naive.half_split(seed, n) if halves else (naive.permutation(seed, n), n)
    perm, pos, words, k = _bob_set_up(bits, seed, halves)
    assert perm.tolist() == ref and k == ref_k
    assert [int(p) for p in pos[perm]] == list(range(n))
    assert [int(w) for w in words] == naive.pack([int(bits[i]) for i in ref])
    alice_words, alice_k = pack_shuffled(bits, seed, halves)
    assert alice_words.tolist() == words.tolist() and alice_k == k
