"""LDPC roles end to end over the channel: equal keys, exact leakage, blind rounds, bad peers."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from qkdctl.core.errors import ProtocolError, QkdInputError
from qkdctl.protocol import ldpc_roles as R
from qkdctl.protocol.auth import KeyPool
from qkdctl.protocol.channel import in_process_pair
from qkdctl.protocol.messages import Message
from qkdctl.protocol.reconcile import available_methods, efficiency, reconcile

KEY = bytes(range(64))
SMALL = R.LdpcVariant("ldpc-test", frame_sizes=(1024,), f_start=1.1, f_step=0.08, max_rounds=6)


class AliceCounter:
    """Wraps Alice's channel end; counts the syndrome, revealed and tag bits she really sends."""

    def __init__(self, inner, m_of_rate) -> None:
        self.inner = inner
        self.m_of_rate = m_of_rate
        self.syndrome_bits = 0
        self.revealed_bits = 0
        self.check_bits = 0
        self.last_start: Message | None = None

    def send(self, msg: Message) -> None:
        self.inner.send(msg)
        if msg.kind == "ldpc/syndrome":
            start = self.last_start
            self.syndrome_bits += start.fields["frames"] * self.m_of_rate(start.fields["rate_pct"])
            assert msg.fields["bits"].size == (self.syndrome_bits + 7) // 8
            if "tags" in msg.fields:
                tag_bits = start.fields["frames"] * start.fields["check_bits"]
                assert msg.fields["tags"].size == (tag_bits + 7) // 8
                self.check_bits += tag_bits
        if msg.kind == "ldpc/values":
            self.revealed_bits += int(msg.fields["count"])

    def recv(self, timeout_s=30.0) -> Message:
        msg = self.inner.recv(timeout_s)
        if msg.kind == "ldpc/start":
            self.last_start = msg
        return msg

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _m(rate_pct):
    return R.family_code(rate_pct / 100, 1024).m


def _frame(rng, n, qber):
    alice = rng.integers(0, 2, n, dtype=np.uint8)
    return alice, alice ^ (rng.random(n) < qber).astype(np.uint8)


def _run(rng, n, qber_true, qber_est, variant=SMALL, m_of=_m):
    """One key through the roles with Alice's sent bits counted (m_of: checks of a rate's code)."""
    a, b = _frame(rng, n, qber_true)
    alice_ch, bob_ch = in_process_pair(KeyPool(KEY), KeyPool(KEY))
    counter = AliceCounter(alice_ch, m_of)
    res = reconcile(R.ldpc_method(variant), a, b, qber_est, rng, channels=(counter, bob_ch))
    return a, b, res, counter


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("QKDCTL_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "codes"))


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(300, 3000), qber=st.floats(0.01, 0.08))
def test_success_means_equal_keys_and_leakage_is_exact(seed, n, qber):
    rng = np.random.default_rng(seed)
    a, _, res, counter = _run(rng, n, qber, qber)
    assert_exact_leakage_and_equal_keys(a, res, counter)


def assert_exact_leakage_and_equal_keys(a, res, counter):
    """Leakage and round trips as counted on the wire; success only with Alice's key."""
    ex = res.extra
    assert ex["syndrome_bits"] == counter.syndrome_bits
    assert ex["revealed_bits"] == counter.revealed_bits
    assert res.leaked_bits == counter.syndrome_bits + counter.revealed_bits - ex["punctured_bits"]
    # start -> syndromes, one per blind round, then the confirmation's request -> tag
    assert res.round_trips == 2 + ex["blind_rounds"]
    if res.success:
        assert np.array_equal(res.bob_bits, a)
    else:  # an undecoded frame, or one decoded to another word of the syndrome (caught by verification)
        assert ex["failed_frames"] > 0 or not np.array_equal(res.bob_bits, a)


def test_typical_frames_succeed_with_sane_efficiency(rng):
    for qber in (0.02, 0.05):
        a, b, res, _ = _run(rng, 5000, qber, qber)
        assert res.success and np.array_equal(res.bob_bits, a)
        f = efficiency(res.leaked_bits, a.size, float(np.mean(a != b)))
        assert 1.0 < f < 1.8


def test_blind_rounds_reveal_bits_when_estimate_is_optimistic(rng):
    # estimate 1 % for a 3 % channel: the first decoding fails, reveals follow
    a, _, res, counter = _run(rng, 3000, 0.03, 0.01)
    assert res.extra["blind_rounds"] >= 1 and counter.revealed_bits > 0


