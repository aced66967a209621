import numpy as np
import pytest

from qkdctl.core.errors import QkdInputError
from qkdctl.detect.predictability import audit, lagged


def test_lagged_codes():
    codes, nxt = lagged(np.array([1, 0, 1, 1, 0, 0]), lags=2)
    np.testing.assert_array_equal(codes, [0b10, 0b01, 0b11, 0b10])
    np.testing.assert_array_equal(nxt, [1, 1, 0, 0])


def test_fair_source_has_no_significant_advantage(rng):
    res = audit(rng.integers(0, 2, 20_000), models=("markov", "logreg"))
    assert not any(r.predictable for r in res)
    assert all(r.low < 0 < r.high for r in res)


def test_correlated_source_is_caught(rng):
    # each bit repeats the previous one with probability 0.6
    flips = rng.random(20_000) < 0.4
    bits = np.cumsum(flips) % 2
    res = {r.model: r for r in audit(bits, models=("markov", "logreg"))}
    assert res["markov"].predictable and res["logreg"].predictable
    assert res["markov"].advantage == pytest.approx(0.1, abs=0.02)


def test_biased_source_is_caught(rng):
    res = audit((rng.random(20_000) < 0.6).astype(int), models=("markov",))
    assert res[0].predictable


def test_quantum_kernel_model_catches_correlation(rng):
    flips = rng.random(4000) < 0.3
    res = audit(np.cumsum(flips) % 2, models=("qkernel",), max_train=400, seed=3, shots=128)
    assert res[0].predictable and res[0].shots == 128 * 16 * 15 // 2


def test_bad_input():
    with pytest.raises(QkdInputError, match="0/1"):
        audit(np.array([0, 1, 2] * 20))
    with pytest.raises(QkdInputError, match="unknown"):
        audit(np.zeros(100, dtype=int), models=("oracle",))
