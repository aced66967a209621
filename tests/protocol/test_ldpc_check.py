"""Per-frame check of the blind LDPC loop: exact leakage, a wrong convergence caught and
repaired, check_bits=0 as before, malformed check fields refused."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from qkdctl.core.errors import ProtocolError, QkdInputError
from qkdctl.protocol import ldpc_roles as R
from qkdctl.protocol.auth import KeyPool
from qkdctl.protocol.channel import in_process_pair
from qkdctl.protocol.messages import Message
from qkdctl.protocol.reconcile import reconcile
from tests.protocol.test_ldpc_qc_roles import QC_SMALL, _m
from tests.protocol.test_ldpc_roles import KEY, AliceCounter, _frame

CHECKED = dataclasses.replace(QC_SMALL, name="ldpc-check-test", check_bits=16)


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("QKDCTL_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "qc_codes"))


def _run(a, b, qber_est, variant, seed=3):
    alice_ch, bob_ch = in_process_pair(KeyPool(KEY), KeyPool(KEY))
    counter = AliceCounter(alice_ch, _m)
    res = reconcile(R.ldpc_method(variant), a, b, qber_est, np.random.default_rng(seed),
                    channels=(counter, bob_ch))
    return res, counter


def _null_vector(h) -> np.ndarray:
    """A nonzero c with H c = 0 over GF(2) (Gaussian elimination on the dense matrix)."""
    a = h.toarray().astype(bool)
    rows, n = a.shape
    pivots, r = [], 0
    for col in range(n):
        hit = np.flatnonzero(a[r:, col])
        if hit.size == 0:
            continue
        a[[r, r + hit[0]]] = a[[r + hit[0], r]]
        others = np.flatnonzero(a[:, col])
        a[others[others != r]] ^= a[r]
        pivots.append(col)
        r += 1
        if r == rows:
            break
    free = next(c for c in range(n) if c not in set(pivots))
    c = np.zeros(n, dtype=np.uint8)
    c[free] = 1
    for i, col in enumerate(pivots):
        c[col] = a[i, free]
    return c


class _WrongOnce:
    """Decoder wrapper: the first decoding of frame 0 returns the true error plus a codeword
    (BP 'converged to Alice's word plus a codeword'), everything else unchanged."""

    def __init__(self, inner, codeword: np.ndarray) -> None:
        self.inner = inner
        self.codeword = codeword
        self.calls = 0

    def decode_many(self, targets, priors, states=None):
        results = self.inner.decode_many(targets, priors, states)
        if self.calls == 0:
            first = results[0]
            results[0] = dataclasses.replace(first, error=first.error ^ self.codeword)
        self.calls += 1
        return results


def _force_wrong_word(monkeypatch) -> list[_WrongOnce]:
    real = R._decoder
    made = []

    def wrapped(*args):
        dec = real(*args)
        made.append(_WrongOnce(dec, _null_vector(dec.code.h)))
        return made[-1]

    monkeypatch.setattr(R, "_decoder", wrapped)
    return made


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(300, 3000), qber=st.floats(0.01, 0.08))
def test_leakage_counts_tag_bits_actually_sent(seed, n, qber):
    rng = np.random.default_rng(seed)
    a, b = _frame(rng, n, qber)
    res, counter = _run(a, b, qber, CHECKED, seed)
    ex = res.extra
    assert counter.check_bits == ex["check_bits"] == 16 * ex["frames"]
    assert ex["syndrome_bits"] == counter.syndrome_bits
    assert ex["revealed_bits"] == counter.revealed_bits
    assert res.leaked_bits == (counter.syndrome_bits + counter.revealed_bits + counter.check_bits
                               - ex["punctured_bits"])
    assert res.round_trips == 2 + ex["blind_rounds"]  # the tags ride on the syndromes
    if res.success:
        assert np.array_equal(res.bob_bits, a)


def test_check_bits_zero_is_the_old_protocol_and_costs_only_the_tags(rng):
    a, b = _frame(rng, 5000, 0.02)
    plain, c0 = _run(a, b, 0.02, QC_SMALL)
    checked, c16 = _run(a, b, 0.02, CHECKED)
    assert plain.success and checked.success
    assert c0.check_bits == 0 and plain.extra["check_bits"] == 0
    assert np.array_equal(plain.bob_bits, checked.bob_bits)
    assert plain.extra["revealed_bits"] == checked.extra["revealed_bits"]
    assert plain.round_trips == checked.round_trips
    assert checked.leaked_bits - plain.leaked_bits == 16 * checked.extra["frames"] == c16.check_bits


