"""LDPC core: PEG codes (degrees, girth, references), untainted puncturing, layouts, decoding."""

import numpy as np
import pytest
import scipy.sparse as sp
from numba import njit
from hypothesis import given, settings, strategies as st

from qkdctl.core.errors import QkdInputError
from qkdctl.core.reconcile import codes as C
from qkdctl.core.reconcile import ldpc as L
from tests.naive import ldpc as naive


def _var_chk_from_kernel(var_deg, m, depth, budget, tie_u):
    var_chk, _, _, ok = C._peg_kernel(np.asarray(var_deg, np.int64), m, depth, budget,
                                      np.asarray(tie_u, np.float64), 64)
    assert ok
    return [[int(c) for c in row if c >= 0] for row in var_chk]


def test_peg_kernel_matches_reference_on_hand_case():
    var_deg = [2, 2, 2, 3, 3, 3]
    tie_u = [0.0, 0.5, 0.9, 0.1, 0.3, 0.7, 0.2, 0.6, 0.4, 0.8, 0.05, 0.95, 0.15, 0.55, 0.35]
    got = _var_chk_from_kernel(var_deg, 4, 3, 1000, tie_u)
    assert got == naive.peg(var_deg, 4, 3, 1000, tie_u)
    # first edges go to empty checks; every variable has distinct checks
    assert all(len(set(row)) == len(row) for row in got)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(8, 60), m_frac=st.floats(0.2, 0.6),
       depth=st.integers(1, 4), budget=st.integers(1, 200))
def test_peg_kernel_matches_reference_random(seed, n, m_frac, depth, budget):
    rng = np.random.default_rng(seed)
    m = max(4, int(n * m_frac))
    var_deg = np.sort(rng.integers(1, min(m, 5) + 1, size=n))
    tie_u = rng.random(int(var_deg.sum()))
    got = _var_chk_from_kernel(var_deg, m, depth, budget, tie_u)
    assert got == naive.peg(var_deg.tolist(), m, depth, budget, tie_u)


@pytest.mark.parametrize("rate", [0.5, 0.7, 0.9])
def test_peg_code_has_requested_degrees_and_no_4_cycles(rate):
    n = 3000
    code = C.build_code(rate, n, seed=3)
    want = C.variable_degrees(n, C.ensemble_of(rate))
    assert code.m == round(n * (1 - rate))
    assert np.array_equal(np.sort(np.diff(code.h_csc.indptr)), np.sort(np.minimum(want, code.m)))
    row_deg = np.diff(code.h.indptr)
    assert row_deg.max() - row_deg.min() <= 2  # PEG keeps check degrees concentrated


def _max_shared(h):
    overlap = (h.astype(np.int32) @ h.T.astype(np.int32)).tocoo()
    return overlap.data[overlap.row != overlap.col].max()


def test_peg_has_no_4_cycles_where_guaranteed(rng):
    # every node's distance-3 neighbourhood misses some check, so PEG must avoid 4-cycles
    var_deg = np.sort(rng.choice([2, 3, 4], size=4000, p=[0.4, 0.4, 0.2]))
    h = C.peg_matrix(var_deg, 2000, rng)
    assert _max_shared(h) <= 1  # two checks share at most one variable: girth >= 6
    # a random matrix of the same degrees has 4-cycles: the test can fail
    rows = np.concatenate([rng.choice(2000, d, replace=False) for d in var_deg])
    cols = np.repeat(np.arange(var_deg.size), var_deg)
    rand = sp.csr_matrix((np.ones(rows.size, np.uint8), (rows, cols)), shape=(2000, var_deg.size))
    assert _max_shared(rand) >= 2


def test_family_rates_use_the_tabulated_ensemble_at_or_below_them():
    assert C.FAMILY_RATES[0] == 0.5 and C.FAMILY_RATES[-1] == 0.9 and len(C.FAMILY_RATES) == 41
    assert C.ensemble_of(0.5) is C.DEGREE_DISTRIBUTIONS[0.5]
    assert C.ensemble_of(0.72) is C.DEGREE_DISTRIBUTIONS[0.7]
    assert C.ensemble_of(0.76) is C.DEGREE_DISTRIBUTIONS[0.75]
    for high in (0.8, 0.84, 0.86):  # 0.80-0.86: the rate-0.8 ensemble (see codes.py)
        assert C.ensemble_of(high) is C.DEGREE_DISTRIBUTIONS[0.8]
    for high in (0.87, 0.88, 0.9):  # 0.87-0.90: the optimised high-rate row
        assert C.ensemble_of(high) is C.DEGREE_DISTRIBUTIONS[0.93]
    with pytest.raises(QkdInputError, match="rate 0.815"):
        C.ensemble_of(0.815)
    code = C.build_code(0.86, 2000, seed=3)  # same variable degrees, fewer checks
    want = C.variable_degrees(2000, C.DEGREE_DISTRIBUTIONS[0.8])
    assert code.m == 280 and np.array_equal(np.sort(np.diff(code.h_csc.indptr)), want)


