"""Cascade end to end over the channel: correctness, exact leakage, misbehaving peers."""

import re
import threading

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from qkdctl.core.errors import ProtocolError, QkdInputError
from qkdctl.core.reconcile.cascade_variants import VARIANTS
from qkdctl.protocol import tcp
from qkdctl.protocol.auth import KeyPool
from qkdctl.protocol.cascade_roles import METHODS, alice_role, bob_role
from qkdctl.protocol.channel import in_process_pair
from qkdctl.protocol.messages import Message
from qkdctl.protocol.reconcile import available_methods, efficiency, reconcile
from tests.protocol.counting import CountingChannel

KEY = bytes(range(64))


def _frame(rng, n, qber):
    alice = rng.integers(0, 2, n, dtype=np.uint8)
    bob = alice ^ (rng.random(n) < qber).astype(np.uint8)
    return alice, bob


def _counted_pair():
    alice, bob = in_process_pair(KeyPool(KEY), KeyPool(KEY))
    return CountingChannel(alice), bob


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(200, 6000),
       qber=st.floats(0.005, 0.09), method=st.sampled_from(sorted(METHODS)))
def test_success_means_equal_keys_and_leakage_is_exact(seed, n, qber, method):
    rng = np.random.default_rng(seed)
    alice, bob = _frame(rng, n, qber)
    counted, bob_ch = _counted_pair()
    result = reconcile(method, alice, bob, qber, rng, channels=(counted, bob_ch))
    assert result.success == np.array_equal(result.bob_bits, alice)
    assert result.leaked_bits == counted.parity_bits_sent
    assert result.messages == len(counted.sent_kinds) + bob_ch.stats.messages_sent
    assert result.round_trips >= result.extra["parity_rounds"]


@pytest.mark.parametrize("method", sorted(METHODS))
def test_each_variant_corrects_typical_frames(method, rng):
    for qber in (0.01, 0.05):
        alice, bob = _frame(rng, 4000, qber)
        result = reconcile(method, alice, bob, qber, rng)
        assert result.success and np.array_equal(result.bob_bits, alice)
        assert 1.0 < efficiency(result.leaked_bits, 4000, np.mean(alice != bob)) < 1.6
        assert result.auth_key_bytes == 32 and result.bytes > 0


def test_original_leakage_matches_published_efficiency(rng):
    fs = []
    for _ in range(30):
        alice, bob = _frame(rng, 10000, 0.02)
        r = reconcile("cascade-original", alice, bob, 0.02, rng)
        fs.append(efficiency(r.leaked_bits, 10000, np.mean(alice != bob)))
    assert 1.12 < np.mean(fs) < 1.20  # paper Fig. 1 / cascade-cpp: ~1.15-1.16 at 2 %


def test_qber_far_above_estimate_fails_cleanly(rng):
    alice, bob = _frame(rng, 5000, 0.3)
    counted, bob_ch = _counted_pair()
    result = reconcile("cascade-original", alice, bob, 0.02, rng, channels=(counted, bob_ch))
    assert not result.success
    assert result.leaked_bits == counted.parity_bits_sent <= 5000


def test_available_methods_lists_cascade_variants():
    assert {f"cascade-{v}" for v in VARIANTS} <= set(available_methods())
    with pytest.raises(QkdInputError, match="unknown reconciliation method"):
        reconcile("nope", np.zeros(10, np.uint8), np.zeros(10, np.uint8), 0.02,
                  np.random.default_rng(0))


def test_reconcile_validates_inputs(rng):
    with pytest.raises(QkdInputError, match="differ in length"):
        reconcile("cascade-original", np.zeros(10, np.uint8), np.zeros(11, np.uint8), 0.02, rng)
    with pytest.raises(QkdInputError, match="0/1"):
        reconcile("cascade-original", np.full(10, 2), np.zeros(10, np.uint8), 0.02, rng)
    with pytest.raises(QkdInputError, match="qber_estimate"):
        reconcile("cascade-original", np.zeros(10, np.uint8), np.zeros(10, np.uint8), 0.7, rng)


def _alice_against(messages, alice_bits, raw=None):
    """Run Alice's role against a scripted Bob; return (error, parity bits Alice sent)."""
    alice_ch, bob_ch = in_process_pair(KeyPool(KEY), KeyPool(KEY))
    counted = CountingChannel(alice_ch)
    errors = []

    def run():
        try:
            alice_role(alice_bits, 0.02, counted, np.random.default_rng(0))
        except ProtocolError as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    for i, msg in enumerate(messages):
        bob_ch.send(msg)
        if msg.kind in ("cascade/pass", "cascade/ask") and i < len(messages) - 1:
            bob_ch.recv(timeout_s=5)
    if raw is not None:
        raw(bob_ch)
    thread.join(timeout=10)
    return errors, counted.parity_bits_sent


START = Message("cascade/start", {"n": 100, "seed": 1, "slots": 2})
PASS0 = Message("cascade/pass", {"index": 0, "slot": 0, "halves": 0, "k": 10, "blocks": 10})


