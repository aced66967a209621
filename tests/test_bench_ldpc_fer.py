from types import SimpleNamespace

import numpy as np
import pytest

from benchmarks import bench_ldpc_fer


def _fake_run(outcomes):
    """A reconcile stand-in replaying (success, keys_equal) outcomes for the LDPC method."""
    it = iter(outcomes)

    def run(method, alice, bob, qber, rng):
        ok, equal = next(it) if method == "ldpc-blind" else (True, True)
        return SimpleNamespace(success=ok, bob_bits=alice if equal else bob, leaked_bits=20_000,
                               round_trips=3)
    return run


def test_point_counts_reported_failures_and_undetected_wrong_keys_and_bounds_the_fer(monkeypatch):
    warm_up = [(True, True)]
    keys = [(True, True), (False, False), (True, False), (True, True)]
    streamed = [(True, False), (True, True), (True, True), (True, True)]
    monkeypatch.setattr(bench_ldpc_fer, "_run", _fake_run(warm_up + keys))
    fake_stream = _fake_run(streamed)
    monkeypatch.setattr(bench_ldpc_fer, "_stream", lambda method, backlog, rng: (
        fake_stream(method, alice, bob, qber, rng) for alice, bob, qber in backlog))
    res = bench_ldpc_fer._point("ldpc-blind", 0.03, 100_000, keys=len(keys))
    assert res["failures"] == 2 and res["undetected"] == 1
    assert res["fer"] == pytest.approx(0.5)
    assert 0.5 < res["fer_upper_95"] < 1.0
    assert res["baseline_failures"] == 0 and np.isfinite(res["efficiency"])
    assert res["stream_failures"] == 1 and res["stream_undetected"] == 1
    assert res["stream_rate"] > 0 and np.isfinite(res["stream_efficiency"])


def test_zero_failures_in_the_full_run_bound_the_fer_below_one_percent():
    from qkdctl.detect.confidence import rate_upper

    assert rate_upper(0, bench_ldpc_fer.KEYS) < 1e-2