def test_qber_far_above_range_fails_cleanly(rng):
    a, b, res, counter = _run(rng, 2000, 0.25, 0.02)
    assert not res.success
    assert res.extra["failed_frames"] > 0
    assert res.leaked_bits == counter.syndrome_bits + counter.revealed_bits - res.extra["punctured_bits"]
    assert res.leaked_bits > 0


def test_methods_are_listed():
    methods = available_methods()
    assert {"ldpc", "ldpc-blind"} <= set(methods)


def test_bad_inputs_raise_typed_errors(rng):
    a, b = _frame(rng, 500, 0.02)
    with pytest.raises(QkdInputError, match="qber"):
        reconcile(R.ldpc_method(SMALL), a, b, 0.7, rng)
    with pytest.raises(QkdInputError, match="length"):
        reconcile(R.ldpc_method(SMALL), a, b[:-1], 0.02, rng)


def _started_responder(rng, n=800):
    a, _ = _frame(rng, n, 0.0)
    resp = R.LdpcAliceResponder(SMALL, a, rng)
    code = R.family_code(0.8, 1024)
    start = Message("ldpc/start", {"n": n, "frame_n": 1024, "rate_pct": 80,
                                   "seed": R.CODE_SEED, "k": 700, "punct": 20, "frames": 2,
                                   "check_bits": 0})
    (reply,) = resp.handle(start)
    assert reply.kind == "ldpc/syndrome" and reply.fields["bits"].size == (2 * code.m + 7) // 8
    return resp


@pytest.mark.parametrize("msg, match", [
    (Message("ldpc/start", {"n": 799, "frame_n": 1024, "rate_pct": 80, "seed": 1, "k": 700,
                            "punct": 20, "frames": 2}), "key has"),
    (Message("ldpc/start", {"n": 800, "frame_n": 1024, "rate_pct": 42, "seed": 1, "k": 700,
                            "punct": 20, "frames": 2}), "rate"),
    (Message("ldpc/start", {"n": 800, "frame_n": 1024, "rate_pct": 80, "seed": 1, "k": 700,
                            "punct": 20, "frames": 3}), "frame count"),
    (Message("ldpc/start", {"n": 800, "frame_n": 2048, "rate_pct": 80, "seed": 1, "k": 700,
                            "punct": 20, "frames": 2}), "frame length"),
    (Message("cascade/start", {"n": 800}), "unexpected message kind"),
])
def test_bad_start_is_refused(msg, match, rng):
    a, _ = _frame(rng, 800, 0.0)
    with pytest.raises(ProtocolError, match=match):
        R.LdpcAliceResponder(SMALL, a, rng).handle(msg)


def test_alice_refuses_bad_reveals(rng):
    resp = _started_responder(rng)
    lay = resp._layouts[0]
    short = int(lay.short_pos[0])
    with pytest.raises(ProtocolError, match="shortened"):
        resp.handle(Message("ldpc/reveal", {"frame": np.array([0], np.int32),
                                            "pos": np.array([short], np.int32)}))
    resp = _started_responder(rng)
    with pytest.raises(ProtocolError, match="frame"):
        resp.handle(Message("ldpc/reveal", {"frame": np.array([5], np.int32),
                                            "pos": np.array([0], np.int32)}))
    resp = _started_responder(rng)
    key = resp._layouts[0].key_pos
    ok = resp.handle(Message("ldpc/reveal", {"frame": np.array([0], np.int32),
                                             "pos": key[:1].astype(np.int32)}))
    assert ok[0].fields["count"] == 1
    with pytest.raises(ProtocolError, match="revealed"):
        resp.handle(Message("ldpc/reveal", {"frame": np.array([0], np.int32),
                                            "pos": key[:1].astype(np.int32)}))
    resp = _started_responder(rng)
    too_many = key[: resp._budget[0] + 1].astype(np.int32)
    with pytest.raises(ProtocolError, match="limit"):
        resp.handle(Message("ldpc/reveal", {"frame": np.zeros(too_many.size, np.int32),
                                            "pos": too_many}))


def test_code_cache_round_trips_through_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("QKDCTL_CACHE_DIR", str(tmp_path))
    R.family_code.cache_clear()
    built = R.family_code(0.85, 512, 77)
    assert list((tmp_path / "ldpc_codes").glob("*.npz"))
    R.family_code.cache_clear()
    loaded = R.family_code(0.85, 512, 77)
    assert (built.h != loaded.h).nnz == 0
    assert np.array_equal(built.puncture_order, loaded.puncture_order)
    assert np.array_equal(built.fill_order, loaded.fill_order)
    R.family_code.cache_clear()