@pytest.mark.parametrize("bad, match", [
    (Message("cascade/start", {"n": 99, "seed": 1, "slots": 2}), "bits"),
    (Message("cascade/bogus", {}), "unexpected message kind"),
    (Message("cascade/pass", {"index": 3, "slot": 0, "halves": 0, "k": 10, "blocks": 10}), "index"),
    (Message("cascade/pass", {"index": 1, "slot": 1, "halves": 0, "k": 10, "blocks": 11}), "blocks"),
    (Message("cascade/ask", {"ranges": np.array([1, 0, 5], np.int32)}), "begun pass"),
    (Message("cascade/ask", {"ranges": np.array([0, 0, 101], np.int32)}), r"\[0, 101\) is not"),
    (Message("cascade/ask", {"ranges": np.array([0, 3, 3], np.int32)}), r"\[3, 3\) is not"),
    (Message("cascade/ask", {"ranges": np.array([0, 0, 5, 0], np.int32)}), "triples"),
    (Message("cascade/ask", {"ranges": np.zeros(0, np.int32)}), "triples"),
    (Message("cascade/ask", {"ranges": np.array([0, 0, 5], np.int64)}), "dtype"),
    (Message("cascade/ask", {"ranges": np.tile(np.array([0, 0, 1], np.int32), 200)}),
     "more than n"),
])
def test_misbehaving_bob_gets_protocol_error_and_no_more_parities(bad, match, rng):
    bits = rng.integers(0, 2, 100, dtype=np.uint8)
    script = [bad] if bad.kind == "cascade/start" else [START, PASS0, bad]
    errors, sent = _alice_against(script, bits)
    assert errors and re.search(match, str(errors[0]))
    assert sent == (0 if bad.kind == "cascade/start" else 10)


@pytest.mark.parametrize("attack", ["forged", "replayed"])
def test_bad_mac_or_replay_from_bob_stops_alice(attack, rng):
    bits = rng.integers(0, 2, 100, dtype=np.uint8)

    def frame(bob_ch):
        if attack == "forged":  # right sequence number, MAC under another key
            other = in_process_pair(KeyPool(b"x" * 64), KeyPool(b"x" * 64))[1]
            other._seq_out = bob_ch._seq_out
            other._outbox = bob_ch._outbox
            other.send(Message("cascade/done", {}))
        else:  # an old sequence number with a valid MAC
            bob_ch._seq_out -= 1
            bob_ch.send(Message("cascade/done", {}))

    errors, sent = _alice_against([START, PASS0], bits, raw=frame)
    assert errors and ("bad MAC" in str(errors[0]) or "replayed" in str(errors[0]))
    assert sent == 10


def test_lying_alice_count_raises_on_bob_side(rng):
    bits = rng.integers(0, 2, 200, dtype=np.uint8)
    alice_ch, bob_ch = in_process_pair(KeyPool(KEY), KeyPool(KEY))

    def liar():
        alice_ch.recv()
        alice_ch.recv()
        alice_ch.send(Message("cascade/parities", {"count": 3, "bits": np.zeros(1, np.uint8)}))

    thread = threading.Thread(target=liar)
    thread.start()
    with pytest.raises(ProtocolError, match="parities received"):
        bob_role(VARIANTS["original"], bits, 0.02, bob_ch, rng)
    thread.join()


def test_cascade_over_tcp_between_threads(rng):
    alice_bits, bob_bits = _frame(rng, 3000, 0.03)
    server = tcp.listen()
    port = server.getsockname()[1]
    box = {}

    def accept():
        box["alice"] = tcp.accept(server, KeyPool(KEY))

    thread = threading.Thread(target=accept)
    thread.start()
    bob_ch = tcp.connect("127.0.0.1", port, KeyPool(KEY))
    thread.join()
    result = reconcile("cascade-option7", alice_bits, bob_bits, 0.03, rng,
                       channels=(box["alice"], bob_ch))
    box["alice"].close()
    bob_ch.close()
    server.close()
    assert result.success and np.array_equal(result.bob_bits, alice_bits)
    assert result.round_trips > 10


@pytest.mark.parametrize("method", ["cascade-original", "cascade-tuned", "cascade-biconf",
                                    "cascade-efficient"])
def test_single_thread_direct_channel_matches_threaded_run(method):
    alice, bob = _frame(np.random.default_rng(5), 5000, 0.03)
    threaded = reconcile(method, alice, bob, 0.03, np.random.default_rng(9), compiled=False)
    direct = reconcile(method, alice, bob, 0.03, np.random.default_rng(9), alice_in_thread=False,
                       compiled=False)
    assert direct.success and threaded.success
    assert np.array_equal(direct.bob_bits, threaded.bob_bits)
    assert (direct.leaked_bits, direct.round_trips, direct.messages, direct.bytes) == (
        threaded.leaked_bits, threaded.round_trips, threaded.messages, threaded.bytes)


def test_single_thread_mode_needs_default_channel(rng):
    bits = np.zeros(100, np.uint8)
    with pytest.raises(QkdInputError, match="single-thread"):
        reconcile("cascade-original", bits, bits, 0.02, rng,
                  channels=in_process_pair(KeyPool(KEY), KeyPool(KEY)), alice_in_thread=False)


def test_cascade_over_wegman_carter_channel(rng):
    alice_bits, bob_bits = _frame(rng, 3000, 0.03)
    key = rng.bytes(40000)
    channels = in_process_pair(KeyPool(key), KeyPool(key), mac="wegman-carter")
    result = reconcile("cascade-original", alice_bits, bob_bits, 0.03, rng, channels=channels)
    assert result.success and np.array_equal(result.bob_bits, alice_bits)
    assert result.auth_key_bytes == 8 + 2 * 2048 * 8


def test_efficient_clean_frame_pays_block_parities_and_one_streak(rng):
    bits = rng.integers(0, 2, 1000, dtype=np.uint8)
    variant = VARIANTS["efficient"]
    k1, k2 = variant.block_sizes(0.02, 1000)
    counted, bob_ch = _counted_pair()
    result = reconcile("cascade-efficient", bits, bits.copy(), 0.02, rng,
                       channels=(counted, bob_ch))
    assert result.success and result.extra["biconf_rounds"] == variant.biconf_streak
    # pass 1 all blocks, pass 2 all but the inferred last one, one parity per BICONF round
    expected = -(-1000 // k1) + -(-1000 // k2) - 1 + variant.biconf_streak
    assert result.leaked_bits == counted.parity_bits_sent == expected