def test_wrong_convergence_is_caught_and_the_key_still_reconciles(rng, monkeypatch):
    a, b = _frame(rng, 5000, 0.02)
    made = _force_wrong_word(monkeypatch)
    res, counter = _run(a, b, 0.02, CHECKED)
    assert made[0].codeword.any() and made[0].calls >= 2
    assert res.extra["check_failures"] == 1
    assert res.extra["blind_rounds"] >= 1 and counter.revealed_bits > 0
    assert res.success and np.array_equal(res.bob_bits, a)


def test_without_the_check_a_wrong_convergence_loses_the_key(rng, monkeypatch):
    a, b = _frame(rng, 5000, 0.02)
    _force_wrong_word(monkeypatch)
    res, _ = _run(a, b, 0.02, QC_SMALL)
    assert res.extra["failed_frames"] == 0  # Bob took the wrong word for decoded
    assert not res.success and not np.array_equal(res.bob_bits, a)


class _Scripted:
    """Bob's channel end: records what he sends, answers "ldpc/start" with a given message."""

    def __init__(self, reply_to_start) -> None:
        self.reply_to_start = reply_to_start
        self.sent: list[Message] = []

    def send(self, msg: Message) -> None:
        self.sent.append(msg)

    def recv(self, timeout_s: float = 30.0) -> Message:
        return self.reply_to_start(self.sent[-1])


def _alice_reply(a, rng, **change):
    def reply(start: Message) -> Message:
        (msg,) = R.LdpcAliceResponder(CHECKED, a, rng).handle(start)
        return Message(msg.kind, {**msg.fields, **change})
    return reply


@pytest.mark.parametrize("change, match", [
    ({"tags": np.zeros(1, np.uint8)}, "tags"),
    ({"salt": b"short"}, "salt"),
    ({"salt": np.zeros(16, np.uint8)}, "salt"),
])
def test_bob_refuses_malformed_tags_and_sends_nothing_more(change, match, rng):
    a, b = _frame(rng, 3000, 0.02)
    chan = _Scripted(_alice_reply(a, rng, **change))
    with pytest.raises(ProtocolError, match=match):
        R.bob_role(CHECKED, b, 0.02, chan, rng)
    assert [m.kind for m in chan.sent] == ["ldpc/start"]


def test_bob_refuses_missing_tags(rng):
    a, b = _frame(rng, 3000, 0.02)

    def reply(start):
        (msg,) = R.LdpcAliceResponder(CHECKED, a, rng).handle(start)
        return Message(msg.kind, {"bits": msg.fields["bits"]})
    chan = _Scripted(reply)
    with pytest.raises(ProtocolError, match="salt"):
        R.bob_role(CHECKED, b, 0.02, chan, rng)
    assert [m.kind for m in chan.sent] == ["ldpc/start"]


@pytest.mark.parametrize("check_bits", [0, 8, 24])
def test_alice_refuses_a_start_with_other_check_bits(check_bits, rng):
    a, _ = _frame(rng, 800, 0.0)
    start = Message("ldpc/start", {"n": 800, "frame_n": 1024, "rate_pct": 80, "seed": R.CODE_SEED,
                                   "k": 700, "punct": 20, "frames": 2, "check_bits": check_bits})
    with pytest.raises(ProtocolError, match="check_bits"):
        R.LdpcAliceResponder(CHECKED, a, rng).handle(start)


def test_frame_tag_depends_on_bits_salt_and_frame():
    bits = np.zeros(700, np.uint8)
    tag = R.frame_tag(bits, b"s" * 16, 0, 24)
    assert tag.shape == (24,) and tag.dtype == np.uint8
    flipped = bits.copy()
    flipped[699] = 1
    others = [R.frame_tag(flipped, b"s" * 16, 0, 24), R.frame_tag(bits, b"t" * 16, 0, 24),
              R.frame_tag(bits, b"s" * 16, 1, 24), R.frame_tag(bits[:-1], b"s" * 16, 0, 24)]
    assert all(not np.array_equal(tag, o) for o in others)
    assert np.array_equal(R.frame_tag(bits, b"s" * 16, 0, 16), tag[:16])


def test_check_bits_out_of_range_is_an_input_error(rng):
    a, b = _frame(rng, 500, 0.02)
    chan = _Scripted(_alice_reply(a, rng))
    with pytest.raises(QkdInputError, match="check_bits"):
        R.bob_role(dataclasses.replace(CHECKED, check_bits=65), b, 0.02, chan, rng)
    assert chan.sent == []