def test_candidate_rates_bracket_the_start_rate():
    rates = C.FAMILY_RATES
    h = L.binary_entropy(0.02)
    # one frame of 50000 key bits in 65536 columns at f = 1.1: r* = 1 - 1.1 h 50000 / 65536
    r_star = 1 - 1.1 * h * 50000 / 65536
    got = L.candidate_rates(rates, 65536, 100000, 0.02, 1.1)
    assert got == [0.87, 0.88] and got[-1] <= r_star < got[-1] + 0.01
    assert L.candidate_rates(rates, 65536, 100000, 0.3, 1.1) == [0.5, 0.51]  # beyond rate 0.5
    assert L.candidate_rates((0.5, 0.9), 1000, 100, 0.001, 1.1) == [0.5, 0.9]
    with pytest.raises(QkdInputError, match="n_key"):
        L.candidate_rates(rates, 1000, 0, 0.02, 1.1)


def test_variable_degrees_follow_edge_distribution():
    degs = C.variable_degrees(10000, ((2, 0.5), (4, 0.5)))
    # node fractions L2 = (0.5/2)/(0.5/2+0.5/4) = 2/3
    assert np.count_nonzero(degs == 2) == 6667 and degs.size == 10000
    assert np.all(np.diff(degs) >= 0)


def test_build_code_is_deterministic_and_validates():
    a = C.build_code(0.8, 512, seed=9)
    b = C.build_code(0.8, 512, seed=9)
    assert (a.h != b.h).nnz == 0 and np.array_equal(a.puncture_order, b.puncture_order)
    with pytest.raises(QkdInputError, match="rate"):
        C.build_code(0.42, 512, seed=1)
    with pytest.raises(QkdInputError, match="length"):
        C.build_code(0.8, 10, seed=1)
    with pytest.raises(QkdInputError, match="rng"):
        C.peg_matrix(np.array([2, 2]), 2, rng=1)
    with pytest.raises(QkdInputError, match="degrees"):
        C.peg_matrix(np.array([2, 5]), 3, np.random.default_rng(0))


def test_untainted_order_matches_reference_and_is_untainted(rng):
    code = C.build_code(0.7, 800, seed=2)
    dense = code.h.toarray()
    order = np.argsort(np.diff(code.h_csc.indptr), kind="stable").astype(np.int64)
    got = C._untainted_kernel(code.h.indptr.astype(np.int64), code.h.indices.astype(np.int64),
                              code.h_csc.indptr.astype(np.int64), code.h_csc.indices.astype(np.int64),
                              order)
    assert got.tolist() == naive.untainted(dense, order)
    cols = dense[:, code.puncture_order]
    assert cols.sum(axis=1).max() <= 1  # no check touches two punctured columns
    fill = code.fill_order
    assert np.array_equal(np.sort(fill), np.arange(code.n))
    assert set(fill[-code.puncture_order.size:].tolist()) == set(code.puncture_order.tolist())


def test_syndrome_kernel_matches_reference(rng):
    code = C.build_code(0.75, 400, seed=4)
    dense = code.h.toarray()
    tiny = np.zeros(code.n, np.uint8)
    tiny[[0, 5]] = 1
    assert np.array_equal(L.syndrome(code, tiny), naive.syndrome(dense, tiny))
    for _ in range(5):
        x = rng.integers(0, 2, code.n, dtype=np.uint8)
        assert np.array_equal(L.syndrome(code, x), naive.syndrome(dense, x))
    with pytest.raises(QkdInputError, match="frame"):
        L.syndrome(code, np.zeros(code.n - 1, np.uint8))


def test_frame_layout_partitions_columns():
    code = C.build_code(0.8, 1024, seed=5)
    lay = L.frame_layout(code, 700, 30)
    allpos = np.concatenate([lay.key_pos, lay.punct_pos, lay.short_pos])
    assert np.array_equal(np.sort(allpos), np.arange(code.n))
    assert lay.k == 700 and lay.short_pos.size == 1024 - 700 - 30
    with pytest.raises(QkdInputError, match="punct"):
        L.frame_layout(code, 10, code.puncture_order.size + 1)
    with pytest.raises(QkdInputError, match="key bits"):
        L.frame_layout(code, 1024, 30)


