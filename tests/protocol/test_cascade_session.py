"""The compiled in-process Cascade session against the Python message path (the reference),
its exact accounting, and what it does with tampered, dropped, replayed, reordered and
malformed messages."""

import re

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from qkdctl.core.errors import ProtocolError, QkdInputError
from qkdctl.core.reconcile.cascade_variants import VARIANTS
from qkdctl.protocol.auth import KeyPool
from qkdctl.protocol.cascade_session import T_PARITIES, run_session
from qkdctl.protocol.reconcile import reconcile

KEY = bytes(range(64))
SALT = bytes(range(16, 32))


def _frame(rng, n, qber):
    alice = rng.integers(0, 2, n, dtype=np.uint8)
    bob = alice ^ (rng.random(n) < qber).astype(np.uint8)
    return alice, bob


def _session(variant, alice, bob, qber, fault=None, seed=77, alice_key=KEY):
    return run_session(VARIANTS[variant], alice, bob, qber, KeyPool(alice_key), KeyPool(KEY),
                       seed, SALT, fault)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(100, 12000), qber=st.floats(0.005, 0.09),
       off=st.sampled_from([0.5, 1.0, 1.0, 1.0, 4.0]), variant=st.sampled_from(sorted(VARIANTS)))
def test_compiled_path_equals_python_path(seed, n, qber, off, variant):
    """Same frames, seeds and shuffles: identical keys, leakage, round trips and figures
    (`off` scales the true QBER against the estimate: 4x makes most frames fail)."""
    alice, bob = _frame(np.random.default_rng(seed), n, min(0.45, qber * off))
    method = f"cascade-{variant}"
    ref = reconcile(method, alice, bob, qber, np.random.default_rng(seed + 1), compiled=False,
                    alice_in_thread=False)
    got = reconcile(method, alice, bob, qber, np.random.default_rng(seed + 1))
    assert np.array_equal(got.bob_bits, ref.bob_bits)
    assert (got.success, got.leaked_bits, got.round_trips, got.extra) == (
        ref.success, ref.leaked_bits, ref.round_trips, ref.extra)
    assert got.success == np.array_equal(got.bob_bits, alice)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_leakage_equals_parities_on_the_wire(variant, rng):
    alice, bob = _frame(rng, 5000, 0.03)
    out = _session(variant, alice, bob, 0.03)
    assert out.error is None and out.confirmed and np.array_equal(out.bob_bits, alice)
    parities = out.log[out.log[:, 0] == T_PARITIES, 1]
    assert out.leaked_bits == out.parity_bits_sent == parities.sum()
    assert out.messages == len(out.log) and out.auth_key_bytes == 32
    # every parity message answers one question: round trips = parity rounds + confirmation
    assert out.round_trips == out.extra["parity_rounds"] + 1 == parities.size + 1


