"""reconcile_stream: keys side by side in worker threads, results in key order."""

import threading

import numba
import numpy as np
import pytest

from qkdctl.core.errors import QkdInputError
from qkdctl.protocol.reconcile import MethodOutcome, ReconcileMethod, reconcile_stream


def _keys(rng, count, n=3000):
    out = []
    for i in range(count):
        qber = 0.01 + 0.01 * (i % 4)
        alice = rng.integers(0, 2, n, dtype=np.uint8)
        out.append((alice, alice ^ (rng.random(n) < qber).astype(np.uint8), qber))
    return out


@pytest.mark.parametrize("method", ["cascade-biconf", "ldpc-blind"])
def test_results_come_in_key_order_and_correct(method):
    rng = np.random.default_rng(4)
    keys = _keys(rng, 6)
    results = list(reconcile_stream(method, keys, rng, workers=2))
    assert len(results) == len(keys)
    for (alice, bob, _), res in zip(keys, results):
        assert res.method == method
        assert res.success and np.array_equal(res.bob_bits, alice)
        assert res.leaked_bits > 0 and not np.array_equal(res.bob_bits, bob)


def _recording_method(seen: list, barrier: threading.Barrier | None = None) -> ReconcileMethod:
    """Alice says nothing; Bob records the numba threads he may use, waits at `barrier`
    (so a test fails unless keys are in flight together) and keeps his bits."""

    def alice(bits, qber, channel, rng):
        return None

    def bob(bits, qber, channel, rng):
        seen.append(numba.get_num_threads())
        if barrier is not None:
            barrier.wait(timeout=20)
        return MethodOutcome(bob_bits=bits.copy(), leaked_bits=0)

    return ReconcileMethod("recording", alice, bob)


def test_workers_run_keys_side_by_side_with_a_share_of_the_numba_threads():
    seen: list[int] = []
    rng = np.random.default_rng(1)
    method = _recording_method(seen, threading.Barrier(2))
    results = list(reconcile_stream(method, _keys(rng, 4, 64), rng, workers=2))
    assert len(results) == 4 and len(seen) == 4
    assert set(seen) == {max(1, numba.config.NUMBA_NUM_THREADS // 2)}


def test_read_ahead_is_bounded():
    rng = np.random.default_rng(2)
    taken = []
    source = _keys(rng, 20, 64)

    def feed():
        for key in source:
            taken.append(1)
            yield key

    stream = reconcile_stream(_recording_method([]), feed(), rng, workers=2)
    next(stream)
    assert len(taken) <= 4  # 2 x workers
    assert len(list(stream)) == 19


def test_a_bad_key_raises_when_its_result_is_due_after_the_earlier_ones():
    rng = np.random.default_rng(3)
    keys = _keys(rng, 3, 64)
    keys[1] = (keys[1][0], keys[1][1][:10], 0.02)  # Bob's bits shorter than Alice's
    stream = reconcile_stream("cascade-biconf", keys, rng, workers=2)
    assert next(stream).success
    with pytest.raises(QkdInputError, match="differ in length"):
        next(stream)


def test_workers_must_be_positive():
    rng = np.random.default_rng(0)
    with pytest.raises(QkdInputError, match="workers"):
        next(reconcile_stream("cascade-biconf", _keys(rng, 1, 64), rng, workers=0))


def test_each_key_may_bring_its_own_auth_key_and_shared_channels_are_refused():
    rng = np.random.default_rng(5)
    keys = [(*key, bytes([i]) * 64) for i, key in enumerate(_keys(rng, 3, 500))]
    results = list(reconcile_stream("cascade-biconf", keys, rng, workers=2))
    assert all(res.success for res in results)
    with pytest.raises(QkdInputError, match="its own channel"):
        next(reconcile_stream("cascade-biconf", keys, rng, auth_key=bytes(64)))
    with pytest.raises(QkdInputError, match="auth_key"):
        next(reconcile_stream("cascade-biconf", [keys[0][:2]], rng))
