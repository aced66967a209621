"""Quasi-cyclic LDPC codes and the lane-vectorised layered decoder, against plain references."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from numba import njit

from qkdctl.core.errors import QkdInputError
from qkdctl.core.reconcile import codes as C
from qkdctl.core.reconcile import ldpc as L
from qkdctl.core.reconcile import qc_codes as Q
from qkdctl.core.reconcile import qc_decoder as D
from tests.naive import ldpc as naive_ldpc
from tests.naive import qc_ldpc as naive


def test_lifted_matrix_matches_reference_on_hand_case():
    shifts = np.array([[0, 2, -1], [1, -1, 3]])
    h = Q.lifted_matrix(shifts, 4)
    rows = [h.indices[h.indptr[r]:h.indptr[r + 1]].tolist() for r in range(h.shape[0])]
    assert rows == naive.lifted_rows(shifts.tolist(), 4)
    assert rows[0] == [0, 6] and rows[5] == [2, 8]  # check 1*4+1: (1+1)%4 and 8+(1+3)%4
    with pytest.raises(QkdInputError, match="shifts"):
        Q.lifted_matrix(shifts, 3)


def _shift_case(rng, mb, nb, z, density):
    present = rng.random((mb, nb)) < density
    present[0, :] = True  # no empty column
    order = rng.permutation(nb).astype(np.int64)
    tie_u = rng.random(int(present.sum()))
    return present, order, tie_u


def test_shift_kernel_matches_reference_on_hand_case():
    present = np.array([[1, 1, 1], [1, 1, 0], [1, 0, 1]], bool)
    order = np.array([0, 1, 2], np.int64)
    tie_u = np.array([0.0, 0.5, 0.25, 0.0, 0.75, 0.5, 0.1])
    got, forced = Q._shift_kernel(present, order, 5, tie_u, 8, 20)
    want, want_forced = naive.choose_shifts(present.tolist(), order.tolist(), 5, tie_u, 8, 20)
    assert got.tolist() == want and forced == want_forced == 0
    # the first column takes its draw; later edges avoid 4-cycles
    assert got[0, 0] == 0 and got[1, 0] == 2 and got[2, 0] == 1


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31), mb=st.integers(2, 5), nb=st.integers(3, 7), z=st.integers(2, 9),
       density=st.floats(0.3, 0.9), max_len=st.integers(2, 6), min_weight=st.integers(1, 40))
def test_shift_kernel_matches_reference_random(seed, mb, nb, z, density, max_len, min_weight):
    rng = np.random.default_rng(seed)
    present, order, tie_u = _shift_case(rng, mb, nb, z, density)
    got, forced = Q._shift_kernel(present, order, z, tie_u, max_len, min_weight)
    want, want_forced = naive.choose_shifts(present.tolist(), order.tolist(), z, tie_u, max_len, min_weight)
    assert got.tolist() == want and forced == want_forced
    if forced == 0:  # girth >= 6 claimed: check it on the lifted graph
        assert naive.four_cycles(naive.lifted_rows(want, z)) == 0


def test_shifts_keep_degree_2_cycles_from_lifting_to_light_codewords():
    # rate-0.88 base: 18 degree-2 columns on 8 rows must close cycles among themselves
    rate, nb, z = 0.88, 64, 64
    degs = np.minimum(C.variable_degrees(nb, C.ensemble_of(rate)), 8)
    base = C.peg_matrix(degs, 8, np.random.default_rng(1)).toarray().astype(bool)
    plain, _ = Q.choose_shifts(base, z, np.random.default_rng(2), min_weight=1)
    kept, _ = Q.choose_shifts(base, z, np.random.default_rng(2), max_len=6, min_weight=128)
    light_plain = naive.lightest_deg2_word(plain.tolist(), z, 6)
    light_kept = naive.lightest_deg2_word(kept.tolist(), z, 6)
    assert light_kept >= 16 > light_plain


@pytest.mark.parametrize("rate", [0.5, 0.7, 0.9])
def test_qc_code_lifts_the_ensemble_without_4_cycles(rate):
    # (at n = 4096, z = 32 the high-degree columns leave some edges no 4-cycle-free shift:
    # `four_cycles` counts them)
    code = Q.build_qc_code(rate, 8192, seed=3, z=64)
    mb, nb = code.shifts.shape
    assert nb == 128 and mb == round(nb * (1 - rate)) and code.m == mb * 64
    want = np.minimum(C.variable_degrees(nb, C.ensemble_of(rate)), mb)
    assert np.array_equal(np.sort((code.shifts >= 0).sum(axis=0)), np.sort(want))
    assert code.four_cycles == 0
    h = code.h.astype(np.int32)
    overlap = (h @ h.T).tocoo()
    assert overlap.data[overlap.row != overlap.col].max() == 1  # no two columns share 2 checks
    # every column of a block has its base column's degree; checks of a layer its row degree
    col_deg = np.diff(code.h_csc.indptr).reshape(nb, 64)
    assert np.all(col_deg == col_deg[:, :1])


@pytest.mark.parametrize("rate, n, z", [(0.75, 384, 12), (0.8, 640, 16), (0.9, 1280, 32)])
def test_four_cycle_count_agrees_with_reference(rate, n, z):
    code = Q.build_qc_code(rate, n, seed=5, z=z)
    lifted = naive.four_cycles(naive.lifted_rows(code.shifts.tolist(), z))
    assert (code.four_cycles == 0) == (lifted == 0)


def test_block_puncturing_is_untainted_and_shortening_takes_whole_blocks():
    z = 16
    code = Q.build_qc_code(0.8, 2048, seed=4, z=z)
    punct = code.puncture_order
    assert punct.size % z == 0 and punct.size > 0
    sub = code.h_csc[:, punct]
    assert np.diff(sub.tocsr().indptr).max() == 1  # each check meets at most one punctured column
    blocks = code.fill_order.reshape(-1, z)
    assert np.all(blocks == blocks[:, :1] + np.arange(z)) and np.all(blocks[:, 0] % z == 0)
    assert np.array_equal(np.sort(code.fill_order), np.arange(code.n))
    assert set(code.fill_order[-punct.size:]) == set(punct)  # punctured blocks last
    lay = L.frame_layout(code, code.n - 5 * z - 3, 0)
    assert np.isin(np.arange(code.n)[code.fill_order[:5 * z]], lay.short_pos).all()


def test_stratified_block_order_keeps_degree_mix_in_every_prefix(rng):
    degrees = np.repeat([2, 3, 8], [40, 50, 10])
    order = Q.stratified_block_order(degrees, rng)
    assert np.array_equal(np.sort(order), np.arange(100))
    for prefix in (10, 30, 55):
        counts = np.bincount(np.searchsorted([2, 3, 8], degrees[order[:prefix]]), minlength=3)
        assert np.all(np.abs(counts - prefix * np.array([0.4, 0.5, 0.1])) <= 1.0)


def test_build_qc_code_validates_and_is_deterministic():
    a, b = Q.build_qc_code(0.7, 512, 9, 16), Q.build_qc_code(0.7, 512, 9, 16)
    assert np.array_equal(a.shifts, b.shifts) and np.array_equal(a.fill_order, b.fill_order)
    for bad in ((0.7, 500, 9, 16), (0.7, 64, 9, 16), (0.7, 512, 9, 0)):
        with pytest.raises(QkdInputError, match="multiple"):
            Q.build_qc_code(*bad)
    with pytest.raises(QkdInputError, match="quasi-cyclic"):
        D.QcSyndromeDecoder(C.build_code(0.7, 512, 9))
    with pytest.raises(QkdInputError, match="phi"):
        D.QcSyndromeDecoder(a, phi="exact")


@njit(error_model="numpy")
def _phi_poly_all(x, out):
    for i in range(x.shape[0]):
        out[i] = D._phi_poly(x[i])


def test_polynomial_phi_matches_exact_phi():
    x = np.concatenate([np.geomspace(2.0**-22, 45.0, 4000), [0.0, 0.25, 1.386, 1.3863]]).astype(np.float32)
    got = np.empty_like(x)
    _phi_poly_all(x, got)
    want = np.array([naive.phi(v) for v in x])
    np.testing.assert_allclose(got, want, rtol=3e-5, atol=1e-12)


@njit(error_model="numpy")
def _tanh_pair_all(x, y, t_out, a_out):
    for i in range(x.shape[0]):
        t_out[i] = D._tanh_half(x[i])
    for i in range(y.shape[0]):
        a_out[i] = D._two_atanh(y[i])


def test_tanh_domain_functions_match_exact_ones():
    x = np.concatenate([np.geomspace(1e-9, 45.0, 3000), [0.0, 0.25]]).astype(np.float32)
    y = np.concatenate([np.linspace(0.0, 1.0, 3001), 1 - np.geomspace(1e-7, 1e-2, 50)]).astype(np.float32)
    t_out, a_out = np.empty_like(x), np.empty_like(y)
    _tanh_pair_all(x, y, t_out, a_out)
    np.testing.assert_allclose(t_out, np.tanh(np.minimum(x.astype(float), 40.0) / 2), rtol=3e-5, atol=1e-12)
    y64 = y.astype(float)
    with np.errstate(divide="ignore"):
        want = np.minimum(np.log((1 + y64) / (1 - y64)), naive.phi(2.0**-20))
    np.testing.assert_allclose(a_out, want, rtol=3e-5, atol=1e-6)


@pytest.fixture(scope="module")
def small_qc():
    return Q.build_qc_code(0.75, 512, seed=11, z=16)


def _state_as_rows(dec, state):
    """The decoder's edge-major messages as the reference's per-check lists."""
    z = dec.code.z
    rows = []
    for layer in range(dec._layer_ptr.size - 1):
        lo, hi = dec._layer_ptr[layer], dec._layer_ptr[layer + 1]
        for t in range(z):
            rows.append([float(state[e * z + t]) for e in range(lo, hi)])
    return rows


@pytest.mark.parametrize("phi, rtol", [("table", 0.02), ("poly", 1e-3), ("tanh", 1e-3)])
def test_one_sweep_gives_the_reference_messages(small_qc, phi, rtol, rng):
    code = small_qc
    rows = naive.lifted_rows(code.shifts.tolist(), code.z)
    e = (rng.random(code.n) < 0.05).astype(np.uint8)
    target = L.syndrome(code, e)
    priors = np.full(code.n, 0.05)
    priors[code.puncture_order[:16]] = 0.5
    llr0 = L._prior_llr(priors)
    dec = D.QcSyndromeDecoder(code, max_iter=1, stall_iter=100, phi=phi)
    got = dec.decode(target, priors)
    ref = [[0.0] * len(cols) for cols in rows]
    _, want_post, _, _ = naive_ldpc.layered_decode(rows, target.tolist(), llr0.astype(float), 1, 1.0,
                                                   True, 100, ref)
    np.testing.assert_allclose(np.concatenate(_state_as_rows(dec, got.state)), np.concatenate(ref),
                               rtol=rtol, atol=0.05 if phi == "table" else 1e-3)
    np.testing.assert_allclose(got.llr, want_post, rtol=rtol, atol=0.05 if phi == "table" else 1e-3)


@pytest.mark.parametrize("phi", ["table", "poly", "tanh"])
def test_decoder_matches_reference_and_generic_decoder(small_qc, phi, rng):
    code = small_qc
    rows = naive.lifted_rows(code.shifts.tolist(), code.z)
    converged = 0
    for trial in range(4):
        e = (rng.random(code.n) < 0.02).astype(np.uint8)
        if trial == 0:
            e[:] = 0
            e[[3, 300]] = 1  # hand case: two errors
        target = L.syndrome(code, e)
        priors = np.full(code.n, 0.02)
        llr0 = L._prior_llr(priors)
        got = D.QcSyndromeDecoder(code, max_iter=20, stall_iter=6, phi=phi).decode(target, priors)
        want_err, want_post, want_it, want_ok = naive_ldpc.layered_decode(
            rows, target.tolist(), llr0.astype(np.float64), 20, 1.0, True, 6)
        assert got.converged == want_ok and got.iterations == want_it
        if want_ok:
            assert got.error.tolist() == want_err and np.array_equal(got.error, e)
            np.testing.assert_allclose(got.llr, want_post, rtol=0.02, atol=0.05)
        generic = L.SyndromeDecoder(code, max_iter=20, stall_iter=6).decode(target, priors)
        assert (generic.converged, generic.iterations) == (got.converged, got.iterations)
        converged += want_ok
    assert converged >= 3


@pytest.mark.parametrize("phi", ["poly", "tanh"])
def test_resumed_decoding_matches_reference(small_qc, phi, rng):
    code = small_qc
    rows = naive.lifted_rows(code.shifts.tolist(), code.z)
    e = (rng.random(code.n) < 0.07).astype(np.uint8)
    target = L.syndrome(code, e)
    lay = L.frame_layout(code, code.n - 32, 32)
    dec = D.QcSyndromeDecoder(code, max_iter=3, stall_iter=100, phi=phi)
    first = dec.decode(target, L.error_priors(lay, 0.07))
    ref = [[0.0] * len(cols) for cols in rows]
    naive_ldpc.layered_decode(rows, target.tolist(), L._prior_llr(L.error_priors(lay, 0.07)).astype(float),
                              3, 1.0, True, 100, ref)
    known = np.concatenate([np.flatnonzero(e)[:12], np.flatnonzero(e == 0)[:12]])
    priors = L.error_priors(lay, 0.07, known, e[known])
    again = D.QcSyndromeDecoder(code, max_iter=20, stall_iter=100, phi=phi).decode(target, priors, first.state)
    want_err, want_post, want_it, want_ok = naive_ldpc.layered_decode(
        rows, target.tolist(), L._prior_llr(priors).astype(float), 20, 1.0, True, 100, ref)
    assert again.iterations == want_it and again.converged == want_ok
    assert again.error.tolist() == want_err
    np.testing.assert_allclose(again.llr, want_post, rtol=2e-3, atol=2e-3)
    with pytest.raises(QkdInputError, match="state"):
        dec.decode(target, priors, np.zeros(3, np.float32))


def test_decode_many_matches_frame_by_frame(small_qc, rng):
    code = small_qc
    errs = [(rng.random(code.n) < q).astype(np.uint8) for q in (0.01, 0.03, 0.2)]
    targets = [L.syndrome(code, e) for e in errs]
    priors = [np.full(code.n, q) for q in (0.01, 0.03, 0.03)]
    dec = D.QcSyndromeDecoder(code, max_iter=30, stall_iter=6, phi="tanh")
    many = dec.decode_many(targets, priors)
    for t, p, got in zip(targets, priors, many):
        one = dec.decode(t, p)
        assert (got.iterations, got.converged) == (one.iterations, one.converged)
        assert np.array_equal(got.error, one.error) and np.array_equal(got.state, one.state)
    assert many[0].converged and np.array_equal(many[0].error, errs[0])
    assert not many[2].converged
    with pytest.raises(QkdInputError, match="equally many"):
        dec.decode_many(targets, priors[:2])


def test_shortened_blocks_are_left_out_without_changing_the_result(rng):
    z = 16
    code = Q.build_qc_code(0.8, 2048, seed=15, z=z)
    lay = L.frame_layout(code, 1500, 32)  # 516 shortened columns: 32 whole blocks and 4 columns
    cols = np.sort(np.concatenate([lay.key_pos, lay.punct_pos]))
    full = D.QcSyndromeDecoder(code, max_iter=40, stall_iter=8)
    part = D.QcSyndromeDecoder(code, max_iter=40, stall_iter=8, columns=cols)
    assert part._blocks.size == code.n // z - 32 and part.n_edges < 0.85 * full.n_edges
    for q in (0.01, 0.025, 0.2):
        e = np.zeros(code.n, np.uint8)
        e[lay.key_pos] = rng.random(lay.k) < q
        e[lay.punct_pos] = rng.integers(0, 2, lay.punct_pos.size)
        priors = L.error_priors(lay, q)
        a, b = full.decode(L.syndrome(code, e), priors), part.decode(L.syndrome(code, e), priors)
        assert (a.converged, a.iterations) == (b.converged, b.iterations)
        assert np.array_equal(a.error, b.error) and not b.error[lay.short_pos].any()
        if q < 0.1:
            assert b.converged and np.array_equal(b.error, e)
    with pytest.raises(QkdInputError, match="columns"):
        D.QcSyndromeDecoder(code, columns=np.array([code.n]))


def test_qc_syndrome_matches_reference_on_hand_case():
    shifts = np.array([[0, 2, -1], [1, -1, 3]])
    code = Q.QcLdpcCode(h=Q.lifted_matrix(shifts, 4), h_csc=None, puncture_order=np.arange(0),
                        fill_order=np.arange(12), rate=0.33, seed=0, z=4, shifts=shifts, four_cycles=0)
    bits = np.array([1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0], np.uint8)
    # check 0: bits 0 and 4 + 2 = 6 -> 1 ^ 1; check 6 (row 1, t = 2): bits 3 and 8 + 1 -> 0 ^ 1;
    # check 7: bits 0 and 8 + 2 -> 1 ^ 0
    assert Q.qc_syndrome(code, bits).tolist() == [0, 0, 0, 0, 0, 0, 1, 1]
    assert naive.syndrome(shifts.tolist(), 4, bits.tolist()) == [0, 0, 0, 0, 0, 0, 1, 1]
    with pytest.raises(QkdInputError, match="frame"):
        Q.qc_syndrome(code, bits[:-1])


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), mb=st.integers(1, 5), nb=st.integers(1, 8), z=st.integers(1, 9))
def test_qc_syndrome_matches_reference_and_lifted_matrix_random(seed, mb, nb, z):
    rng = np.random.default_rng(seed)
    shifts = np.where(rng.random((mb, nb)) < 0.6, rng.integers(0, z, (mb, nb)), -1)
    h = Q.lifted_matrix(shifts, z)
    code = Q.QcLdpcCode(h=h, h_csc=h.tocsc(), puncture_order=np.arange(0), fill_order=np.arange(nb * z),
                        rate=0.5, seed=0, z=z, shifts=shifts, four_cycles=0)
    bits = rng.integers(0, 2, nb * z, dtype=np.uint8)
    got = Q.qc_syndrome(code, bits)
    assert got.tolist() == naive.syndrome(shifts.tolist(), z, bits.tolist())
    assert np.array_equal(got, L.syndrome(code, bits))


def test_lone_resumed_frame_updates_state_in_place_like_a_batch(small_qc, rng):
    code = small_qc
    errs = [(rng.random(code.n) < 0.06).astype(np.uint8) for _ in range(2)]
    targets = [L.syndrome(code, e) for e in errs]
    priors = [np.full(code.n, 0.06)] * 2
    dec = D.QcSyndromeDecoder(code, max_iter=2, stall_iter=100, phi="tanh")
    first = dec.decode_many(targets, priors)
    alone_state = first[0].state.copy()
    batch_states = [first[0].state.copy(), first[1].state.copy()]
    alone = dec.decode(targets[0], priors[0], alone_state)
    batch = dec.decode_many(targets, priors, batch_states)
    assert alone.state is alone_state and batch[0].state is batch_states[0]
    assert not np.array_equal(alone_state, first[0].state)  # two more sweeps moved the messages
    assert np.array_equal(alone_state, batch_states[0]) and np.array_equal(alone.llr, batch[0].llr)
    assert alone.iterations == batch[0].iterations
    with pytest.raises(QkdInputError, match="contiguous"):
        dec.decode(targets[0], priors[0], np.zeros(2 * dec.n_edges, np.float32)[::2])
