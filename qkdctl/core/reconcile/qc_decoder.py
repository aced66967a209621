"""Row-layered sum-product decoding of quasi-cyclic codes, vectorised over the Z checks of a layer.

A base row of a `QcLdpcCode` is a layer of Z checks that share no variable; check t of
layer i meets, for every base edge (i, j) of shift s, variable j Z + (t + s) mod Z.  The
decoder takes one layer at a time and runs every step over the Z lanes of contiguous
float32 arrays: the posterior slice of each circulant is gathered as two contiguous copies
(the rotation), then q = post - r, the sign and hard-decision parities (two bits of one
int32 per lane) and the sum of phi(|q|), then
r = sign phi(total - phi(|q|)) and post = q + r, and the slice is scattered back; LLVM
turns these loops into AVX2/AVX-512 code.  The messages are the same as those of the
generic layered decoder (`qkdctl.core.reconcile.ldpc`) with checks in the order i Z + t.

phi(x) = -log tanh(x/2) is either read from the float-bits-indexed table of the generic
decoder ("table": one lookup per lane; on the AMD Zen 4 here LLVM emits no gather, the
lookups stay scalar) or computed ("poly": phi = ln((1 + u) / (1 - u)),
u = e^-x from 2^round(.) times a degree-4 polynomial, 1 - u by its series below x = 1/4,
the logarithm from the float's exponent and a degree-6 polynomial in the mantissa, one
division; for u < 1/4, phi = 2 atanh(u) by its series: relative error below 2e-5 for
2^-20 <= x <= 40, no table, no gather).

"tanh" replaces the phi sums by products (the same sum-product rule): pass 1 stores
t = tanh(|q|/2) = (1 - u) / (1 + u) per edge and the product of the layer's earlier t
(prefix), pass 2 runs over the layer's edges backwards with the product of the later t
(suffix) and sets |r| = 2 atanh(prefix suffix) = ln((1 + y) / (1 - y)), capped at
phi(2^-20) like the other modes: one exponential and one logarithm per edge instead of
two of each (no division by a t, so q = 0 on a punctured bit is exact).

Stopping rule and resumption as in the generic decoder: the hard decisions' unsatisfied
checks are counted per layer as the sweep meets them; at 0, one exact syndrome check
confirms; `stall_iter` sweeps without a new least count give up; the check-to-variable
messages (`state`) let a blind round resume.  Several frames decode at once, one numba
thread per frame, handed out one at a time (a thread whose frame converged early takes the
next one).
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from qkdctl.core.errors import QkdInputError
from qkdctl.core.reconcile.ldpc import _PHI, DecodeResult, _float_bits, _phi_index, _prior_llr
from qkdctl.core.reconcile.qc_codes import QcLdpcCode

PHI_MODES = ("table", "poly", "tanh")  # kernel modes 0, 1, 2

_F0 = np.float32(0.0)
_F1 = np.float32(1.0)
_HALF = np.float32(0.5)
_X_MIN = np.float32(2.0 ** -20)  # phi(x) clamps x to [2^-20, 40] (phi(40) ~ 8e-18, taken as 0)
_X_MAX = np.float32(40.0)
_SERIES_BELOW = np.float32(0.25)  # series for 1 - e^-x below x = 1/4 and for atanh(u) below u = 1/4
_LOG2E = np.float32(1.0 / np.log(2.0))
_LN2 = np.float32(np.log(2.0))
_SQRT2 = np.float32(np.sqrt(2.0))
# 2^f, |f| <= 1/2: least-squares polynomial of degree 4 (relative error < 8e-6)
_P2 = tuple(np.float32(c) for c in (0.69312726, 0.24022212, 0.05587554, 0.00967077))
# ln(1 + r) = r p(r) for sqrt(1/2) <= 1 + r < sqrt(2), p of degree 5 (absolute error < 6e-6)
_PL = tuple(np.float32(c) for c in (1.00000287, -0.49992315, 0.33276176, -0.25364327,
                                    0.21813952, -0.14166949))
_E2, _E3, _E4, _E5 = np.float32(1 / 2), np.float32(1 / 6), np.float32(1 / 24), np.float32(1 / 120)
# 2 atanh(u) = 2 u (1 + u^2/3 + u^4/5 + u^6/7 + u^8/9), u < 1/4
_A3, _A5, _A7, _A9 = np.float32(1 / 3), np.float32(1 / 5), np.float32(1 / 7), np.float32(1 / 9)
_TWO = np.float32(2.0)
_PHI_CAP = np.float32(-np.log(np.tanh(2.0 ** -21)))  # phi(2^-20): the largest message
_OM_MIN = np.float32(1e-30)
_I1 = np.int32(1)
_I3 = np.int32(3)
_I127 = np.int32(127)
_I23 = np.int32(23)
_MANT = np.int32(0x7FFFFF)
_ONE_BITS = np.int32(0x3F800000)


@intrinsic
def _bitcast_i32_f32(typingctx, x):  # pragma: no cover - compiled
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


@njit(cache=True, inline="always", fastmath=True, error_model="numpy")
def _exp_neg(x):  # pragma: no cover - compiled
    # e^-x for 0 <= x <= 40: 2^k 2^f, k = round(-x log2 e), |f| <= 1/2
    y = -x * _LOG2E
    k = np.floor(y + _HALF)
    f = y - k
    p2 = _F1 + f * (_P2[0] + f * (_P2[1] + f * (_P2[2] + f * _P2[3])))
    return p2 * _bitcast_i32_f32((np.int32(k) + _I127) << _I23)


@njit(cache=True, inline="always", fastmath=True, error_model="numpy")
def _one_minus_exp_neg(x, u):  # pragma: no cover - compiled
    # 1 - e^-x given u = e^-x: by its series below x = 1/4 (no cancellation)
    series = x * (_F1 - x * (_E2 - x * (_E3 - x * (_E4 - x * _E5))))
    return series if x < _SERIES_BELOW else _F1 - u


@njit(cache=True, inline="always", fastmath=True, error_model="numpy")
def _log_poly(v):  # pragma: no cover - compiled
    # ln(v) for a normal float v > 0: v = m 2^e, sqrt(1/2) <= m < sqrt(2), ln m = r p(r)
    bits = _float_bits(v)
    e = (bits >> _I23) - _I127
    m = _bitcast_i32_f32((bits & _MANT) | _ONE_BITS)
    big = m > _SQRT2
    r = (m * _HALF if big else m) - _F1
    e = e + np.int32(big)
    ln_m = r * (_PL[0] + r * (_PL[1] + r * (_PL[2] + r * (_PL[3] + r * (_PL[4] + r * _PL[5])))))
    return ln_m + np.float32(e) * _LN2


@njit(cache=True, inline="always", fastmath=True, error_model="numpy")
def _two_atanh_series(y):  # pragma: no cover - compiled
    # 2 atanh(y) for 0 <= y < 1/4 (relative error < 1e-7)
    y2 = y * y
    return _TWO * y * (_F1 + y2 * (_A3 + y2 * (_A5 + y2 * (_A7 + y2 * _A9))))


@njit(cache=True, inline="always", fastmath=True, error_model="numpy")
def _two_atanh(y):  # pragma: no cover - compiled
    # 2 atanh(y) = ln((1 + y) / (1 - y)) for 0 <= y <= 1; series below 1/4 (1 + y rounds
    # away y's digits), capped at _PHI_CAP = phi(2^-20) like the phi of the other modes
    big = min(_log_poly((_F1 + y) / max(_F1 - y, _OM_MIN)), _PHI_CAP)
    return _two_atanh_series(y) if y < _SERIES_BELOW else big


@njit(cache=True, inline="always", fastmath=True, error_model="numpy")
def _phi_poly(x):  # pragma: no cover - compiled
    # phi(x) = 2 atanh(e^-x) = ln((1 + u) / (1 - u)), u = e^-x
    x = min(max(x, _X_MIN), _X_MAX)
    u = _exp_neg(x)
    big = _log_poly((_F1 + u) / _one_minus_exp_neg(x, u))
    return _two_atanh_series(u) if u < _SERIES_BELOW else big


@njit(cache=True, inline="always", fastmath=True, error_model="numpy")
def _tanh_half(x):  # pragma: no cover - compiled
    # tanh(x / 2) = (1 - e^-x) / (1 + e^-x) for x >= 0
    x = min(x, _X_MAX)
    u = _exp_neg(x)
    return _one_minus_exp_neg(x, u) / (_F1 + u)


@njit(cache=True, inline="always")
def _phi_tab(x, table, last):  # pragma: no cover - compiled
    return table[_phi_index(_float_bits(x), last)]


@njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def _qc_frame_kernel(layer_ptr, edge_block, edge_shift, z, target, llr0, r_msg, max_iter,
                     stall_iter, mode, table, q_buf, f_buf, t_buf, total, nh, post,
                     err):  # pragma: no cover - compiled
    # One frame; post/err outputs, r_msg (edge-major, z lanes per edge) updated in place.
    # mode 0: phi by table, 1: phi by polynomial (total = sum of phi(|q|), f_buf = phi(|q|));
    # 2: tanh products (total = running product, f_buf = prefix product, t_buf = tanh(|q|/2)).
    mb = layer_ptr.shape[0] - 1
    nv = llr0.shape[0]
    last = table.shape[0] - 1
    for v in range(nv):
        post[v] = llr0[v]
    for e in range(edge_block.shape[0]):  # resume: posterior = prior + incoming messages
        base = edge_block[e] * z
        s = edge_shift[e]
        for t in range(z):
            post[base + (t + s) % z] += r_msg[e * z + t]
    best_unsat = mb * z + 1
    best_it = 0
    # every lane loop indexes a view from 0 (numba then emits no negative-index fix-up,
    # so LLVM sees contiguous accesses and vectorises)
    for it in range(1, max_iter + 1):
        unsat = 0
        for layer in range(mb):
            lo = layer_ptr[layer]
            d = layer_ptr[layer + 1] - lo
            tv = target[layer * z:(layer + 1) * z]
            start = _F1 if mode == 2 else _F0
            for t in range(z):
                nh[t] = np.int32(tv[t]) * _I3  # bit 0: sign parity, bit 1: hard-decision parity
                total[t] = start
            for k in range(d):
                e = lo + k
                base = edge_block[e] * z
                s = edge_shift[e]
                w = z - s
                qv = q_buf[k * z:(k + 1) * z]
                fv = f_buf[k * z:(k + 1) * z]
                rv = r_msg[e * z:(e + 1) * z]
                head = post[base + s:base + z]  # rotation: lane t reads variable (t + s) mod z
                tail = post[base:base + s]
                qw = qv[w:]
                for t in range(w):
                    qv[t] = head[t]
                for t in range(s):
                    qw[t] = tail[t]
                if mode == 0:
                    for t in range(z):
                        p = qv[t]
                        q = p - rv[t]
                        qv[t] = q
                        nh[t] ^= np.int32(q < _F0) | (np.int32(p < _F0) << _I1)
                        f = _phi_tab(abs(q), table, last)
                        fv[t] = f
                        total[t] += f
                elif mode == 2:
                    tk = t_buf[k * z:(k + 1) * z]
                    for t in range(z):
                        p = qv[t]
                        q = p - rv[t]
                        qv[t] = q
                        nh[t] ^= np.int32(q < _F0) | (np.int32(p < _F0) << _I1)
                        th = _tanh_half(abs(q))
                        tk[t] = th
                        fv[t] = total[t]  # product of the layer's earlier tanh values
                        total[t] *= th
                else:
                    for t in range(z):
                        p = qv[t]
                        q = p - rv[t]
                        qv[t] = q
                        nh[t] ^= np.int32(q < _F0) | (np.int32(p < _F0) << _I1)
                        f = _phi_poly(abs(q))
                        fv[t] = f
                        total[t] += f
            for t in range(z):
                unsat += (nh[t] >> _I1) & _I1
            if mode == 2:
                for t in range(z):
                    total[t] = _F1  # now the product of the later tanh values (suffix)
            for kk in range(d):
                k = d - 1 - kk if mode == 2 else kk
                e = lo + k
                base = edge_block[e] * z
                s = edge_shift[e]
                w = z - s
                qv = q_buf[k * z:(k + 1) * z]
                fv = f_buf[k * z:(k + 1) * z]
                rv = r_msg[e * z:(e + 1) * z]
                if mode == 0:
                    for t in range(z):
                        q = qv[t]
                        mag = _phi_tab(total[t] - fv[t], table, last)
                        r = -mag if ((nh[t] ^ np.int32(q < _F0)) & _I1) else mag
                        rv[t] = r
                        qv[t] = q + r
                elif mode == 2:
                    tk = t_buf[k * z:(k + 1) * z]
                    for t in range(z):
                        q = qv[t]
                        mag = _two_atanh(fv[t] * total[t])
                        total[t] *= tk[t]
                        r = -mag if ((nh[t] ^ np.int32(q < _F0)) & _I1) else mag
                        rv[t] = r
                        qv[t] = q + r
                else:
                    for t in range(z):
                        q = qv[t]
                        mag = _phi_poly(total[t] - fv[t])
                        r = -mag if ((nh[t] ^ np.int32(q < _F0)) & _I1) else mag
                        rv[t] = r
                        qv[t] = q + r
                head = post[base + s:base + z]
                tail = post[base:base + s]
                qw = qv[w:]
                for t in range(w):
                    head[t] = qv[t]
                for t in range(s):
                    tail[t] = qw[t]
        if unsat == 0:  # confirm on the final hard decisions
            for v in range(nv):
                err[v] = 1 if post[v] < _F0 else 0
            ok = True
            for layer in range(mb):
                for t in range(z):
                    acc = target[layer * z + t]
                    for e in range(layer_ptr[layer], layer_ptr[layer + 1]):
                        acc ^= err[edge_block[e] * z + (t + edge_shift[e]) % z]
                    if acc:
                        ok = False
                        break
                if not ok:
                    break
            if ok:
                return it, True
        if unsat < best_unsat:
            best_unsat = unsat
            best_it = it
        elif it - best_it >= stall_iter:
            for v in range(nv):
                err[v] = 1 if post[v] < _F0 else 0
            return it, False  # no progress: give up early
    for v in range(nv):
        err[v] = 1 if post[v] < _F0 else 0
    return max_iter, False


@njit(cache=True, nogil=True, parallel=True)
def _qc_batch_kernel(layer_ptr, edge_block, edge_shift, z, targets, llr0, r_msg, max_iter,
                     stall_iter, mode, table, max_deg, post, err, its, ok):  # pragma: no cover
    for f in prange(targets.shape[0]):
        q_buf = np.empty(max_deg * z, np.float32)
        f_buf = np.empty(max_deg * z, np.float32)
        t_buf = np.empty(max_deg * z, np.float32)
        total = np.empty(z, np.float32)
        nh = np.empty(z, np.int32)
        its[f], ok[f] = _qc_frame_kernel(
            layer_ptr, edge_block, edge_shift, z, targets[f], llr0[f], r_msg[f], max_iter,
            stall_iter, mode, table, q_buf, f_buf, t_buf, total, nh, post[f], err[f])


class QcSyndromeDecoder:
    """Layered sum-product syndrome decoder of a QC code, vectorised over the lanes of a layer.

    Same interface and results as `ldpc.SyndromeDecoder` (sum-product): `decode` /
    `decode_many` return `DecodeResult`s whose `state` resumes a later decoding.
    `columns`: the columns that take part in decoding; every circulant block holding none of
    them is left out of the graph (known error 0, no work); other columns of kept blocks
    decode with their given priors.  `phi`: the check update, "table", "poly" or "tanh"
    (module docstring; measured in docs/ldpc.md: same decoding, "tanh" fastest).
    """

    def __init__(self, code: QcLdpcCode, max_iter: int = 60, stall_iter: int = 12,
                 columns: np.ndarray | None = None, phi: str = "tanh") -> None:
        if not isinstance(code, QcLdpcCode):
            raise QkdInputError("QcSyndromeDecoder needs a quasi-cyclic code (QcLdpcCode)")
        if max_iter <= 0:
            raise QkdInputError(f"max_iter must be positive, got {max_iter}")
        if phi not in PHI_MODES:
            raise QkdInputError(f"phi must be one of {PHI_MODES}, got {phi!r}")
        self.code = code
        self.max_iter = int(max_iter)
        self.stall_iter = int(max(1, stall_iter))
        self._mode = PHI_MODES.index(phi)
        z = code.z
        mb, nb = code.shifts.shape
        keep = np.ones(nb, dtype=bool)
        if columns is not None:
            cols = np.asarray(columns, dtype=np.int64)
            if cols.ndim != 1 or cols.size == 0 or cols.min() < 0 or cols.max() >= code.n:
                raise QkdInputError(f"columns must be a non-empty array of column indices in 0..{code.n - 1}")
            keep = np.zeros(nb, dtype=bool)
            keep[cols // z] = True
        self._blocks = np.flatnonzero(keep)
        compact = np.full(nb, -1, np.int64)
        compact[self._blocks] = np.arange(self._blocks.size)
        sub = code.shifts[:, self._blocks]
        rows, cols_b = np.nonzero(sub >= 0)  # row-major: layer by layer, columns in order
        self._layer_ptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=mb))]).astype(np.int64)
        self._edge_block = cols_b.astype(np.int64)
        self._edge_shift = sub[rows, cols_b].astype(np.int64)
        self._max_deg = int(np.diff(self._layer_ptr).max())
        self._var_cols = (self._blocks[:, None] * z + np.arange(z)[None, :]).ravel()

    @property
    def n_edges(self) -> int:
        """Edges of the decoding graph (kept blocks), i.e. messages per frame."""
        return int(self._edge_block.size * self.code.z)

    def decode(self, target: np.ndarray, priors: np.ndarray,
               state: np.ndarray | None = None) -> DecodeResult:
        """Find e with H e = target (length m) given per-column error priors (length n)."""
        return self.decode_many([target], [priors], [state])[0]

    def decode_many(self, targets: list[np.ndarray], priors: list[np.ndarray],
                    states: list[np.ndarray | None] | None = None) -> list[DecodeResult]:
        """Decode several frames of this code at once (one numba thread per frame)."""
        count = len(targets)
        states = [None] * count if states is None else list(states)
        if len(priors) != count or len(states) != count or count == 0:
            raise QkdInputError("decode_many needs equally many (>= 1) targets, priors and states")
        code, z = self.code, self.code.z
        nv, e = self._var_cols.size, self.n_edges
        t_arr = np.empty((count, code.m), np.uint8)
        llr0 = np.empty((count, nv), np.float32)
        # one frame resuming: the kernel updates the caller's state in place (no copies)
        in_place = count == 1 and states[0] is not None
        msgs = None if in_place else np.zeros((count, e), np.float32)
        full_llr = []
        for i in range(count):
            target = np.ascontiguousarray(targets[i], dtype=np.uint8)
            prior = np.asarray(priors[i], dtype=np.float64)
            if target.shape != (code.m,) or prior.shape != (code.n,):
                raise QkdInputError(f"target must have {code.m} bits and priors {code.n} values")
            t_arr[i] = target
            full_llr.append(_prior_llr(prior))
            llr0[i] = full_llr[i][self._var_cols]
            if states[i] is not None:
                if states[i].shape != (e,) or states[i].dtype != np.float32:
                    raise QkdInputError(f"state must be float32 of length {e}")
                if not in_place:
                    msgs[i] = states[i]
        if in_place:
            if not states[0].flags.c_contiguous:
                raise QkdInputError("state must be a contiguous array")
            msgs = states[0][None, :]
        post = np.empty((count, nv), np.float32)
        err = np.empty((count, nv), np.uint8)
        its = np.zeros(count, np.int64)
        ok = np.zeros(count, np.bool_)
        args = (self._layer_ptr, self._edge_block, self._edge_shift, z)
        if count == 1:  # no thread team for one frame
            its[0], ok[0] = _qc_frame_kernel(
                *args, t_arr[0], llr0[0], msgs[0], self.max_iter, self.stall_iter, self._mode,
                _PHI, np.empty(self._max_deg * z, np.float32), np.empty(self._max_deg * z, np.float32),
                np.empty(self._max_deg * z, np.float32),
                np.empty(z, np.float32), np.empty(z, np.int32), post[0], err[0])
        else:
            with numba.parallel_chunksize(1):
                _qc_batch_kernel(*args, t_arr, llr0, msgs, self.max_iter, self.stall_iter, self._mode,
                                 _PHI, self._max_deg, post, err, its, ok)
        out = []
        for i in range(count):
            state = msgs[i]
            if states[i] is not None:
                if not in_place:
                    states[i][:] = msgs[i]
                state = states[i]
            err_i = np.zeros(code.n, np.uint8)
            err_i[self._var_cols] = err[i]
            post_i = full_llr[i].astype(np.float64)
            post_i[self._var_cols] = post[i]
            out.append(DecodeResult(err_i, bool(ok[i]), post_i, int(its[i]), state))
        return out