def test_choose_layout_reaches_start_efficiency_and_shortens_for_high_qber():
    codes = {r: C.build_code(r, 2048, seed=6) for r in (0.5, 0.7, 0.9)}
    h = L.binary_entropy(0.03)
    lay = L.choose_layout(codes, 10**6, 0.03, 1.1, 0.05)
    f = (lay.code.m - lay.punct_pos.size) / (lay.k * h)
    assert abs(f - 1.1) < 0.01
    assert lay.punct_pos.size <= 0.05 * 2048
    # 1.5 frames' worth of key: two equal frames, more puncturing keeps f near its start
    k_full = lay.k
    two = L.choose_layout(codes, int(1.5 * k_full), 0.03, 1.1, 0.05)
    assert two.k == -(-int(1.5 * k_full) // 2)
    f_two = (two.code.m - two.punct_pos.size) / (two.k * h)
    capped = L.frame_layout(lay.code, two.k, lay.punct_pos.size)  # same code, p not raised
    assert f_two <= (capped.code.m - capped.punct_pos.size) / (capped.k * h) < 1.6
    high = L.choose_layout(codes, 10**6, 0.2, 1.1, 0.05)  # beyond rate 0.5: shorten
    f_high = (high.code.m - high.punct_pos.size) / (high.k * L.binary_entropy(0.2))
    assert abs(f_high - 1.1) < 0.01 and high.short_pos.size > 0.3 * high.k
    assert L.choose_layout(codes, 100, 0.03, 1.1, 0.05).k == 100
    with pytest.raises(QkdInputError, match="qber"):
        L.choose_layout(codes, 10**6, 0.0, 1.1, 0.05)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_bp_decoding_recovers_alice_frame(seed):
    rng = np.random.default_rng(seed)
    code = C.build_code(0.7, 2048, seed=8)
    q = 0.02
    lay = L.frame_layout(code, 1900, 60)
    dec = L.SyndromeDecoder(code, max_iter=60)
    ka = rng.integers(0, 2, lay.k, dtype=np.uint8)
    kb = ka ^ (rng.random(lay.k) < q).astype(np.uint8)
    pad = rng.integers(0, 2, lay.punct_pos.size, dtype=np.uint8)
    s_a = L.syndrome(code, L.frame_bits(lay, ka, pad))
    y = L.frame_bits(lay, kb, np.zeros_like(pad))
    res = dec.decode(L.syndrome(code, y) ^ s_a, L.error_priors(lay, q, np.zeros(0, np.int64)))
    assert res.converged
    assert np.array_equal((y ^ res.error)[lay.key_pos], ka)


def test_reveal_positions_punctured_first_then_least_reliable():
    code = C.build_code(0.8, 512, seed=5)
    lay = L.frame_layout(code, 400, 3)
    known = np.zeros(code.n, bool)
    llr = np.full(code.n, 5.0)
    llr[lay.key_pos[7]] = 0.1
    pos = L.reveal_positions(lay, known, llr, 4)
    assert pos[:3].tolist() == lay.punct_pos.tolist() and pos[3] == lay.key_pos[7]
    known[pos] = True
    assert lay.key_pos[7] not in L.reveal_positions(lay, known, llr, 2)


def _rows(code):
    return [code.h.indices[code.h.indptr[r]:code.h.indptr[r + 1]].tolist() for r in range(code.m)]


@pytest.mark.parametrize("bp_method", ["product_sum", "minimum_sum"])
def test_layered_decoder_matches_reference(bp_method, rng):
    code = C.build_code(0.75, 128, seed=11)
    rows = _rows(code)
    converged = 0
    for trial in range(4):
        e = (rng.random(code.n) < 0.03).astype(np.uint8)
        if trial == 0:
            e[:] = 0
            e[[3, 70]] = 1  # hand case: two errors
        target = L.syndrome(code, e)
        priors = np.full(code.n, 0.03)
        priors[:5] = 0.5  # punctured-like columns
        llr0 = L._prior_llr(priors)
        dec = L.SyndromeDecoder(code, max_iter=20, bp_method=bp_method, alpha=0.75, stall_iter=6)
        got = dec.decode(target, priors)
        want_err, want_post, want_it, want_ok = naive.layered_decode(
            rows, target.tolist(), llr0.astype(np.float64), 20, 0.75, bp_method == "product_sum", 6)
        assert got.converged == want_ok and got.iterations == want_it
        if want_ok:  # a failed run may end on float32-vs-float64 ties of punctured columns
            assert got.error.tolist() == want_err
            np.testing.assert_allclose(got.llr, want_post, rtol=0.02, atol=0.05)
        converged += want_ok
    assert converged >= 3


def _phi_lut(x, table):
    bits = int(np.array([x], np.float32).view(np.int32)[0])
    assert bits == L._float_bits(np.float32(x)) == _bits_of(np.float32(x))  # python and compiled
    return table[L._phi_index(bits, table.size - 1)]


@njit
def _bits_of(x):
    return L._float_bits(x)


def test_phi_table_bins_bracket_exact_phi():
    table = L.phi_table()
    width = 2.0 ** -L.PHI_MANT_BITS  # relative width of a bin
    for x in np.geomspace(2.0**-19, 60.0, 3000).astype(np.float32):
        got = _phi_lut(x, table)
        # phi decreases: the bin's value lies between phi at the bin's ends
        assert naive.phi(x * (1 + width)) * (1 - 1e-6) <= got <= naive.phi(x * (1 - width)) * (1 + 1e-6)
    assert _phi_lut(1.0, table) == pytest.approx(naive.phi(1.0), abs=4e-3)
    # outside the table: tiny and zero inputs get phi(2^-20), huge ones ~0
    assert _phi_lut(0.0, table) == _phi_lut(1e-9, table) == pytest.approx(naive.phi(2.0**-20), rel=1e-2)
    assert _phi_lut(1e6, table) < 1e-20


def test_decoder_backends_agree_on_easy_frames(rng):
    code = C.build_code(0.7, 1024, seed=12)
    e = (rng.random(code.n) < 0.01).astype(np.uint8)
    target = L.syndrome(code, e)
    priors = np.full(code.n, 0.01)
    for dec in (L.SyndromeDecoder(code), L.SyndromeDecoder(code, backend="ldpc"),
                L.SyndromeDecoder(code, bp_method="minimum_sum")):
        res = dec.decode(target, priors)
        assert res.converged and np.array_equal(res.error, e)
    with pytest.raises(QkdInputError, match="backend"):
        L.SyndromeDecoder(code, backend="gpu")
    with pytest.raises(QkdInputError, match="target"):
        L.SyndromeDecoder(code).decode(target[:-1], priors)


def test_resumed_decoding_matches_reference(rng):
    code = C.build_code(0.8, 256, seed=13)
    rows = _rows(code)
    e = (rng.random(code.n) < 0.06).astype(np.uint8)
    target = L.syndrome(code, e)
    lay = L.frame_layout(code, code.n - 10, 10)
    dec = L.SyndromeDecoder(code, max_iter=3, stall_iter=100)
    first = dec.decode(target, L.error_priors(lay, 0.06))
    ref_msgs = [[0.0] * len(cols) for cols in rows]
    naive.layered_decode(rows, target.tolist(), L._prior_llr(L.error_priors(lay, 0.06)).astype(float),
                         3, 0.8, True, 100, ref_msgs)
    # Alice reveals 20 bits: Bob now knows e there; resume from the stored messages
    known = np.flatnonzero(e)[:10]
    known = np.concatenate([known, np.flatnonzero(e == 0)[:10]])
    priors = L.error_priors(lay, 0.06, known, e[known])
    assert priors[known[0]] > 0.99 and priors[known[-1]] < 0.01
    again = L.SyndromeDecoder(code, max_iter=20, stall_iter=100).decode(target, priors, first.state)
    want_err, want_post, want_it, want_ok = naive.layered_decode(
        rows, target.tolist(), L._prior_llr(priors).astype(float), 20, 0.8, True, 100, ref_msgs)
    assert again.iterations == want_it and again.converged == want_ok
    assert again.error.tolist() == want_err
    np.testing.assert_allclose(again.llr, want_post, rtol=0.02, atol=0.05)
    with pytest.raises(QkdInputError, match="state"):
        dec.decode(target, priors, np.zeros(3, np.float32))


def test_decode_many_matches_frame_by_frame_and_resumes(rng):
    code = C.build_code(0.75, 512, seed=14)
    errs = [(rng.random(code.n) < q).astype(np.uint8) for q in (0.01, 0.03, 0.2)]
    targets = [L.syndrome(code, e) for e in errs]
    priors = [np.full(code.n, q) for q in (0.01, 0.03, 0.03)]
    dec = L.SyndromeDecoder(code, max_iter=30, stall_iter=6)
    many = dec.decode_many(targets, priors)
    for e, t, p, got in zip(errs, targets, priors, many):
        one = dec.decode(t, p)
        assert got.iterations == one.iterations and got.converged == one.converged
        assert np.array_equal(got.error, one.error) and np.array_equal(got.llr, one.llr)
        assert np.array_equal(got.state, one.state)
    assert many[0].converged and np.array_equal(many[0].error, errs[0])
    assert not many[2].converged  # QBER 20 % on a rate-0.75 code
    state = np.zeros(code.h.nnz, np.float32)
    again = dec.decode_many(targets[1:2], priors[1:2], [state])[0]
    assert again.state is state and np.array_equal(state, many[1].state)
    with pytest.raises(QkdInputError, match="equally many"):
        dec.decode_many(targets, priors[:2])
    with pytest.raises(QkdInputError, match="layered"):
        L.SyndromeDecoder(code, backend="ldpc").decode_many(targets, priors)


def test_choose_layout_caps_puncturing_at_a_share_of_the_checks():
    codes = {r: C.build_code(r, 2048, seed=6) for r in (0.5, 0.7, 0.9)}
    for q in (0.004, 0.01, 0.03):
        for n_key in (1500, 3000, 10**5):
            lay = L.choose_layout(codes, n_key, q, 1.1, 0.0)
            assert lay.punct_pos.size <= L.MAX_PUNCT_SHARE * lay.code.m
    # QBER 0.4 %: reaching f = 1.1 on the rate-0.9 code would puncture beyond the cap
    low = L.choose_layout(codes, 1800, 0.004, 1.1, 0.0)
    assert low.punct_pos.size == int(L.MAX_PUNCT_SHARE * low.code.m)


def test_decoder_leaves_shortened_columns_out_without_changing_the_result(rng):
    code = C.build_code(0.8, 2048, seed=15)
    lay = L.frame_layout(code, 1500, 40)  # 508 shortened columns
    cols = np.sort(np.concatenate([lay.key_pos, lay.punct_pos]))
    full = L.SyndromeDecoder(code, max_iter=40, stall_iter=8)
    part = L.SyndromeDecoder(code, max_iter=40, stall_iter=8, columns=cols)
    assert part._indices.size < 0.8 * full._indices.size
    for q in (0.01, 0.025, 0.2):
        e = np.zeros(code.n, np.uint8)
        e[lay.key_pos] = rng.random(lay.k) < q
        e[lay.punct_pos] = rng.integers(0, 2, lay.punct_pos.size)
        priors = L.error_priors(lay, q)
        a, b = full.decode(L.syndrome(code, e), priors), part.decode(L.syndrome(code, e), priors)
        assert (a.converged, a.iterations) == (b.converged, b.iterations)
        assert np.array_equal(a.error, b.error) and not b.error[lay.short_pos].any()
        assert np.all(b.llr[lay.short_pos] > 20)
        if q < 0.1:
            assert b.converged and np.array_equal(b.error, e)
    for bad in (cols[::-1], np.array([code.n]), np.zeros(0, np.int64)):
        with pytest.raises(QkdInputError, match="columns"):
            L.SyndromeDecoder(code, columns=bad)
    with pytest.raises(QkdInputError, match="layered"):
        L.SyndromeDecoder(code, backend="ldpc", columns=cols)


def test_key_share_caps_the_key_bits_of_a_frame_and_moves_the_candidate_rates():
    codes = {r: C.build_code(r, 2048, seed=6) for r in (0.5, 0.7, 0.9)}
    full = L.choose_layout(codes, 10**5, 0.03, 1.1, 0.05)
    capped = L.choose_layout(codes, 10**5, 0.03, 1.1, 0.05, key_share=0.3)
    assert capped.k <= 0.3 * 2048 < full.k
    # 100000 key bits, frames of at most 0.77 * 65536 = 50462 key bits: 2 frames of 50000
    assert L.candidate_rates(C.FAMILY_RATES, 65536, 100000, 0.02, 1.1, key_share=0.77) == [0.87, 0.88]
    # 1e6 key bits in 131072 columns: 8 frames of 125000 at share 1, 10 of 100000 at 0.77
    r8 = L.candidate_rates(C.FAMILY_RATES, 131072, 10**6, 0.02, 1.09)
    r10 = L.candidate_rates(C.FAMILY_RATES, 131072, 10**6, 0.02, 1.09, key_share=0.77)
    assert r8[-1] < r10[-1] <= 1 - 1.09 * L.binary_entropy(0.02) * 100000 / 131072
    with pytest.raises(QkdInputError, match="key_share"):
        L.choose_layout(codes, 10**5, 0.03, 1.1, 0.05, key_share=0.0)
