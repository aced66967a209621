"""Degree-distribution tool (benchmarks/ldpc_ensembles.py): DE on known cases, LP output, code rows."""

import numpy as np
import pytest
from scipy import integrate

from benchmarks import ldpc_ensembles as E
from qkdctl.core.reconcile import codes as C


def test_phi_matches_direct_quadrature():
    for m in (0.05, 1.0, 7.0, 40.0):
        want = integrate.quad(
            lambda u: (1 - np.tanh(u / 2)) * np.exp(-(u - m) ** 2 / (4 * m)) / np.sqrt(4 * np.pi * m),
            -np.inf, np.inf, limit=400)[0]
        assert E.phi(np.array([m]))[0] == pytest.approx(want, rel=1e-6)
    assert E.phi(np.array([0.0]))[0] == 1.0
    ms = np.array([0.3, 3.0, 30.0])
    assert np.allclose(E.phi_inverse(E.phi(ms)), ms, rtol=1e-4)


def test_regular_3_6_bsc_threshold_near_published_value():
    # BP threshold of the (3,6)-regular ensemble on the BSC: 0.084 (Richardson & Urbanke,
    # IEEE Trans. IT 47, 599 (2001), exact DE); the semi-Gaussian DE lands within 1.5 %
    q = E.threshold(np.array([3.0]), np.array([1.0]), E.concentrated_checks(6.0))
    assert 0.0830 < q < 0.0853
    assert E.converges(0.080, np.array([3.0]), np.array([1.0]), E.concentrated_checks(6.0))
    assert not E.converges(0.090, np.array([3.0]), np.array([1.0]), E.concentrated_checks(6.0))


def test_concentrated_checks_mean_and_thinning():
    ch = E.concentrated_checks(37.25)
    assert set(ch.degrees) == {37.0, 38.0}
    assert 1.0 / ch.integral == pytest.approx(37.25)  # node-average degree
    thin = E.concentrated_checks(40.0, shortened=0.25)
    assert np.sum(thin.rho) == pytest.approx(1.0)
    assert 1.0 / thin.integral == pytest.approx(30.0, rel=1e-3)  # binomial mean 40 * 0.75
    with pytest.raises(ValueError, match="mean_degree"):
        E.concentrated_checks(1.5)


def test_lp_row_is_normalised_capped_stable_and_converges_at_its_threshold():
    ens = E.optimise(0.8, 12, np.arange(24.0, 33.0, 4.0))
    assert ens.lam.sum() == pytest.approx(1.0)
    assert ens.degrees.max() <= 12 and np.all(ens.lam >= 0)
    assert ens.rate >= 0.8 - 1e-9
    stab = 1 / (2 * np.sqrt(ens.q_star * (1 - ens.q_star)) * ens.checks.derivative_at_one)
    assert ens.lam[0] <= stab
    # the LP's constraints imply DE convergence just below its q*, and DE fails well above it
    assert E.converges(ens.q_star * 0.995, ens.degrees, ens.lam, ens.checks)
    assert not E.converges(ens.q_star * 1.1, ens.degrees, ens.lam, ens.checks)
    row = E.rounded(ens)
    assert sum(w for _, w in row) == pytest.approx(1.0, abs=1e-9)
    assert E.design_rate(row, 1.0 / ens.checks.integral) == pytest.approx(0.8, abs=0.01)


def test_table_rows_are_normalised_and_the_high_rate_row_is_stable_at_its_q_star():
    for rate, row in C.DEGREE_DISTRIBUTIONS.items():
        assert all(d >= 2 for d, _ in row), rate
        # printed rows are rounded copies: within the rounding (and the 1.05 typo of Table I)
        assert sum(w for _, w in row) == pytest.approx(1.0, abs=0.006), rate
    row = C.DEGREE_DISTRIBUTIONS[0.93]
    assert sum(w for _, w in row) == pytest.approx(1.0, abs=1e-9)
    assert max(d for d, _ in row) <= 32


def test_ensemble_tag_follows_the_row_in_use(monkeypatch):
    assert C.ensemble_tag(0.87) == C.ensemble_tag(0.9) != C.ensemble_tag(0.86) == C.ensemble_tag(0.8)
    before = C.ensemble_tag(0.88)
    monkeypatch.setitem(C.DEGREE_DISTRIBUTIONS, 0.93, ((3, 1.0),))
    assert C.ensemble_tag(0.88) != before


@pytest.mark.parametrize("rate", [0.83, 0.86, 0.88])
def test_family_codes_have_the_promised_degrees(rate):
    n = 4096
    code = C.build_code(rate, n, seed=5)
    want = np.minimum(C.variable_degrees(n, C.ensemble_of(rate)), code.m)
    assert np.array_equal(np.sort(np.diff(code.h_csc.indptr)), np.sort(want))
    row_deg = np.diff(code.h.indptr)
    assert row_deg.max() - row_deg.min() <= 2


def test_frame_failures_on_small_frames_same_frames_for_every_row(rng):
    row = C.DEGREE_DISTRIBUTIONS[0.7]
    got = E.frame_failures(lambda r: row, 0.03, [1.6, 1.02], 3, rng, frame_n=2048, key_bits=1500)
    assert [g["f"] for g in got] == [1.6, 1.02] and all(g["frames"] == 3 for g in got)
    assert got[0]["failed"] == 0  # far above this short code's waterfall
    assert got[1]["failed"] == 3  # 2 % above the Shannon limit: 1500-bit frames fail
    again = E.frame_failures(lambda r: row, 0.03, [1.6], 3, np.random.default_rng(0), frame_n=2048,
                             key_bits=1500)
    assert again[0]["rate"] == got[0]["rate"]
    assert E.previous_row(0.88) is C.DEGREE_DISTRIBUTIONS[0.8]
    assert E.previous_row(0.9) is C.DEGREE_DISTRIBUTIONS[0.9]