def test_clean_frame_accounting_by_hand():
    bits = np.random.default_rng(1).integers(0, 2, 100, dtype=np.uint8)
    out = _session("original", bits, bits.copy(), 0.1)
    blocks = [-(-100 // k) for k in VARIANTS["original"].block_sizes(0.1, 100)]  # k = 8 .. 64
    assert blocks == [13, 7, 4, 2]
    assert out.leaked_bits == 26 and out.round_trips == 5 and out.confirmed
    # start, 4 x (pass, parities), done, confirm request / tag / result
    assert out.messages == 13
    frame = 21  # type, seq, length, tag
    wire = (frame + 24) + sum(2 * frame + 40 + 8 + -(-b // 8) for b in blocks) + frame \
        + frame + (frame + 24) + (frame + 8)
    assert out.bytes == wire
    assert out.log[:, 0].tolist() == [1] + [2, 4] * 4 + [5, 6, 7, 8]


def test_wrong_key_fails_first_message_and_discloses_nothing(rng):
    alice, bob = _frame(rng, 2000, 0.02)
    out = _session("original", alice, bob, 0.02, alice_key=bytes(64))
    assert out.error == "Alice stopped the session: bad MAC on message 0"
    assert out.parity_bits_sent == 0 and out.messages == 1


def _cum_parities(log, upto):
    return int(log[:upto][log[:upto, 0] == T_PARITIES, 1].sum())


FAULT_TEXT = {
    "flip": "bad MAC|length field",
    "drop": "reordered|no message",
    "replay": "replayed",
    "reorder": "reordered|no message",
}


@pytest.mark.parametrize("kind", sorted(FAULT_TEXT))
@pytest.mark.parametrize("variant", ["original", "biconf", "yanetal", "option7"])
def test_fault_on_any_message_stops_the_session(kind, variant, rng):
    alice, bob = _frame(rng, 3000, 0.03)
    clean = _session(variant, alice, bob, 0.03)
    total = clean.messages
    for k in sorted({0, 1, 2, 3, 4, total // 2, total // 2 + 1, total - 3, total - 2, total - 1}):
        out = _session(variant, alice, bob, 0.03, fault=(kind, k, int(rng.integers(0, 1000))))
        assert out.error is not None and re.search(FAULT_TEXT[kind], out.error), (k, out.error)
        # nothing after the defect: at most the faulty message and one reply to it
        assert out.messages <= k + 2
        assert out.parity_bits_sent <= _cum_parities(clean.log, k + 2)
        assert np.array_equal(out.log[:k], clean.log[:k])


@pytest.mark.parametrize("k, byte, text", [
    (0, 0, "Alice stopped the session: message 0: field 'n'"),
    (0, 8, None),  # seed bit 0: a different but valid frame seed, no error
    (0, 16, "field 'slots'"),
    (1, 0, "field 'index'"),
    (1, 15, "field 'slot'"),
    (1, 16, "half split has"),
    (1, 39, "field 'blocks'"),
    (2, 0, "Bob stopped the session: message 0: 21 parities received"),  # 20 blocks of 25
    (3, 0, "Alice stopped the session: message 2: bad parity request 0"),  # ask: slot 1
])
def test_lying_peer_gets_typed_error_and_nothing_further(k, byte, text, rng):
    """An authenticated peer that sends malformed fields (bit 0 of one payload byte
    flipped before the MAC) is stopped by the receiver's field checks."""
    alice, bob = _frame(rng, 500, 0.03)
    clean = _session("original", alice, bob, 0.03)
    out = _session("original", alice, bob, 0.03, fault=("lie", k, byte))
    if text is None:
        assert out.error is None
        return
    assert out.error is not None and text in out.error
    # the lying message was the last one: the receiver answered nothing
    assert out.messages == k + 1 and np.array_equal(out.log[:k], clean.log[:k])


def test_lying_ask_range_is_refused(rng):
    alice, bob = _frame(rng, 3000, 0.03)
    clean = _session("original", alice, bob, 0.03)
    k = int(np.flatnonzero(clean.log[:, 0] == 3)[0])  # first ask
    out = _session("original", alice, bob, 0.03, fault=("lie", k, 3))  # slot += 2^24
    assert "bad parity request 0" in out.error
    assert out.parity_bits_sent == _cum_parities(clean.log, k)


def test_reconcile_raises_protocol_error_and_validates(rng):
    alice, bob = _frame(rng, 1000, 0.03)
    with pytest.raises(QkdInputError, match="compiled runs need"):
        reconcile("cascade-original", alice, bob, 0.03, rng, compiled=True, mac="blake2b")
    with pytest.raises(QkdInputError, match="unknown fault"):
        _session("original", alice, bob, 0.03, fault=("smash", 0, 0))
    with pytest.raises(QkdInputError, match="seed"):
        _session("original", alice, bob, 0.03, seed=-1)
    from qkdctl.protocol.cascade_session import compiled_role
    with pytest.raises(ProtocolError, match="bad MAC"):
        compiled_role(VARIANTS["original"], alice, bob, 0.03, KeyPool(bytes(32)), KeyPool(KEY),
                      np.random.default_rng(0), np.random.default_rng(1))


@pytest.mark.parametrize("variant", ["option7", "efficient"])
def test_reused_workspace_after_failed_and_aborted_frames(variant):
    """One thread's workspace serves frame after frame: a frame after a failed one (leak
    budget spent mid-search) and after an aborted one (fault) equals the Python path."""
    rng = np.random.default_rng(3)
    method = f"cascade-{variant}"
    for true_qber in (0.03, 0.4, None, 0.03, 0.01):
        alice, bob = _frame(rng, 4000, 0.03 if true_qber is None else true_qber)
        if true_qber is None:
            assert _session(variant, alice, bob, 0.03, fault=("flip", 9, 30)).error
            continue
        ref = reconcile(method, alice, bob, 0.03, np.random.default_rng(7), compiled=False,
                        alice_in_thread=False)
        got = reconcile(method, alice, bob, 0.03, np.random.default_rng(7))
        assert np.array_equal(got.bob_bits, ref.bob_bits)
        assert (got.success, got.leaked_bits, got.round_trips, got.extra) == (
            ref.success, ref.leaked_bits, ref.round_trips, ref.extra)
        assert got.success == (true_qber < 0.1)
